//! DSSE envelopes, in-toto statements, cosign bundles, signature manifests and referrers
//! indexes: the formats that signatures and attestations share, read here once. Everything here
//! reads bytes a registry served, so nothing here trusts them: a digest is taken only in the one
//! accepted form, and what does not read is skipped, never an error that stops the others.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use sigstore::cosign::signature_layers::{CertificateSignature, CertificateSubject};

use super::reference::is_sha256_digest;

/// The media type of a `.sig` manifest's layers: cosign's simple signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The media type of a Sigstore bundle layer (cosign's new bundle format, in the referrers).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The artifact type some registries index a bundle under.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The predicate type of the statement `cosign sign` puts in a bundle.
const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A DSSE envelope of an in-toto statement, as cosign writes attestations and signing bundles.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub payload_type: String,
    /// The decoded payload: what the signatures cover (through the PAE).
    pub payload: Vec<u8>,
    /// The payload read as an in-toto statement.
    pub statement: Value,
    /// The signatures as written (base64).
    pub signatures: Vec<String>,
}

impl Envelope {
    /// Reads an envelope; None when it is not one (no payload type, or a payload that is not
    /// base64 of a JSON statement).
    pub fn read(envelope: &Value) -> Option<Envelope> {
        let payload_type = envelope["payloadType"].as_str()?.to_string();
        let (payload, statement) = payload_statement(envelope)?;
        let signatures = envelope["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["sig"].as_str().map(str::to_string))
            .collect();
        Some(Envelope {
            payload_type,
            payload,
            statement,
            signatures,
        })
    }

    /// The statement's predicate type, if it names one.
    pub fn predicate_type(&self) -> Option<&str> {
        self.statement["predicateType"].as_str()
    }

    /// What the signatures sign: the PAE of the payload type and payload.
    pub fn signed_bytes(&self) -> Vec<u8> {
        pre_authentication_encoding(&self.payload_type, &self.payload)
    }

    /// The signatures that are base64, decoded.
    pub fn decoded_signatures(&self) -> Vec<Vec<u8>> {
        self.signatures.iter().filter_map(|s| BASE64.decode(s).ok()).collect()
    }
}

/// An envelope's payload, decoded, and read as JSON.
fn payload_statement(envelope: &Value) -> Option<(Vec<u8>, Value)> {
    let payload = BASE64.decode(envelope["payload"].as_str()?).ok()?;
    let statement = serde_json::from_slice(&payload).ok()?;
    Some((payload, statement))
}

/// The Sigstore bundle, parsed, when it holds a signature: cosign's signing statement in a DSSE
/// envelope. Attestations (an SBOM, a provenance) are not signatures.
pub fn signing_bundle(bundle: &[u8]) -> Option<Value> {
    let parsed: Value = serde_json::from_slice(bundle).ok()?;
    let (_, statement) = payload_statement(&parsed["dsseEnvelope"])?;
    (statement["predicateType"] == COSIGN_SIGN_PREDICATE).then_some(parsed)
}

/// The manifests a referrers index lists that may hold Sigstore bundles, at most `max`.
/// Registries differ in the artifact type they index a bundle under (cosign's, none, or the
/// empty type); the layer media type decides later.
pub fn bundle_referrers(index: &[u8], max: usize) -> Vec<String> {
    let index: Value = serde_json::from_slice(index).unwrap_or_default();
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["artifactType"]
                .as_str()
                .is_none_or(|t| t == EMPTY_MEDIA_TYPE || t.starts_with("application/vnd.dev.sigstore.bundle"))
        })
        .filter_map(|m| m["digest"].as_str().filter(|d| is_sha256_digest(d)))
        .take(max)
        .map(str::to_string)
        .collect()
}

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

/// cosign's annotation holding a classic keyless signature's Fulcio certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// cosign's annotation holding a classic signature (base64).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// cosign's annotation holding an RFC 3161 timestamp of the signature (of the whole envelope,
/// on a `.att` layer): `{"SignedRFC3161Timestamp": "<base64 DER TimeStampResp>"}`.
pub const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// cosign's annotation holding the Rekor bundle (signed entry timestamp and entry) of a classic
/// signature or attestation.
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// The timestamp (DER) in cosign's timestamp annotation, when it holds one.
pub fn annotation_timestamp(annotation: &str) -> Option<Vec<u8>> {
    let json: Value = serde_json::from_str(annotation).ok()?;
    BASE64.decode(json["SignedRFC3161Timestamp"].as_str()?).ok()
}

