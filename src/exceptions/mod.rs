//! Policy exceptions: a platform team's scoped, expiring "not yet" for one app, read from
//! `PolicyException` objects (a watch in the cluster, manifests given to `check`).
//!
//! One parser and one matcher serve every source, so `serve`, `check` and the audit excuse the
//! same findings. An exception covers a policy's denials of the objects it matches in its own
//! namespace while it has not expired and, when it names digests, only while every image of the
//! object is one of them. It never covers a policy that could not be evaluated, nor portcullis's
//! own checks of what it could not read.

pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kube::core::{Selector, SelectorExt};
use serde_json::Value;

use crate::metrics::Metrics;

pub const GROUP: &str = "portcullis.io";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "portcullis.io/v1alpha1";
pub const KIND: &str = "PolicyException";

/// How many days an exception may run from its creation when the config says nothing.
pub const DEFAULT_MAX_DAYS: u32 = 90;

/// Why a `PolicyException` covers nothing: every problem of the object, listed together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PolicyException {key}: {}", .problems.join("; "))]
pub struct ExceptionError {
    /// `namespace/name`, as far as the object has them.
    pub key: String,
    pub problems: Vec<String>,
}

/// One valid exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyException {
    pub namespace: String,
    pub name: String,
    /// Policy ids: native package paths (`pods.host_path`) or `<Kind>/<constraint>`.
    pub policies: Vec<String>,
    /// Kinds of the objects it covers (at least one).
    pub kinds: Vec<String>,
    /// Names of the objects it covers; empty: any.
    pub names: Vec<String>,
    /// Labels the objects must have; none: any.
    pub selector: Option<Selector>,
    /// Image digests (`sha256:...`) the objects must run, all of them; empty: any images.
    pub images: Vec<String>,
    pub expires_at: Timestamp,
    pub ticket: String,
    pub reason: String,
}

