//! The little of the OCI distribution API that verification needs (manifests, blobs and
//! referrers), with the safety rules that apply to every registry call portcullis makes:
//! - nothing outside the allow-list is contacted, checked before any I/O;
//! - plain HTTP only for registries listed as insecure;
//! - every request has a timeout and every body a size bound;
//! - a redirect to a loopback, link-local or metadata address is refused unless that host is
//!   itself allowed, and credentials never follow a redirect to another host;
//! - a name that resolves only to such addresses is not connected to (`dns`);
//! - outcomes are kept apart: "not there" (404) is not "registry down";
//! - a pull token is asked for once per registry, repository and credential, and reused
//!   until it expires (never for another credential: the key holds its fingerprint).

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::credentials::{Basic, Credentials};
use super::dns::{internal_ip, names_loopback, Guarded};
use super::pattern::AllowList;
use super::reference::ImageReference;

/// Manifest media types we ask for (image manifests and indexes, OCI and Docker).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// Largest manifest read.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// A token's life when its service does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);
/// Retries of one request that a registry asked to come back to (429, 503 with Retry-After).
const MAX_RETRIES: u32 = 2;
/// The longest `Retry-After` waited for: an admission has seconds, not minutes.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// A token is not used in the last part of its life: a request sent just before it expires
/// would come back 401.
const TOKEN_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {0} is not on the allow-list; it was not contacted")]
    NotAllowed(String),
    #[error("registry {registry} answered {status} for {what}")]
    Status {
        registry: String,
        what: String,
        status: u16,
    },
    #[error("registry {registry} could not be reached: {reason}")]
    Unreachable { registry: String, reason: String },
    /// The request ran past `images.verification.registryTimeout`.
    #[error("registry {registry} could not be reached: timed out")]
    Timeout { registry: String },
    #[error("registry {registry} sent more data than allowed")]
    TooLarge { registry: String },
    #[error("registry {registry}'s token service answered without a token")]
    NoToken { registry: String },
    #[error("registry {registry} sent content that does not match its digest: {what}")]
    Mismatch { registry: String, what: String },
    /// The HTTP client itself could not be built (a startup error).
    #[error("cannot build the registry client: {0}")]
    Client(String),
}

/// What a manifest lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found { digest: String, body: Vec<u8> },
    NotFound,
}

enum Authorization {
    Basic(Basic),
    Bearer(Token),
}

/// A pull token and how long it may be used (the cache drops it then).
#[derive(Clone)]
struct Token {
    value: String,
    life: Duration,
}

/// Each cached token lives as long as its service said.
struct TokenLife;

impl moka::Expiry<TokenKey, Token> for TokenLife {
    fn expire_after_create(&self, _: &TokenKey, token: &Token, _: std::time::Instant) -> Option<Duration> {
        Some(token.life)
    }
}

/// Whose token it is: the registry, the repository, and the credential it was asked with (a
/// fingerprint of it, or none for an anonymous token).
type TokenKey = (String, String, Option<String>);

/// A registry client bound to the allow-list.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    /// Host -> a client that also trusts that host's private CA.
    with_ca: std::collections::BTreeMap<String, reqwest::Client>,
    allow: AllowList,
    insecure: Vec<String>,
    credentials: Credentials,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// Shared by this client's copies with other credentials (their keys differ).
    tokens: moka::future::Cache<TokenKey, Token>,
}

impl Registry {
    /// A client for the allow-list; `cas` are the private CAs trusted for one host each.
    pub fn new(
        allow: AllowList,
        insecure: Vec<String>,
        credentials: Credentials,
        timeout: Duration,
        cas: &std::collections::BTreeMap<String, Vec<u8>>,
        metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    ) -> Result<Registry, RegistryError> {
        let http = http_client(&allow, timeout, None)?;
        let with_ca = cas
            .iter()
            .map(|(host, pem)| Ok((host.clone(), http_client(&allow, timeout, Some(pem))?)))
            .collect::<Result<_, RegistryError>>()?;
        Ok(Registry {
            http,
            with_ca,
            allow,
            insecure,
            credentials,
            metrics,
            tokens: moka::future::Cache::builder()
                .max_capacity(10_000)
                .expire_after(TokenLife)
                .build(),
        })
    }

