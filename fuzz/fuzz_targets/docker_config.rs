//! A docker config (`config.json`, a `kubernetes.io/dockerconfigjson` pull secret, a legacy
//! `.dockercfg`). Beyond "does not crash": neither the credentials as logged (Debug) nor an
//! error message ever holds a password.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis::images::credentials::Credentials;
use serde_json::Value;

fuzz_target!(|text: &[u8]| {
    let shown = show(text);
    let entries = entries(text);
    // What the same config shows with every password blanked: a password found there too is in
    // the text by chance (part of a host, a username, or the words around them), not shown.
    let blank = blanked(text).map(|blank| show(&blank)).unwrap_or_default();
    for (_, _, password) in &entries {
        if password.len() >= 8 && !blank.contains(password.as_str()) {
            assert!(!shown.contains(password.as_str()), "a password is shown: {shown}");
        }
    }
});

/// The credentials as logged (Debug), or the error, lowercased: hosts are shown lowercased.
fn show(text: &[u8]) -> String {
    match Credentials::parse(text, "fuzz") {
        Ok(credentials) => format!("{credentials:?}"),
        Err(error) => error.to_string(),
    }
    .to_lowercase()
}

/// The config with every `password` emptied and every `auth` holding `user:` only.
fn blanked(text: &[u8]) -> Option<Vec<u8>> {
    let mut config = serde_json::from_slice::<Value>(text).ok()?;
    let auths = match config.get("auths").is_some() {
        true => config.get_mut("auths")?,
        false => &mut config,
    };
    for entry in auths.as_object_mut().into_iter().flat_map(|auths| auths.values_mut()) {
        let Some(entry) = entry.as_object_mut() else { continue };
        if entry.contains_key("password") {
            entry.insert("password".into(), Value::from(""));
        }
        let user = entry
            .get("auth")
            .and_then(Value::as_str)
            .and_then(|auth| base64::engine::general_purpose::STANDARD.decode(auth).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|decoded| Some(decoded.split_once(':')?.0.to_string()));
        if let Some(user) = user {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:"));
            entry.insert("auth".into(), Value::from(auth));
        }
    }
    serde_json::to_vec(&config).ok()
}

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
