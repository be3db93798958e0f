//! Parsing and normalisation of OCI/Docker image references.
//!
//! The same image can be written many ways (`nginx`, `docker.io/nginx`,
//! `index.docker.io/library/nginx`, `Registry.Example.com/app`), so every
//! reference is reduced to one normalised form before any policy looks at it:
//! that way policies and the allow-list compare like with like, and a
//! spelling trick cannot slip an image past a rule. The grammar follows the
//! Docker distribution reference (the one container runtimes use), with a
//! stricter digest rule: only `sha256:` plus 64 lowercase hex is accepted.

use std::fmt;
use std::str::FromStr;

/// Registry that names without a registry host resolve to.
const DOCKER_HUB: &str = "docker.io";
/// Other spellings of the Docker Hub registry.
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// Prefix added to single-segment Docker Hub names (`nginx` -> `library/nginx`).
const OFFICIAL_PREFIX: &str = "library/";
/// Maximum length of the normalised `registry/repository`.
const MAX_NAME_LENGTH: usize = 255;
/// Maximum length of a tag.
const MAX_TAG_LENGTH: usize = 128;
const DIGEST_ALGORITHM: &str = "sha256:";
const DIGEST_HEX_LENGTH: usize = 64;
/// Longest piece of user input quoted back in an error message.
const EXCERPT_CHARS: usize = 80;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// Normalised `host[:port]`, lowercase; `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path; `library/` is added for single-segment Docker Hub names.
    pub repository: String,
    /// Tag, if one was given (kept for information even when a digest is present).
    pub tag: Option<String>,
    /// Digest, always `sha256:` followed by 64 lowercase hex characters.
    pub digest: Option<String>,
}

