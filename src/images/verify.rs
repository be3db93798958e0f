//! Verification facts for images: digest resolution, cosign signatures (keys and keyless
//! identities) checked with the `sigstore` crate, a cache keyed by digest, and the deadline.
//!
//! The `sigstore` crate's registry layer turns registry errors into "no signatures" and its
//! constraints are satisfied by *any* layer. So portcullis probes the signature tag itself first
//! (not found = unsigned; a failure = error, never unsigned), and checks every authority against
//! each signature on its own: all of an authority's checks hold on the same signature, and the
//! threshold counts distinct authorities.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigstore::cosign::bundle_content::BundleContent;
use sigstore::cosign::{CosignCapabilities, SignatureLayer};
use sigstore::crypto::Signature;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

use super::attest;
use super::facts::{Signer, Verification, VerificationStatus};
use super::reference::ImageReference;
use super::registry::{Lookup, Registry, RegistryError};
use super::trust::{AuthorityKind, TrustEntry, TrustPolicy};
use crate::metrics::Metrics;

/// The cache key: never a tag. A changed trust entry or trusted root never reuses a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    digest: String,
    entry: String,
    root: String,
}

pub struct Verifier {
    policy: TrustPolicy,
    registry: Registry,
    cache: moka::future::Cache<CacheKey, Verification>,
    metrics: Arc<Metrics>,
}

/// What [`Verifier::verify`] found for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub resolved_digest: Option<String>,
    pub verification: Verification,
}

impl Verifier {
    pub fn new(policy: TrustPolicy, metrics: Arc<Metrics>) -> Result<Verifier, String> {
        let registry = Registry::new(
            policy.allow.clone(),
            policy.insecure.clone(),
            policy.credentials.clone(),
            policy.registry_timeout,
            Some(metrics.clone()),
        )?;
        let (success, failure) = (policy.cache_ttl, policy.failure_cache_ttl);
        let cache = moka::future::Cache::builder()
            .max_capacity(policy.cache_max_entries)
            .expire_after(Lifetime { success, failure })
            .build();
        let verifier = Verifier {
            policy,
            registry,
            cache,
            metrics,
        };
        // Fail at startup, listing the cause, rather than on the first review.
        verifier.signature_client()?;
        Ok(verifier)
    }

    /// Whether any trust entry is configured (verification is on).
    pub fn enabled(&self) -> bool {
        !self.policy.entries.is_empty()
    }

    /// Facts for one image, within `deadline`; what is not done by then is `timeout`.
    pub async fn verify(&self, image: &ImageReference, deadline: Instant) -> Verified {
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let verified = match tokio::time::timeout(remaining, self.verify_unbounded(image)).await {
            Ok(verified) => verified,
            Err(_) => Verified {
                resolved_digest: None,
                verification: verdict(
                    VerificationStatus::Timeout,
                    "verification did not finish before the admission deadline",
                ),
            },
        };
        self.metrics
            .record_verification(status_label(verified.verification.status), started.elapsed());
        verified
    }

