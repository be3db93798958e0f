#!/usr/bin/env bash
# Re-creates vendor/sigstore: the sigstore crate as published on crates.io, without its examples,
# tests and CI files, plus patches/sigstore-$VERSION.patch. Run it to move to a new version (and
# refresh the patch), or to check that vendor/ is exactly that: `git diff vendor/` stays empty.
set -euo pipefail
VERSION=${1:-0.15.0}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL "https://static.crates.io/crates/sigstore/sigstore-$VERSION.crate" | tar xz -C "$work"
src="$work/sigstore-$VERSION"
rm -rf "$src"/{examples,tests,benches,.cargo,.github} "$src"/{.cargo-ok,.cargo_vcs_info.json,.gitignore,.taplo.toml} \
  "$src"/{Cargo.lock,Cargo.toml.orig,CODEOWNERS,CODE_OF_CONDUCT.md,CONTRIBUTORS.md,Makefile,clippy.toml,rust-toolchain.toml}
# The published manifest lists the dropped examples; cargo refuses missing targets.
python3 - "$src/Cargo.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r'\n\[\[(example|test|bench)\]\]\n(?:[^\n\[]+\n)*', '\n', text)
open(path, 'w').write(re.sub(r'\n{3,}', '\n\n', text))
PY
patch -d "$src" -p1 --no-backup-if-mismatch <"patches/sigstore-$VERSION.patch"
cp vendor/sigstore/PORTCULLIS.md "$src/"
rm -rf vendor/sigstore
mv "$src" vendor/sigstore
echo "vendor/sigstore: sigstore $VERSION + patches/sigstore-$VERSION.patch"