/// Why an image reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input was the empty string.
    #[error("image reference is empty")]
    Empty,
    /// The input starts or ends with whitespace; it is rejected rather than trimmed.
    #[error("image reference has leading or trailing whitespace")]
    SurroundingWhitespace,
    /// The input is a bare 64-character hex string, which looks like an image ID.
    #[error(
        "image reference is a bare 64-character hex string, which looks like an image ID; \
         write name@sha256:<hex> instead"
    )]
    AmbiguousIdentifier,
    /// Nothing before the `:tag` / `@digest`, or nothing after the registry host.
    #[error("image reference {input:?} has no repository name")]
    MissingRepository {
        /// The offending input (shortened if long).
        input: String,
    },
    /// The normalised `registry/repository` is longer than 255 characters.
    #[error("image name is {length} characters long (as registry/repository); the maximum is {max}")]
    TooLong {
        /// Length of the normalised name.
        length: usize,
        /// The limit (255).
        max: usize,
    },
    /// The registry host is not a domain name, IPv4 address or bracketed IPv6 address.
    #[error("invalid registry {registry:?}: {reason}")]
    InvalidRegistry {
        /// The registry as written (shortened if long).
        registry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The registry has a `:port` that is not made of digits.
    #[error("invalid registry {registry:?}: the port after ':' must be one or more digits")]
    InvalidPort {
        /// The registry as written (shortened if long).
        registry: String,
    },
    /// The repository path contains uppercase letters.
    #[error("repository name {repository:?} must be lowercase")]
    UppercaseRepository {
        /// The repository as written (shortened if long).
        repository: String,
    },
    /// The repository path breaks the path-component grammar.
    #[error("invalid repository name {name:?}: {reason}")]
    InvalidName {
        /// The repository as written (shortened if long).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tag breaks the tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("invalid tag {tag:?}: {reason}")]
    InvalidTag {
        /// The tag as written (shortened if long).
        tag: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The digest is not `sha256:` followed by 64 lowercase hex characters.
    #[error("invalid digest {digest:?}: digest must be sha256: followed by 64 lowercase hex characters")]
    InvalidDigest {
        /// The digest as written (shortened if long).
        digest: String,
    },
}

impl ImageReference {
    /// Parses and normalises `input` as `[registry/]repository[:tag][@digest]`.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.trim() != input {
            return Err(ReferenceError::SurroundingWhitespace);
        }
        if input.len() == DIGEST_HEX_LENGTH && input.bytes().all(is_lower_hex) {
            return Err(ReferenceError::AmbiguousIdentifier);
        }

        // Neither name nor tag may contain '@', so the first '@' starts the digest.
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; an earlier one belongs to a registry port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let missing = || ReferenceError::MissingRepository { input: excerpt(input) };
        if name.is_empty() {
            return Err(missing());
        }

        let (registry, path) = split_registry(name)?;
        if path.is_empty() {
            return Err(missing());
        }
        check_path(path)?;
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_owned()
        };
        let length = registry.len() + 1 + repository.len();
        if length > MAX_NAME_LENGTH {
            return Err(ReferenceError::TooLong {
                length,
                max: MAX_NAME_LENGTH,
            });
        }

        if let Some(tag) = tag {
            check_tag(tag).map_err(|reason| ReferenceError::InvalidTag {
                tag: excerpt(tag),
                reason,
            })?;
        }
        if let Some(digest) = digest {
            if !is_sha256_digest(digest) {
                return Err(ReferenceError::InvalidDigest {
                    digest: excerpt(digest),
                });
            }
        }

        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// True when the reference carries a digest.
    pub fn pinned(&self) -> bool {
        self.digest.is_some()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository@<digest>`: the pinned form to suggest in messages.
    pub fn pinned_to(&self, digest: &str) -> String {
        format!("{}@{}", self.name(), digest)
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits `name` into the normalised registry and the repository path.
///
/// As in distribution, the first component is a registry host when it contains
/// `.` or `:` or is `localhost`. Distribution also treats a first component with
/// uppercase letters as a host; lowercased it would silently turn into a Docker
/// Hub path, so such names are rejected as uppercase repositories instead.
fn split_registry(name: &str) -> Result<(String, &str), ReferenceError> {
    let Some((first, path)) = name.split_once('/') else {
        return Ok((DOCKER_HUB.to_owned(), name));
    };
    let is_host = first.contains(['.', ':']) || first.eq_ignore_ascii_case("localhost");
    if !is_host {
        if first.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UppercaseRepository {
                repository: excerpt(name),
            });
        }
        return Ok((DOCKER_HUB.to_owned(), name));
    }
    check_registry(first)?;
    let registry = first.to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&registry.as_str()) {
        return Ok((DOCKER_HUB.to_owned(), path));
    }
    Ok((registry, path))
}

/// Checks `host[:port]`, where host is a domain name, IPv4 address or `[IPv6]`.
fn check_registry(registry: &str) -> Result<(), ReferenceError> {
    let invalid = |reason| ReferenceError::InvalidRegistry {
        registry: excerpt(registry),
        reason,
    };
    let port = if let Some(bracketed) = registry.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("'[' opens an IPv6 address but there is no closing ']'"))?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid("an IPv6 address may contain only hex digits and ':'"));
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| invalid("only ':port' may follow an IPv6 address"))?,
            ),
        }
    } else {
        let (host, port) = match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        if !host.split('.').all(is_domain_label) {
            return Err(invalid(
                "a host is dot-separated labels of letters, digits and '-', \
                 each starting and ending with a letter or digit",
            ));
        }
        port
    };
    match port {
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => {
            Err(ReferenceError::InvalidPort {
                registry: excerpt(registry),
            })
        }
        _ => Ok(()),
    }
}

fn is_domain_label(label: &str) -> bool {
    !label.is_empty()
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Checks the repository path: lowercase components `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
/// separated by `/`.
fn check_path(path: &str) -> Result<(), ReferenceError> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::UppercaseRepository {
            repository: excerpt(path),
        });
    }
    let reason = path.split('/').find_map(|c| check_component(c).err());
    match reason {
        Some(reason) => Err(ReferenceError::InvalidName {
            name: excerpt(path),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_component(component: &str) -> Result<(), &'static str> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if component.is_empty() {
        return Err("empty path component (look for a leading, trailing or doubled '/')");
    }
    if !component.bytes().all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-')) {
        return Err("only lowercase letters, digits, '.', '_', '-' and '/' are allowed");
    }
    let (Some(first), Some(last)) = (component.bytes().next(), component.bytes().last()) else {
        return Err("empty path component");
    };
    if !alnum(first) || !alnum(last) {
        return Err("each path component must start and end with a lowercase letter or digit");
    }
    let separators_ok = component
        .split(|c: char| c.is_ascii_alphanumeric())
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'));
    if separators_ok {
        Ok(())
    } else {
        Err("letters and digits may be separated only by '.', '_', '__' or a run of '-'")
    }
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.bytes().next() {
        None => return Err("tag is empty (drop the trailing ':' or add a tag)"),
        Some(first) if !word(first) => {
            return Err("a tag must start with a letter, digit or '_'");
        }
        Some(_) => {}
    }
    if !tag.bytes().all(|b| word(b) || b == b'.' || b == b'-') {
        return Err("a tag may contain only letters, digits, '_', '.' and '-'");
    }
    if tag.len() > MAX_TAG_LENGTH {
        return Err("a tag may be at most 128 characters long");
    }
    Ok(())
}

