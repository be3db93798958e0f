# portcullis: one recipe per chore. Builds share a cargo target dir outside the checkout so a
# fresh clone (and CI) reuses earlier compilation on the same machine.
CARGO_TARGET_DIR ?= $(HOME)/.cache/portcullis/target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: run test fmt lint unit policy-test bench build

## The webhook on the embedded default library with development TLS (see README).
run:
	$(CARGO) run --locked --release -- serve --dev --config examples/config/dev.yaml

## Everything CI checks: formatting, lints, all tests, and the policy library's own tests.
test: fmt lint unit policy-test

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked

policy-test:
	$(CARGO) run --locked --quiet -- test policies/

## Decision-path benchmark against its floors; writes target/bench/decision.md.
bench:
	$(CARGO) bench --locked --bench decision

build:
	$(CARGO) build --locked --release
