//! Reading an image's signatures with portcullis's own registry client (allow-list, redirect and
//! credential rules, size bounds) and handing each to the `sigstore` crate, which checks it: the
//! signed payload names this digest, and a Rekor bundle or Fulcio certificate is kept only when it
//! verifies against the trusted root. Two places hold signatures:
//! - the cosign tag `sha256-<hex>.sig`: one simple-signing layer per signature;
//! - OCI referrers of the digest (cosign's new bundle format): Sigstore bundles, found through
//!   the referrers API or, where a registry lacks it, the referrers tag `sha256-<hex>`. A bundle
//!   is a signature only when its statement is cosign's signing statement (an SBOM attestation
//!   is not). The crate checks bundles with a certificate and a log entry; one signed with a key
//!   (no certificate) is checked here like a key-signed attestation: its statement must be about
//!   this digest, and the key authorities verify the signature. A keyless one with RFC 3161
//!   timestamps instead of a log entry is read the same way, its certificate checked by the
//!   crate at the time a timestamp of its signature gives.

use std::collections::BTreeMap;

use serde_json::Value;
use sigstore::cosign::payload::SimpleSigning;
use sigstore::cosign::{Client, SignatureLayer};
use sigstore::registry::OciReference;

use super::envelope::{
    annotation_timestamp, bundle_certificate_issuer, bundle_certificate_pem, bundle_is_unlogged, bundle_referrers,
    bundle_timestamps, issuer_of_pem, manifest_layers, signed_with_a_key, signing_bundle, statement_is_about, Envelope,
    BUNDLE_MEDIA_TYPE, CERTIFICATE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, TIMESTAMP_ANNOTATION,
};
use super::reference::ImageReference;
use super::registry::{Lookup, Registry, RegistryError};
use super::timestamp::TimestampError;
use super::trusted_root::RootValidity;

/// A signature payload or bundle is a few KiB; anything near this is not one.
const MAX_SIGNATURE_BYTES: usize = 1024 * 1024;
/// Timestamps read from one Sigstore bundle (signers add one per authority; a few at most).
const MAX_BUNDLE_TIMESTAMPS: usize = 4;

/// What the registry holds for a digest.
#[derive(Default)]
pub struct Signatures {
    /// Signature objects present, whether or not they verified.
    pub present: usize,
    /// Those the crate accepted as signatures of this digest.
    pub layers: Vec<SignatureLayer>,
    /// Layer digest -> the issuer (DER name) of its Fulcio certificate, for keyless layers: which
    /// CA of the trusted root must have been valid when it was logged.
    pub certificate_issuers: BTreeMap<String, Vec<u8>>,
    /// Layer digest -> the signing time its RFC 3161 timestamp gives, for layers that carry one
    /// (an error when the timestamp does not hold: such a layer's time is not vouched for).
    pub timestamps: BTreeMap<String, Result<i64, TimestampError>>,
    /// Bundles among the referrers that are not signatures (attestations), unchecked: layer
    /// digest and content.
    pub attestation_bundles: Vec<(String, Vec<u8>)>,
}

/// The signatures of `image@digest`, at most `max` of each kind. A registry failure is an error,
/// never "no signatures".
pub async fn read(
    registry: &Registry,
    client: &Client,
    validity: Option<&RootValidity>,
    image: &ImageReference,
    digest: &str,
    max: usize,
) -> Result<Signatures, RegistryError> {
    let reading = Reading {
        registry,
        client,
        validity,
        image,
        digest,
        max,
    };
    let (tagged, referred) = tokio::join!(reading.signature_tag(), reading.referrers());
    let (tagged, referred) = (tagged?, referred?);
    Ok(Signatures {
        present: tagged.present + referred.present,
        layers: tagged.layers.into_iter().chain(referred.layers).collect(),
        certificate_issuers: tagged
            .certificate_issuers
            .into_iter()
            .chain(referred.certificate_issuers)
            .collect(),
        timestamps: tagged.timestamps.into_iter().chain(referred.timestamps).collect(),
        attestation_bundles: referred.attestation_bundles,
    })
}

/// What one read is about: where, what, and how many of each kind at most.
struct Reading<'a> {
    registry: &'a Registry,
    client: &'a Client,
    /// The trusted root's windows and timestamp authorities, when there is one.
    validity: Option<&'a RootValidity>,
    image: &'a ImageReference,
    digest: &'a str,
    max: usize,
}

