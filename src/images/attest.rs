//! Cosign attestations (`sha256-<digest>.att`): DSSE envelopes of in-toto statements. An
//! attestation counts only when an authority of the entry signed it (a trusted key, or a Fulcio
//! certificate of a trusted identity whose Rekor entry logs this very envelope) and its statement
//! is about this very digest; its predicate (bounded in size) then goes into the facts for Rego.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;
use sigstore::cosign::bundle::Bundle;
use sigstore::cosign::signature_layers::CertificateSignature;
use sigstore::crypto::Signature;

use super::envelope::{
    annotation_timestamp, bundle_certificate_issuer, bundle_certificate_pem, certificate_identity, issuer_of_pem,
    log_entry, manifest_layers, signed_with_a_key, statement_is_about, Envelope, CERTIFICATE_ANNOTATION,
    REKOR_BUNDLE_ANNOTATION, TIMESTAMP_ANNOTATION,
};
use super::facts::Attestation;
use super::reference::ImageReference;
use super::registry::{Lookup, Registry, RegistryError};
use super::signatures::{bundle_signing_time, timestamped_keyless};
use super::trust::{AuthorityKind, TrustEntry};
use super::trusted_root::RootValidity;

const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;
/// Largest predicate handed to the policies (an SBOM can be big; Rego needs its summary).
pub const MAX_PREDICATE_BYTES: usize = 256 * 1024;

/// The attestations of `digest` (of the predicate types the entry asks for, if it names any),
/// verified or not. A registry failure is an error, never "no attestation".
pub async fn attestations(
    registry: &Registry,
    client: &sigstore::cosign::Client,
    validity: Option<&RootValidity>,
    image: &ImageReference,
    digest: &str,
    entry: &TrustEntry,
    max: usize,
) -> Result<Vec<Attestation>, RegistryError> {
    let tag = format!("{}.att", digest.replace(':', "-"));
    let Lookup::Found { body, .. } = registry.manifest(image, &tag).await? else {
        return Ok(Vec::new());
    };
    let layers = manifest_layers(&body, DSSE_MEDIA_TYPE, max);
    let envelopes = futures::future::try_join_all(
        layers
            .iter()
            .map(|layer| registry.blob(image, &layer.digest, MAX_ENVELOPE_BYTES)),
    )
    .await?;
    Ok(layers
        .iter()
        .zip(envelopes)
        .filter_map(|(layer, bytes)| {
            let envelope: Value = serde_json::from_slice(&bytes).ok()?;
            let keyless = if layer.annotations.contains_key(REKOR_BUNDLE_ANNOTATION) {
                KeylessMaterial::verified(client, validity, &layer.annotations)
            } else {
                KeylessMaterial::timestamped_layer(client, validity, &layer.annotations, &bytes)
            };
            check_envelope(&envelope, digest, entry, keyless.as_ref())
        })
        .collect())
}

/// Attestations in Sigstore bundles (OCI referrers, cosign's new bundle format), as
/// [`signatures::read`](super::signatures::read) found them: the same checks as `.att` layers.
/// A keyless bundle's certificate chain and transparency-log entry are checked by the crate.
pub fn from_bundles(
    client: &sigstore::cosign::Client,
    validity: Option<&RootValidity>,
    bundles: &[(String, Vec<u8>)],
    digest: &str,
    entry: &TrustEntry,
) -> Vec<Attestation> {
    bundles
        .iter()
        .filter_map(|(_, bundle)| {
            let parsed: Value = serde_json::from_slice(bundle).ok()?;
            let keyless = if signed_with_a_key(&parsed) {
                None
            } else if timestamped_keyless(&parsed) {
                KeylessMaterial::timestamped_bundle(client, validity, &parsed)
            } else {
                let (certificate, logged) = client
                    .bundle_certificate(bundle)
                    .map_err(|e| tracing::debug!(error = %e, "attestation bundle rejected"))
                    .ok()?;
                let vouched = match (validity, log_entry(&logged), bundle_certificate_issuer(&parsed)) {
                    (Some(validity), Some((log_id, time)), Some(issuer)) => validity.vouches(&log_id, time, &issuer),
                    _ => false,
                };
                vouched.then_some(KeylessMaterial {
                    certificate,
                    log: LogProof::CheckedByCrate,
                })
            };
            check_envelope(&parsed["dsseEnvelope"], digest, entry, keyless.as_ref())
        })
        .collect()
}

