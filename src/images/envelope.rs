//! DSSE envelopes, in-toto statements, cosign bundles and signature manifests: the formats
//! that signatures and attestations share, read here once.

use std::collections::BTreeMap;

use serde_json::Value;
use sigstore::cosign::signature_layers::{CertificateSignature, CertificateSubject};

/// The media type of a `.sig` manifest's layers: cosign's simple signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Whether an in-toto statement names `digest` (sha256) among its subjects.
pub fn statement_is_about(statement: &Value, digest: &str) -> bool {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return false;
    };
    statement["subject"]
        .as_array()
        .is_some_and(|subjects| subjects.iter().any(|s| s["digest"]["sha256"].as_str() == Some(hex)))
}

/// DSSE's PAE: what the signature actually covers.
pub fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut pae = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    pae.extend_from_slice(payload);
    pae
}

/// Whether a Sigstore bundle was signed with a key (a key hint, no certificate).
pub fn signed_with_a_key(bundle: &Value) -> bool {
    bundle["verificationMaterial"]["publicKey"].is_object()
}

/// The issuer and subject (email or URI) a Fulcio certificate was issued for.
pub fn certificate_identity(certificate: &CertificateSignature) -> (String, String) {
    let subject = match &certificate.subject {
        CertificateSubject::Email(email) => email.clone(),
        CertificateSubject::Uri(uri) => uri.clone(),
    };
    (certificate.issuer.clone().unwrap_or_default(), subject)
}

/// A layer descriptor of a manifest.
pub struct Layer {
    pub digest: String,
    pub annotations: BTreeMap<String, String>,
}

/// The layers of `media_type` in an image manifest, at most `max`.
pub fn manifest_layers(manifest: &[u8], media_type: &str, max: usize) -> Vec<Layer> {
    let manifest: Value = serde_json::from_slice(manifest).unwrap_or_default();
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|layer| layer["mediaType"] == media_type)
        .filter_map(|layer| {
            let annotations = layer["annotations"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                .collect();
            Some(Layer {
                digest: layer["digest"].as_str()?.to_string(),
                annotations,
            })
        })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_layers_of_the_asked_type_are_read_and_at_most_max() {
        let manifest = serde_json::json!({
            "layers": [
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": "sha256:a", "annotations": {"dev.cosignproject.cosign/signature": "sig"}},
                {"mediaType": "application/octet-stream", "digest": "sha256:b"},
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": "sha256:c"},
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": "sha256:d"},
            ]
        });
        let layers = manifest_layers(manifest.to_string().as_bytes(), SIMPLE_SIGNING_MEDIA_TYPE, 2);
        let digests: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a", "sha256:c"]);
        assert_eq!(layers[0].annotations["dev.cosignproject.cosign/signature"], "sig");
        assert!(manifest_layers(b"not json", SIMPLE_SIGNING_MEDIA_TYPE, 2).is_empty());
    }
}