impl Reading<'_> {
    async fn signature_tag(&self) -> Result<Signatures, RegistryError> {
        let tag = format!("{}.sig", self.digest.replace(':', "-"));
        let Lookup::Found { body, .. } = self.registry.manifest(self.image, &tag).await? else {
            return Ok(Signatures::default());
        };
        let layers = manifest_layers(&body, SIMPLE_SIGNING_MEDIA_TYPE, self.max);
        // A signature manifest that holds no signature layer is still "something signed here".
        let present = layers.len().max(1);
        let blobs = futures::future::try_join_all(
            layers
                .iter()
                .map(|layer| self.registry.blob(self.image, &layer.digest, MAX_SIGNATURE_BYTES)),
        )
        .await?;
        let (mut certificate_issuers, mut timestamps) = (BTreeMap::new(), BTreeMap::new());
        let layers = layers
            .into_iter()
            .zip(blobs)
            .filter_map(|(layer, data)| {
                let certificate = layer.annotations.get(CERTIFICATE_ANNOTATION).cloned();
                if let Some(issuer) = certificate.as_deref().and_then(|pem| issuer_of_pem(pem.as_bytes())) {
                    certificate_issuers.insert(layer.digest.clone(), issuer);
                }
                let stamped = layer
                    .annotations
                    .get(TIMESTAMP_ANNOTATION)
                    .map(|annotation| self.timestamped(annotation, layer.annotations.get(SIGNATURE_ANNOTATION)));
                let mut signature = self
                    .client
                    .signature_layer(
                        SIMPLE_SIGNING_MEDIA_TYPE,
                        &layer.digest,
                        layer.annotations,
                        data,
                        self.digest,
                    )
                    .map_err(|e| tracing::debug!(layer = %layer.digest, error = %e, "signature layer rejected"))
                    .ok()?;
                if let Some(stamped) = stamped {
                    let stamped = self.certificate_at_timestamp(&mut signature, certificate.as_deref(), stamped);
                    timestamps.insert(layer.digest, stamped);
                }
                Some(signature)
            })
            .collect();
        Ok(Signatures {
            present,
            layers,
            certificate_issuers,
            timestamps,
            attestation_bundles: Vec::new(),
        })
    }

    /// The signing time a `.sig` layer's timestamp annotation gives for its signature.
    fn timestamped(&self, annotation: &str, signature: Option<&String>) -> Result<i64, TimestampError> {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD;
        let malformed = |what: &str| TimestampError::Malformed(what.to_string());
        let validity = self.validity.ok_or(TimestampError::NoTrustedRoot)?;
        let token = annotation_timestamp(annotation)
            .ok_or_else(|| malformed("the timestamp annotation holds no base64 SignedRFC3161Timestamp"))?;
        // cosign timestamps the signature's raw bytes.
        let signature = signature
            .and_then(|text| base64.decode(text).ok())
            .ok_or_else(|| malformed("no base64 signature to timestamp"))?;
        validity.timestamped(&token, &signature)
    }

    /// A keyless layer's certificate checked at the timestamp's time: it must have been valid
    /// then. Without a Rekor bundle the crate kept no certificate; the timestamp vouches for it.
    fn certificate_at_timestamp(
        &self,
        layer: &mut SignatureLayer,
        certificate: Option<&str>,
        stamped: Result<i64, TimestampError>,
    ) -> Result<i64, TimestampError> {
        let time = stamped?;
        let Some(pem) = certificate else {
            return Ok(time);
        };
        let verified = self
            .client
            .certificate_at(pem.as_bytes(), time)
            .map_err(|_| TimestampError::CertificateNotValid)?;
        if layer.certificate_signature.is_none() {
            layer.certificate_signature = Some(verified);
        }
        Ok(time)
    }

    /// A keyless signing bundle with RFC 3161 timestamps and no log entry: its envelope's
    /// signature, with the certificate checked at the time a timestamp of that very signature
    /// gives (cosign stamps the DSSE signature). A timestamp that does not hold leaves the layer
    /// without a certificate: signed by no identity it can prove.
    fn timestamped_bundle(
        &self,
        parsed: &Value,
        layer_digest: &str,
        source: &OciReference,
    ) -> Result<(SignatureLayer, Result<i64, TimestampError>), BundleRejected> {
        use base64::Engine as _;
        let mut layer = envelope_layer(parsed, layer_digest, self.digest, source)?;
        let signature = layer
            .signature
            .as_deref()
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or(BundleRejected::NoSignature)?;
        let stamped = self
            .validity
            .ok_or(TimestampError::NoTrustedRoot)
            .and_then(|validity| bundle_signing_time(validity, parsed, &signature));
        let stamped = self.certificate_at_timestamp(&mut layer, bundle_certificate_pem(parsed).as_deref(), stamped);
        Ok((layer, stamped))
    }

    async fn referrers(&self) -> Result<Signatures, RegistryError> {
        let Some(index) = self.registry.referrers(self.image, self.digest).await? else {
            return Ok(Signatures::default());
        };
        let manifests = bundle_referrers(&index, self.max);
        let source = oci_reference(self.image, self.digest);
        let mut found = Signatures::default();
        for manifest in manifests {
            let Lookup::Found { body, .. } = self.registry.manifest(self.image, &manifest).await? else {
                continue;
            };
            for layer in manifest_layers(&body, BUNDLE_MEDIA_TYPE, self.max) {
                let bundle = self
                    .registry
                    .blob(self.image, &layer.digest, MAX_SIGNATURE_BYTES)
                    .await?;
                let Some(parsed) = signing_bundle(&bundle) else {
                    found.attestation_bundles.push((layer.digest, bundle));
                    continue;
                };
                found.present += 1;
                if let Some(issuer) = bundle_certificate_issuer(&parsed) {
                    found.certificate_issuers.insert(layer.digest.clone(), issuer);
                }
                let signature = if timestamped_keyless(&parsed) {
                    self.timestamped_bundle(&parsed, &layer.digest, &source)
                        .map(|(signature, stamped)| {
                            found.timestamps.insert(layer.digest.clone(), stamped);
                            signature
                        })
                } else {
                    bundle_signature(self.client, &parsed, &bundle, &layer.digest, self.digest, &source)
                };
                match signature {
                    Ok(signature) => found.layers.push(signature),
                    Err(e) => tracing::debug!(layer = %layer.digest, error = %e, "signature bundle rejected"),
                }
            }
        }
        Ok(found)
    }
}

