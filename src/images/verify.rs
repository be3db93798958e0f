//! Verification facts for images: digest resolution, cosign signatures (keys and keyless
//! identities) checked with the `sigstore` crate, the cache of verdicts (`verdicts`) with its
//! refreshes ahead of expiry, and the deadline.
//!
//! Signatures are read by portcullis's own registry client (`signatures`), so a registry failure
//! is `error`, never `unsigned`; the crate checks each one. The crate's constraints would be
//! satisfied by *any* layer, so every authority is checked against each signature on its own:
//! all of an authority's checks hold on the same signature, and the threshold counts distinct
//! authorities.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sigstore::cosign::bundle_content::BundleContent;
use sigstore::cosign::SignatureLayer;
use sigstore::crypto::Signature;

use super::attest;
use super::envelope::{certificate_identity, log_entry};
use super::facts::{Signer, Verification, VerificationStatus};
use super::pace::Pacer;
use super::pull_secrets::{PullSecretRefs, PullSecrets};
use super::reference::ImageReference;
use super::registry::{Lookup, Registry, RegistryError};
use super::signatures;
use super::timestamp::TimestampError;
use super::trust::{AuthorityKind, TrustEntry, TrustPolicy};
use super::trusted_root::{Material, RootValidity, TrustedRoot};
use super::verdicts::{CacheKey, Maker, Verdicts};
use crate::background::{BackgroundError, Spawner};
use crate::metrics::Metrics;

pub struct Verifier {
    /// Settings fixed at startup (allow-list, credentials, cache, bounds). Its trust material
    /// is where `trust` started; `trust` holds what is in use.
    policy: TrustPolicy,
    /// The trust material in use, swapped whole when its files change: a verification runs
    /// under one snapshot from start to end.
    trust: ArcSwap<Trust>,
    /// Counts the swaps of `trust`.
    trust_generation: AtomicU64,
    registry: Registry,
    /// Reads workloads' imagePullSecrets, when configured.
    pull_secrets: Option<Arc<PullSecrets>>,
    verdicts: Verdicts,
    /// Where refreshes run: a thread of the lowest priority, so that they never take the core
    /// from a review.
    refresher: Spawner,
    /// The refreshes' own registry client: its connections are made, and their TLS work done,
    /// on the refreshes' thread.
    refresh_registry: Registry,
    metrics: Arc<Metrics>,
    /// Spaces the starts of registry work (a tag resolved, a digest verified), when bounded.
    pacer: Option<Pacer>,
}

/// The trust entries and trusted root a verification runs under.
struct Trust {
    entries: Vec<TrustEntry>,
    root: Option<Arc<TrustedRoot>>,
    root_version: String,
    fingerprint: String,
    material: Vec<Material>,
    /// The `sigstore` crate's client for this root: it checks what `registry` fetched.
    signatures: sigstore::cosign::Client,
}

impl Trust {
    fn of(policy: &TrustPolicy) -> Result<Trust, VerifierError> {
        Ok(Trust {
            entries: policy.entries.clone(),
            root: policy.trusted_root.clone(),
            root_version: policy.trusted_root_version.clone(),
            fingerprint: policy.material_fingerprint(),
            material: policy.material(),
            signatures: signature_client(policy)?,
        })
    }

    fn validity(&self) -> Option<&RootValidity> {
        self.root.as_deref().map(|root| &root.validity)
    }
}

/// What reading the trust files again did.
#[derive(Debug, PartialEq, Eq)]
pub enum TrustReload {
    Unchanged,
    Reloaded,
    /// The files changed but do not make a valid trust policy; the previous material stays.
    Refused {
        errors: Vec<String>,
    },
}

/// Why a verifier could not be built (a startup error).
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("authorities take keys from Secrets ({0}), which only serve and audit read from the cluster; give a key file instead")]
    SecretKeysNotRead(String),
    #[error("trusted root unusable: {0}")]
    TrustedRoot(String),
    #[error("cannot build the signature client: {0}")]
    SignatureClient(String),
    #[error("cannot build the signature client (are CA certificates installed? see docs/verification.md)")]
    SignatureClientPanicked,
    #[error(transparent)]
    Background(#[from] BackgroundError),
}

