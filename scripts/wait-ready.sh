#!/usr/bin/env bash
# Waits up to 10 s for a server's readiness URL to answer; when it does not, prints the
# server's log and fails. Shared by the measurement scripts.
#
#   scripts/wait-ready.sh http://127.0.0.1:PORT/readyz SERVER_LOG
set -euo pipefail
url=$1 log=$2
for ((i = 0; i < 50; i++)); do
  curl -sf "$url" >/dev/null && exit 0
  sleep 0.2
done
echo "not ready after 10 s: $url; its log:" >&2
cat "$log" >&2
exit 1
