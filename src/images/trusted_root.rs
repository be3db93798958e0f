//! Reading a Sigstore `trusted_root.json` (Fulcio certificate chains, Rekor and CT log keys), as
//! an air-gapped cluster is given it: a file, never fetched.

use std::collections::BTreeMap;

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use sigstore::trust::ManualTrustRoot;

/// Parses the JSON form of the Sigstore `TrustedRoot` message.
pub fn parse(bytes: &[u8]) -> Result<ManualTrustRoot<'static>, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| format!("trusted root is not JSON: {e}"))?;
    let decode = |value: &Value, what: &str| -> Result<Vec<u8>, String> {
        let text = value
            .as_str()
            .ok_or_else(|| format!("trusted root: {what} is missing"))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("trusted root: {what} is not base64: {e}"))
    };
    let keys = |list: &str| -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut keys = BTreeMap::new();
        for log in root.get(list).and_then(Value::as_array).into_iter().flatten() {
            let id = decode(&log["logId"]["keyId"], &format!("{list}[].logId.keyId"))?;
            let key = decode(&log["publicKey"]["rawBytes"], &format!("{list}[].publicKey.rawBytes"))?;
            keys.insert(hex::encode(id), key);
        }
        Ok(keys)
    };
    let mut fulcio_certs = Vec::new();
    for authority in root
        .get("certificateAuthorities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for certificate in authority["certChain"]["certificates"].as_array().into_iter().flatten() {
            fulcio_certs.push(CertificateDer::from(decode(
                &certificate["rawBytes"],
                "certificate rawBytes",
            )?));
        }
    }
    let rekor_keys = keys("tlogs")?;
    if fulcio_certs.is_empty() || rekor_keys.is_empty() {
        return Err("trusted root has no Fulcio certificate authority or no Rekor log".into());
    }
    Ok(ManualTrustRoot {
        fulcio_certs,
        rekor_keys,
        ctfe_keys: keys("ctlogs")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_by_hex_log_id() {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let json = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{"logId": {"keyId": b64(&[0xab, 0xcd])}, "publicKey": {"rawBytes": b64(b"rekor-der")}}],
            "certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": b64(b"ca-der")}]}}],
            "ctlogs": [{"logId": {"keyId": b64(&[1])}, "publicKey": {"rawBytes": b64(b"ct-der")}}]
        });
        let root = parse(json.to_string().as_bytes()).unwrap();
        assert_eq!(root.rekor_keys.get("abcd").map(Vec::as_slice), Some(&b"rekor-der"[..]));
        assert_eq!(root.ctfe_keys.get("01").map(Vec::as_slice), Some(&b"ct-der"[..]));
        assert_eq!(root.fulcio_certs.len(), 1);
    }

    #[test]
    fn an_empty_root_is_refused() {
        assert!(parse(b"{}").is_err());
        assert!(parse(b"not json").is_err());
    }
}