    /// The client for `url`: the one trusting its host's private CA, if it has one.
    fn client(&self, url: &reqwest::Url) -> &reqwest::Client {
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        self.with_ca.get(&host.to_ascii_lowercase()).unwrap_or(&self.http)
    }

    /// This client with `first` tried before its own credentials (a workload's pull secrets).
    pub fn with_credentials(&self, first: &Credentials) -> Registry {
        Registry {
            credentials: first.or(&self.credentials),
            ..self.clone()
        }
    }

    pub fn allows(&self, image: &ImageReference) -> bool {
        self.allow.allows(&image.registry, &image.repository)
    }

    fn base(&self, registry: &str) -> String {
        let scheme = if self.insecure.iter().any(|h| h == registry) {
            "http"
        } else {
            "https"
        };
        // Docker Hub's API host differs from its name.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{scheme}://{host}")
    }

    /// Looks up `repository:reference` (a tag or a digest): its digest and content, or not found.
    pub async fn manifest(&self, image: &ImageReference, reference: &str) -> Result<Lookup, RegistryError> {
        let path = format!("manifests/{reference}");
        let Some((body, claimed)) = self.fetch(image, &path, MAX_MANIFEST_BYTES).await? else {
            return Ok(Lookup::NotFound);
        };
        // The digest is what we computed over the bytes, never only what a header claims.
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if let Some(claimed) = claimed.filter(|d| d.starts_with("sha256:") && *d != digest) {
            return Err(RegistryError::Mismatch {
                registry: image.registry.clone(),
                what: format!("manifest {reference} (the registry says {claimed}, the content is {digest})"),
            });
        }
        Ok(Lookup::Found { digest, body })
    }

    /// A blob of the repository, at most `limit` bytes, checked against its digest.
    pub async fn blob(&self, image: &ImageReference, digest: &str, limit: usize) -> Result<Vec<u8>, RegistryError> {
        let missing = || RegistryError::Status {
            registry: image.registry.clone(),
            what: format!("blob {digest}"),
            status: 404,
        };
        let (body, _) = self
            .fetch(image, &format!("blobs/{digest}"), limit)
            .await?
            .ok_or_else(missing)?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if actual != digest {
            return Err(RegistryError::Mismatch {
                registry: image.registry.clone(),
                what: format!("blob {digest} (content is {actual})"),
            });
        }
        Ok(body)
    }

    /// The OCI index of the artifacts that refer to `digest` (signatures, attestations), through
    /// the referrers API or, where a registry lacks it, the referrers tag `sha256-<hex>`. None
    /// when there are none.
    pub async fn referrers(&self, image: &ImageReference, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        match self
            .fetch(image, &format!("referrers/{digest}"), MAX_MANIFEST_BYTES)
            .await
        {
            Ok(Some((index, _))) => return Ok(Some(index)),
            // Registries without the API answer 404 (or 400/405/501): fall back to the tag.
            Ok(None)
            | Err(RegistryError::Status {
                status: 400 | 405 | 501,
                ..
            }) => {}
            Err(error) => return Err(error),
        }
        match self.manifest(image, &digest.replace(':', "-")).await? {
            Lookup::Found { body, .. } => Ok(Some(body)),
            Lookup::NotFound => Ok(None),
        }
    }

