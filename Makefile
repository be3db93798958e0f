# portcullis: one recipe per chore. Builds share a cargo target dir outside the checkout so a
# fresh clone (and CI) reuses earlier compilation on the same machine.
CARGO_TARGET_DIR ?= $(HOME)/.cache/portcullis/target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: vendor run test fmt lint unit integration test-tiers policy-test chart-check chart-package example-check static-check generate bench soak build fuzz fuzz-smoke

## The test tiers. Unit: the test binaries that need no tool from scripts/tools.sh (the router
## in-process, the TLS server on loopback sockets, the CLI and dashboards against the built binary,
## the docs, the module layering). Integration: those that start real parts (a registry, cosign,
## kube-apiserver, helm, gator, OPA, the local Sigstore). Every tests/*.rs is in exactly one list
## (scripts/test-tiers.sh, run by `make test`).
UNIT_TESTS := cli docs engines layers registry_faults server webhook
INTEGRATION_TESTS := audit ci_formats cluster credentials dashboards e2e engine_patches gatekeeper keyless opa_differential prometheus supply_chain

## The crates we patch (patches/README.md), prepared in vendor/ before any cargo command; a
## no-op when they are up to date.
vendor:
	scripts/vendor.sh

## The webhook on the embedded default library with development TLS (see README).
run: vendor
	$(CARGO) run --locked --release -- serve --dev --config examples/config/dev.yaml

## Everything CI checks: formatting, lints, both test tiers, the policy library's own tests, the
## Helm chart (lint, renders, schema, drift of its generated files), the micro-app example, the
## container image's binary, and a few seconds of every fuzz target.
test: vendor test-tiers fmt lint unit integration policy-test chart-check example-check static-check fuzz-smoke

fmt: vendor
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check

lint: vendor
	$(CARGO) clippy --locked --all-targets -- -D warnings

## The fast tier: the library's and the binary's unit tests, the unit-tier test binaries, and
## the doc-tests (cargo runs those only in a command of their own).
unit: vendor test-tiers
	$(CARGO) test --locked --lib --bins $(addprefix --test ,$(UNIT_TESTS))
	$(CARGO) test --locked --doc

## The real-parts tier (the first run builds the tools: kube-apiserver takes many minutes).
integration: vendor test-tiers
	$(CARGO) test --locked $(addprefix --test ,$(INTEGRATION_TESTS))

test-tiers:
	scripts/test-tiers.sh "$(UNIT_TESTS)" "$(INTEGRATION_TESTS)"

policy-test: vendor
	$(CARGO) run --locked --quiet -- test policies/

## helm lint --strict of every values variant, the schema's refusals, and no drift between the
## chart's generated files (its copy of policies/, deploy/portcullis.yaml) and their sources.
chart-check:
	scripts/chart-check.sh

## The micro-app template (examples/micro-app) as its CI checks it: the rendered kustomization
## is admitted by the current default policies with its app.yaml, and its gates are printed.
example-check: vendor
	mkdir -p $(CARGO_TARGET_DIR)/examples
	"$$(scripts/tools.sh kubectl)" kustomize examples/micro-app >$(CARGO_TARGET_DIR)/examples/micro-app.yaml
	cd examples/micro-app && $(CARGO) run --locked --quiet -- check --offline \
	  --config platform/portcullis.yaml --app app.yaml --output markdown --kustomize-dir . \
	  $(CARGO_TARGET_DIR)/examples/micro-app.yaml platform/namespace.yaml
	cd examples/micro-app && $(CARGO) run --locked --quiet -- gates --config platform/portcullis.yaml app.yaml

## What the Dockerfile builds, without a container engine: the static (musl) release binary from
## the script the Dockerfile runs, started with the image's config and answering a review.
static-check: vendor
	scripts/static-check.sh "$$(scripts/static-build.sh)"

## The chart as published (dist/portcullis-VERSION.tgz): with the report CRDs in crds/.
chart-package:
	scripts/chart-check.sh package dist

## The fuzz targets (fuzz/, cargo fuzz on a nightly toolchain; docs/reliability.md): each for
## FUZZ_SECONDS, growing a corpus kept outside the checkout; fails on a crash or a broken property.
FUZZ_SECONDS ?= 60
fuzz: vendor
	scripts/fuzz.sh $(FUZZ_SECONDS)

## A few seconds of each fuzz target, for make test (the long campaign is make fuzz).
fuzz-smoke: vendor
	scripts/fuzz.sh 5

## Rewrites the generated files: charts/portcullis/policies/ and deploy/portcullis.yaml.
generate:
	scripts/chart-check.sh generate

## Benchmarks against their floors and peers (docs/benchmarks.md): the decision path, the
## glibc and the shipped static musl binary beside `opa run --server` (vegeta from
## scripts/tools.sh), image verification (a local registry and cosign), and Gatekeeper
## templates beside `gator bench`, and the audit (synthetic fleets, and a real apiserver and
## registry), and two minutes of load, soak, overload, drain and their floor (docs/reliability.md). Each
## prints a markdown report, kept in $(CARGO_TARGET_DIR)/bench/.
bench: vendor
	mkdir -p $(CARGO_TARGET_DIR)/bench
	PORTCULLIS_STATIC_BINARY="$$(scripts/static-build.sh)" $(CARGO) bench --locked --bench peer >$(CARGO_TARGET_DIR)/bench/peer.md
	cat $(CARGO_TARGET_DIR)/bench/peer.md
	$(CARGO) bench --locked --bench decision >$(CARGO_TARGET_DIR)/bench/decision.md
	cat $(CARGO_TARGET_DIR)/bench/decision.md
	$(CARGO) bench --locked --bench verification >$(CARGO_TARGET_DIR)/bench/verification.md
	cat $(CARGO_TARGET_DIR)/bench/verification.md
	$(CARGO) bench --locked --bench gatekeeper >$(CARGO_TARGET_DIR)/bench/gatekeeper.md
	cat $(CARGO_TARGET_DIR)/bench/gatekeeper.md
	$(CARGO) bench --locked --bench audit >$(CARGO_TARGET_DIR)/bench/audit.md
	cat $(CARGO_TARGET_DIR)/bench/audit.md
	SOAK_SECONDS=120 $(CARGO) bench --locked --bench soak >$(CARGO_TARGET_DIR)/bench/soak.md
	cat $(CARGO_TARGET_DIR)/bench/soak.md

## The long soak (docs/reliability.md): benches/soak.rs for SOAK_SECONDS (30 minutes), then
## its overload, drain and floor (2 minutes); the report in $(CARGO_TARGET_DIR)/bench/soak-long.md, every memory
## sample in soak-long-memory.csv.
SOAK_SECONDS ?= 1800
soak: vendor
	mkdir -p $(CARGO_TARGET_DIR)/bench
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_SAMPLES=$(CARGO_TARGET_DIR)/bench/soak-long-memory.csv \
	  $(CARGO) bench --locked --bench soak >$(CARGO_TARGET_DIR)/bench/soak-long.md
	cat $(CARGO_TARGET_DIR)/bench/soak-long.md

build: vendor
	$(CARGO) build --locked --release
