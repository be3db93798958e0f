#!/usr/bin/env bash
# Prepares vendor/prepared-by-make-vendor/CRATE for each crate Cargo.toml's [patch.crates-io]
# points at (the directory is named so that a bare `cargo build` on a fresh clone fails saying
# what makes it): the crate as
# published on crates.io (checksum-verified), without its examples, tests, benches and CI files,
# plus patches/CRATE-VERSION.patch (patches/README.md says what each adds and why). Nothing of
# these crates is committed: this runs before every cargo command of the Makefile and the
# Dockerfile, and does nothing for a crate whose vendor/ copy already matches its patch.
set -euo pipefail
cd "$(dirname "$0")/.."

# crate version sha256-of-the-.crate (as Cargo.lock had it before the patch)
CRATES=(
  "sigstore 0.15.0 6577ebcdb8f5ccdb60fcbac3b415390d9f9d1bdf852ca252c7e1bbf128f3faf6"
  "regorus 0.14.1 ec9c3ac0d614c8f87448b86c8ddef36c8affce3d2c5deea81b7c28c812e4bfb8"
)

prepare() {
  local crate=$1 version=$2 sha256=$3
  local patch=patches/$crate-$version.patch dest=vendor/prepared-by-make-vendor/$crate
  local stamp
  stamp="$version $(sha256sum "$patch" | cut -d' ' -f1)"
  if [[ -f $dest/.portcullis-stamp && $(cat "$dest/.portcullis-stamp") == "$stamp" ]]; then
    return
  fi
  local work
  work=$(mktemp -d)
  # The local cargo cache first (offline machines), else crates.io.
  local cached
  cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate-$version.crate" 2>/dev/null | head -1 || true)
  if [[ -n $cached ]]; then
    cp "$cached" "$work/crate"
  else
    curl -fsSL --retry 3 -o "$work/crate" "https://static.crates.io/crates/$crate/$crate-$version.crate"
  fi
  echo "$sha256  $work/crate" | sha256sum -c --quiet - || { echo "vendor.sh: $crate $version: checksum mismatch" >&2; exit 1; }
  tar xzf "$work/crate" -C "$work"
  local src=$work/$crate-$version
  rm -rf "$src"/{examples,tests,benches,bindings,docs,.cargo,.github} \
    "$src"/{.cargo-ok,.cargo_vcs_info.json,.gitignore,.taplo.toml,Cargo.lock,Cargo.toml.orig}
  # The published manifest lists the dropped targets; cargo refuses missing ones. Each
  # [[example]]/[[test]]/[[bench]] table runs until the next blank line.
  awk '/^\[\[(example|test|bench)\]\]$/ {skip = 1} skip && /^$/ {skip = 0; next} !skip' \
    "$src/Cargo.toml" >"$work/Cargo.toml" && mv "$work/Cargo.toml" "$src/Cargo.toml"
  patch -s -d "$src" -p1 --no-backup-if-mismatch <"$patch"
  echo "$stamp" >"$src/.portcullis-stamp"
  # build.rs compares this copy with patches/: a patch changed since is a stale vendor/.
  cp "$patch" "$src/.portcullis-patch"
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest"
  mv "$src" "$dest"
  rm -rf "$work"
  echo "$dest: $crate $version from crates.io + $patch" >&2
}

for entry in "${CRATES[@]}"; do
  # shellcheck disable=SC2086
  prepare $entry
done
