//! Registry credentials from a docker `config.json` (`auths`) or a legacy `.dockercfg`, each
//! bound to the one registry host it was written for. They are never logged and never sent to
//! another host.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

#[derive(Clone, PartialEq, Eq)]
pub struct Basic {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Basic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Basic({}, <redacted>)", self.username)
    }
}

/// Why a docker config could not be read; the message never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not JSON: {source}")]
    NotJson {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin}: the auth of {key:?} is not {expected}")]
    BadAuth {
        origin: String,
        key: String,
        expected: &'static str,
    },
}

/// Host -> credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials(BTreeMap<String, Basic>);

impl Credentials {
    /// Reads the `auths` of a docker config file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read(path).map_err(|source| CredentialsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Credentials::parse(&text, &path.display().to_string())
    }

    /// Parses a docker config (`{"auths": {...}}`, as in a `kubernetes.io/dockerconfigjson`
    /// Secret) or a legacy `.dockercfg` (the same map without `auths`); `origin` names it in
    /// errors.
    pub fn parse(text: &[u8], origin: &str) -> Result<Credentials, CredentialsError> {
        let config: Value = serde_json::from_slice(text).map_err(|source| CredentialsError::NotJson {
            origin: origin.to_string(),
            source,
        })?;
        let bad_auth = |key: &str, expected: &'static str| CredentialsError::BadAuth {
            origin: origin.to_string(),
            key: key.to_string(),
            expected,
        };
        let auths = config.get("auths").unwrap_or(&config);
        let mut credentials = BTreeMap::new();
        for (key, entry) in auths.as_object().into_iter().flatten() {
            let basic = match (
                entry["username"].as_str(),
                entry["password"].as_str(),
                entry["auth"].as_str(),
            ) {
                (Some(username), Some(password), _) => Basic {
                    username: username.into(),
                    password: password.into(),
                },
                (_, _, Some(auth)) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth)
                        .ok()
                        .and_then(|bytes| String::from_utf8(bytes).ok())
                        .ok_or_else(|| bad_auth(key, "base64 of user:password"))?;
                    let (username, password) = decoded.split_once(':').ok_or_else(|| bad_auth(key, "user:password"))?;
                    Basic {
                        username: username.into(),
                        password: password.into(),
                    }
                }
                _ => continue,
            };
            credentials.insert(host_of(key), basic);
        }
        Ok(Credentials(credentials))
    }

    /// The credentials written for exactly this registry host.
    pub fn for_registry(&self, registry: &str) -> Option<&Basic> {
        self.0.get(registry)
    }

    /// These credentials, then `fallback`'s for hosts these do not name.
    pub fn or(&self, fallback: &Credentials) -> Credentials {
        let mut merged = fallback.0.clone();
        merged.extend(self.0.clone());
        Credentials(merged)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// docker config keys may be URLs (`https://index.docker.io/v1/`) or bare hosts.
fn host_of(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auth_and_username_password_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret");
        std::fs::write(
            &path,
            serde_json::json!({"auths": {
                "https://index.docker.io/v1/": {"auth": auth},
                "registry.example.com": {"username": "bot", "password": "pw"},
                "ghcr.io": {"identitytoken": "ignored"}
            }})
            .to_string(),
        )
        .unwrap();
        let credentials = Credentials::load(&path).unwrap();
        assert_eq!(credentials.for_registry("docker.io").unwrap().username, "ci");
        assert_eq!(credentials.for_registry("registry.example.com").unwrap().password, "pw");
        assert!(credentials.for_registry("ghcr.io").is_none());
        assert!(credentials.for_registry("registry.example.com.evil.io").is_none());
        assert!(!format!("{credentials:?}").contains("s3cret"), "never printed");
    }

    #[test]
    fn legacy_dockercfg_and_precedence() {
        let auth = |user: &str| base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
        let pod = Credentials::parse(
            serde_json::json!({"registry.example.com": {"auth": auth("pod")}})
                .to_string()
                .as_bytes(),
            "secret team-a/pull",
        )
        .unwrap();
        let mounted = Credentials::parse(
            serde_json::json!({"auths": {"registry.example.com": {"auth": auth("node")}, "ghcr.io": {"auth": auth("node")}}})
                .to_string()
                .as_bytes(),
            "config.json",
        )
        .unwrap();
        let merged = pod.or(&mounted);
        assert_eq!(merged.for_registry("registry.example.com").unwrap().username, "pod");
        assert_eq!(merged.for_registry("ghcr.io").unwrap().username, "node");
        let error = Credentials::parse(br#"{"auths": {"r.io": {"auth": "???"}}}"#, "secret team-a/bad").unwrap_err();
        assert!(error.to_string().starts_with("secret team-a/bad:"), "{error}");
    }

    #[test]
    fn unreadable_files_are_errors() {
        assert!(Credentials::load(Path::new("/nonexistent/config.json")).is_err());
    }
}
