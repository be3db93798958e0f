# syntax=docker/dockerfile:1
# portcullis container image: a static binary (musl) on an empty base, non-root (65532), the
# default policy library at /policies. The binary is built by scripts/static-build.sh, the same
# script `make static-check` (part of `make test`) runs and checks, so the two stay in step.
#
#   docker build -t portcullis .

# Pinned builder: Rust 1.95.0, the toolchain this repository is built and tested with.
FROM docker.io/library/rust:1.95.0-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools patch \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target

# Dependencies first: this layer is rebuilt only when the manifests or our crate patches change
# (patches/README.md: published crates patched at build time, as the Makefile does).
COPY Cargo.toml Cargo.lock build.rs ./
COPY patches patches
COPY scripts/vendor.sh scripts/
RUN scripts/vendor.sh \
 && mkdir -p src benches policies \
 && echo 'fn main() {}' >src/main.rs && touch src/lib.rs \
 && for bench in $(grep -A1 '^\[\[bench\]\]' Cargo.toml | sed -n 's/^name = "\(.*\)"/\1/p'); do \
      echo 'fn main() {}' >"benches/$bench.rs"; done \
 && cargo build --release --locked --target x86_64-unknown-linux-musl \
 && rm -rf src benches policies

# Then the project itself, with the same script CI runs.
COPY src src
COPY benches benches
COPY policies policies
COPY scripts/static-build.sh scripts/
RUN touch src/main.rs src/lib.rs \
 && cp "$(scripts/static-build.sh)" /portcullis \
 && /portcullis --version

# CA certificates: the sigstore crate's client needs a system CA store to start.
FROM scratch
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
COPY --from=builder /portcullis /portcullis
COPY policies /policies
COPY deploy/image-config.yaml /etc/portcullis/config.yaml
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/portcullis"]
CMD ["serve", "--config", "/etc/portcullis/config.yaml"]