/// What [`Verifier::verify`] found for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub resolved_digest: Option<String>,
    pub verification: Verification,
}

impl Verifier {
    pub fn new(policy: TrustPolicy, metrics: Arc<Metrics>) -> Result<Verifier, VerifierError> {
        if policy.awaits_secret_keys() {
            return Err(VerifierError::SecretKeysNotRead(
                policy.secret_refs.iter().cloned().collect::<Vec<_>>().join(", "),
            ));
        }
        let registry = registry_of(&policy, &metrics)?;
        let refresh_registry = registry_of(&policy, &metrics)?;
        let verdicts = Verdicts::new(policy.cache_max_entries, policy.cache_ttl, policy.failure_cache_ttl);
        Ok(Verifier {
            trust: ArcSwap::from_pointee(Trust::of(&policy)?),
            trust_generation: AtomicU64::new(0),
            pull_secrets: None,
            pacer: policy.verification_rate.map(Pacer::new),
            policy,
            registry,
            verdicts,
            refresher: Spawner::start("verify-refresh")?,
            refresh_registry,
            metrics,
        })
    }

    /// Reads the trust files (trusted root, keys) again and uses them from now on when they
    /// changed and still make a valid policy. A verdict made under the old material is never
    /// served again: the cache key holds the material's fingerprints.
    pub fn reload_trust(&self) -> TrustReload {
        let fresh = match self.policy.reread() {
            Ok(fresh) => fresh,
            Err(errors) => return TrustReload::Refused { errors },
        };
        if fresh.material_fingerprint() == self.trust.load().fingerprint {
            return TrustReload::Unchanged;
        }
        match Trust::of(&fresh) {
            Ok(trust) => {
                self.trust.store(Arc::new(trust));
                self.trust_generation.fetch_add(1, Ordering::AcqRel);
                TrustReload::Reloaded
            }
            Err(error) => TrustReload::Refused {
                errors: vec![error.to_string()],
            },
        }
    }

    /// How often [`Verifier::reload_trust`] should run.
    pub fn reload_interval(&self) -> Duration {
        self.policy.reload_interval
    }

    /// The watches of the Secrets keys are read from, if any.
    pub fn watches(&self) -> Vec<Arc<crate::watch_health::WatchHealth>> {
        self.policy.secret_keys.iter().flat_map(|keys| keys.watches()).collect()
    }

    /// The trust material in use, by kind.
    pub fn trust_material(&self) -> Vec<Material> {
        self.trust.load().material.clone()
    }

    /// How many times the trust material was replaced: what was decided before may not hold.
    pub fn trust_generation(&self) -> u64 {
        self.trust_generation.load(Ordering::Acquire)
    }

    /// Reads registry credentials from the imagePullSecrets a workload names.
    pub fn with_pull_secrets(mut self, pull_secrets: Arc<PullSecrets>) -> Verifier {
        self.pull_secrets = Some(pull_secrets);
        self
    }

    /// Facts for one image, within `deadline`; what is not done by then is `timeout`. The
    /// registry is read with the workload's pull secrets (`pull`), then the mounted config.
    /// Whether verifying `image` contacts its registry: only when the allow-list lets it.
    pub fn contacts(&self, image: &ImageReference) -> bool {
        self.registry.allows(image)
    }