/// A keyless attestation's certificate, verified against the trusted root (chained to Fulcio,
/// valid at the integrated time), and the proof that the log holds this envelope.
struct KeylessMaterial {
    certificate: CertificateSignature,
    log: LogProof,
}

enum LogProof {
    /// cosign's `.att` layer annotation: a Rekor bundle whose entry must be this envelope's.
    Rekor(Bundle),
    /// A Sigstore bundle: the crate verified its log entry against the envelope.
    CheckedByCrate,
    /// No log entry, an RFC 3161 timestamp instead: of a bundle's one signature, or of a `.att`
    /// layer's whole envelope (as cosign stamps attestations), so of the signature that must
    /// verify with the certificate.
    Timestamped,
}

impl KeylessMaterial {
    /// The certificate of a keyless attestation bundle without a log entry, at the time a
    /// timestamp of the envelope's one signature gives. One signature only, so that the signature
    /// the timestamp dates is the one the certificate must verify.
    fn timestamped_bundle(
        client: &sigstore::cosign::Client,
        validity: Option<&RootValidity>,
        bundle: &Value,
    ) -> Option<KeylessMaterial> {
        let validity = validity?;
        let signatures = Envelope::read(&bundle["dsseEnvelope"])?.decoded_signatures();
        let [signature] = signatures.as_slice() else {
            return None;
        };
        let time = bundle_signing_time(validity, bundle, signature)
            .map_err(|e| tracing::debug!(error = %e, "attestation timestamp rejected"))
            .ok()?;
        Self::at_timestamp(client, validity, &bundle_certificate_pem(bundle)?, time)
    }

    /// The certificate of a `.att` layer with a timestamp and no Rekor bundle, at the time the
    /// timestamp of the layer's envelope (its bytes as stored) gives.
    fn timestamped_layer(
        client: &sigstore::cosign::Client,
        validity: Option<&RootValidity>,
        annotations: &BTreeMap<String, String>,
        envelope: &[u8],
    ) -> Option<KeylessMaterial> {
        let validity = validity?;
        let token = annotation_timestamp(annotations.get(TIMESTAMP_ANNOTATION)?)?;
        let time = validity
            .timestamped(&token, envelope)
            .map_err(|e| tracing::debug!(error = %e, "attestation timestamp rejected"))
            .ok()?;
        Self::at_timestamp(client, validity, annotations.get(CERTIFICATE_ANNOTATION)?, time)
    }

    /// A certificate (PEM) checked by the crate at `time`, a signing time a timestamp gave, when
    /// the root's CA that issued it was in its `validFor` window then.
    fn at_timestamp(
        client: &sigstore::cosign::Client,
        validity: &RootValidity,
        pem: &str,
        time: i64,
    ) -> Option<KeylessMaterial> {
        let issuer = issuer_of_pem(pem.as_bytes())?;
        if !validity.issued_in_window(&issuer, time) {
            tracing::debug!("attestation certificate authority outside its validFor window at the timestamp");
            return None;
        }
        let certificate = client
            .certificate_at(pem.as_bytes(), time)
            .map_err(|e| tracing::debug!(error = %e, "attestation certificate not valid at its timestamp"))
            .ok()?;
        Some(KeylessMaterial {
            certificate,
            log: LogProof::Timestamped,
        })
    }

