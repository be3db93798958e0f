#!/usr/bin/env bash
# Resident memory of `portcullis serve` (release) under a steady load, with a policy reload
# every INTERVAL seconds (RELOADS of them), then the same without reloads: whether reloads grow
# memory, or raise it once. docs/reliability.md reports a run.
#
#   scripts/reload-memory.sh            # RELOADS=20 INTERVAL=20 RATE=300
#
# The server on core 0, vegeta (scripts/tools.sh) on core 1, the 10 KB Pod review of
# tests/fixtures/reviews/policy/pod-10kb.json, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
RELOADS=${RELOADS:-20} INTERVAL=${INTERVAL:-20} RATE=${RATE:-300}
TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}
make --quiet vendor
cargo build --locked --release --quiet
BIN=$TARGET_DIR/release/portcullis
VEGETA=$(scripts/tools.sh vegeta)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
REVIEW=$PWD/tests/fixtures/reviews/policy/pod-10kb.json

# run NAME RELOADS: a fresh server and library, the load, a sample every INTERVAL s (and a
# reload after it when RELOADS > 0).
run() {
  local name=$1 reloads=$2 port=18543 steps=$((RELOADS > 0 ? RELOADS : 1)) i pid load
  rm -rf "$WORK/policies" && cp -r policies "$WORK/policies"
  cat >"$WORK/config.yaml" <<EOF
logging: { level: warn }
server:
  listen: 127.0.0.1:$port
  metricsListen: 127.0.0.1:$((port + 1))
  tls: { certFile: $WORK/tls.crt, keyFile: $WORK/tls.key }
risk: { namespaceSource: none }
policies: { dirs: [$WORK/policies], reloadInterval: 1s }
EOF
  taskset -c 0 "$BIN" serve --config "$WORK/config.yaml" 2>"$WORK/$name.log" &
  pid=$!
  scripts/wait-ready.sh "http://127.0.0.1:$((port + 1))/readyz" "$WORK/$name.log"
  printf 'POST https://localhost:%s/validate?timeout=10s\nContent-Type: application/json\n@%s\n' "$port" "$REVIEW" >"$WORK/target"
  taskset -c 1 "$VEGETA" attack -insecure -rate="$RATE" -duration=$(((steps + 1) * INTERVAL))s \
    -targets="$WORK/target" >"$WORK/$name.bin" &
  load=$!
  echo "## $name"
  for ((i = 1; i <= steps; i++)); do
    sleep "$INTERVAL"
    echo "t=$((i * INTERVAL))s rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
    if ((reloads > 0)); then echo "# revision $i" >>"$WORK/policies/metadata/required_labels/policy.rego"; fi
  done
  wait "$load"
  "$VEGETA" report <"$WORK/$name.bin" | grep -E 'Latencies|Success'
  curl -s "http://127.0.0.1:$((port + 1))/metrics" | grep '^portcullis_policy_reloads_total'
  kill "$pid" && wait "$pid" || true
}

run "with a reload every ${INTERVAL} s" "$RELOADS"
run "without reloads" 0
