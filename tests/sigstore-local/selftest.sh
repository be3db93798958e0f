#!/usr/bin/env bash
# End-to-end check of the local Sigstore, offline, everything on 127.0.0.1:
#   sigstore-js keyless blob bundles; cosign keyless sign/verify/attest of an image in a local
#   registry (both the classic signature format and --new-bundle-format); cosign key-based
#   sign/attest/verify; negatives (wrong subject, wrong issuer, foreign trust root, wrong key,
#   wrong predicate type); a restart keeping the trust root valid.
#
#   tests/sigstore-local/selftest.sh            # prints "ok - ..." lines, then "N passed, N failed"
#
# Needs: node + npm (runs `npm ci` here if node_modules is missing), docker-registry (Debian
# package), cosign and crane: taken from $COSIGN / $CRANE, else PATH, else scripts/tools.sh.
# Every process it starts is stopped on exit; all files live in a temp dir.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sigstore-local-selftest.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

die() { echo "selftest: $*" >&2; exit 1; }

tool() { # NAME ENVVALUE: print the path of a tool
  local name=$1 given=$2
  if [[ -n $given ]]; then echo "$given"; return; fi
  if command -v "$name" >/dev/null; then command -v "$name"; return; fi
  if [[ -x $REPO/scripts/tools.sh ]]; then "$REPO/scripts/tools.sh" "$name"; return; fi
  die "$name not found (set \$${name^^} or put it on PATH)"
}
COSIGN=$(tool cosign "${COSIGN:-}")
CRANE=$(tool crane "${CRANE:-}")
REGISTRY=${DOCKER_REGISTRY:-$(command -v docker-registry || true)}
if [[ -z $REGISTRY && -x $REPO/scripts/tools.sh ]]; then REGISTRY=$("$REPO/scripts/tools.sh" registry); fi
[[ -n $REGISTRY ]] || die "docker-registry not found (apt-get install -y docker-registry)"
command -v curl >/dev/null || die "curl not found"

if [[ ! -d $HERE/node_modules/@sigstore/mock ]]; then
  (cd "$HERE" && npm ci --no-audit --no-fund >/dev/null 2>&1) || die "npm ci failed in $HERE"
fi

# cosign must never reach for the public TUF repository: keep its cache in the temp dir.
export TUF_ROOT=$WORK/tuf
unset SIGSTORE_ROOT_FILE SIGSTORE_REKOR_PUBLIC_KEY SIGSTORE_CT_LOG_PUBLIC_KEY_FILE || true
cosign() { timeout 120 "$COSIGN" "$@"; }
crane() { timeout 60 "$CRANE" "$@"; }

PASS=0 FAIL=0
run() { # NAME CMD...: expect success
  local name=$1; shift
  if "$@" >"$WORK/last.log" 2>&1; then PASS=$((PASS + 1)); echo "ok - $name"
  else FAIL=$((FAIL + 1)); echo "FAIL - $name"; tail -n 5 "$WORK/last.log" | sed 's/^/    /'; fi
}
run_fails() { # NAME CMD...: expect failure
  local name=$1; shift
  if "$@" >"$WORK/last.log" 2>&1; then FAIL=$((FAIL + 1)); echo "FAIL - $name (succeeded, should have failed)"
  else PASS=$((PASS + 1)); echo "ok - $name ($(grep -m1 -io 'error.*' "$WORK/last.log" | cut -c1-150 || true))"; fi
}

wait_file() { # FILE: wait (10 s at most) until FILE has a line
  local i
  for i in $(seq 100); do [[ -s $1 ]] && return 0; sleep 0.1; done
  return 1
}

start_sigstore() { # STATE OUTFILE: start server.mjs, set URL and SIGSTORE_PID
  node "$HERE/server.mjs" "$1" 0 --quiet >"$2" 2>>"$WORK/sigstore.err" &
  SIGSTORE_PID=$!
  PIDS+=("$SIGSTORE_PID")
  wait_file "$2" || die "server.mjs did not start: $(cat "$WORK/sigstore.err")"
  URL=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).url)' "$2")
}

# --- services ---------------------------------------------------------------------------------
start_sigstore "$WORK/other-state" "$WORK/other.json" # only for its trust root: a foreign one
kill "$SIGSTORE_PID"
STATE=$WORK/state
start_sigstore "$STATE" "$WORK/sigstore.json"

