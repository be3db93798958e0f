#!/usr/bin/env bash
# Prepares vendor/sigstore, which Cargo.toml's [patch.crates-io] points at: the sigstore crate as
# published on crates.io (checksum-verified), without its examples, tests and CI files, plus
# patches/sigstore-$VERSION.patch (patches/README.md says what it adds and why). Nothing of the
# crate is committed: this runs before every cargo command of the Makefile and the Dockerfile,
# and does nothing when vendor/sigstore already matches the patch.
set -euo pipefail
VERSION=0.15.0
SHA256=6577ebcdb8f5ccdb60fcbac3b415390d9f9d1bdf852ca252c7e1bbf128f3faf6 # Cargo.lock before the patch
cd "$(dirname "$0")/.."
PATCH=patches/sigstore-$VERSION.patch
stamp="$VERSION $(sha256sum "$PATCH" | cut -d' ' -f1)"
if [[ -f vendor/sigstore/.portcullis-stamp && $(cat vendor/sigstore/.portcullis-stamp) == "$stamp" ]]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
crate=$work/sigstore.crate
# The local cargo cache first (offline machines), else crates.io.
cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/sigstore-$VERSION.crate 2>/dev/null | head -1 || true)
if [[ -n $cached ]]; then
  cp "$cached" "$crate"
else
  curl -fsSL --retry 3 -o "$crate" "https://static.crates.io/crates/sigstore/sigstore-$VERSION.crate"
fi
echo "$SHA256  $crate" | sha256sum -c --quiet - || { echo "vendor-sigstore.sh: checksum mismatch" >&2; exit 1; }
tar xzf "$crate" -C "$work"
src=$work/sigstore-$VERSION
rm -rf "$src"/{examples,tests,benches,.cargo,.github} "$src"/{.cargo-ok,.cargo_vcs_info.json,.gitignore,.taplo.toml} \
  "$src"/{Cargo.lock,Cargo.toml.orig,CODEOWNERS,CODE_OF_CONDUCT.md,CONTRIBUTORS.md,Makefile,clippy.toml,rust-toolchain.toml}
# The published manifest lists the dropped examples; cargo refuses missing targets. Each
# [[example]] table runs until the next blank line.
awk '/^\[\[(example|test|bench)\]\]$/ {skip = 1} skip && /^$/ {skip = 0; next} !skip' \
  "$src/Cargo.toml" >"$work/Cargo.toml" && mv "$work/Cargo.toml" "$src/Cargo.toml"
patch -s -d "$src" -p1 --no-backup-if-mismatch <"$PATCH"
echo "$stamp" >"$src/.portcullis-stamp"
mkdir -p vendor
rm -rf vendor/sigstore
mv "$src" vendor/sigstore
echo "vendor/sigstore: sigstore $VERSION from crates.io + $PATCH" >&2