/// The issuer name (DER) of the first certificate in `pem`: which Fulcio CA issued it.
pub fn issuer_of_pem(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject as _;
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    issuer_of_der(&der)
}

/// The issuer name (DER) of a DER certificate.
pub fn issuer_of_der(der: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::{Decode as _, Encode as _};
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    certificate.tbs_certificate().issuer().to_der().ok()
}

/// The issuer name (DER) of a Sigstore bundle's signing certificate, if it has one.
pub fn bundle_certificate_issuer(bundle: &Value) -> Option<Vec<u8>> {
    issuer_of_der(&bundle_certificate(bundle)?)
}

/// A Sigstore bundle's signing certificate (DER), if it has one.
fn bundle_certificate(bundle: &Value) -> Option<Vec<u8>> {
    let material = &bundle["verificationMaterial"];
    let raw = material["certificate"]["rawBytes"]
        .as_str()
        .or_else(|| material["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str())?;
    BASE64.decode(raw).ok()
}

/// A Sigstore bundle's signing certificate as PEM, the form the crate's certificate checks read.
pub fn bundle_certificate_pem(bundle: &Value) -> Option<String> {
    let encoded = BASE64.encode(bundle_certificate(bundle)?);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .filter_map(|line| std::str::from_utf8(line).ok())
        .collect();
    Some(format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    ))
}

/// Whether a Sigstore bundle holds no transparency-log entry: its RFC 3161 timestamps, if any,
/// are then all that can say when it was signed.
pub fn bundle_is_unlogged(bundle: &Value) -> bool {
    bundle["verificationMaterial"]["tlogEntries"]
        .as_array()
        .is_none_or(Vec::is_empty)
}

/// The RFC 3161 timestamps (DER `TimeStampResp`s) a Sigstore bundle carries, at most `max`.
pub fn bundle_timestamps(bundle: &Value, max: usize) -> Vec<Vec<u8>> {
    bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|stamp| BASE64.decode(stamp["signedTimestamp"].as_str()?).ok())
        .take(max)
        .collect()
}

/// The log id (hex) and integrated time of a signature's transparency-log entry, if it has one.
pub fn log_entry(bundle: &sigstore::cosign::bundle_content::BundleContent) -> Option<(String, i64)> {
    use sigstore::cosign::bundle_content::BundleContent;
    match bundle {
        BundleContent::RekorBundle(bundle) => Some((bundle.payload.log_id.clone(), bundle.payload.integrated_time)),
        BundleContent::SigstoreBundle(entry) => {
            Some((hex::encode(&entry.log_id.as_ref()?.key_id), entry.integrated_time))
        }
    }
}

/// A layer descriptor of a manifest.
pub struct Layer {
    pub digest: String,
    pub annotations: BTreeMap<String, String>,
}

