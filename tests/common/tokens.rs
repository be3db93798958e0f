//! A token service for a registry's token auth (the distribution spec's `auth: token`), to count
//! the pull tokens a client asks for.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

/// `bytes` in unpadded base64url, as JWTs write every part.
fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ECDSA signature's DER (`SEQUENCE { INTEGER r, INTEGER s }`) as JWS writes it: r and s,
/// 32 bytes each.
fn raw_signature(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 2; // SEQUENCE, length (under 128 for P-256)
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "an INTEGER");
        let length = der[at + 1] as usize;
        let integer = &der[at + 2..at + 2 + length];
        let integer = &integer[integer.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0u8, 32 - integer.len()));
        out.extend(integer);
        at += 2 + length;
    }
    out
}

/// A token service for the registry's `auth: token` (the distribution spec's token auth): it
/// grants what each request asks (`scope=repository:NAME:ACTIONS`), in ES256 JWTs whose `x5c`
/// is the certificate the registry trusts, for 300 s. Returns its address and the number of
/// tokens it issued.
pub fn token_service(dir: &Path) -> (String, Arc<Mutex<usize>>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["token-issuer".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("token-root.pem"), certificate.pem()).unwrap();
    let x5c = base64::engine::general_purpose::STANDARD.encode(certificate.der());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let issued = Arc::new(Mutex::new(0));
    let count = issued.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            while reader.read_line(&mut head).is_ok_and(|n| n > 2) && !head.ends_with("\r\n\r\n") {}
            let target = head.split_whitespace().nth(1).unwrap_or_default();
            let url = reqwest::Url::parse(&format!("http://token{target}")).unwrap();
            let access: Vec<serde_json::Value> = url
                .query_pairs()
                .filter(|(key, _)| key == "scope")
                .filter_map(|(_, scope)| {
                    let mut parts = scope.splitn(3, ':');
                    let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                })
                .collect();
            let now = jiff::Timestamp::now().as_second();
            let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
            let claims = json!({"iss": "portcullis-test-issuer", "sub": "ci", "aud": "portcullis-test",
                "iat": now, "nbf": now - 10, "exp": now + 300, "jti": format!("t-{now}-{}", access.len()), "access": access});
            let signed = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let signature = rcgen::SigningKey::sign(&key, signed.as_bytes()).unwrap();
            let token = format!("{signed}.{}", b64url(&raw_signature(&signature)));
            let body = json!({"token": token, "expires_in": 300}).to_string();
            *count.lock().unwrap() += 1;
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, issued)
}

/// The registry config's `auth:` line for the token service at `tokens` (its root certificate
/// in `dir`, as [`token_service`] writes it).
pub fn token_auth(dir: &Path, tokens: &str) -> String {
    format!(
        "auth: {{token: {{realm: \"http://{tokens}/token\", service: portcullis-test, issuer: portcullis-test-issuer, rootcertbundle: {}}}}}\n",
        dir.join("token-root.pem").display()
    )
}