/// An object to excuse: what an exception's `match` looks at.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl PolicyException {
    /// Reads a `PolicyException` object. Its span (expiry minus creation, or minus `now` for a
    /// manifest not yet created) may be at most `max_days` days.
    pub fn parse(object: &Value, max_days: u32, now: Timestamp) -> Result<PolicyException, ExceptionError> {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
        PolicyException::parse_in(object, namespace.unwrap_or_default(), max_days, now)
    }

    /// [`PolicyException::parse`] for an object that will be created in `namespace` (a
    /// manifest given to `check`, whose namespace may be implied).
    pub fn parse_in(
        object: &Value,
        namespace: &str,
        max_days: u32,
        now: Timestamp,
    ) -> Result<PolicyException, ExceptionError> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
        let name = text("/metadata/name");
        let mut problems = Vec::new();
        if name.is_empty() {
            problems.push("metadata.name is missing".to_string());
        }
        if namespace.is_empty() {
            problems.push("metadata.namespace is missing: an exception covers objects of its namespace".to_string());
        }
        let mut list = |field: &str, required: bool| -> Vec<String> {
            let pointer = format!("/spec/{}", field.replace('.', "/"));
            match object.pointer(&pointer) {
                None | Some(Value::Null) if !required => Vec::new(),
                Some(Value::Array(items)) if !(required && items.is_empty()) => {
                    let strings: Vec<String> = items
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    if strings.len() != items.len() {
                        problems.push(format!("spec.{field} must hold non-empty strings only"));
                    }
                    strings
                }
                _ => {
                    let what = if required { "a non-empty list" } else { "a list" };
                    problems.push(format!("spec.{field} must be {what}"));
                    Vec::new()
                }
            }
        };
        let policies = list("policies", true);
        let kinds = list("match.kinds", true);
        let names = list("match.names", false);
        let images = list("images", false);
        for image in &images {
            if !is_digest(image) {
                problems.push(format!(
                    "spec.images: {image:?} is not a digest like sha256:<64 hex digits>"
                ));
            }
        }
        let selector = match object.pointer("/spec/match/labelSelector") {
            None | Some(Value::Null) => None,
            Some(value) => match serde_json::from_value(value.clone())
                .map_err(|e| e.to_string())
                .and_then(
                    |selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
                        Selector::try_from(selector).map_err(|e| e.to_string())
                    },
                ) {
                Ok(selector) => Some(selector),
                Err(error) => {
                    problems.push(format!("spec.match.labelSelector: {error}"));
                    None
                }
            },
        };
        let ticket = text("/spec/ticket").trim().to_string();
        if ticket.is_empty() {
            problems.push("spec.ticket is missing: name the ticket that tracks the fix".to_string());
        }
        let expires_at = match text("/spec/expiresAt") {
            "" => {
                problems.push("spec.expiresAt is missing: every exception ends".to_string());
                None
            }
            written => match written.parse::<Timestamp>() {
                Ok(at) => Some(at),
                Err(_) => {
                    problems.push(format!(
                        "spec.expiresAt: {written:?} is not a time like 2027-01-15T00:00:00Z"
                    ));
                    None
                }
            },
        };
        if let Some(at) = expires_at {
            // Never later than now: in a manifest the creation time is whatever its author
            // wrote, and a future one would stretch the span.
            let created = text("/metadata/creationTimestamp")
                .parse::<Timestamp>()
                .map_or(now, |created| created.min(now));
            let longest = SignedDuration::from_hours(24 * i64::from(max_days));
            if at.duration_since(created) > longest {
                problems.push(format!(
                    "spec.expiresAt {at} is more than {max_days} days after {}; the longest exception allowed is {max_days} days",
                    if created == now { "now" } else { "its creation" }
                ));
            }
        }
        match expires_at {
            Some(expires_at) if problems.is_empty() => Ok(PolicyException {
                namespace: namespace.to_string(),
                name: name.to_string(),
                policies,
                kinds,
                names,
                selector,
                images,
                expires_at,
                ticket,
                reason: text("/spec/reason").to_string(),
            }),
            _ => Err(ExceptionError {
                key: format!("{namespace}/{name}"),
                problems,
            }),
        }
    }

    /// `namespace/name`, as findings and annotations name it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn active(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// Whether its `match` selects `target` (the namespace is the source's business).
    pub fn matches(&self, target: Target) -> bool {
        self.kinds.iter().any(|kind| kind == target.kind)
            && (self.names.is_empty() || self.names.iter().any(|name| name == target.name))
            && self
                .selector
                .as_ref()
                .is_none_or(|selector| selector.matches(target.labels))
    }

    /// Whether the object's images allow it: any images when it names no digest, else every
    /// image's digest listed (an image without a known digest is never one of them).
    pub fn binds(&self, digests: &[Option<&str>]) -> bool {
        self.images.is_empty()
            || (!digests.is_empty()
                && digests
                    .iter()
                    .all(|digest| digest.is_some_and(|digest| self.images.iter().any(|image| image == digest))))
    }

    pub fn covers(&self, policy: &str) -> bool {
        self.policies.iter().any(|id| id == policy)
    }

    /// What an excused finding says after the policy's own message.
    pub fn note(&self) -> String {
        format!(
            "(excused by PolicyException {} until {}, ticket {})",
            self.key(),
            self.expires_at,
            self.ticket
        )
    }
}

/// Whether `object` is a portcullis PolicyException (Kyverno has a kind of the same name).
pub fn is_exception(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some(KIND)
        && object
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|version| version.split_once('/'))
            .is_some_and(|(group, _)| group == GROUP)
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Where exceptions come from.
pub trait ExceptionSource: Send + Sync {
    /// The valid exceptions of `namespace`, expired ones included.
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<PolicyException>>;
    /// Every valid exception, and how many objects were refused (for metrics).
    fn all(&self) -> (Vec<Arc<PolicyException>>, usize);
    /// Whether the source has the full picture yet (readiness).
    fn ready(&self) -> bool {
        true
    }
    /// The watches behind the exceptions, for their staleness (none for a fixed set).
    fn watches(&self) -> Vec<Arc<crate::watch_health::WatchHealth>> {
        Vec::new()
    }
    /// A digest of the exceptions and which of them are active at `now`: it changes when one
    /// is created, changed, deleted or expires.
    fn digest(&self, now: Timestamp) -> u64 {
        digest(&self.all().0, now)
    }
}

/// Exceptions by namespace, from manifests (`check`) or a list (the one-shot audit).
#[derive(Debug, Default, Clone)]
pub struct StaticExceptions {
    by_namespace: HashMap<String, Vec<Arc<PolicyException>>>,
    /// Objects that are not valid exceptions.
    pub refused: usize,
}