# Port 0: the registry binds a free port and logs it ("listening on 127.0.0.1:PORT", at level info).
mkdir -p "$WORK/registry"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: $WORK/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:0}
EOF
"$REGISTRY" serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
RP=""
for i in $(seq 100); do
  RP=$(sed -n 's/.*msg="listening on 127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$WORK/registry.log")
  [[ -n $RP ]] && curl -fs "http://127.0.0.1:$RP/v2/" >/dev/null && break
  sleep 0.1
done
[[ -n $RP ]] && curl -fs "http://127.0.0.1:$RP/v2/" >/dev/null || die "registry did not start: $(tail -5 "$WORK/registry.log")"

push_image() { # NAME: push a one-file image, print its digest reference
  mkdir -p "$WORK/layer-$1"
  echo "image $1" >"$WORK/layer-$1/hello.txt"
  tar -C "$WORK/layer-$1" -cf "$WORK/layer-$1.tar" hello.txt
  crane append --insecure -f "$WORK/layer-$1.tar" -t "127.0.0.1:$RP/test/$1:1" >/dev/null 2>&1
  echo "127.0.0.1:$RP/test/$1@$(crane digest --insecure "127.0.0.1:$RP/test/$1:1")"
}

R=(--allow-insecure-registry --allow-http-registry)
TR=(--trusted-root "$STATE/trusted_root.json")
ISS=https://issuer.example
SUB=alice@example.com
GH_ISS=https://token.actions.githubusercontent.com
GH_SUB=https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1
token() { node "$HERE/token.mjs" "$@"; }
# the env-var form of the trust root (what the classic verify-attestation path needs)
with_env_root() {
  SIGSTORE_ROOT_FILE=$STATE/fulcio_chain.pem SIGSTORE_REKOR_PUBLIC_KEY=$STATE/rekor.pub \
    SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=$STATE/ctlog.pub "$@"
}

# --- a. @sigstore/sign over a blob ---------------------------------------------------------
echo "blob" >"$WORK/blob.txt"
run "sigstore-js: keyless message-signature bundle" \
  node "$HERE/sign-blob.mjs" --url "$URL" --issuer $ISS --subject $SUB --out "$WORK/blob.bundle" "$WORK/blob.txt"
run "sigstore-js: verify (subject + issuer)" \
  node "$HERE/verify-blob.mjs" --trusted-root "$STATE/trusted_root.json" --bundle "$WORK/blob.bundle" \
  --subject $SUB --issuer $ISS "$WORK/blob.txt"
run_fails "sigstore-js: wrong subject rejected" \
  node "$HERE/verify-blob.mjs" --trusted-root "$STATE/trusted_root.json" --bundle "$WORK/blob.bundle" \
  --subject bob@example.com "$WORK/blob.txt"
run_fails "sigstore-js: wrong issuer rejected" \
  node "$HERE/verify-blob.mjs" --trusted-root "$STATE/trusted_root.json" --bundle "$WORK/blob.bundle" \
  --issuer https://evil.example "$WORK/blob.txt"
echo "other" >"$WORK/other.txt"
run_fails "sigstore-js: other content rejected" \
  node "$HERE/verify-blob.mjs" --trusted-root "$STATE/trusted_root.json" --bundle "$WORK/blob.bundle" "$WORK/other.txt"
run_fails "sigstore-js: foreign trust root rejected" \
  node "$HERE/verify-blob.mjs" --trusted-root "$WORK/other-state/trusted_root.json" --bundle "$WORK/blob.bundle" "$WORK/blob.txt"
printf '{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"blob","digest":{"sha256":"%s"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}' \
  "$(sha256sum "$WORK/blob.txt" | cut -d' ' -f1)" >"$WORK/stmt.json"
run "sigstore-js: keyless DSSE (in-toto) bundle + verify" bash -c "
  node '$HERE/sign-blob.mjs' --url '$URL' --issuer $GH_ISS --subject '$GH_SUB' --dsse application/vnd.in-toto+json \
    --out '$WORK/stmt.bundle' '$WORK/stmt.json' &&
  node '$HERE/verify-blob.mjs' --trusted-root '$STATE/trusted_root.json' --bundle '$WORK/stmt.bundle' --subject '$GH_SUB' --issuer $GH_ISS"

# --- b. cosign keyless, image ------------------------------------------------------------------
IMG=$(push_image keyless)
IMG_BADSUB=$(push_image keyless-wrong-subject)
IMG_BADISS=$(push_image keyless-wrong-issuer)
IMG_GH=$(push_image keyless-github)
keyless_sign() { # IMAGE ISSUER SUBJECT [CLAIMS...]
  local img=$1; shift
  cosign sign --yes --fulcio-url "$URL" --rekor-url "$URL" --identity-token "$(token "$@")" "${TR[@]}" "${R[@]}" "$img"
}
run "cosign keyless sign ($SUB)" keyless_sign "$IMG" $ISS $SUB
run "cosign keyless sign (wrong subject)" keyless_sign "$IMG_BADSUB" $ISS mallory@example.com
run "cosign keyless sign (wrong issuer)" keyless_sign "$IMG_BADISS" https://evil.example $SUB
run "cosign keyless sign (GitHub-style URI identity)" \
  keyless_sign "$IMG_GH" $GH_ISS "$GH_SUB" repository=org/repo ref=refs/tags/v1 workflow=release event_name=push
run "cosign verify keyless --trusted-root" \
  cosign verify --certificate-identity $SUB --certificate-oidc-issuer $ISS "${TR[@]}" "${R[@]}" "$IMG"
run "cosign verify keyless, env-var trust root" \
  with_env_root "$COSIGN" verify --certificate-identity $SUB --certificate-oidc-issuer $ISS "${R[@]}" "$IMG"
run "cosign verify keyless GitHub identity + repository extension" \
  cosign verify --certificate-identity "$GH_SUB" --certificate-oidc-issuer $GH_ISS \
  --certificate-github-workflow-repository org/repo "${TR[@]}" "${R[@]}" "$IMG_GH"
run_fails "cosign verify keyless: wrong expected subject" \
  cosign verify --certificate-identity bob@example.com --certificate-oidc-issuer $ISS "${TR[@]}" "${R[@]}" "$IMG"
run_fails "cosign verify keyless: wrong expected issuer" \
  cosign verify --certificate-identity $SUB --certificate-oidc-issuer https://evil.example "${TR[@]}" "${R[@]}" "$IMG"
run_fails "cosign verify keyless: signed by wrong subject" \
  cosign verify --certificate-identity $SUB --certificate-oidc-issuer $ISS "${TR[@]}" "${R[@]}" "$IMG_BADSUB"
run_fails "cosign verify keyless: signed with wrong issuer" \
  cosign verify --certificate-identity $SUB --certificate-oidc-issuer $ISS "${TR[@]}" "${R[@]}" "$IMG_BADISS"
run_fails "cosign verify keyless: foreign trust root" \
  cosign verify --certificate-identity $SUB --certificate-oidc-issuer $ISS \
  --trusted-root "$WORK/other-state/trusted_root.json" "${R[@]}" "$IMG"

cat >"$WORK/sbom.json" <<'EOF'
{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"metadata":{"component":{"type":"container","name":"test/app","version":"1"}},"components":[{"type":"file","name":"hello.txt"}]}
EOF
cat >"$WORK/prov.json" <<'EOF'
{"builder":{"id":"https://example.com/builder@v1"},"buildType":"https://example.com/buildtype@v1","invocation":{"configSource":{"uri":"git+https://example.com/org/repo@refs/heads/main","digest":{"sha1":"0123456789abcdef0123456789abcdef01234567"},"entryPoint":"build.yml"}},"materials":[{"uri":"git+https://example.com/org/repo","digest":{"sha1":"0123456789abcdef0123456789abcdef01234567"}}]}
EOF
run "cosign keyless attest slsaprovenance" \
  cosign attest --yes --type slsaprovenance --predicate "$WORK/prov.json" --fulcio-url "$URL" --rekor-url "$URL" \
  --identity-token "$(token $ISS $SUB)" "${TR[@]}" "${R[@]}" "$IMG"
run "cosign verify-attestation keyless (env-var trust root)" \
  with_env_root "$COSIGN" verify-attestation --type slsaprovenance --certificate-identity $SUB \
  --certificate-oidc-issuer $ISS "${R[@]}" "$IMG"
run_fails "cosign verify-attestation keyless: wrong subject" \
  with_env_root "$COSIGN" verify-attestation --type slsaprovenance --certificate-identity bob@example.com \
  --certificate-oidc-issuer $ISS "${R[@]}" "$IMG"

IMG_NB=$(push_image keyless-bundle)
run "cosign keyless sign --new-bundle-format (signing_config.json)" \
  cosign sign --yes --new-bundle-format --signing-config "$STATE/signing_config.json" \
  --identity-token "$(token $ISS $SUB)" "${TR[@]}" "${R[@]}" "$IMG_NB"
run "cosign verify --new-bundle-format" \
  cosign verify --new-bundle-format --certificate-identity $SUB --certificate-oidc-issuer $ISS "${TR[@]}" "${R[@]}" "$IMG_NB"
run_fails "cosign verify --new-bundle-format: wrong subject" \
  cosign verify --new-bundle-format --certificate-identity bob@example.com --certificate-oidc-issuer $ISS \
  "${TR[@]}" "${R[@]}" "$IMG_NB"

# --- c. cosign key-based -----------------------------------------------------------------------
IMG_KEY=$(push_image keyed)
(cd "$WORK" && COSIGN_PASSWORD='' "$COSIGN" generate-key-pair >/dev/null 2>&1 &&
  COSIGN_PASSWORD='' "$COSIGN" generate-key-pair --output-key-prefix other >/dev/null 2>&1) || die "generate-key-pair failed"
export COSIGN_PASSWORD=''
run "cosign sign --key --tlog-upload=false" \
  cosign sign --yes --key "$WORK/cosign.key" --tlog-upload=false "${R[@]}" "$IMG_KEY"
# (--trusted-root only stops cosign from trying the public TUF repository; the tlog is ignored)
run "cosign verify --key --insecure-ignore-tlog" \
  cosign verify --key "$WORK/cosign.pub" --insecure-ignore-tlog "${TR[@]}" "${R[@]}" "$IMG_KEY"
run_fails "cosign verify: wrong key" \
  cosign verify --key "$WORK/other.pub" --insecure-ignore-tlog "${TR[@]}" "${R[@]}" "$IMG_KEY"
run "cosign attest --type cyclonedx --key --tlog-upload=false" \
  cosign attest --yes --type cyclonedx --predicate "$WORK/sbom.json" --key "$WORK/cosign.key" --tlog-upload=false "${R[@]}" "$IMG_KEY"
run "cosign attest --type slsaprovenance --key --tlog-upload=false" \
  cosign attest --yes --type slsaprovenance --predicate "$WORK/prov.json" --key "$WORK/cosign.key" --tlog-upload=false "${R[@]}" "$IMG_KEY"
run "cosign verify-attestation --type cyclonedx --key" \
  cosign verify-attestation --type cyclonedx --key "$WORK/cosign.pub" --insecure-ignore-tlog "${TR[@]}" "${R[@]}" "$IMG_KEY"
run "cosign verify-attestation --type slsaprovenance --key" \
  cosign verify-attestation --type slsaprovenance --key "$WORK/cosign.pub" --insecure-ignore-tlog "${TR[@]}" "${R[@]}" "$IMG_KEY"
run_fails "cosign verify-attestation: wrong key" \
  cosign verify-attestation --type cyclonedx --key "$WORK/other.pub" --insecure-ignore-tlog "${TR[@]}" "${R[@]}" "$IMG_KEY"
run_fails "cosign verify-attestation: absent predicate type" \
  cosign verify-attestation --type spdxjson --key "$WORK/cosign.pub" --insecure-ignore-tlog "${TR[@]}" "${R[@]}" "$IMG_KEY"
IMG_KEYTLOG=$(push_image keyed-tlog)
run "cosign sign --key with the local Rekor" \
  cosign sign --yes --key "$WORK/cosign.key" --rekor-url "$URL" "${R[@]}" "$IMG_KEYTLOG"
run "cosign verify --key with tlog check (trusted root's Rekor key)" \
  cosign verify --key "$WORK/cosign.pub" "${TR[@]}" "${R[@]}" "$IMG_KEYTLOG"
unset COSIGN_PASSWORD

# --- restart: same keys, trust root still valid ------------------------------------------------
before=$(node -e 'const t=require(process.argv[1]);t.tlogs.concat(t.ctlogs).forEach(l=>delete l.baseUrl);delete t.certificateAuthorities[0].uri;(t.timestampAuthorities||[]).forEach(a=>delete a.uri);console.log(JSON.stringify(t))' "$STATE/trusted_root.json")
kill "$SIGSTORE_PID"
wait "$SIGSTORE_PID" 2>/dev/null || true
start_sigstore "$STATE" "$WORK/sigstore2.json"
after=$(node -e 'const t=require(process.argv[1]);t.tlogs.concat(t.ctlogs).forEach(l=>delete l.baseUrl);delete t.certificateAuthorities[0].uri;(t.timestampAuthorities||[]).forEach(a=>delete a.uri);console.log(JSON.stringify(t))' "$STATE/trusted_root.json")
run "restart: trusted_root.json keys/certs unchanged" test "$before" = "$after"
run "restart: signature made before the restart still verifies" \
  cosign verify --certificate-identity $SUB --certificate-oidc-issuer $ISS "${TR[@]}" "${R[@]}" "$IMG"
run "restart: keyless signing after the restart" bash -c "
  node '$HERE/sign-blob.mjs' --url '$URL' --issuer $ISS --subject $SUB --out '$WORK/blob2.bundle' '$WORK/blob.txt' &&
  node '$HERE/verify-blob.mjs' --trusted-root '$STATE/trusted_root.json' --bundle '$WORK/blob2.bundle' --subject $SUB '$WORK/blob.txt'"

echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
