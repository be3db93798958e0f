//! portcullis: a Kubernetes validating admission webhook that gates images (digest pinning,
//! signatures, attestations) and evaluates shared Rego policies, the same in CI and in the cluster.
//!
//! The pipeline is a chain of plain functions over plain data (see `docs/architecture.md`):
//! review parsing, image extraction, reference normalisation, the policy input, evaluation and
//! decision, and the response. `serve` and `check` differ only in where requests come from.

pub mod admission;
pub mod audit;
pub mod background;
pub mod batch;
pub mod check;
pub mod cli;
pub mod config;
pub mod document;
pub mod duration;
pub mod exceptions;
pub mod images;
pub mod inventory;
pub mod metrics;
pub mod namespaces;
pub mod policy;
pub mod results;
pub mod risk;
pub mod server;
pub mod telemetry;
pub mod watch_health;
pub mod workload;

/// Makes ring the process-wide rustls provider. Two providers are compiled in (ring, which
/// portcullis uses, and aws-lc-rs, which the sigstore crate's HTTP stack brings), and rustls
/// refuses to guess for libraries that ask for the default.
pub fn tls_provider() {
    // An error means one is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