/// `image@digest` as the crate addresses it: built from its parts, never parsed (parsing
/// compiles a large regular expression, tens of milliseconds once per process).
pub fn oci_reference(image: &ImageReference, digest: &str) -> OciReference {
    OciReference::with_digest(image.registry.clone(), image.repository.clone(), digest.to_string())
}

/// Why a signing bundle is no signature of the digest (logged at debug; the image is then
/// signed by nobody this bundle could prove).
#[derive(Debug, thiserror::Error)]
pub enum BundleRejected {
    #[error("no DSSE envelope of an in-toto statement")]
    NoEnvelope,
    #[error("no DSSE signature")]
    NoSignature,
    #[error("the signed statement is not about {0}")]
    OtherDigest(String),
    #[error("the sigstore crate refused it: {0}")]
    Refused(#[source] sigstore::errors::SigstoreError),
}

/// A signing bundle (as [`signing_bundle`] read it from `bundle`) as a signature of `digest`:
/// checked by the crate when it holds a certificate, here when it was signed with a key.
pub fn bundle_signature(
    client: &Client,
    parsed: &Value,
    bundle: &[u8],
    layer_digest: &str,
    digest: &str,
    source: &OciReference,
) -> Result<SignatureLayer, BundleRejected> {
    if signed_with_a_key(parsed) {
        envelope_layer(parsed, layer_digest, digest, source)
    } else {
        client
            .bundle_signature_layer(bundle, layer_digest, digest, source)
            .map_err(BundleRejected::Refused)
    }
}

/// When a Sigstore bundle's `signature` was made, by the first of its RFC 3161 timestamps that
/// holds (cosign stamps the DSSE signature).
pub fn bundle_signing_time(validity: &RootValidity, bundle: &Value, signature: &[u8]) -> Result<i64, TimestampError> {
    validity.timestamped_by_any(&bundle_timestamps(bundle, MAX_BUNDLE_TIMESTAMPS), signature)
}

/// Whether a Sigstore bundle is keyless, holds no log entry and carries RFC 3161 timestamps:
/// what vouches for its signing time is then a timestamp, not the log.
pub fn timestamped_keyless(bundle: &Value) -> bool {
    !signed_with_a_key(bundle) && bundle_is_unlogged(bundle) && !bundle_timestamps(bundle, 1).is_empty()
}

/// A bundle's DSSE envelope as a signature layer, without a certificate: the signed bytes (PAE)
/// and the first signature, for the key authorities to verify (or, once a timestamp vouched for
/// its certificate, the keyless ones); its statement must be about `digest`.
fn envelope_layer(
    bundle: &Value,
    layer_digest: &str,
    digest: &str,
    source: &OciReference,
) -> Result<SignatureLayer, BundleRejected> {
    let envelope = Envelope::read(&bundle["dsseEnvelope"]).ok_or(BundleRejected::NoEnvelope)?;
    let signature = envelope.signatures.first().ok_or(BundleRejected::NoSignature)?.clone();
    if !statement_is_about(&envelope.statement, digest) {
        return Err(BundleRejected::OtherDigest(digest.to_string()));
    }
    Ok(SignatureLayer {
        simple_signing: SimpleSigning::new(source, digest),
        oci_digest: layer_digest.to_string(),
        certificate_signature: None,
        bundle: None,
        signature: Some(signature),
        raw_data: envelope.signed_bytes(),
    })
}