    /// GETs `/v2/<repository>/<path>`: the body and the digest header, or None for 404.
    async fn fetch(
        &self,
        image: &ImageReference,
        path: &str,
        limit: usize,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, RegistryError> {
        if !self.allows(image) {
            return Err(RegistryError::NotAllowed(image.registry.clone()));
        }
        let url = format!("{}/v2/{}/{path}", self.base(&image.registry), image.repository);
        let parsed = reqwest::Url::parse(&url).map_err(|e| RegistryError::Unreachable {
            registry: image.registry.clone(),
            reason: e.to_string(),
        })?;
        let http = self.client(&parsed);
        let request = || {
            http.get(parsed.clone())
                .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        };
        let key = self.token_key(image);
        let cached = self.tokens.get(&key).await;
        let mut response = match &cached {
            Some(token) => self.send(&image.registry, request().bearer_auth(&token.value)).await?,
            None => self.send(&image.registry, request()).await?,
        };
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            if cached.is_some() {
                self.tokens.invalidate(&key).await;
            }
            match self.answer_challenge(image, &response, key).await? {
                Some(Authorization::Basic(basic)) => {
                    response = self
                        .send(
                            &image.registry,
                            request().basic_auth(&basic.username, Some(&basic.password)),
                        )
                        .await?;
                }
                Some(Authorization::Bearer(token)) => {
                    response = self.send(&image.registry, request().bearer_auth(&token.value)).await?;
                }
                None => {}
            }
        }
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(RegistryError::Status {
                registry: image.registry.clone(),
                what: path.to_string(),
                status: status.as_u16(),
            });
        }
        let claimed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Some((read_bounded(response, limit, &image.registry).await?, claimed)))
    }

    /// Answers a 401: Basic with this registry's own credentials; Bearer through the token
    /// service the challenge names (credentials go there only when it is the registry's own
    /// host; elsewhere the token is requested anonymously).
    async fn answer_challenge(
        &self,
        image: &ImageReference,
        challenge: &reqwest::Response,
        key: TokenKey,
    ) -> Result<Option<Authorization>, RegistryError> {
        let header = challenge
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let credentials = self.credentials.for_registry(&image.registry);
        if header.starts_with("Basic") {
            return Ok(credentials.cloned().map(Authorization::Basic));
        }
        let Some(params) = header.strip_prefix("Bearer ") else {
            return Ok(None);
        };
        let field = |name: &str| {
            params.split(',').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| value.trim_matches('"').to_string())
            })
        };
        let Some(realm) = field("realm").and_then(|r| reqwest::Url::parse(&r).ok()) else {
            return Ok(None);
        };
        if realm.scheme() != "https" && !self.insecure.contains(&image.registry) {
            return Ok(None);
        }
        let realm_host = match realm.port() {
            Some(port) => format!("{}:{port}", realm.host_str().unwrap_or_default()),
            None => realm.host_str().unwrap_or_default().to_string(),
        };
        // The token service is contacted only if it is the registry's own (its host, or Docker
        // Hub's auth.docker.io for docker.io), or allowed too; the registry's credentials go
        // only to its own.
        let own_host =
            realm_host.eq_ignore_ascii_case(&image.registry) || is_registry_token_service(&image.registry, &realm_host);
        let allowed = self.allow.allows_host(&realm_host.to_ascii_lowercase());
        if !own_host && !allowed {
            return Err(RegistryError::NotAllowed(realm_host));
        }
        let mut query = vec![("scope".to_string(), format!("repository:{}:pull", image.repository))];
        if let Some(service) = field("service") {
            query.push(("service".into(), service));
        }
        let basic = credentials.filter(|_| own_host);
        // Requests that meet the challenge together wait for one token.
        let token = self
            .tokens
            .try_get_with(key, self.request_token(image, realm, &query, basic))
            .await
            .map_err(|error| (*error).clone())?;
        Ok(Some(Authorization::Bearer(token)))
    }

    /// Asks the token service for a pull token.
    async fn request_token(
        &self,
        image: &ImageReference,
        realm: reqwest::Url,
        query: &[(String, String)],
        basic: Option<&Basic>,
    ) -> Result<Token, RegistryError> {
        let mut request = self.client(&realm).get(realm.clone()).query(query);
        if let Some(basic) = basic {
            request = request.basic_auth(&basic.username, Some(&basic.password));
        }
        let response = self.send(&image.registry, request).await?;
        if !response.status().is_success() {
            return Err(RegistryError::Status {
                registry: image.registry.clone(),
                what: "a pull token".into(),
                status: response.status().as_u16(),
            });
        }
        let body = read_bounded(response, 64 * 1024, &image.registry).await?;
        let token: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let life = token
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .map_or(DEFAULT_TOKEN_LIFE, Duration::from_secs);
        let value = token
            .get("token")
            .or_else(|| token.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| RegistryError::NoToken {
                registry: image.registry.clone(),
            })?;
        Ok(Token {
            value: value.to_string(),
            life: life.saturating_sub(TOKEN_MARGIN),
        })
    }

    /// The cache key of `image`'s pull token with this client's credential for its registry.
    fn token_key(&self, image: &ImageReference) -> TokenKey {
        let credential = self.credentials.for_registry(&image.registry).map(|basic| {
            let mut hasher = Sha256::new();
            hasher.update(basic.username.as_bytes());
            hasher.update([0]);
            hasher.update(basic.password.as_bytes());
            hex::encode(hasher.finalize())
        });
        (image.registry.clone(), image.repository.clone(), credential)
    }

    /// Sends `request`; a 429 or 503 that says when to come back (`Retry-After`, within
    /// [`MAX_RETRY_WAIT`]) is retried then, at most [`MAX_RETRIES`] times. Every attempt is
    /// counted. The verification's deadline bounds the whole: a wait never outlives it.
    async fn send(
        &self,
        registry: &str,
        mut request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut retries = 0;
        loop {
            let next = request.try_clone();
            let outcome = request.send().await;
            let code = match &outcome {
                Ok(response) => response.status().as_u16().to_string(),
                Err(e) if e.is_timeout() => "timeout".into(),
                Err(_) => "error".into(),
            };
            if let Some(metrics) = &self.metrics {
                metrics.record_registry_request(registry, &code);
            }
            let wait = match &outcome {
                Ok(response) if matches!(response.status().as_u16(), 429 | 503) => retry_after(response.headers()),
                _ => None,
            };
            match (wait.filter(|wait| *wait <= MAX_RETRY_WAIT), next) {
                (Some(wait), Some(next)) if retries < MAX_RETRIES => {
                    tracing::debug!(%registry, %code, wait_ms = wait.as_millis() as u64, "registry asked to retry");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                    request = next;
                }
                _ => return outcome.map_err(|e| transport_error(registry, &e)),
            }
        }
    }
}