impl StaticExceptions {
    pub fn new(exceptions: impl IntoIterator<Item = PolicyException>, refused: usize) -> StaticExceptions {
        let mut by_namespace: HashMap<String, Vec<Arc<PolicyException>>> = HashMap::new();
        for exception in exceptions {
            by_namespace
                .entry(exception.namespace.clone())
                .or_default()
                .push(Arc::new(exception));
        }
        StaticExceptions { by_namespace, refused }
    }

    /// Reads `objects`, keeping the valid ones; the refused are logged by name (never their
    /// content) and counted.
    pub fn read<'a>(objects: impl IntoIterator<Item = &'a Value>, max_days: u32, now: Timestamp) -> StaticExceptions {
        let mut valid = Vec::new();
        let mut refused = 0;
        for object in objects {
            match PolicyException::parse(object, max_days, now) {
                Ok(exception) => valid.push(exception),
                Err(error) => {
                    refused += 1;
                    tracing::warn!(exception = %error.key, problems = %error.problems.join("; "), "PolicyException refused: it covers nothing");
                }
            }
        }
        StaticExceptions::new(valid, refused)
    }
}

impl ExceptionSource for StaticExceptions {
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<PolicyException>> {
        self.by_namespace.get(namespace).cloned().unwrap_or_default()
    }

    fn all(&self) -> (Vec<Arc<PolicyException>>, usize) {
        (self.by_namespace.values().flatten().cloned().collect(), self.refused)
    }
}

/// Summed per exception so that order does not matter.
fn digest(exceptions: &[Arc<PolicyException>], now: Timestamp) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    exceptions.iter().fold(0u64, |sum, exception| {
        let mut hasher = DefaultHasher::new();
        exception.key().hash(&mut hasher);
        format!("{exception:?}").hash(&mut hasher);
        exception.active(now).hash(&mut hasher);
        sum.wrapping_add(hasher.finish())
    })
}

/// The numbers behind the exception metrics at `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// (policy id, active) -> exceptions naming it.
    pub by_policy: BTreeMap<(String, bool), usize>,
    /// Objects that cover nothing because they are not valid.
    pub refused: usize,
    /// `namespace/name` -> expiry, Unix seconds, for the alert on exceptions about to end.
    pub expiries: BTreeMap<String, i64>,
}

impl Census {
    pub fn of(source: &dyn ExceptionSource, now: Timestamp) -> Census {
        let (exceptions, refused) = source.all();
        let mut census = Census {
            refused,
            ..Census::default()
        };
        for exception in exceptions {
            for policy in &exception.policies {
                *census
                    .by_policy
                    .entry((policy.clone(), exception.active(now)))
                    .or_default() += 1;
            }
            census
                .expiries
                .insert(exception.key(), exception.expires_at.as_second());
        }
        census
    }