    async fn verify_unbounded(&self, image: &ImageReference) -> Verified {
        if !self.registry.allows(image) {
            let reason = format!(
                "registry {} is not on the allow-list; it was not contacted",
                image.registry
            );
            return Verified {
                resolved_digest: None,
                verification: verdict(VerificationStatus::Skipped, &reason),
            };
        }
        let (digest, resolved_digest) = match &image.digest {
            Some(digest) => (digest.clone(), None),
            None => {
                let tag = image.tag.as_deref().unwrap_or("latest");
                match self.registry.manifest(image, tag).await {
                    Ok(Lookup::Found { digest, .. }) => (digest.clone(), Some(digest)),
                    Ok(Lookup::NotFound) => {
                        let reason = format!("tag {tag:?} does not exist in {}", image.name());
                        return Verified {
                            resolved_digest: None,
                            verification: verdict(VerificationStatus::Error, &reason),
                        };
                    }
                    Err(error) => {
                        return Verified {
                            resolved_digest: None,
                            verification: registry_failure(&error),
                        };
                    }
                }
            }
        };
        let Some(entry) = self.policy.entry_for(&image.registry, &image.repository) else {
            let reason = format!("no trust policy entry covers {}", image.name());
            return Verified {
                resolved_digest,
                verification: verdict(VerificationStatus::NoTrustPolicy, &reason),
            };
        };
        let key = CacheKey {
            digest: digest.clone(),
            entry: entry.fingerprint.clone(),
            root: self.policy.trusted_root_version.clone(),
        };
        let verification = if let Some(hit) = self.cache.get(&key).await {
            self.metrics.record_cache("hit");
            hit
        } else {
            let leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = leader.clone();
            let loaded = self
                .cache
                .try_get_with(key, async move {
                    flag.store(true, std::sync::atomic::Ordering::Release);
                    let verification = self.verify_digest(image, &digest, entry).await;
                    // Errors and timeouts are never cached: the next review tries again.
                    match verification.status {
                        VerificationStatus::Error | VerificationStatus::Timeout => Err(verification),
                        _ => Ok(verification),
                    }
                })
                .await;
            self.metrics
                .record_cache(if leader.load(std::sync::atomic::Ordering::Acquire) {
                    "miss"
                } else {
                    "coalesced"
                });
            loaded.unwrap_or_else(|error| (*error).clone())
        };
        Verified {
            resolved_digest,
            verification,
        }
    }

