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
    let entries = entries(text);
    for (_, _, password) in &entries {
        // A short password, or one that is part of a username or host (which may be shown, in
        // Debug's escaped form: a tab becomes `\t`, so `pass\` is in a host `pass<TAB>`), can
        // be in the text by chance.
        let by_chance = entries.iter().any(|(host, username, _)| {
            [host, username].into_iter().any(|shown| {
                shown.contains(password.as_str()) || shown.escape_debug().to_string().contains(password.as_str())
            })
        });
        if password.len() >= 8 && !by_chance {
            assert!(!shown.contains(password.as_str()), "a password is shown: {shown}");
        }
    }
});

/// Every entry the text could hold, lowercased: its host key, and each username and password
/// written in `username`/`password` or in an `auth` (`user:password` in base64).
fn entries(text: &[u8]) -> Vec<(String, String, String)> {
    let Ok(config) = serde_json::from_slice::<Value>(text) else {
        return Vec::new();
    };
    let auths = config.get("auths").unwrap_or(&config);
    let mut found = Vec::new();
    for (host, entry) in auths.as_object().into_iter().flatten() {
        let host = host.to_lowercase();
        let text = |field: &str| entry[field].as_str().unwrap_or_default().to_lowercase();
        found.push((host.clone(), text("username"), text("password")));
        let decoded = entry["auth"]
            .as_str()
            .and_then(|auth| base64::engine::general_purpose::STANDARD.decode(auth).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            found.push((host, username.to_lowercase(), password.to_lowercase()));
        }
    }
    found
}
