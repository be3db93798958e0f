#!/usr/bin/env bash
# Runs portcullis's fuzz targets (fuzz/, cargo fuzz on libFuzzer) for a time budget each and
# fails on the first crash or broken property, naming the input that caused it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    # default: 60 s each, every target
#   scripts/fuzz.sh repro TARGET FILE        # runs TARGET on one input (a crash's artifact)
#
# make fuzz runs the campaign (60 s each); make test runs a few seconds of each (make
# fuzz-smoke). The corpus each run grows is kept outside the checkout, in
# $PORTCULLIS_FUZZ_DIR (default ~/.cache/portcullis/fuzz), so later runs start where earlier ones
# stopped; the seeds are the repository's fixtures (see SEEDS) and fuzz/seeds/. A summary of
# the executions reached is printed at the end (docs/reliability.md has a long run's).
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${PORTCULLIS_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis/fuzz}
# Built on its own: nightly with libFuzzer's instrumentation shares nothing with the stable build.
export CARGO_TARGET_DIR=$WORK/target

die() { echo "fuzz.sh: $*" >&2; exit 1; }

rustup toolchain list | grep -q '^nightly' ||
  die "cargo fuzz needs a nightly Rust toolchain (rustup toolchain list shows none)"
PATH=$(dirname "$(scripts/tools.sh cargo-fuzz)"):$PATH
FUZZ=(cargo +nightly fuzz)

if [[ ${1:-} == repro ]]; then
  (($# == 3)) || die "usage: $0 repro TARGET FILE"
  exec "${FUZZ[@]}" run --fuzz-dir fuzz --sanitizer none "$2" "$3"
fi
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")

# Each target's seeds beside fuzz/seeds/TARGET: the fixtures the tests already use.
declare -A SEEDS=(
  [review]="tests/fixtures/reviews/policy tests/fixtures/reviews/workloads tests/fixtures/reviews/bad"
  [check_manifests]="tests/fixtures/manifests/good tests/fixtures/manifests/bad tests/fixtures/manifests/risk examples/micro-app/k8s"
  [gatekeeper_policies]=""
  [rfc3161_timestamp]="tests/fixtures/timestamps"
)
# gatekeeper-library's templates, each with one of its constraints, from ../shared/conformance
# (where public suites' test data comes from) when it is there.
LIBRARY=../shared/conformance/gatekeeper-library/library
gatekeeper_seeds() {
  local out=$WORK/seeds/gatekeeper_policies template constraint
  rm -rf "$out" && mkdir -p "$out"
  [[ -d $LIBRARY ]] || return 0
  for template in "$LIBRARY"/*/*/template.yaml; do
    constraint=$(ls "$(dirname "$template")"/samples/*/constraint.yaml 2>/dev/null | head -1 || true)
    { cat "$template"; [[ -z $constraint ]] || { echo "---"; cat "$constraint"; }; } \
      >"$out/$(basename "$(dirname "$template")").yaml"
  done
  SEEDS[gatekeeper_policies]=$out
}

if ((${#TARGETS[@]} == 0)); then
  mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^portcullis-fuzz$')
fi

echo "fuzz.sh: building the targets" >&2
# No sanitizer: portcullis has no unsafe code; debug assertions and overflow checks stay on.
"${FUZZ[@]}" build --fuzz-dir fuzz --sanitizer none >&2

gatekeeper_seeds
summary=()
total=0
for target in "${TARGETS[@]}"; do
  corpus=$WORK/corpus/$target artifacts=$WORK/artifacts/$target/ log=$WORK/logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$WORK/logs"
  seeds=()
  [[ -d fuzz/seeds/$target ]] && seeds+=("fuzz/seeds/$target")
  for dir in ${SEEDS[$target]:-}; do seeds+=("$dir"); done
  echo "fuzz.sh: $target for ${SECONDS_EACH}s (log: $log)" >&2
  rc=0
  "${FUZZ[@]}" run --fuzz-dir fuzz --sanitizer none "$target" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((rc != 0)); then
    tail -n 40 "$log" >&2
    die "$target failed (exit $rc); the input is in $artifacts (reproduce: scripts/fuzz.sh repro $target FILE)"
  fi
  [[ -n $executions ]] || die "$target printed no execution count; see $log"
  summary+=("$target $executions")
  total=$((total + executions))
done

printf '%-22s %14s\n' target executions
for line in "${summary[@]}"; do printf '%-22s %14s\n' $line; done
printf '%-22s %14s\n' total "$total"
# The plain closing line CI reads: every target ran and none failed.
echo "fuzz: ${#summary[@]} passed, 0 failed"