    /// Reads and checks the signatures of `digest` against the entry's authorities.
    async fn verify_digest(&self, image: &ImageReference, digest: &str, entry: &TrustEntry) -> Verification {
        let signature_tag = format!("{}.sig", digest.replace(':', "-"));
        let has_signature_tag = match self.registry.manifest(image, &signature_tag).await {
            Ok(Lookup::NotFound) => false,
            Err(error) => return registry_failure(&error),
            Ok(Lookup::Found { .. }) => true,
        };
        // Without the tag, Sigstore bundles attached as OCI referrers (cosign 3's default) may
        // still be there; the crate reads both.
        let layers = match self.signature_layers(image, digest).await {
            Ok(layers) => layers,
            Err(reason) => return verdict(VerificationStatus::Error, &reason),
        };
        if layers.is_empty() && !has_signature_tag {
            return verdict(
                VerificationStatus::Unsigned,
                &format!("{} has no cosign signature", image.pinned_to(digest)),
            );
        }
        if layers.is_empty() {
            return verdict(
                VerificationStatus::Invalid,
                "a signature is present but none is a valid signature of this digest (signed payload for another digest, malformed, or a bad transparency-log bundle)",
            );
        }
        let layers = &layers[..layers.len().min(self.policy.max_signatures)];
        let mut signers = Vec::new();
        let mut verified_authorities = BTreeSet::new();
        // The threshold counts distinct keys and identities: one key listed under two names
        // is still one signer.
        let mut verified_credentials = BTreeSet::new();
        let mut crypto_failures = 0;
        for layer in layers {
            for authority in &entry.authorities {
                match check(layer, &authority.kind) {
                    Check::Verified { issuer, subject } => {
                        verified_credentials.insert(match &authority.kind {
                            AuthorityKind::Key { pem, .. } => format!("key:{}", String::from_utf8_lossy(pem).trim()),
                            // An identity authority counts once, however many signers match it.
                            AuthorityKind::Keyless { .. } => format!("keyless:{}", authority.name),
                        });
                        if verified_authorities.insert(authority.name.clone()) {
                            signers.push(Signer {
                                authority: authority.name.clone(),
                                kind: match authority.kind {
                                    AuthorityKind::Key { .. } => "key".into(),
                                    AuthorityKind::Keyless { .. } => "keyless".into(),
                                },
                                issuer,
                                subject,
                            });
                        }
                    }
                    Check::BadSignature => crypto_failures += 1,
                    Check::NotThisAuthority => {}
                }
            }
        }
        let status = if verified_credentials.len() >= entry.threshold {
            VerificationStatus::Verified
        } else if crypto_failures > 0 && verified_authorities.is_empty() {
            VerificationStatus::Invalid
        } else {
            VerificationStatus::Untrusted
        };
        let reason = match status {
            VerificationStatus::Verified => format!(
                "signed by {}",
                signers
                    .iter()
                    .map(|s| s.authority.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            VerificationStatus::Invalid => {
                "a signature is present but does not verify with any trusted key or certificate (signed with another key, or tampered)".to_string()
            }
            _ if verified_authorities.is_empty() => format!(
                "signed, but not by an authority trusted for these images ({})",
                entry
                    .authorities
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!(
                "signed by {} of the {} authorities required ({})",
                verified_credentials.len(),
                entry.threshold,
                verified_authorities.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        // Attestations matter only for an image whose signature holds.
        let attestations = if status == VerificationStatus::Verified {
            match attest::attestations(&self.registry, image, digest, entry, self.policy.max_signatures).await {
                Ok(attestations) => attestations,
                Err(error) => {
                    let mut failure = registry_failure(&error);
                    failure.reason = format!("signed, but its attestations could not be read: {}", failure.reason);
                    return failure;
                }
            }
        } else {
            Vec::new()
        };
        Verification {
            status,
            reason,
            signers,
            attestations,
        }
    }

    /// A client of the `sigstore` crate for one verification. Its HTTP stack loads the system
    /// CA store and panics when there is none; that becomes an error here, never a crash.
    fn signature_client(&self) -> Result<sigstore::cosign::Client, String> {
        let build = || {
            let mut builder = sigstore::cosign::ClientBuilder::default().with_oci_client_config(ClientConfig {
                protocol: ClientProtocol::HttpsExcept(self.policy.insecure.clone()),
                ..Default::default()
            });
            if let Some(root) = &self.policy.trusted_root {
                builder = builder
                    .with_trust_repository(root.as_ref())
                    .map_err(|e| format!("trusted root unusable: {e}"))?;
            }
            builder
                .build()
                .map_err(|e| format!("cannot build the signature client: {e}"))
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).unwrap_or_else(|_| {
            Err("cannot build the signature client (are CA certificates installed? see docs/verification.md)".into())
        })
    }

    /// The registry's own credentials, or none: never another registry's.
    fn auth_for(&self, registry: &str) -> Auth {
        match self.policy.credentials.for_registry(registry) {
            Some(basic) => Auth::Basic(basic.username.clone(), basic.password.clone()),
            None => Auth::Anonymous,
        }
    }

    /// The signature layers of `digest`, through the `sigstore` crate (which verifies Rekor
    /// bundles and Fulcio chains against the trusted root when one is configured).
    async fn signature_layers(&self, image: &ImageReference, digest: &str) -> Result<Vec<SignatureLayer>, String> {
        let mut client = self.signature_client()?;
        let reference = OciReference::from_str(&format!("{}/{}@{digest}", image.registry, image.repository))
            .map_err(|e| format!("cannot address {}: {e}", image.name()))?;
        client
            .trusted_signature_layers(&self.auth_for(&image.registry), &reference)
            .await
            .map_err(|e| format!("signatures of {} could not be read: {e}", image.name()))
    }
}

enum Check {
    Verified {
        issuer: Option<String>,
        subject: Option<String>,
    },
    /// The signature does not verify with the key it names (tampered or corrupt).
    BadSignature,
    NotThisAuthority,
}

/// Whether the layer's signature verifies with `key` over the signed payload.
fn signed_by(layer: &SignatureLayer, key: &sigstore::crypto::CosignVerificationKey) -> bool {
    layer.signature.as_ref().is_some_and(|signature| {
        key.verify_signature(Signature::Base64Encoded(signature.as_bytes()), &layer.raw_data)
            .is_ok()
    })
}

fn check(layer: &SignatureLayer, authority: &AuthorityKind) -> Check {
    match authority {
        AuthorityKind::Key { key, .. } if signed_by(layer, key) => Check::Verified {
            issuer: None,
            subject: None,
        },
        // A keyless signature is for the keyless authorities to judge.
        AuthorityKind::Key { .. } if layer.certificate_signature.is_some() => Check::NotThisAuthority,
        // A key signature carries no key of its own, so "signed with another key" and "tampered"
        // look the same: it does not verify with any key we trust.
        AuthorityKind::Key { .. } => Check::BadSignature,
        AuthorityKind::Keyless { issuer, subject } => {
            // A certificate here was chained to Fulcio and checked at the Rekor integrated time
            // by the `sigstore` crate; the signature itself is checked with its key below.
            let Some(certificate) = &layer.certificate_signature else {
                return Check::NotThisAuthority;
            };
            let Some(signature) = &layer.signature else {
                return Check::BadSignature;
            };
            if certificate
                .verification_key
                .verify_signature(Signature::Base64Encoded(signature.as_bytes()), &layer.raw_data)
                .is_err()
            {
                return Check::BadSignature;
            }
            // The crate checked the certificate at the bundle's integrated time, but not that
            // the bundle logs *this* signature: any genuine bundle of the right time would
            // otherwise make an expired certificate acceptable.
            if !bundle_logs_signature(layer, signature) {
                return Check::BadSignature;
            }
            let subject_text = match &certificate.subject {
                sigstore::cosign::signature_layers::CertificateSubject::Email(email) => email.clone(),
                sigstore::cosign::signature_layers::CertificateSubject::Uri(uri) => uri.clone(),
            };
            let issuer_text = certificate.issuer.clone().unwrap_or_default();
            if issuer.matches(&issuer_text) && subject.matches(&subject_text) {
                Check::Verified {
                    issuer: Some(issuer_text),
                    subject: Some(subject_text),
                }
            } else {
                Check::NotThisAuthority
            }
        }
    }
}

/// Whether the layer's Rekor bundle is the log entry of this very signature: a `hashedrekord`
/// (or `rekord`) body holding the same signature and the SHA-256 of the signed payload, as
/// cosign checks. A Sigstore bundle (OCI referrer) was matched to its signature by the crate.
fn bundle_logs_signature(layer: &SignatureLayer, signature: &str) -> bool {
    use base64::Engine as _;
    use sha2::Digest as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let bundle = match &layer.bundle {
        Some(BundleContent::RekorBundle(bundle)) => bundle,
        Some(BundleContent::SigstoreBundle(_)) => return true,
        None => return false,
    };
    let Some(body) = base64
        .decode(&bundle.payload.body)
        .ok()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
    else {
        return false;
    };
    if !matches!(body["kind"].as_str(), Some("hashedrekord" | "rekord")) {
        return false;
    }
    let spec = &body["spec"];
    let logged_signature = spec["signature"]["content"]
        .as_str()
        .and_then(|content| base64.decode(content).ok());
    let payload_hash = hex::encode(sha2::Sha256::digest(&layer.raw_data));
    logged_signature.is_some()
        && logged_signature == base64.decode(signature).ok()
        && spec["data"]["hash"]["algorithm"] == "sha256"
        && spec["data"]["hash"]["value"].as_str() == Some(payload_hash.as_str())
}

fn verdict(status: VerificationStatus, reason: &str) -> Verification {
    Verification {
        status,
        reason: reason.to_string(),
        signers: Vec::new(),
        attestations: Vec::new(),
    }
}

/// A registry failure is `error` (or `timeout`), never `unsigned`.
fn registry_failure(error: &RegistryError) -> Verification {
    let status = match error {
        RegistryError::Unreachable { reason, .. } if reason.contains("timed out") => VerificationStatus::Timeout,
        _ => VerificationStatus::Error,
    };
    verdict(status, &error.to_string())
}

pub fn status_label(status: VerificationStatus) -> &'static str {
    match status {
        VerificationStatus::Verified => "verified",
        VerificationStatus::Unsigned => "unsigned",
        VerificationStatus::Invalid => "invalid",
        VerificationStatus::Untrusted => "untrusted",
        VerificationStatus::NoTrustPolicy => "no_trust_policy",
        VerificationStatus::Error => "error",
        VerificationStatus::Timeout => "timeout",
        VerificationStatus::Skipped => "skipped",
    }
}

/// Successes live for the success TTL, permanent failures for the shorter one.
struct Lifetime {
    success: Duration,
    failure: Duration,
}

impl moka::Expiry<CacheKey, Verification> for Lifetime {
    fn expire_after_create(&self, _key: &CacheKey, value: &Verification, _now: std::time::Instant) -> Option<Duration> {
        Some(if value.status == VerificationStatus::Verified {
            self.success
        } else {
            self.failure
        })
    }
}
