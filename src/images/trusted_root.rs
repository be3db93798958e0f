//! Reading a Sigstore `trusted_root.json` (Fulcio certificate chains, Rekor and CT log keys,
//! timestamp authorities, each with its `validFor` window), as an air-gapped cluster is given it:
//! a file, never fetched.

use std::collections::BTreeMap;

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use sigstore::trust::ManualTrustRoot;
use x509_cert::der::{Decode as _, Encode as _};

use super::timestamp::{self, TimestampAuthority, TimestampError};
use super::window::Window;

/// A trusted root: the keys and certificates the `sigstore` crate checks against, and when each
/// may vouch for a signature.
#[derive(Debug)]
pub struct TrustedRoot {
    pub root: ManualTrustRoot<'static>,
    pub validity: RootValidity,
}

/// When each piece of the root may vouch for a signature: a Rekor key for entries integrated in
/// its window, a Fulcio CA for certificates logged in its window (as cosign reads `validFor`).
#[derive(Debug, Clone, Default)]
pub struct RootValidity {
    /// Rekor log id (hex of the key's SHA-256, as bundles name it) -> window.
    tlogs: BTreeMap<String, Window>,
    /// Each CA's issuing certificate subject (DER) and its window, narrowed to the issuing
    /// certificate's own validity.
    certificate_authorities: Vec<(Vec<u8>, Window)>,
    ctlogs: Vec<Window>,
    timestamp_authorities: Vec<TimestampAuthority>,
}

/// One kind of trust material, for the metrics: how many are loaded and when the last of them
/// stops vouching (none: never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    pub kind: &'static str,
    pub count: usize,
    pub expires: Option<i64>,
}

impl RootValidity {
    /// Whether the Rekor key of `log_id` was valid at `integrated_time`.
    pub fn logged_in_window(&self, log_id: &str, integrated_time: i64) -> bool {
        self.tlogs
            .get(&log_id.to_ascii_lowercase())
            .is_some_and(|window| window.contains(integrated_time))
    }

    /// Whether a CA whose issuing certificate is `issuer` (the DER name a leaf names as its
    /// issuer) was valid at `time`.
    pub fn issued_in_window(&self, issuer: &[u8], time: i64) -> bool {
        self.certificate_authorities
            .iter()
            .any(|(subject, window)| subject == issuer && window.contains(time))
    }

    /// Whether a keyless signature logged at `integrated_time` by the log `log_id`, with a
    /// certificate issued by `issuer`, is vouched for: both the log key and the CA in their windows.
    pub fn vouches(&self, log_id: &str, integrated_time: i64, issuer: &[u8]) -> bool {
        self.logged_in_window(log_id, integrated_time) && self.issued_in_window(issuer, integrated_time)
    }

    /// When `signature` was made, by an RFC 3161 `token` of one of the root's timestamp
    /// authorities, signed inside its window.
    pub fn timestamped(&self, token: &[u8], signature: &[u8]) -> Result<i64, TimestampError> {
        timestamp::verify(token, signature, &self.timestamp_authorities)
    }

