#!/usr/bin/env bash
# The two test tiers cover every test binary exactly once: each top-level tests/*.rs is listed
# in the Makefile's UNIT_TESTS or INTEGRATION_TESTS, not both and not twice, every listed name
# has its file, and no unit-tier binary starts a tool built by scripts/tools.sh (the fast tier
# needs none). `make test` runs this first, so a new test file cannot be skipped by both tiers.
#
#   scripts/test-tiers.sh "UNIT_TESTS" "INTEGRATION_TESTS"   # the Makefile's two lists
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "test-tiers: $*" >&2; exit 1; }
(($# == 2)) || die "usage: $0 \"UNIT_TESTS\" \"INTEGRATION_TESTS\""

declare -A tiers=()
for name in $1; do tiers[$name]+=" unit"; done
for name in $2; do tiers[$name]+=" integration"; done

problems=()
# Cargo's test targets: tests/NAME.rs and tests/NAME/main.rs.
for file in tests/*.rs tests/*/main.rs; do
  [[ -f $file ]] || continue
  name=${file#tests/} name=${name%.rs} name=${name%/main}
  case ${tiers[$name]:-} in
  " unit" | " integration") ;;
  "") problems+=("$file is in no tier: add $name to UNIT_TESTS or INTEGRATION_TESTS in the Makefile") ;;
  *) problems+=("$file is listed more than once:${tiers[$name]}") ;;
  esac
done
for name in "${!tiers[@]}"; do
  [[ -f tests/$name.rs || -f tests/$name/main.rs ]] || problems+=("the Makefile lists $name, but there is no tests/$name.rs")
done
# What starts a real part: a tool from scripts/tools.sh (lab::tool), the control plane, the
# registry lab, the local Sigstore.
real_parts='\btool\(|tools\.sh|ControlPlane|Lab::start|start_registry|PrivateRegistry|sigstore-local'
for name in $1; do
  files=()
  for file in tests/"$name".rs tests/"$name"/*.rs; do [[ -f $file ]] && files+=("$file"); done
  ((${#files[@]})) || continue
  if found=$(grep -nE "$real_parts" "${files[@]}"); then
    problems+=("tests/$name is in the unit tier but starts a real part (move it to INTEGRATION_TESTS):
$found")
  fi
done

if ((${#problems[@]})); then
  printf 'test-tiers: %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "test-tiers: $(wc -w <<<"$1") unit and $(wc -w <<<"$2") integration test binaries, every tests/*.rs in one"
