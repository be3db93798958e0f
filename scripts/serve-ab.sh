#!/usr/bin/env bash
# Two builds of `portcullis serve` side by side: speed and resident memory, interleaved rounds,
# each server started afresh. docs/benchmarks.md reports a run (transparent huge pages on and off).
#
#   scripts/serve-ab.sh BINARY_A BINARY_B     # ROUNDS=3
#
# Per round and binary: the 10 KB Pod review (tests/fixtures/reviews/policy/pod-10kb.json) as
# fast as 8 connections go for 8 s, then at 400 req/s for 8 s (p50 / p99), then every review of
# tests/fixtures/reviews/policy at 1,000 req/s for 20 s, after which RSS and the transparent
# huge pages in it are read. The server on core 0, vegeta (scripts/tools.sh) on core 1,
# `serve --dev` (the embedded library), loopback only.
set -euo pipefail
if (($# != 2)); then
  echo "usage: $0 BINARY_A BINARY_B" >&2
  exit 2
fi
A=$(realpath "$1") B=$(realpath "$2")
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
VEGETA=$(scripts/tools.sh vegeta)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=18643

printf 'POST https://localhost:%s/validate?timeout=10s\nContent-Type: application/json\n@%s\n' \
  "$PORT" "$PWD/tests/fixtures/reviews/policy/pod-10kb.json" >"$WORK/pod-10kb"
for review in tests/fixtures/reviews/policy/*.json; do
  printf 'POST https://localhost:%s/validate?timeout=10s\nContent-Type: application/json\n@%s\n\n' \
    "$PORT" "$PWD/$review" >>"$WORK/mix"
done

# attack TARGETS ARGS...: vegeta on core 1 against the server, its JSON report.
attack() {
  local targets=$1
  shift
  taskset -c 1 "$VEGETA" attack -root-certs="$WORK/state/ca.crt" -targets="$WORK/$targets" "$@" |
    "$VEGETA" report -type=json
}

echo "| round | binary | max req/s, 8 connections | p50 / p99 at 400 req/s (ms) | RSS after the mix (MiB) | of it huge pages (MiB) |"
echo "|---|---|---:|---|---:|---:|"
for ((round = 1; round <= ROUNDS; round++)); do
  for binary in "$A" "$B"; do
    taskset -c 0 "$binary" serve --dev --state-dir "$WORK/state" --listen "127.0.0.1:$PORT" \
      --metrics-listen "127.0.0.1:$((PORT + 1))" --log-level warn >"$WORK/server.log" 2>&1 &
    pid=$!
    scripts/wait-ready.sh "http://127.0.0.1:$((PORT + 1))/readyz" "$WORK/server.log"
    attack pod-10kb -rate=200 -duration=2s >/dev/null # warm-up
    max=$(attack pod-10kb -rate=0 -max-workers=8 -duration=8s | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["throughput"]))')
    latency=$(attack pod-10kb -rate=400 -duration=8s |
      python3 -c 'import json,sys; l=json.load(sys.stdin)["latencies"]; print("%.2f / %.2f" % (l["50th"]/1e6, l["99th"]/1e6))')
    attack mix -rate=1000 -duration=20s >/dev/null
    memory=$(awk '/^(Rss|AnonHugePages):/ {printf " %.1f |", $2 / 1024}' "/proc/$pid/smaps_rollup")
    echo "| $round | $binary | $max | $latency |$memory"
    kill "$pid" && wait "$pid" || true
  done
done