/// The layers of `media_type` in an image manifest, at most `max`; a layer whose digest is not
/// one is skipped.
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
                digest: layer["digest"].as_str().filter(|d| is_sha256_digest(d))?.to_string(),
                annotations,
            })
        })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn only_layers_of_the_asked_type_with_a_digest_are_read_and_at_most_max() {
        let manifest = json!({
            "layers": [
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": digest('a'), "annotations": {"dev.cosignproject.cosign/signature": "sig"}},
                {"mediaType": "application/octet-stream", "digest": digest('b')},
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": "sha256:../../other/manifests/latest"},
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": digest('c')},
                {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": digest('d')},
            ]
        });
        let layers = manifest_layers(manifest.to_string().as_bytes(), SIMPLE_SIGNING_MEDIA_TYPE, 2);
        let digests: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(digests, [digest('a'), digest('c')]);
        assert_eq!(layers[0].annotations["dev.cosignproject.cosign/signature"], "sig");
        assert!(manifest_layers(b"not json", SIMPLE_SIGNING_MEDIA_TYPE, 2).is_empty());
    }

    #[test]
    fn referrers_are_bundle_manifests_with_a_digest() {
        let index = json!({"manifests": [
            {"artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": digest('a')},
            {"artifactType": "application/spdx+json", "digest": digest('b')},
            {"digest": digest('c')},
            {"artifactType": EMPTY_MEDIA_TYPE, "digest": "sha256:C".to_string() + &"0".repeat(63)},
            {"artifactType": EMPTY_MEDIA_TYPE, "digest": digest('d')},
        ]});
        let index = index.to_string();
        assert_eq!(
            bundle_referrers(index.as_bytes(), 5),
            [digest('a'), digest('c'), digest('d')]
        );
        assert_eq!(bundle_referrers(index.as_bytes(), 1), [digest('a')]);
        assert!(bundle_referrers(b"{\"manifests\": 1}", 5).is_empty());
        assert!(bundle_referrers(b"\xff", 5).is_empty());
    }

    #[test]
    fn pae_matches_the_dsse_spec() {
        assert_eq!(
            pre_authentication_encoding("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn an_envelope_is_read_with_its_statement_and_signatures() {
        let statement =
            json!({"predicateType": "https://cyclonedx.org/bom", "subject": [{"digest": {"sha256": "ab"}}]});
        let payload = BASE64.encode(statement.to_string());
        let envelope = json!({"payloadType": "application/vnd.in-toto+json", "payload": payload,
            "signatures": [{"sig": BASE64.encode(b"one")}, {"keyid": "no sig"}, {"sig": "not base64!"}]});
        let read = Envelope::read(&envelope).unwrap();
        assert_eq!(read.predicate_type(), Some("https://cyclonedx.org/bom"));
        assert!(statement_is_about(&read.statement, "sha256:ab"));
        assert_eq!(read.signatures.len(), 2);
        assert_eq!(read.decoded_signatures(), [b"one".to_vec()]);
        assert!(read
            .signed_bytes()
            .starts_with(b"DSSEv1 28 application/vnd.in-toto+json "));
        for broken in [
            json!({"payload": payload}),
            json!({"payloadType": "t", "payload": "not base64!"}),
            json!({"payloadType": "t", "payload": BASE64.encode("not json")}),
        ] {
            assert_eq!(Envelope::read(&broken), None, "{broken}");
        }
    }

    #[test]
    fn a_bundle_is_read_for_its_certificate_log_entries_and_timestamps() {
        let der = rcgen::generate_simple_self_signed(vec!["signer.example".to_string()])
            .unwrap()
            .cert
            .der()
            .to_vec();
        let stamped = json!({"verificationMaterial": {
            "certificate": {"rawBytes": BASE64.encode(&der)},
            "tlogEntries": [],
            "timestampVerificationData": {"rfc3161Timestamps": [
                {"signedTimestamp": BASE64.encode(b"one")},
                {"signedTimestamp": "not base64!"},
                {"signedTimestamp": BASE64.encode(b"two")},
                {"signedTimestamp": BASE64.encode(b"three")}
            ]}
        }});
        assert!(bundle_is_unlogged(&stamped));
        assert_eq!(bundle_timestamps(&stamped, 2), [b"one".to_vec(), b"two".to_vec()]);
        let pem = bundle_certificate_pem(&stamped).unwrap();
        assert_eq!(issuer_of_pem(pem.as_bytes()), issuer_of_der(&der));
        assert!(pem.lines().all(|line| line.len() <= 64), "{pem}");

        let logged = json!({"verificationMaterial": {"tlogEntries": [{"logIndex": "1"}]}});
        assert!(!bundle_is_unlogged(&logged));
        assert!(bundle_timestamps(&logged, 4).is_empty());
        assert_eq!(bundle_certificate_pem(&logged), None);
    }

    #[test]
    fn a_signing_bundle_holds_cosigns_signing_statement() {
        let bundle = |predicate: &str| {
            let statement = json!({"predicateType": predicate});
            json!({"dsseEnvelope": {"payload": BASE64.encode(statement.to_string())}}).to_string()
        };
        assert!(signing_bundle(bundle(COSIGN_SIGN_PREDICATE).as_bytes()).is_some());
        assert!(signing_bundle(bundle("https://cyclonedx.org/bom").as_bytes()).is_none());
        assert!(signing_bundle(b"[]").is_none());
    }
}
