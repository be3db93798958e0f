//! Structural matching of image names: host first, then whole path segments. Never a string
//! prefix, so `registry.example.com` does not cover `registry.example.com.evil.io` and
//! `ghcr.io/acme` does not cover `ghcr.io/acmecorp`.

use std::fmt;

/// A trust-policy pattern such as `registry.example.com/micro-apps/**`: `*` matches within one
/// segment (alone, exactly one segment), `**` any number of segments (including none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern {
    text: String,
    host: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A segment, possibly with `*` wildcards inside it.
    Glob(String),
    /// `**`
    Any,
}

/// Why a trust-policy pattern is not one; each names the pattern as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0:?}: must start with a registry host without wildcards")]
    NoHost(String),
    #[error("{0:?}: empty path segment")]
    EmptySegment(String),
    #[error("{0:?}: `**` must be a whole segment")]
    PartialAnySegment(String),
    #[error("{0:?}: add a repository pattern, e.g. {0}/**")]
    NoRepository(String),
}

impl ImagePattern {
    pub fn parse(text: &str) -> Result<ImagePattern, PatternError> {
        let mut parts = text.split('/');
        let host = parts.next().unwrap_or_default();
        if host.is_empty() || host.contains('*') {
            return Err(PatternError::NoHost(text.to_string()));
        }
        let segments: Vec<Segment> = parts
            .map(|part| match part {
                "" => Err(PatternError::EmptySegment(text.to_string())),
                "**" => Ok(Segment::Any),
                glob if glob.contains("**") => Err(PatternError::PartialAnySegment(text.to_string())),
                glob => Ok(Segment::Glob(glob.to_string())),
            })
            .collect::<Result<_, _>>()?;
        if segments.is_empty() {
            return Err(PatternError::NoRepository(text.to_string()));
        }
        Ok(ImagePattern {
            text: text.to_string(),
            host: host.to_ascii_lowercase(),
            segments,
        })
    }

    /// Whether the normalised `registry` and `repository` match.
    pub fn matches(&self, registry: &str, repository: &str) -> bool {
        let path: Vec<&str> = repository.split('/').collect();
        registry == self.host && match_segments(&self.segments, &path)
    }
}

impl fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn match_segments(pattern: &[Segment], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((Segment::Any, rest)) => (0..=path.len()).any(|skip| match_segments(rest, &path[skip..])),
        Some((Segment::Glob(glob), rest)) => path
            .split_first()
            .is_some_and(|(first, tail)| glob_match(glob, first) && match_segments(rest, tail)),
    }
}

/// `*` matches any run of characters within one segment.
fn glob_match(glob: &str, text: &str) -> bool {
    match glob.split_once('*') {
        None => glob == text,
        Some((prefix, rest)) => {
            text.starts_with(prefix)
                && (prefix.len()..=text.len()).any(|i| text.is_char_boundary(i) && glob_match(rest, &text[i..]))
        }
    }
}

/// An allow-list entry: a registry host, optionally with a path prefix of whole segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    host: String,
    path: Vec<String>,
}

impl RegistryEntry {
    pub fn parse(text: &str) -> RegistryEntry {
        let mut parts = text.trim_end_matches('/').split('/');
        let host = parts.next().unwrap_or_default().to_ascii_lowercase();
        RegistryEntry {
            host,
            path: parts.map(str::to_string).collect(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the normalised image name is covered by this entry.
    pub fn covers(&self, registry: &str, repository: &str) -> bool {
        let mut path = repository.split('/');
        registry == self.host && self.path.iter().all(|segment| path.next() == Some(segment.as_str()))
    }
}

/// The registry allow-list: nothing outside it is ever contacted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<RegistryEntry>);

impl AllowList {
    pub fn new(entries: &[String]) -> AllowList {
        AllowList(entries.iter().map(|e| RegistryEntry::parse(e)).collect())
    }

    pub fn allows(&self, registry: &str, repository: &str) -> bool {
        self.0.iter().any(|entry| entry.covers(registry, repository))
    }

    /// Whether any entry names this host (redirect targets are judged by host alone).
    pub fn allows_host(&self, host: &str) -> bool {
        self.0.iter().any(|entry| entry.host == host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_structurally() {
        let p = ImagePattern::parse("registry.example.com/micro-apps/**").unwrap();
        assert!(p.matches("registry.example.com", "micro-apps/where2eat"));
        assert!(p.matches("registry.example.com", "micro-apps/team/app"));
        assert!(!p.matches("registry.example.com.evil.io", "micro-apps/where2eat"));
        assert!(!p.matches("registry.example.com", "micro-apps-evil/app"));
        assert!(!p.matches("evil.io", "registry.example.com/micro-apps/app"));

        let one = ImagePattern::parse("ghcr.io/acme/*").unwrap();
        assert!(one.matches("ghcr.io", "acme/tool"));
        assert!(!one.matches("ghcr.io", "acme/team/tool"));
        assert!(!one.matches("ghcr.io", "acmecorp/tool"));

        let glob = ImagePattern::parse("ghcr.io/acme/app-*").unwrap();
        assert!(glob.matches("ghcr.io", "acme/app-web"));
        assert!(!glob.matches("ghcr.io", "acme/web-app"));

        let middle = ImagePattern::parse("127.0.0.1:5000/**/signed").unwrap();
        assert!(middle.matches("127.0.0.1:5000", "signed"));
        assert!(middle.matches("127.0.0.1:5000", "a/b/signed"));
        assert!(!middle.matches("127.0.0.1:5001", "signed"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "*/app",
            "registry.example.com",
            "registry.example.com//x",
            "r.io/a**",
        ] {
            assert!(ImagePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn allow_list_is_by_whole_segments() {
        let list = AllowList::new(&["registry.example.com".into(), "ghcr.io/acme".into()]);
        assert!(list.allows("registry.example.com", "any/thing"));
        assert!(!list.allows("registry.example.com.evil.io", "any/thing"));
        assert!(list.allows("ghcr.io", "acme/tool"));
        assert!(!list.allows("ghcr.io", "acmecorp/tool"));
        assert!(!list.allows("ghcr.io", "other/tool"));
        assert!(list.allows_host("ghcr.io"));
        assert!(!AllowList::default().allows("registry.example.com", "x"));
    }
}