/// Whether `digest` is `sha256:` followed by 64 lowercase hex characters: the only digest form
/// portcullis accepts, from a reference, a registry's manifest or a referrers index alike.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix(DIGEST_ALGORITHM)
        .is_some_and(|hex| hex.len() == DIGEST_HEX_LENGTH && hex.bytes().all(is_lower_hex))
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Shortens user input quoted in an error message.
fn excerpt(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Name of the error variant, so table rows can name the expected failure.
    fn variant(e: &ReferenceError) -> &'static str {
        match e {
            ReferenceError::Empty => "Empty",
            ReferenceError::SurroundingWhitespace => "SurroundingWhitespace",
            ReferenceError::AmbiguousIdentifier => "AmbiguousIdentifier",
            ReferenceError::MissingRepository { .. } => "MissingRepository",
            ReferenceError::TooLong { .. } => "TooLong",
            ReferenceError::InvalidRegistry { .. } => "InvalidRegistry",
            ReferenceError::InvalidPort { .. } => "InvalidPort",
            ReferenceError::UppercaseRepository { .. } => "UppercaseRepository",
            ReferenceError::InvalidName { .. } => "InvalidName",
            ReferenceError::InvalidTag { .. } => "InvalidTag",
            ReferenceError::InvalidDigest { .. } => "InvalidDigest",
        }
    }

    #[test]
    fn valid_references_normalise() {
        let d = D;
        let cases: Vec<(String, String)> = vec![
            ("nginx".into(), "docker.io/library/nginx".into()),
            ("nginx:1.27".into(), "docker.io/library/nginx:1.27".into()),
            ("user/app".into(), "docker.io/user/app".into()),
            ("user/app:v1".into(), "docker.io/user/app:v1".into()),
            ("docker.io/nginx".into(), "docker.io/library/nginx".into()),
            ("docker.io/user/app".into(), "docker.io/user/app".into()),
            ("index.docker.io/library/nginx".into(), "docker.io/library/nginx".into()),
            ("index.docker.io/nginx".into(), "docker.io/library/nginx".into()),
            (
                "registry-1.docker.io/nginx:1".into(),
                "docker.io/library/nginx:1".into(),
            ),
            ("Docker.IO/nginx".into(), "docker.io/library/nginx".into()),
            ("localhost/app".into(), "localhost/app".into()),
            ("LocalHost/app".into(), "localhost/app".into()),
            ("localhost:5000/app".into(), "localhost:5000/app".into()),
            ("localhost".into(), "docker.io/library/localhost".into()),
            ("localhost:5000".into(), "docker.io/library/localhost:5000".into()),
            ("127.0.0.1:5000/a/b:1".into(), "127.0.0.1:5000/a/b:1".into()),
            (
                format!("registry.example.com:443/team/app@{d}"),
                format!("registry.example.com:443/team/app@{d}"),
            ),
            (
                "Registry.Example.COM/team/app".into(),
                "registry.example.com/team/app".into(),
            ),
            ("[::1]:5000/app:1".into(), "[::1]:5000/app:1".into()),
            ("[FE80::1]/app".into(), "[fe80::1]/app".into()),
            (
                "ghcr.io/org/team/sub/app:v2.0.1-rc_1".into(),
                "ghcr.io/org/team/sub/app:v2.0.1-rc_1".into(),
            ),
            (format!("nginx@{d}"), format!("docker.io/library/nginx@{d}")),
            (format!("nginx:1.27@{d}"), format!("docker.io/library/nginx:1.27@{d}")),
            (
                "user/a.b_c__d---e/f-g:_tag".into(),
                "docker.io/user/a.b_c__d---e/f-g:_tag".into(),
            ),
            ("my-registry.local/app".into(), "my-registry.local/app".into()),
            ("quay.io/a/b.c/d_e/f__g/h-i".into(), "quay.io/a/b.c/d_e/f__g/h-i".into()),
            ("app:UPPER_tag".into(), "docker.io/library/app:UPPER_tag".into()),
            (
                format!("app:{}", "t".repeat(128)),
                format!("docker.io/library/app:{}", "t".repeat(128)),
            ),
            ("0/1:2".into(), "docker.io/0/1:2".into()),
        ];
        for (input, want) in &cases {
            match ImageReference::parse(input) {
                Ok(r) => assert_eq!(&r.to_string(), want, "input {input:?}"),
                Err(e) => panic!("input {input:?}: unexpected error {e}"),
            }
        }
    }

    #[test]
    fn invalid_references_fail_with_the_right_variant() {
        let d = D;
        let hex = &d["sha256:".len()..];
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "Empty"),
            (" nginx".into(), "SurroundingWhitespace"),
            ("nginx\n".into(), "SurroundingWhitespace"),
            (hex.into(), "AmbiguousIdentifier"),
            (":".into(), "MissingRepository"),
            (":tag".into(), "MissingRepository"),
            ("@".into(), "MissingRepository"),
            (format!("@{d}"), "MissingRepository"),
            ("localhost:5000/".into(), "MissingRepository"),
            ("docker.io/".into(), "MissingRepository"),
            ("a".repeat(256), "TooLong"),
            (format!("example.com/{}", "a".repeat(244)), "TooLong"),
            ("host:notaport/app".into(), "InvalidPort"),
            ("host:/app".into(), "InvalidPort"),
            ("[::1]:x/app".into(), "InvalidPort"),
            ("-bad.example.com/app".into(), "InvalidRegistry"),
            ("bad-.example.com/app".into(), "InvalidRegistry"),
            ("a..b/app".into(), "InvalidRegistry"),
            (":5000/app".into(), "InvalidRegistry"),
            ("my_host.com/app".into(), "InvalidRegistry"),
            ("[::1/app".into(), "InvalidRegistry"),
            ("[::g]:5000/app".into(), "InvalidRegistry"),
            ("[::1]x:5000/app".into(), "InvalidRegistry"),
            ("A".into(), "UppercaseRepository"),
            ("Nginx:latest".into(), "UppercaseRepository"),
            ("UPPER/app".into(), "UppercaseRepository"),
            ("ghcr.io/Org/app".into(), "UppercaseRepository"),
            ("/a".into(), "InvalidName"),
            ("a/".into(), "InvalidName"),
            ("a//b".into(), "InvalidName"),
            ("a:b:c".into(), "InvalidName"),
            ("-app".into(), "InvalidName"),
            ("app-".into(), "InvalidName"),
            ("a..b".into(), "InvalidName"),
            ("a___b".into(), "InvalidName"),
            ("a._b".into(), "InvalidName"),
            ("ünicode".into(), "InvalidName"),
            ("a b".into(), "InvalidName"),
            ("[abc]/app".into(), "InvalidName"),
            ("a:".into(), "InvalidTag"),
            ("a:-tag".into(), "InvalidTag"),
            ("a:.tag".into(), "InvalidTag"),
            ("a:t@g".into(), "InvalidDigest"),
            ("a:tag!".into(), "InvalidTag"),
            (format!("app:{}", "t".repeat(129)), "InvalidTag"),
            ("a@".into(), "InvalidDigest"),
            ("a@sha256:abc".into(), "InvalidDigest"),
            (format!("a@sha256:{}0", hex), "InvalidDigest"),
            (format!("a@sha256:{}", hex.to_uppercase()), "InvalidDigest"),
            (format!("a@sha512:{hex}{hex}"), "InvalidDigest"),
            (format!("a@{hex}"), "InvalidDigest"),
            (format!("a@SHA256:{hex}"), "InvalidDigest"),
            (format!("a@{d}@{d}"), "InvalidDigest"),
        ];
        for (input, want) in &cases {
            match ImageReference::parse(input) {
                Ok(r) => panic!("input {input:?}: parsed as {r}, wanted {want}"),
                Err(e) => assert_eq!(variant(&e), *want, "input {input:?}: {e}"),
            }
        }
    }

    #[test]
    fn fields_are_split_and_normalised() {
        let r = ImageReference::parse(&format!("Registry.Example.com:443/team/app:1.2@{D}")).unwrap();
        assert_eq!(r.registry, "registry.example.com:443");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert!(r.pinned());
        assert_eq!(r.name(), "registry.example.com:443/team/app");

        let r: ImageReference = "nginx".parse().unwrap();
        assert_eq!(
            r,
            ImageReference {
                registry: "docker.io".into(),
                repository: "library/nginx".into(),
                tag: None,
                digest: None,
            }
        );
        assert!(!r.pinned());
        assert_eq!(r.pinned_to(D), format!("docker.io/library/nginx@{D}"));
    }

    #[test]
    fn name_length_limit() {
        // "docker.io/library/" is 18 characters and counts towards the 255 limit.
        let ok = "a".repeat(255 - 18);
        assert_eq!(ImageReference::parse(&ok).unwrap().name().len(), 255);
        let err = ImageReference::parse(&format!("{ok}a")).unwrap_err();
        assert_eq!(err, ReferenceError::TooLong { length: 256, max: 255 });
    }

    #[test]
    fn messages_explain_the_rule() {
        let err = ImageReference::parse("nginx@sha256:ABC").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid digest \"sha256:ABC\": digest must be sha256: followed by 64 lowercase hex characters"
        );
        let err = ImageReference::parse("UPPER/app").unwrap_err();
        assert_eq!(err.to_string(), "repository name \"UPPER/app\" must be lowercase");
        // Long input is shortened when quoted back.
        let err = ImageReference::parse(&format!("a@{}", "x".repeat(10_000))).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn odd_inputs_never_panic_and_accepted_ones_round_trip() {
        let mut inputs: Vec<String> = [
            "",
            " ",
            ":",
            "@",
            "/",
            "a@",
            "a:",
            "/a",
            "a/",
            "a//b",
            "@sha256:abc",
            "a:b:c",
            "A",
            "UPPER/app",
            "host:notaport/app",
            "[",
            "]",
            "[]",
            "[]/a",
            "[:]/a",
            "[::1]",
            "[::1]:",
            "a@b@c",
            "a:@",
            ":@",
            "@:",
            "::/::",
            "é",
            "日本/語",
            "a\u{0}b",
            "\u{feff}a",
            "a\tb",
            "localhost:",
            "localhost/",
            ".",
            "..",
            "./a",
            "a/.",
            "-",
            "_",
            "__",
            "a:_",
            "a:.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        inputs.push("a".repeat(100_000));
        inputs.push(format!("{}/{}", "h.".repeat(5_000), "p/".repeat(5_000)));
        inputs.push(format!("a:{}", "t".repeat(100_000)));
        inputs.push(format!("a@sha256:{}", "0".repeat(100_000)));
        inputs.push("é".repeat(10_000));
        // Every string of up to four characters over a small hostile alphabet.
        let alphabet = ['a', 'A', '1', ':', '@', '/', '.', '-', '_', '[', ']', ' ', 'é'];
        let mut level = vec![String::new()];
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            inputs.extend(level.iter().cloned());
        }
        for input in &inputs {
            if let Ok(r) = ImageReference::parse(input) {
                let again = ImageReference::parse(&r.to_string());
                assert_eq!(again.as_ref(), Ok(&r), "input {input:?} did not round-trip");
                assert!(r.name().len() <= MAX_NAME_LENGTH);
            }
        }
    }
}
