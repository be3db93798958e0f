//! The facts about one image that native code hands to the policies (`input.images[]`).
//!
//! Field names are the Rego contract in `docs/policy-input.md`; change them only with it.

use serde::Serialize;

use super::reference::ImageReference;

/// One image-bearing field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLocation {
    /// Field path, e.g. `spec.template.spec.containers[0].image`.
    pub path: String,
    /// Container name, or volume name for an image volume.
    pub container: String,
    /// The value as written; empty when the field is missing or not a string.
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageFacts {
    /// Field path in the object, e.g. `spec.template.spec.containers[0].image`.
    pub path: String,
    /// Container name (or volume name for an image volume).
    pub container: String,
    /// The reference exactly as written in the manifest.
    #[serde(rename = "ref")]
    pub reference: String,
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub pinned: bool,
    /// The digest the tag points to, when a registry was asked.
    pub resolved_digest: Option<String>,
    pub verification: Verification,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub status: VerificationStatus,
    /// Human-readable, safe to show to the person who applied the manifest.
    pub reason: String,
    pub signers: Vec<Signer>,
    pub attestations: Vec<Attestation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    Verified,
    Unsigned,
    Invalid,
    Untrusted,
    NoTrustPolicy,
    Error,
    Timeout,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signer {
    pub authority: String,
    /// `key` or `keyless`.
    pub kind: String,
    pub issuer: Option<String>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attestation {
    pub authority: String,
    pub predicate_type: String,
    pub verified: bool,
    pub predicate: serde_json::Value,
}

impl ImageFacts {
    /// Facts from the reference alone; signature verification has not run.
    pub fn unverified(location: &ImageLocation, reference: &ImageReference) -> ImageFacts {
        ImageFacts {
            path: location.path.clone(),
            container: location.container.clone(),
            reference: location.image.clone(),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            tag: reference.tag.clone(),
            digest: reference.digest.clone(),
            pinned: reference.pinned(),
            resolved_digest: None,
            verification: Verification {
                status: VerificationStatus::Skipped,
                reason: "signature verification is not configured".into(),
                signers: Vec::new(),
                attestations: Vec::new(),
            },
        }
    }
}