    pub async fn verify(
        self: &Arc<Self>,
        image: &ImageReference,
        pull: &PullSecretRefs,
        deadline: Instant,
    ) -> Verified {
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let verified = match tokio::time::timeout(remaining, self.verify_unbounded(image, pull)).await {
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

    /// Waits for the pacer's turn, when the verifier has one.
    async fn pace(&self) {
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
    }

    async fn verify_unbounded(self: &Arc<Self>, image: &ImageReference, pull: &PullSecretRefs) -> Verified {
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
                self.pace().await;
                match self.registry_for(&self.registry, pull).await.manifest(image, tag).await {
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
        let trust = self.trust.load_full();
        let Some(entry) = super::trust::entry_for(&trust.entries, &image.registry, &image.repository) else {
            let reason = format!("no trust policy entry covers {}", image.name());
            return Verified {
                resolved_digest,
                verification: verdict(VerificationStatus::NoTrustPolicy, &reason),
            };
        };
        let key = CacheKey {
            digest: digest.clone(),
            entry: entry.fingerprint.clone(),
            root: trust.root_version.clone(),
        };
        let verification = if let Some(hit) = self.verdicts.get(&key).await {
            self.metrics.record_cache("hit");
            if hit.refresh {
                self.refresh(key, trust.clone(), entry.clone(), image, pull);
            }
            hit.verification
        } else {
            // Boxed: the verification's future is large, and the cache's own wraps it again
            // (a debug build's test thread overflowed its stack with it inline).
            let verify = Box::pin(self.verify_anew(&self.registry, &trust, image, &digest, entry, pull));
            let (verification, maker) = self.verdicts.get_or_make(key, verify).await;
            self.metrics.record_cache(match maker {
                Maker::This => "miss",
                Maker::Another => "coalesced",
            });
            verification
        };
        Verified {
            resolved_digest,
            verification,
        }
    }

    /// Reads the registry for `digest` (paced) with `base`, and the workload's pull secrets.
    async fn verify_anew(
        &self,
        base: &Registry,
        trust: &Trust,
        image: &ImageReference,
        digest: &str,
        entry: &TrustEntry,
        pull: &PullSecretRefs,
    ) -> Verification {
        self.pace().await;
        let registry = self.registry_for(base, pull).await;
        self.verify_digest(trust, &registry, image, digest, entry).await
    }

    /// Verifies `key`'s image again in the background, so that an image in steady use never
    /// makes a review wait for the registry. The cached verdict serves meanwhile (it is within
    /// its lifetime); the new one replaces it unless it is an error or a timeout, in which case
    /// the old one expires as it would have and the next review verifies for itself.
    fn refresh(
        self: &Arc<Self>,
        key: CacheKey,
        trust: Arc<Trust>,
        entry: TrustEntry,
        image: &ImageReference,
        pull: &PullSecretRefs,
    ) {
        let (verifier, image, pull) = (self.clone(), image.clone(), pull.clone());
        self.refresher.spawn(async move {
            let registry = &verifier.refresh_registry;
            let anew = verifier.verify_anew(registry, &trust, &image, &key.digest, &entry, &pull);
            let verification = match tokio::time::timeout(REFRESH_DEADLINE, anew).await {
                Ok(verification) => verification,
                Err(_) => verdict(VerificationStatus::Timeout, "the refresh did not finish in time"),
            };
            let digest = key.digest.clone();
            match verifier.verdicts.store(key, verification).await {
                Ok(()) => verifier.metrics.record_refresh("refreshed"),
                Err(failed) => {
                    verifier.metrics.record_refresh("failed");
                    tracing::info!(
                        image = %image.pinned_to(&digest),
                        reason = %failed.reason,
                        "verifying again ahead of the cached verdict's expiry failed; it serves until it expires"
                    );
                }
            }
        });
    }

    /// The registry client with the workload's pull secrets, read only when a request is about
    /// to be made (a cached verdict needs none).
    async fn registry_for<'a>(&self, base: &'a Registry, pull: &PullSecretRefs) -> std::borrow::Cow<'a, Registry> {
        match &self.pull_secrets {
            Some(secrets) if !pull.names.is_empty() || !pull.service_account.is_empty() => {
                std::borrow::Cow::Owned(base.with_credentials(&secrets.credentials(pull).await))
            }
            _ => std::borrow::Cow::Borrowed(base),
        }
    }

    /// Reads and checks the signatures of `digest` against the entry's authorities.
    async fn verify_digest(
        &self,
        trust: &Trust,
        registry: &Registry,
        image: &ImageReference,
        digest: &str,
        entry: &TrustEntry,
    ) -> Verification {
        let max = self.policy.max_signatures;
        // Attestations are read alongside (one round trip less); they count only for an image
        // whose signature holds.
        let (signatures, attestations) = tokio::join!(
            signatures::read(registry, &trust.signatures, trust.validity(), image, digest, max),
            attest::attestations(registry, &trust.signatures, trust.validity(), image, digest, entry, max)
        );
        let (layers, certificate_issuers, timestamps, attestation_bundles) = match signatures {
            Ok(found) if found.present == 0 => {
                return verdict(
                    VerificationStatus::Unsigned,
                    &format!("{} has no cosign signature", image.pinned_to(digest)),
                );
            }
            Ok(found) => (
                found.layers,
                found.certificate_issuers,
                found.timestamps,
                found.attestation_bundles,
            ),
            Err(error) => return registry_failure(&error),
        };
        if layers.is_empty() {
            return verdict(
                VerificationStatus::Invalid,
                "a signature is present but none is a valid signature of this digest (signed payload for another digest, malformed, or a bad transparency-log bundle)",
            );
        }
        // Each place was read up to `max`; together they are bounded by it too.
        let layers = &layers[..layers.len().min(max)];
        let mut signers = Vec::new();
        let mut verified_authorities = BTreeSet::new();
        // The threshold counts distinct keys and identities: one key listed under two names
        // is still one signer.
        let mut verified_credentials = BTreeSet::new();
        let mut crypto_failures = 0;
        let mut outside_validity = 0;
        let logged = Logged {
            validity: trust.validity(),
            certificate_issuers: &certificate_issuers,
            timestamps: &timestamps,
        };
        for layer in layers {
            for authority in &entry.authorities {
                match check(layer, &authority.kind, &logged) {
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
                    Check::OutsideValidity => outside_validity += 1,
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
            _ if verified_authorities.is_empty() && outside_validity > 0 => format!(
                "signed by a trusted identity, but its signing time is not vouched for: the transparency-log key, the timestamp or the Fulcio certificate authority was not valid then (validFor in the trusted root of {})",
                entry.name
            ),
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
        let attestations = match attestations {
            Ok(mut attestations) if status == VerificationStatus::Verified => {
                attestations.extend(attest::from_bundles(
                    &trust.signatures,
                    trust.validity(),
                    &attestation_bundles,
                    digest,
                    entry,
                ));
                attestations
            }
            Ok(_) => Vec::new(),
            Err(error) if status == VerificationStatus::Verified => {
                let mut failure = registry_failure(&error);
                failure.reason = format!("signed, but its attestations could not be read: {}", failure.reason);
                return failure;
            }
            Err(_) => Vec::new(),
        };
        Verification {
            status,
            reason,
            signers,
            attestations,
        }
    }
}

/// A registry client with the policy's allow-list, credentials, timeout and CAs.
fn registry_of(policy: &TrustPolicy, metrics: &Arc<Metrics>) -> Result<Registry, RegistryError> {
    Registry::new(
        policy.allow.clone(),
        policy.insecure.clone(),
        policy.credentials.clone(),
        policy.registry_timeout,
        &policy.registry_cas,
        Some(metrics.clone()),
    )
}

/// The `sigstore` crate's client, with the trusted root when one is configured. Building it
/// loads the system CA store and panics when there is none: that becomes a startup error
/// naming the cause, never a crash.
fn signature_client(policy: &TrustPolicy) -> Result<sigstore::cosign::Client, VerifierError> {
    let build = || {
        // Its registry side stays unused: `signatures` and `attest` fetch.
        let mut builder = sigstore::cosign::ClientBuilder::default();
        if let Some(root) = &policy.trusted_root {
            builder = builder
                .with_trust_repository(&root.root)
                .map_err(|e| VerifierError::TrustedRoot(e.to_string()))?;
        }
        builder
            .build()
            .map_err(|e| VerifierError::SignatureClient(e.to_string()))
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).unwrap_or(Err(VerifierError::SignatureClientPanicked))
}

enum Check {
    Verified {
        issuer: Option<String>,
        subject: Option<String>,
    },
    /// The signature does not verify with the key it names (tampered or corrupt).
    BadSignature,
    /// A trusted identity, but the log key or CA that vouched for it was outside its
    /// `validFor` window when the signature was logged.
    OutsideValidity,
    NotThisAuthority,
}

/// Whether the layer's signature verifies with `key` over the signed payload.
fn signed_by(layer: &SignatureLayer, key: &sigstore::crypto::CosignVerificationKey) -> bool {
    layer.signature.as_ref().is_some_and(|signature| {
        key.verify_signature(Signature::Base64Encoded(signature.as_bytes()), &layer.raw_data)
            .is_ok()
    })
}

/// What vouches for keyless signatures: the trusted root's windows, and which CA issued each
/// layer's certificate.
struct Logged<'a> {
    validity: Option<&'a RootValidity>,
    certificate_issuers: &'a BTreeMap<String, Vec<u8>>,
    /// What each layer's RFC 3161 timestamp, if it has one, says of its signing time.
    timestamps: &'a BTreeMap<String, Result<i64, TimestampError>>,
}

impl Logged<'_> {
    /// Whether a keyless layer's signing time is vouched for: by its log entry (the log key and
    /// the issuing CA valid at the integrated time), by a timestamp of a trusted authority (the
    /// CA valid at its time), or by both, each then holding. Neither: not vouched for.
    fn in_window(&self, layer: &SignatureLayer) -> bool {
        let (Some(validity), Some(issuer)) = (self.validity, self.certificate_issuers.get(&layer.oci_digest)) else {
            return false;
        };
        let logged = layer.bundle.as_ref().and_then(log_entry);
        let stamped = self.timestamps.get(&layer.oci_digest);
        (logged.is_some() || stamped.is_some())
            && logged.is_none_or(|(log_id, time)| validity.vouches(&log_id, time, issuer))
            && stamped.is_none_or(|time| time.as_ref().is_ok_and(|&time| validity.issued_in_window(issuer, time)))
    }
}

fn check(layer: &SignatureLayer, authority: &AuthorityKind, logged: &Logged) -> Check {
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
            // otherwise make an expired certificate acceptable. Without a bundle, the
            // certificate was checked at its timestamp's time (`signatures`).
            if layer.bundle.is_some() && !bundle_logs_signature(layer, signature) {
                return Check::BadSignature;
            }
            let (issuer_text, subject_text) = certificate_identity(certificate);
            if !(issuer.matches(&issuer_text) && subject.matches(&subject_text)) {
                Check::NotThisAuthority
            } else if !logged.in_window(layer) {
                Check::OutsideValidity
            } else {
                Check::Verified {
                    issuer: Some(issuer_text),
                    subject: Some(subject_text),
                }
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
        RegistryError::Timeout { .. } => VerificationStatus::Timeout,
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

/// How long a background refresh may take; past it the cached verdict expires as it would have.
const REFRESH_DEADLINE: Duration = Duration::from_secs(60);

/// Known-bad signatures kept as fixtures (`tests/fixtures/signatures`, made by cosign v2.6.4; see
/// its README): each must fail the way it fails, whatever registry or cosign version the
/// integration tests run with.
#[cfg(test)]
mod known_bad_signatures {
    use super::*;
    use sha2::Digest as _;
    use sigstore::crypto::CosignVerificationKey;

    const MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
    const PAYLOAD: &str = include_str!("../../tests/fixtures/signatures/payload.json");
    const OTHER_IMAGE_PAYLOAD: &str = include_str!("../../tests/fixtures/signatures/payload-other-image.json");
    const SIGNATURES: &str = include_str!("../../tests/fixtures/signatures/signatures.json");

    fn fixture(field: &str) -> String {
        let signatures: serde_json::Value = serde_json::from_str(SIGNATURES).unwrap();
        signatures[field].as_str().unwrap().to_string()
    }

    fn digest_of_image() -> String {
        fixture("image").split_once('@').unwrap().1.to_string()
    }

    fn key(name: &str) -> AuthorityKind {
        let pem = std::fs::read(format!(
            "{}/tests/fixtures/signatures/{name}.pub",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let key = CosignVerificationKey::try_from_pem(&pem).unwrap();
        AuthorityKind::Key { pem, key }
    }

    /// The layer as the crate builds it from what the registry sent, for the fixture image.
    fn layer(payload: &str, signature: &str) -> Result<SignatureLayer, String> {
        let client = sigstore::cosign::ClientBuilder::default().build().unwrap();
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(payload.as_bytes())));
        let annotations = [("dev.cosignproject.cosign/signature".to_string(), signature.to_string())].into();
        client
            .signature_layer(
                MEDIA_TYPE,
                &digest,
                annotations,
                payload.as_bytes().to_vec(),
                &digest_of_image(),
            )
            .map_err(|e| e.to_string())
    }

    /// A key authority's check (no keyless material is involved).
    fn check_key(layer: &SignatureLayer, authority: &AuthorityKind) -> Check {
        check(
            layer,
            authority,
            &Logged {
                validity: None,
                certificate_issuers: &BTreeMap::new(),
                timestamps: &BTreeMap::new(),
            },
        )
    }

    fn verified(check: Check) -> bool {
        matches!(check, Check::Verified { .. })
    }

    #[test]
    fn the_genuine_signature_verifies_with_its_key_only() {
        let genuine = layer(PAYLOAD, &fixture("by_trusted_key")).unwrap();
        assert!(verified(check_key(&genuine, &key("trusted"))));
        assert!(matches!(check_key(&genuine, &key("other")), Check::BadSignature));
    }

    #[test]
    fn a_signature_by_another_key_is_bad_for_the_trusted_key() {
        let other = layer(PAYLOAD, &fixture("by_other_key")).unwrap();
        assert!(matches!(check_key(&other, &key("trusted")), Check::BadSignature));
        assert!(verified(check_key(&other, &key("other"))));
    }

    #[test]
    fn a_tampered_payload_keeps_its_digest_claim_but_not_its_signature() {
        // The attacker rewrites the identity and keeps the digest claim and the signature.
        let tampered = PAYLOAD.replace("127.0.0.1:5077/app/x", "127.0.0.1:5077/app/evil");
        assert_ne!(tampered, PAYLOAD);
        let layer = layer(&tampered, &fixture("by_trusted_key")).unwrap();
        assert!(matches!(check_key(&layer, &key("trusted")), Check::BadSignature));
    }

    #[test]
    fn a_genuine_signature_of_another_image_is_no_signature_of_this_one() {
        let error = layer(OTHER_IMAGE_PAYLOAD, &fixture("other_image_by_trusted_key")).unwrap_err();
        assert!(error.contains("digest mismatch"), "{error}");
    }

    #[test]
    fn malformed_signatures_and_layers_are_refused() {
        let garbage = layer(PAYLOAD, "not base64 at all").unwrap();
        assert!(matches!(check_key(&garbage, &key("trusted")), Check::BadSignature));
        let truncated = &fixture("by_trusted_key")[..40];
        assert!(matches!(
            check_key(&layer(PAYLOAD, truncated).unwrap(), &key("trusted")),
            Check::BadSignature
        ));
        let client = sigstore::cosign::ClientBuilder::default().build().unwrap();
        let wrong_digest = client.signature_layer(
            MEDIA_TYPE,
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            Default::default(),
            PAYLOAD.as_bytes().to_vec(),
            &digest_of_image(),
        );
        assert!(wrong_digest.is_err(), "a blob that does not match its descriptor");
        let not_json = layer("{not json", &fixture("by_trusted_key"));
        assert!(not_json.is_err());
    }
}

/// Known-bad Sigstore bundles, from the genuine ones kept as fixtures (`tests/fixtures/bundles`,
/// made by cosign 3.1.3 and 2.6.4 against the local Sigstore; see its README): a keyless
/// signing bundle verifies with its own log entry and certificate only.
#[cfg(test)]
mod known_bad_bundles {
    use super::*;
    use crate::images::trust::Matcher;
    use serde_json::Value;

    const IMAGE: &str =
        "127.0.0.1:5077/keyless/x@sha256:ac4f0ce2bd0b36b3900732914dc9cb135d24627faa50fb5489e7064ad2a4fe21";
    const SIGNED: &str = include_str!("../../tests/fixtures/bundles/signed.json");
    const SIGNED_BY_COSIGN_2: &str = include_str!("../../tests/fixtures/bundles/signed-cosign2.json");
    const ATTESTED: &str = include_str!("../../tests/fixtures/bundles/attested.json");
    const ROOT: &[u8] = include_bytes!("../../tests/fixtures/bundles/trusted_root.json");

    fn root() -> TrustedRoot {
        crate::images::trusted_root::parse(ROOT).unwrap()
    }

    fn client() -> sigstore::cosign::Client {
        sigstore::cosign::ClientBuilder::default()
            .with_trust_repository(&root().root)
            .unwrap()
            .build()
            .unwrap()
    }

    fn digest() -> &'static str {
        IMAGE.split_once('@').unwrap().1
    }

    /// The bundle as signature verification reads it, then checked by the keyless authority of
    /// the identity that signed the fixtures.
    fn keyless_check(bundle: &Value) -> Result<Check, String> {
        let text = bundle.to_string();
        let image = ImageReference::parse(IMAGE).unwrap();
        let source = sigstore::registry::OciReference::with_digest(
            image.registry.clone(),
            image.repository.clone(),
            digest().to_string(),
        );
        let layer = signatures::bundle_signature(&client(), bundle, text.as_bytes(), "sha256:layer", digest(), &source)
            .map_err(|e| e.to_string())?;
        let validity = root().validity;
        let issuers = crate::images::envelope::bundle_certificate_issuer(bundle)
            .map(|issuer| BTreeMap::from([("sha256:layer".to_string(), issuer)]))
            .unwrap_or_default();
        let alice = AuthorityKind::Keyless {
            issuer: Matcher::Exact("https://issuer.example".to_string()),
            subject: Matcher::Exact("alice@example.com".to_string()),
        };
        Ok(check(
            &layer,
            &alice,
            &Logged {
                validity: Some(&validity),
                certificate_issuers: &issuers,
                timestamps: &BTreeMap::new(),
            },
        ))
    }

    fn bundle(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_genuine_keyless_bundles_of_cosign_3_and_2_verify() {
        // cosign 2 sent Rekor the envelope as Go's DSSE library writes it, cosign 3 as protobuf
        // JSON: the entry's envelopeHash matches only the latter's serialisation (the check the
        // patch drops), the rest of the entry both.
        for text in [SIGNED, SIGNED_BY_COSIGN_2] {
            assert!(matches!(keyless_check(&bundle(text)), Ok(Check::Verified { .. })));
        }
    }

    #[test]
    fn a_bundle_with_another_envelopes_log_entry_is_refused() {
        let mut swapped = bundle(SIGNED);
        swapped["verificationMaterial"]["tlogEntries"] =
            bundle(SIGNED_BY_COSIGN_2)["verificationMaterial"]["tlogEntries"].clone();
        let error = keyless_check(&swapped).err().unwrap();
        assert!(error.contains("tlog body"), "{error}");
    }

    #[test]
    fn a_bundle_with_another_certificate_is_refused() {
        let mut swapped = bundle(SIGNED);
        swapped["verificationMaterial"]["certificate"] =
            bundle(ATTESTED)["verificationMaterial"]["certificate"].clone();
        let error = keyless_check(&swapped).err().unwrap();
        assert!(error.contains("certificate does not match"), "{error}");
    }

    #[test]
    fn a_rewritten_statement_or_signature_is_refused() {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD;
        let genuine = bundle(SIGNED);
        let mut statement: Value = serde_json::from_slice(
            &base64
                .decode(genuine["dsseEnvelope"]["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        statement["predicate"] = serde_json::json!({"rewritten": true});
        let mut rewritten = genuine.clone();
        rewritten["dsseEnvelope"]["payload"] = base64.encode(statement.to_string()).into();
        let error = keyless_check(&rewritten).err().unwrap();
        assert!(error.contains("payloadHash mismatch"), "{error}");

        let mut resigned = genuine.clone();
        resigned["dsseEnvelope"]["signatures"][0]["sig"] =
            bundle(SIGNED_BY_COSIGN_2)["dsseEnvelope"]["signatures"][0]["sig"].clone();
        let error = keyless_check(&resigned).err().unwrap();
        assert!(error.contains("signature does not match"), "{error}");

        let mut altered_body = genuine;
        altered_body["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1".into();
        let error = keyless_check(&altered_body).err().unwrap();
        assert!(error.contains("SET verification failed"), "{error}");
    }

    #[test]
    fn a_timestamped_bundle_dates_its_own_signature_inside_its_certificates_life() {
        use crate::images::envelope::{bundle_certificate_pem, bundle_is_unlogged, Envelope};
        let stamped = bundle(include_str!("../../tests/fixtures/bundles/stamped.json"));
        assert!(bundle_is_unlogged(&stamped));
        let signature =
            |bundle: &Value| Envelope::read(&bundle["dsseEnvelope"]).unwrap().decoded_signatures()[0].clone();
        let validity = root().validity;
        let time = signatures::bundle_signing_time(&validity, &stamped, &signature(&stamped)).unwrap();
        let pem = bundle_certificate_pem(&stamped).unwrap();
        let certificate = client().certificate_at(pem.as_bytes(), time).unwrap();
        assert_eq!(certificate_identity(&certificate).1, "alice@example.com");
        // A day later the certificate (ten minutes of life) had expired.
        assert!(client().certificate_at(pem.as_bytes(), time + 86_400).is_err());
        // The timestamp is of this signature, not of another.
        assert_eq!(
            signatures::bundle_signing_time(&validity, &stamped, &signature(&bundle(SIGNED))),
            Err(TimestampError::OtherBytes)
        );
    }

    #[test]
    fn a_keyless_attestation_bundle_gives_its_certificate_and_log_entry_only_when_they_are_its_own() {
        let client = client();
        let (certificate, logged) = client.bundle_certificate(ATTESTED.as_bytes()).unwrap();
        assert_eq!(
            certificate_identity(&certificate),
            ("https://issuer.example".to_string(), "alice@example.com".to_string())
        );
        assert!(log_entry(&logged).is_some());
        let mut swapped = bundle(ATTESTED);
        swapped["verificationMaterial"]["tlogEntries"] = bundle(SIGNED)["verificationMaterial"]["tlogEntries"].clone();
        assert!(client.bundle_certificate(swapped.to_string().as_bytes()).is_err());
        // Without a trust root there is nothing to check a certificate against.
        let bare = sigstore::cosign::ClientBuilder::default().build().unwrap();
        assert!(bare.bundle_certificate(ATTESTED.as_bytes()).is_err());
    }
}

#[cfg(test)]
mod status_labels {
    use super::*;

    #[test]
    fn every_status_label_is_one_the_metrics_start_at_zero() {
        let all = [
            VerificationStatus::Verified,
            VerificationStatus::Unsigned,
            VerificationStatus::Invalid,
            VerificationStatus::Untrusted,
            VerificationStatus::NoTrustPolicy,
            VerificationStatus::Error,
            VerificationStatus::Timeout,
            VerificationStatus::Skipped,
        ];
        let labels: Vec<&str> = all.into_iter().map(status_label).collect();
        assert_eq!(labels, crate::metrics::VERIFICATION_STATUSES);
    }
}