    pub fn publish(&self, metrics: &Metrics) {
        let by_policy: Vec<(String, &'static str, usize)> = self
            .by_policy
            .iter()
            .map(|((policy, active), count)| (policy.clone(), if *active { "active" } else { "expired" }, *count))
            .collect();
        let expiries: Vec<(String, i64)> = self.expiries.iter().map(|(key, at)| (key.clone(), *at)).collect();
        metrics.set_exceptions(&by_policy, self.refused, &expiries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:4958b2679aa4d8b4e0b0f5e5a9a33e1f2d7c8b9a0e1f2d3c4b5a69788796a5b4";

    fn now() -> Timestamp {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    fn object(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "debug-shell", "namespace": "team-a"}, "spec": spec})
    }

    fn valid_spec() -> Value {
        json!({"policies": ["pods.host_path"], "match": {"kinds": ["Pod"], "names": ["debug-shell"]},
            "expiresAt": "2027-01-15T00:00:00Z", "ticket": "OPS-4711", "reason": "node debugging"})
    }

    #[test]
    fn the_api_version_is_its_group_and_version() {
        assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
    }

    #[test]
    fn a_valid_exception_matches_its_objects() {
        let exception = PolicyException::parse(&object(valid_spec()), 90, now()).unwrap();
        assert_eq!(exception.key(), "team-a/debug-shell");
        let labels = BTreeMap::new();
        let target = |kind, name| Target {
            kind,
            name,
            labels: &labels,
        };
        assert!(exception.matches(target("Pod", "debug-shell")));
        assert!(!exception.matches(target("Pod", "other")));
        assert!(!exception.matches(target("Deployment", "debug-shell")));
        assert!(exception.active(now()));
        assert!(
            !exception.active("2027-01-15T00:00:00Z".parse().unwrap()),
            "it ends at expiresAt"
        );
        assert!(exception.covers("pods.host_path") && !exception.covers("pods.privileged"));
        assert!(exception.binds(&[None]), "no digests named: any images");
    }

    #[test]
    fn label_selectors_and_digests_narrow_it() {
        let mut spec = valid_spec();
        spec["match"] = json!({"kinds": ["Deployment"], "labelSelector": {"matchLabels": {"app": "shop"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}});
        spec["images"] = json!([DIGEST]);
        let exception = PolicyException::parse(&object(spec), 90, now()).unwrap();
        let shop = BTreeMap::from([("app".to_string(), "shop".to_string())]);
        let db = BTreeMap::from([
            ("app".to_string(), "shop".to_string()),
            ("tier".to_string(), "db".to_string()),
        ]);
        let target = |labels| Target {
            kind: "Deployment",
            name: "anything",
            labels,
        };
        assert!(exception.matches(target(&shop)));
        assert!(!exception.matches(target(&db)));
        assert!(exception.binds(&[Some(DIGEST)]));
        let next_build = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert!(
            !exception.binds(&[Some(DIGEST), Some(next_build)]),
            "every image must be listed"
        );
        assert!(!exception.binds(&[None]), "an image of unknown digest is not bound");
        assert!(!exception.binds(&[]), "no images: nothing to bind to");
    }

    #[test]
    fn every_problem_is_listed() {
        let spec = json!({"policies": [], "match": {"kinds": "Pod", "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
            "images": ["nginx:latest"], "expiresAt": "next week"});
        let error = PolicyException::parse(&object(spec), 90, now()).unwrap_err();
        assert_eq!(error.key, "team-a/debug-shell");
        assert_eq!(
            error.problems,
            [
                "spec.policies must be a non-empty list",
                "spec.match.kinds must be a non-empty list",
                "spec.images: \"nginx:latest\" is not a digest like sha256:<64 hex digits>",
                "spec.match.labelSelector: failed to parse value as expression: Invalid expression operator",
                "spec.ticket is missing: name the ticket that tracks the fix",
                "spec.expiresAt: \"next week\" is not a time like 2027-01-15T00:00:00Z",
            ]
        );
    }

    #[test]
    fn the_span_is_counted_from_creation_or_now() {
        let mut spec = valid_spec();
        spec["expiresAt"] = json!("2027-03-15T00:00:00Z");
        let error = PolicyException::parse(&object(spec.clone()), 90, now()).unwrap_err();
        assert!(error.problems[0].contains("more than 90 days after now"), "{error}");
        assert!(PolicyException::parse(&object(spec.clone()), 120, now()).is_ok());
        let mut created = object(spec);
        created["metadata"]["creationTimestamp"] = json!("2027-01-01T00:00:00Z");
        let error = PolicyException::parse(&created, 90, now()).unwrap_err();
        assert!(
            error.problems[0].contains("after now"),
            "a creation in the future counts as now: {error}"
        );
        let mut early = object(valid_spec());
        early["metadata"]["creationTimestamp"] = json!("2026-09-01T00:00:00Z");
        let error = PolicyException::parse(&early, 90, now()).unwrap_err();
        assert!(
            error.problems[0].contains("after its creation"),
            "136 days since its creation: {error}"
        );
        let missing = PolicyException::parse_in(&object(valid_spec()), "", 90, now()).unwrap_err();
        assert_eq!(
            missing.problems,
            ["metadata.namespace is missing: an exception covers objects of its namespace"]
        );
    }

    #[test]
    fn the_census_counts_by_policy_and_state() {
        let mut expired = object(valid_spec());
        expired["metadata"]["name"] = json!("old");
        expired["spec"]["expiresAt"] = json!("2026-11-01T00:00:00Z");
        let broken = object(json!({}));
        let source = StaticExceptions::read([&object(valid_spec()), &expired, &broken], 90, now());
        let census = Census::of(&source, now());
        assert_eq!(census.refused, 1);
        assert_eq!(census.by_policy[&("pods.host_path".to_string(), true)], 1);
        assert_eq!(census.by_policy[&("pods.host_path".to_string(), false)], 1);
        assert_eq!(census.expiries.len(), 2);
        let before = source.digest(now());
        assert_ne!(
            before,
            source.digest("2027-02-01T00:00:00Z".parse().unwrap()),
            "an expiry changes it"
        );
    }
}
