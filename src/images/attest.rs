//! Cosign attestations (`sha256-<digest>.att`): DSSE envelopes of in-toto statements. An
//! attestation counts only when a trusted key of the entry signed it and its statement is about
//! this very digest; its predicate (bounded in size) then goes into the facts for Rego.

use base64::Engine as _;
use serde_json::Value;
use sigstore::crypto::Signature;

use super::facts::Attestation;
use super::reference::ImageReference;
use super::registry::{Lookup, Registry, RegistryError};
use super::trust::{AuthorityKind, TrustEntry};

const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;
/// Largest predicate handed to the policies (an SBOM can be big; Rego needs its summary).
pub const MAX_PREDICATE_BYTES: usize = 256 * 1024;

/// The attestations of `digest` (of the predicate types the entry asks for, if it names any),
/// verified or not.
/// A registry failure is an error, never "no attestation".
pub async fn attestations(
    registry: &Registry,
    image: &ImageReference,
    digest: &str,
    entry: &TrustEntry,
    max: usize,
) -> Result<Vec<Attestation>, RegistryError> {
    let tag = format!("{}.att", digest.replace(':', "-"));
    let Lookup::Found { body, .. } = registry.manifest(image, &tag).await? else {
        return Ok(Vec::new());
    };
    let manifest: Value = serde_json::from_slice(&body).unwrap_or_default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let mut found = Vec::new();
    for layer in layers.iter().filter(|l| l["mediaType"] == DSSE_MEDIA_TYPE).take(max) {
        let Some(layer_digest) = layer["digest"].as_str() else {
            continue;
        };
        let envelope = registry.blob(image, layer_digest, MAX_ENVELOPE_BYTES).await?;
        found.extend(check_envelope(&envelope, digest, entry));
    }
    Ok(found)
}

/// Verifies one DSSE envelope. None when it is not an attestation of a type the entry asks about.
pub fn check_envelope(envelope: &[u8], digest: &str, entry: &TrustEntry) -> Option<Attestation> {
    let envelope: Value = serde_json::from_slice(envelope).ok()?;
    let payload_type = envelope["payloadType"].as_str()?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str()?)
        .ok()?;
    let statement: Value = serde_json::from_slice(&payload).ok()?;
    let predicate_type = statement["predicateType"].as_str()?.to_string();
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
    let hex = digest.strip_prefix("sha256:")?;
    let about_this_image = statement["subject"]
        .as_array()
        .is_some_and(|subjects| subjects.iter().any(|s| s["digest"]["sha256"].as_str() == Some(hex)));
    if !about_this_image {
        return Some(unverified);
    }
    let pae = pre_authentication_encoding(payload_type, &payload);
    let signatures: Vec<Vec<u8>> = envelope["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s["sig"].as_str()?)
                .ok()
        })
        .collect();
    let signer = entry.authorities.iter().find(|authority| match &authority.kind {
        AuthorityKind::Key { key, .. } => signatures
            .iter()
            .any(|sig| key.verify_signature(Signature::Raw(sig), &pae).is_ok()),
        // Keyless attestations need the Fulcio chain and Rekor checks done for signatures;
        // not supported yet, so they never count as verified.
        AuthorityKind::Keyless { .. } => false,
    });
    let Some(signer) = signer else {
        return Some(unverified);
    };
    let predicate = statement.get("predicate").cloned().unwrap_or(Value::Null);
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

/// DSSE's PAE: what the signature actually covers.
fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut pae = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    pae.extend_from_slice(payload);
    pae
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec() {
        assert_eq!(
            pre_authentication_encoding("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }
}