/// How long a `Retry-After` header asks to wait: delta-seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(Duration::try_from(at.duration_since(jiff::Timestamp::now())).unwrap_or(Duration::ZERO))
}

/// The HTTP client every registry request goes through, with the redirect rules above; with
/// `ca`, its certificates are trusted beside the public roots.
fn http_client(allow: &AllowList, timeout: Duration, ca: Option<&[u8]>) -> Result<reqwest::Client, RegistryError> {
    let redirect_allow = allow.clone();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout)
        .dns_resolver(std::sync::Arc::new(Guarded))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("too many redirects");
            }
            let host = attempt.url().host_str().unwrap_or_default().to_ascii_lowercase();
            let with_port = match attempt.url().port() {
                Some(port) => format!("{host}:{port}"),
                None => host.clone(),
            };
            if internal_address(&host) && !redirect_allow.allows_host(&with_port) && !redirect_allow.allows_host(&host)
            {
                return attempt.error(format!("redirect to internal address {host} refused"));
            }
            let downgrade =
                attempt.url().scheme() == "http" && attempt.previous().iter().any(|u| u.scheme() == "https");
            if downgrade {
                return attempt.error("redirect from HTTPS to plain HTTP refused");
            }
            attempt.follow()
        }));
    if let Some(pem) = ca {
        let certificates =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| RegistryError::Client(e.to_string()))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| RegistryError::Client(e.to_string()))
}

