#!/usr/bin/env bash
# Builds the binary the container image ships: release profile, --locked, statically linked
# against musl (its DNS resolver is built in, so the image needs no libc or NSS files). The
# Dockerfile runs this same script, so the image and `make static-check` cannot drift apart.
# Prints the binary's path.
set -euo pipefail
TARGET=x86_64-unknown-linux-musl
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET" >&2
fi
# ring and aws-lc (C code) need a musl C compiler: Debian's musl-tools.
if ! command -v x86_64-linux-musl-gcc >/dev/null; then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get install -y --no-install-recommends musl-tools >&2 ||
    { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends musl-tools >&2; }
fi
cargo build --release --locked --target "$TARGET" >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$TARGET/release/portcullis"