    /// [`RootValidity::timestamped`] by the first of `tokens` that holds (a Sigstore bundle may
    /// carry several); the first one's error when none does.
    pub fn timestamped_by_any(&self, tokens: &[Vec<u8>], signature: &[u8]) -> Result<i64, TimestampError> {
        let mut first_error = None;
        for token in tokens {
            match self.timestamped(token, signature) {
                Ok(time) => return Ok(time),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or(TimestampError::Absent))
    }

    /// Each kind of material in the root.
    pub fn material(&self) -> Vec<Material> {
        let kind = |kind, windows: Vec<Window>| Material {
            kind,
            count: windows.len(),
            // The material stops vouching when its last member does; one open end: never.
            expires: windows
                .iter()
                .map(|w| w.end)
                .collect::<Option<Vec<i64>>>()
                .and_then(|ends| ends.into_iter().max()),
        };
        vec![
            kind(
                "fulcio_ca",
                self.certificate_authorities.iter().map(|(_, w)| *w).collect(),
            ),
            kind("rekor_key", self.tlogs.values().copied().collect()),
            kind("ctlog_key", self.ctlogs.clone()),
            kind(
                "timestamp_authority",
                self.timestamp_authorities
                    .iter()
                    .map(TimestampAuthority::window)
                    .collect(),
            ),
        ]
    }
}

/// Parses the JSON form of the Sigstore `TrustedRoot` message.
pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, String> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| format!("trusted root is not JSON: {e}"))?;
    let decode = |value: &Value, what: &str| -> Result<Vec<u8>, String> {
        let text = value
            .as_str()
            .ok_or_else(|| format!("trusted root: {what} is missing"))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("trusted root: {what} is not base64: {e}"))
    };
    let list = |name: &str| root.get(name).and_then(Value::as_array).into_iter().flatten();
    let logs = |name: &str| -> Result<BTreeMap<String, (Vec<u8>, Window)>, String> {
        let mut keys = BTreeMap::new();
        for log in list(name) {
            let id = decode(&log["logId"]["keyId"], &format!("{name}[].logId.keyId"))?;
            let key = decode(&log["publicKey"]["rawBytes"], &format!("{name}[].publicKey.rawBytes"))?;
            let window = window(&log["publicKey"]["validFor"], &format!("{name}[].publicKey.validFor"))?;
            keys.insert(hex::encode(id), (key, window));
        }
        Ok(keys)
    };
    let mut fulcio_certs = Vec::new();
    let mut certificate_authorities = Vec::new();
    for authority in list("certificateAuthorities") {
        let mut window = window(&authority["validFor"], "certificateAuthorities[].validFor")?;
        let certificates = authority["certChain"]["certificates"].as_array().into_iter().flatten();
        for (position, certificate) in certificates.enumerate() {
            let der = decode(&certificate["rawBytes"], "certificate rawBytes")?;
            if position == 0 {
                // The first certificate issues the leaves: its subject is what they name.
                let parsed = x509_cert::Certificate::from_der(&der)
                    .map_err(|e| format!("trusted root: a CA certificate is not X.509: {e}"))?;
                let validity = parsed.tbs_certificate().validity();
                window = window.within(unix(validity.not_before), unix(validity.not_after));
                let subject = parsed
                    .tbs_certificate()
                    .subject()
                    .to_der()
                    .map_err(|e| format!("trusted root: a CA subject cannot be encoded: {e}"))?;
                certificate_authorities.push((subject, window));
            }
            fulcio_certs.push(CertificateDer::from(der));
        }
    }
    let tlogs = logs("tlogs")?;
    let ctlogs = logs("ctlogs")?;
    let mut timestamp_authorities = Vec::new();
    for authority in list("timestampAuthorities") {
        // The first certificate of the chain is the one that signs the timestamps.
        let signer = decode(
            &authority["certChain"]["certificates"][0]["rawBytes"],
            "timestampAuthorities[].certChain.certificates[0].rawBytes",
        )?;
        let window = window(&authority["validFor"], "timestampAuthorities[].validFor")?;
        timestamp_authorities.push(TimestampAuthority::new(&signer, window).map_err(|e| format!("trusted root: {e}"))?);
    }
    if fulcio_certs.is_empty() || tlogs.is_empty() {
        return Err("trusted root has no Fulcio certificate authority or no Rekor log".into());
    }
    Ok(TrustedRoot {
        validity: RootValidity {
            tlogs: tlogs.iter().map(|(id, (_, window))| (id.clone(), *window)).collect(),
            certificate_authorities,
            ctlogs: ctlogs.values().map(|(_, window)| *window).collect(),
            timestamp_authorities,
        },
        root: ManualTrustRoot {
            fulcio_certs,
            rekor_keys: tlogs.into_iter().map(|(id, (key, _))| (id, key)).collect(),
            ctfe_keys: ctlogs.into_iter().map(|(id, (key, _))| (id, key)).collect(),
        },
    })
}