async fn read_bounded(mut response: reqwest::Response, limit: usize, registry: &str) -> Result<Vec<u8>, RegistryError> {
    if response.content_length().is_some_and(|n| n as usize > limit) {
        return Err(RegistryError::TooLarge {
            registry: registry.to_string(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(registry, &e))? {
        if body.len() + chunk.len() > limit {
            return Err(RegistryError::TooLarge {
                registry: registry.to_string(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request that failed before a status: timed out, or unreachable with the innermost cause
/// (reqwest errors nest their causes; the innermost says what happened).
fn transport_error(registry: &str, error: &reqwest::Error) -> RegistryError {
    if error.is_timeout() {
        return RegistryError::Timeout {
            registry: registry.to_string(),
        };
    }
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    RegistryError::Unreachable {
        registry: registry.to_string(),
        reason: source.to_string(),
    }
}

/// Token services that well-known registries run on another host.
/// A registry whose token service lives on another host of its own: Docker Hub's.
fn is_registry_token_service(registry: &str, realm_host: &str) -> bool {
    registry == "docker.io" && realm_host.eq_ignore_ascii_case("auth.docker.io")
}

/// Loopback, link-local (cloud metadata lives there), unspecified, or `localhost`, as written.
fn internal_address(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if names_loopback(bare) || bare.trim_end_matches('.') == "metadata.google.internal" {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(internal_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client allowed registry.example.com only, with no credentials.
    fn example_registry() -> Registry {
        let allow = AllowList::new(&["registry.example.com".into()]);
        Registry::new(
            allow,
            vec![],
            Credentials::default(),
            Duration::from_secs(1),
            &Default::default(),
            None,
        )
        .unwrap()
    }

    #[test]
    fn internal_addresses() {
        for host in [
            "127.0.0.1",
            "localhost",
            "169.254.169.254",
            "[::1]",
            "[fe80::1]",
            "0.0.0.0",
            "metadata.google.internal",
            "[::ffff:127.0.0.1]",
            "[::ffff:169.254.169.254]",
            "localhost.",
            "metadata.google.internal.",
        ] {
            assert!(internal_address(host), "{host}");
        }
        for host in ["registry.example.com", "10.0.0.1", "8.8.8.8"] {
            assert!(!internal_address(host), "{host}");
        }
    }

    #[tokio::test]
    async fn images_outside_the_allow_list_are_never_contacted() {
        let registry = example_registry();
        let image = ImageReference::parse("evil.io/miner:1").unwrap();
        assert_eq!(
            registry.manifest(&image, "1").await,
            Err(RegistryError::NotAllowed("evil.io".into()))
        );
        let prefix_trick = ImageReference::parse("registry.example.com.evil.io/app:1").unwrap();
        assert!(matches!(
            registry.manifest(&prefix_trick, "1").await,
            Err(RegistryError::NotAllowed(_))
        ));
    }

    #[test]
    fn docker_hubs_token_service_is_its_own_and_no_one_elses() {
        assert!(is_registry_token_service("docker.io", "auth.docker.io"));
        assert!(is_registry_token_service("docker.io", "AUTH.docker.io"));
        assert!(!is_registry_token_service("ghcr.io", "auth.docker.io"));
        assert!(!is_registry_token_service("docker.io", "auth.docker.io.evil.io"));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let headers = |value: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
            map
        };
        assert_eq!(retry_after(&headers("1")), Some(Duration::from_secs(1)));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let wait = retry_after(&headers(&date)).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{date}: {wait:?}"
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO),
            "past"
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn a_token_belongs_to_its_repository_and_credential() {
        let registry = example_registry();
        let login = |password: &str| {
            let config =
                format!(r#"{{"auths": {{"registry.example.com": {{"username": "ci", "password": "{password}"}}}}}}"#);
            registry.with_credentials(&Credentials::parse(config.as_bytes(), "test").unwrap())
        };
        let app = ImageReference::parse("registry.example.com/team/app:1").unwrap();
        let other = ImageReference::parse("registry.example.com/team/other:1").unwrap();
        let anonymous = registry.token_key(&app);
        assert_eq!(anonymous.2, None);
        assert_ne!(anonymous, registry.token_key(&other), "another repository");
        let (a, b) = (login("a").token_key(&app), login("b").token_key(&app));
        assert!(
            a.2.is_some() && a != b && a != anonymous,
            "each credential its own token"
        );
        assert_eq!(
            a.2.map(|fingerprint| fingerprint.len()),
            Some(64),
            "a SHA-256, never the password"
        );
    }
}