    /// The certificate of a `.att` layer, when the crate verified it and the root's log key and
    /// CA were in their `validFor` windows when it was logged.
    fn verified(
        client: &sigstore::cosign::Client,
        validity: Option<&RootValidity>,
        annotations: &BTreeMap<String, String>,
    ) -> Option<KeylessMaterial> {
        let pem = annotations.get(CERTIFICATE_ANNOTATION)?;
        let bundle = annotations.get(REKOR_BUNDLE_ANNOTATION)?;
        match client.verified_certificate(pem.as_bytes(), bundle) {
            Ok((certificate, bundle))
                if validity.is_some_and(|validity| {
                    issuer_of_pem(pem.as_bytes()).is_some_and(|issuer| {
                        validity.vouches(&bundle.payload.log_id, bundle.payload.integrated_time, &issuer)
                    })
                }) =>
            {
                Some(KeylessMaterial {
                    certificate,
                    log: LogProof::Rekor(bundle),
                })
            }
            Ok(_) => {
                tracing::debug!("attestation certificate outside the trusted root's validFor windows");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "attestation certificate rejected");
                None
            }
        }
    }

    /// Whether the Rekor entry is the log of this envelope: its payload hash, and one of its
    /// signatures (an `intoto` v0.0.2 or `dsse` entry, as cosign writes them).
    fn logs(&self, payload: &[u8], signatures: &[Vec<u8>]) -> bool {
        let bundle = match &self.log {
            LogProof::CheckedByCrate | LogProof::Timestamped => return true,
            LogProof::Rekor(bundle) => bundle,
        };
        let base64 = base64::engine::general_purpose::STANDARD;
        let Some(body) = base64
            .decode(&bundle.payload.body)
            .ok()
            .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
        else {
            return false;
        };
        let (payload_hash, logged) = match body["kind"].as_str() {
            Some("intoto") => (
                &body["spec"]["content"]["payloadHash"],
                body["spec"]["content"]["envelope"]["signatures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["sig"].as_str())
                    .collect::<Vec<_>>(),
            ),
            Some("dsse") => (
                &body["spec"]["payloadHash"],
                body["spec"]["signatures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["signature"].as_str())
                    .collect(),
            ),
            _ => return false,
        };
        let hash = hex::encode(sha2::Sha256::digest(payload));
        // intoto v0.0.2 logs the envelope's base64 signature base64-encoded once more.
        let decoded = |text: &str| {
            let once = base64.decode(text).ok()?;
            Some(match base64.decode(&once) {
                Ok(twice) if signatures.contains(&twice) => twice,
                _ => once,
            })
        };
        payload_hash["algorithm"] == "sha256"
            && payload_hash["value"].as_str() == Some(hash.as_str())
            && logged
                .into_iter()
                .filter_map(decoded)
                .any(|sig| signatures.contains(&sig))
    }
}

/// Verifies one DSSE envelope. None when it is not an attestation of a type the entry asks about.
fn check_envelope(
    envelope: &Value,
    digest: &str,
    entry: &TrustEntry,
    keyless: Option<&KeylessMaterial>,
) -> Option<Attestation> {
    let envelope = Envelope::read(envelope)?;
    let predicate_type = envelope.predicate_type()?.to_string();
    // An entry that lists attestation types considers only those; one that lists none, all.
    let wanted = entry.attestations.is_empty()
        || entry
            .attestations
            .iter()
            .any(|a| a.predicate_types.contains(&predicate_type));
    if !wanted {
        return None;
    }
    let unverified = Attestation {
        authority: String::new(),
        predicate_type: predicate_type.clone(),
        verified: false,
        predicate: Value::Null,
    };
    if !statement_is_about(&envelope.statement, digest) {
        return Some(unverified);
    }
    let pae = envelope.signed_bytes();
    let signatures = envelope.decoded_signatures();
    let signer = entry.authorities.iter().find(|authority| match &authority.kind {
        AuthorityKind::Key { key, .. } => signatures
            .iter()
            .any(|sig| key.verify_signature(Signature::Raw(sig), &pae).is_ok()),
        AuthorityKind::Keyless { issuer, subject } => keyless.is_some_and(|material| {
            let (issuer_text, subject_text) = certificate_identity(&material.certificate);
            issuer.matches(&issuer_text)
                && subject.matches(&subject_text)
                && signatures.iter().any(|sig| {
                    material
                        .certificate
                        .verification_key
                        .verify_signature(Signature::Raw(sig), &pae)
                        .is_ok()
                })
                && material.logs(&envelope.payload, &signatures)
        }),
    });
    let Some(signer) = signer else {
        return Some(unverified);
    };
    let predicate = envelope.statement.get("predicate").cloned().unwrap_or(Value::Null);
    let bounded = if predicate.to_string().len() <= MAX_PREDICATE_BYTES {
        predicate
    } else {
        Value::Null
    };
    Some(Attestation {
        authority: signer.name.clone(),
        predicate_type,
        verified: true,
        predicate: bounded,
    })
}
