#!/usr/bin/env bash
# What the container image would run, checked without a container engine: the binary from
# scripts/static-build.sh is statically linked, starts the way the image starts it (the image's
# config, the policies where the image keeps them), and answers a review over TLS.
#
#   scripts/static-check.sh BINARY
set -euo pipefail
BIN=$1
cd "$(dirname "$0")/.."
die() { echo "static-check: $*" >&2; exit 1; }

# The image is built by the same script (scripts/static-build.sh) and ships the same files.
for line in 'scripts/vendor.sh' 'scripts/static-build.sh' 'COPY policies /policies' 'COPY deploy/image-config.yaml /etc/portcullis/config.yaml' 'USER 65532:65532'; do
  grep -qF "$line" Dockerfile || die "the Dockerfile no longer has: $line"
done

description=$(file -b "$BIN")
[[ $description == *"static"*"linked"* ]] || die "not statically linked: $description"

work=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The image's layout: the library at /policies, the config at /etc/portcullis/config.yaml
# (deploy/image-config.yaml); here under $work, with dev certificates and free ports (port 0:
# `serve --dev` prints the addresses it bound).
cp -r policies "$work/policies"
sed "s#/policies#$work/policies#" deploy/image-config.yaml >"$work/config.yaml"
# As the image runs it: user 65532, when this runs as root and can drop to it.
as_image_user=() who=$(id -un)
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
  chown -R 65532:65532 "$work"
  cp "$BIN" "$work/portcullis" && BIN=$work/portcullis
  as_image_user=(setpriv --reuid 65532 --regid 65532 --clear-groups) who="uid 65532"
fi
(cd "$work" && exec timeout 60 "${as_image_user[@]}" "$BIN" serve --dev --config config.yaml \
  --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >serve.log 2>&1) &
pid=$!
webhook="" metrics=""
for _ in $(seq 100); do
  webhook=$(sed -n 's#^portcullis (dev) is serving \(https://[^ ]*\)$#\1#p' "$work/serve.log")
  metrics=$(sed -n 's#^metrics and probes: http://\([^/]*\)/metrics$#\1#p' "$work/serve.log")
  [[ -n $webhook && -n $metrics ]] && curl -fsS "http://$metrics/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || die "exited: $(cat "$work/serve.log")"
  sleep 0.1
done
[[ -n $webhook && -n $metrics ]] || die "no addresses printed: $(cat "$work/serve.log")"
answer=$(curl -fsS --cacert "$work/.portcullis-dev/ca.crt" -H 'Content-Type: application/json' \
  --data @tests/fixtures/reviews/policy/pod-privileged.json "$webhook") ||
  die "no answer: $(cat "$work/serve.log")"
[[ $answer == *'"allowed":false'* && $answer == *'pods.privileged'* ]] || die "unexpected answer: $answer"
grep -q '"policies":12' "$work/serve.log" && grep -q "$work/policies" "$work/serve.log" ||
  die "the library at the image's path was not loaded: $(cat "$work/serve.log")"
echo "static-check: ok ($description; as $who: served the image's config and answered a review)"