fn unix(time: x509_cert::time::Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// A `validFor` object (`start`, optional `end`, RFC 3339); absent: unbounded.
fn window(value: &Value, what: &str) -> Result<Window, String> {
    let time = |field: &str| -> Result<Option<i64>, String> {
        match &value[field] {
            Value::Null => Ok(None),
            Value::String(text) => text
                .parse::<jiff::Timestamp>()
                .map(|t| Some(t.as_second()))
                .map_err(|e| format!("trusted root: {what}.{field} {text:?} is not an RFC 3339 time: {e}")),
            other => Err(format!("trusted root: {what}.{field} is not a time: {other}")),
        }
    };
    Ok(Window {
        start: time("start")?,
        end: time("end")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A self-signed CA certificate valid from `not_before` to `not_after` (RFC 3339 days).
    fn ca(name: &str, not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn subject(der: &[u8]) -> Vec<u8> {
        let parsed = x509_cert::Certificate::from_der(der).unwrap();
        parsed.tbs_certificate().subject().to_der().unwrap()
    }

    fn root() -> (Value, Vec<u8>, Vec<u8>) {
        let (old, new) = (
            ca("old", (2020, 1, 1), (2030, 1, 1)),
            ca("new", (2024, 1, 1), (2034, 1, 1)),
        );
        let tsa = ca("tsa", (2024, 1, 1), (2030, 1, 1));
        let json = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {"logId": {"keyId": b64(&[0xab, 0xcd])}, "publicKey": {"rawBytes": b64(b"rekor-old"),
                 "validFor": {"start": "2021-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}}},
                {"logId": {"keyId": b64(&[0xef])}, "publicKey": {"rawBytes": b64(b"rekor-new"),
                 "validFor": {"start": "2025-01-01T00:00:00Z"}}}
            ],
            "certificateAuthorities": [
                {"certChain": {"certificates": [{"rawBytes": b64(&old)}]},
                 "validFor": {"start": "2021-01-01T00:00:00Z", "end": "2025-06-01T00:00:00Z"}},
                {"certChain": {"certificates": [{"rawBytes": b64(&new)}]},
                 "validFor": {"start": "2025-01-01T00:00:00Z"}}
            ],
            "ctlogs": [{"logId": {"keyId": b64(&[1])}, "publicKey": {"rawBytes": b64(b"ct-der")}}],
            "timestampAuthorities": [{"certChain": {"certificates": [{"rawBytes": b64(&tsa)}]},
                "validFor": {"start": "2024-01-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"}}]
        });
        (json, old, new)
    }

    #[test]
    fn reads_keys_by_hex_log_id() {
        let (json, ..) = root();
        let root = parse(json.to_string().as_bytes()).unwrap().root;
        assert_eq!(root.rekor_keys.get("abcd").map(Vec::as_slice), Some(&b"rekor-old"[..]));
        assert_eq!(root.ctfe_keys.get("01").map(Vec::as_slice), Some(&b"ct-der"[..]));
        assert_eq!(root.fulcio_certs.len(), 2);
    }

    #[test]
    fn a_log_key_vouches_only_inside_its_window() {
        let (json, ..) = root();
        let validity = parse(json.to_string().as_bytes()).unwrap().validity;
        assert!(validity.logged_in_window("abcd", at("2024-06-01T00:00:00Z")));
        assert!(
            validity.logged_in_window("ABCD", at("2024-06-01T00:00:00Z")),
            "log ids are hex either case"
        );
        assert!(
            !validity.logged_in_window("abcd", at("2025-01-01T00:00:01Z")),
            "after its end"
        );
        assert!(
            !validity.logged_in_window("abcd", at("2020-12-31T23:59:59Z")),
            "before its start"
        );
        assert!(
            validity.logged_in_window("ef", at("2040-01-01T00:00:00Z")),
            "an open end"
        );
        assert!(
            !validity.logged_in_window("0102", at("2024-06-01T00:00:00Z")),
            "an unknown log"
        );
    }

    #[test]
    fn a_certificate_authority_vouches_only_for_what_it_issued_inside_its_window() {
        let (json, old, new) = root();
        let validity = parse(json.to_string().as_bytes()).unwrap().validity;
        let (old, new) = (subject(&old), subject(&new));
        assert!(validity.issued_in_window(&old, at("2025-05-01T00:00:00Z")));
        assert!(
            !validity.issued_in_window(&old, at("2025-07-01T00:00:00Z")),
            "after its validFor"
        );
        assert!(
            !validity.issued_in_window(&new, at("2024-06-01T00:00:00Z")),
            "before its validFor"
        );
        assert!(validity.issued_in_window(&new, at("2033-01-01T00:00:00Z")));
        assert!(
            !validity.issued_in_window(&new, at("2034-06-01T00:00:00Z")),
            "an open validFor ends with the certificate"
        );
    }

    #[test]
    fn the_material_of_each_kind_expires_with_its_last_member() {
        let (json, ..) = root();
        let material = parse(json.to_string().as_bytes()).unwrap().validity.material();
        let of = |kind: &str| material.iter().find(|m| m.kind == kind).unwrap().clone();
        assert_eq!(of("fulcio_ca").count, 2);
        assert_eq!(of("fulcio_ca").expires, Some(at("2034-01-01T00:00:00Z")));
        assert_eq!(of("rekor_key").expires, None, "one key has an open end");
        assert_eq!(of("ctlog_key").count, 1);
        assert_eq!(of("timestamp_authority").expires, Some(at("2027-03-01T00:00:00Z")));
    }

    #[test]
    fn an_unreadable_window_is_refused() {
        let (mut json, ..) = root();
        json["tlogs"][0]["publicKey"]["validFor"]["end"] = "next tuesday".into();
        let error = parse(json.to_string().as_bytes()).unwrap_err();
        assert!(error.contains("tlogs[].publicKey.validFor.end"), "{error}");
    }

    #[test]
    fn the_first_of_several_timestamps_that_holds_gives_the_signing_time() {
        let tsa = include_bytes!("../../tests/fixtures/timestamps/tsa.der");
        let response = include_bytes!("../../tests/fixtures/timestamps/response.der").to_vec();
        let signed = include_bytes!("../../tests/fixtures/timestamps/signed.bin");
        let (mut json, ..) = root();
        json["timestampAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] = b64(tsa).into();
        let validity = parse(json.to_string().as_bytes()).unwrap().validity;
        let garbage = b"not a timestamp".to_vec();
        assert_eq!(
            validity.timestamped_by_any(&[garbage.clone(), response.clone()], signed),
            Ok(at("2026-12-07T10:44:54Z"))
        );
        assert!(matches!(
            validity.timestamped_by_any(&[garbage, response], b"other bytes"),
            Err(TimestampError::Malformed(_))
        ));
        assert_eq!(validity.timestamped_by_any(&[], signed), Err(TimestampError::Absent));
    }

    #[test]
    fn an_empty_root_is_refused() {
        assert!(parse(b"{}").is_err());
        assert!(parse(b"not json").is_err());
    }
}
