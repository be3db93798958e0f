//! A docker config (`config.json`, a `kubernetes.io/dockerconfigjson` pull secret, a legacy
//! `.dockercfg`). Beyond "does not crash": neither the credentials as logged (Debug) nor an
//! error message ever holds a password.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis::images::credentials::Credentials;
use serde_json::Value;

fuzz_target!(|text: &[u8]| {
    let shown = match Credentials::parse(text, "fuzz") {
        Ok(credentials) => format!("{credentials:?}"),
        Err(error) => error.to_string(),
    };
    // Hosts are shown lowercased: compare without case.
    let shown = shown.to_lowercase();
    for password in passwords(text) {
        let password = password.to_lowercase();
        // A short password, or one that is part of a username or host (which are shown), can be
        // in the text by chance.
        if password.len() >= 8 && !usernames_or_hosts_contain(text, &password) {
            assert!(!shown.contains(&password), "a password is shown: {shown}");
        }
    }
});

/// Every password the text could hold: `password` fields and what follows ':' in an `auth`.
fn passwords(text: &[u8]) -> Vec<String> {
    let Ok(config) = serde_json::from_slice::<Value>(text) else {
        return Vec::new();
    };
    let auths = config.get("auths").unwrap_or(&config);
    let mut found = Vec::new();
    for entry in auths.as_object().into_iter().flat_map(|m| m.values()) {
        if let Some(password) = entry["password"].as_str() {
            found.push(password.to_string());
        }
        let decoded = entry["auth"]
            .as_str()
            .and_then(|auth| base64::engine::general_purpose::STANDARD.decode(auth).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some((_, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            found.push(password.to_string());
        }
    }
    found
}

/// Whether `password` (lowercase) is also part of something that may be shown (a username or a
/// host key), without case.
fn usernames_or_hosts_contain(text: &[u8], password: &str) -> bool {
    let Ok(config) = serde_json::from_slice::<Value>(text) else {
        return false;
    };
    let auths = config.get("auths").unwrap_or(&config);
    auths.as_object().into_iter().flatten().any(|(host, entry)| {
        let decoded_user = entry["auth"]
            .as_str()
            .and_then(|auth| base64::engine::general_purpose::STANDARD.decode(auth).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|d| d.split_once(':').map(|(user, _)| user.to_string()))
            .unwrap_or_default();
        let username = entry["username"].as_str().unwrap_or_default();
        [host.as_str(), username, decoded_user.as_str()]
            .iter()
            .any(|shown| shown.to_lowercase().contains(password))
    })
}
