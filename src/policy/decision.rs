//! From policy results to one decision: enforcement overrides applied, errors failing closed.

use std::collections::BTreeMap;

use crate::exceptions::PolicyException;
use crate::results::Enforcement;
use crate::risk::RiskLevel;

use crate::results::PolicyResult;

/// One thing a policy (or native check) said about a review.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub policy: String,
    /// What the finding does: deny the request, warn the user, or only count (dryrun).
    pub action: Enforcement,
    pub message: String,
    /// Structured context from the policy (a Gatekeeper violation's `details`), for `check`'s
    /// JSON output; never in the admission response or the logs, which carry messages only.
    pub details: Option<serde_json::Value>,
    /// The exception (`namespace/name`) that turned this denial into a warning.
    pub excused_by: Option<String>,
}

impl Finding {
    /// A finding without details (portcullis's own checks, errors).
    pub fn new(policy: impl Into<String>, action: Enforcement, message: String) -> Finding {
        Finding {
            policy: policy.into(),
            action,
            message,
            details: None,
            excused_by: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub risk_level: RiskLevel,
    pub findings: Vec<Finding>,
}

impl Decision {
    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.with_action(Enforcement::Deny)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.with_action(Enforcement::Warn)
    }

    fn with_action(&self, action: Enforcement) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.action == action)
    }

    /// Distinct policy ids with findings of `action`, in order.
    pub fn policies(&self, action: Enforcement) -> Vec<&str> {
        let mut ids: Vec<&str> = self.with_action(action).map(|f| f.policy.as_str()).collect();
        ids.dedup();
        ids
    }

    /// A denial that no policy made: the review could not be decided.
    pub fn fail_closed(risk_level: RiskLevel, policy: &str, message: String) -> Decision {
        Decision {
            allowed: false,
            risk_level,
            findings: vec![Finding::new(policy, Enforcement::Deny, message)],
        }
    }
}

/// Combines native findings and policy results under the configured overrides; a denial
/// that one of `exceptions` covers becomes a warning that names it. Native findings and
/// evaluation errors are never excused: what could not be read is never allowed.
pub fn aggregate(
    native: Vec<Finding>,
    results: &[PolicyResult],
    overrides: &BTreeMap<String, Enforcement>,
    exceptions: &[std::sync::Arc<PolicyException>],
    risk_level: RiskLevel,
) -> Decision {
    let mut findings = native;
    for result in results {
        let configured = overrides
            .get(&result.id)
            .copied()
            .or(result.enforcement)
            .unwrap_or(Enforcement::Deny);
        if let Some(error) = &result.error {
            let consequence = match configured {
                Enforcement::Deny => "denied to fail closed".to_string(),
                softened => format!("not enforced: the policy is set to {}", softened.as_str()),
            };
            findings.push(Finding::new(
                &result.id,
                configured,
                format!("policy could not be evaluated ({error}); {consequence}"),
            ));
        }
        let excuse = match configured {
            Enforcement::Deny => exceptions.iter().find(|exception| exception.covers(&result.id)),
            _ => None,
        };
        findings.extend(result.deny.iter().map(|violation| match excuse {
            None => Finding {
                policy: result.id.clone(),
                action: configured,
                message: violation.message.clone(),
                details: violation.details.clone(),
                excused_by: None,
            },
            Some(exception) => Finding {
                policy: result.id.clone(),
                action: Enforcement::Warn,
                message: format!("{} {}", violation.message, exception.note()),
                details: violation.details.clone(),
                excused_by: Some(exception.key()),
            },
        }));
        // A warn rule never blocks; dryrun silences it too.
        let warn_action = if configured == Enforcement::DryRun {
            Enforcement::DryRun
        } else {
            Enforcement::Warn
        };
        findings.extend(result.warn.iter().map(|violation| Finding {
            policy: result.id.clone(),
            action: warn_action,
            message: violation.message.clone(),
            details: violation.details.clone(),
            excused_by: None,
        }));
    }
    // Deterministic order: by policy id, then message, whatever order Rego's sets gave.
    findings.sort_by(|a, b| (&a.policy, &a.message).cmp(&(&b.policy, &b.message)));
    findings.dedup();
    let allowed = !findings.iter().any(|f| f.action == Enforcement::Deny);
    Decision {
        allowed,
        risk_level,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{EvalError, Violation};
    use std::time::Duration;

    fn result(id: &str, deny: &[&str], warn: &[&str], error: Option<EvalError>) -> PolicyResult {
        PolicyResult {
            id: id.into(),
            deny: deny.iter().map(|s| Violation::new(*s)).collect(),
            warn: warn.iter().map(|s| Violation::new(*s)).collect(),
            error,
            duration: Duration::ZERO,
            enforcement: None,
        }
    }

    #[test]
    fn any_deny_denies() {
        let d = aggregate(
            vec![],
            &[result("a", &["no"], &[], None), result("b", &[], &["hm"], None)],
            &BTreeMap::new(),
            &[],
            RiskLevel::High,
        );
        assert!(!d.allowed);
        assert_eq!(d.policies(Enforcement::Deny), ["a"]);
        assert_eq!(d.policies(Enforcement::Warn), ["b"]);
    }

    #[test]
    fn overrides_soften_denials() {
        let overrides = BTreeMap::from([
            ("a".to_string(), Enforcement::Warn),
            ("b".to_string(), Enforcement::DryRun),
        ]);
        let d = aggregate(
            vec![],
            &[result("a", &["no"], &[], None), result("b", &["no"], &["w"], None)],
            &overrides,
            &[],
            RiskLevel::Low,
        );
        assert!(d.allowed);
        assert_eq!(d.warnings().count(), 1);
        assert_eq!(d.policies(Enforcement::DryRun), ["b"]);
    }

    #[test]
    fn a_policys_own_enforcement_applies_unless_overridden() {
        let mut dry = result("K8sX/a", &["no"], &[], None);
        dry.enforcement = Some(Enforcement::DryRun);
        let mut warn = result("K8sX/b", &["hm"], &[], None);
        warn.enforcement = Some(Enforcement::Warn);
        let d = aggregate(
            vec![],
            &[dry.clone(), warn.clone()],
            &BTreeMap::new(),
            &[],
            RiskLevel::High,
        );
        assert!(d.allowed);
        assert_eq!(d.policies(Enforcement::DryRun), ["K8sX/a"]);
        assert_eq!(d.policies(Enforcement::Warn), ["K8sX/b"]);
        let overrides = BTreeMap::from([("K8sX/a".to_string(), Enforcement::Deny)]);
        let d = aggregate(vec![], &[dry, warn], &overrides, &[], RiskLevel::High);
        assert_eq!(d.policies(Enforcement::Deny), ["K8sX/a"]);
    }

    #[test]
    fn errors_fail_closed_with_the_policy_id() {
        let d = aggregate(
            vec![],
            &[result(
                "a",
                &[],
                &[],
                Some(EvalError::Timeout(Duration::from_millis(5))),
            )],
            &BTreeMap::new(),
            &[],
            RiskLevel::High,
        );
        assert!(!d.allowed);
        assert_eq!(d.findings[0].policy, "a");
        assert!(
            d.findings[0].message.contains("time limit"),
            "{}",
            d.findings[0].message
        );
    }

    #[test]
    fn exceptions_turn_covered_denials_into_warnings() {
        let object = serde_json::json!({"metadata": {"name": "shell", "namespace": "team-a"},
            "spec": {"policies": ["a", "c"], "match": {"kinds": ["Pod"]}, "expiresAt": "2027-01-15T00:00:00Z", "ticket": "OPS-1"}});
        let now = "2026-12-01T00:00:00Z".parse().unwrap();
        let exception = std::sync::Arc::new(PolicyException::parse(&object, 90, now).unwrap());
        let d = aggregate(
            vec![Finding::new("native", Enforcement::Deny, "unreadable".into())],
            &[
                result("a", &["no"], &[], None),
                result("b", &["no"], &[], None),
                result("c", &[], &[], Some(EvalError::Timeout(Duration::from_millis(5)))),
            ],
            &BTreeMap::new(),
            &[exception],
            RiskLevel::High,
        );
        assert_eq!(
            d.policies(Enforcement::Deny),
            ["b", "c", "native"],
            "errors and native checks stay denied"
        );
        let excused: Vec<_> = d.warnings().collect();
        assert_eq!(excused.len(), 1);
        assert_eq!(excused[0].policy, "a");
        assert_eq!(excused[0].excused_by.as_deref(), Some("team-a/shell"));
        assert_eq!(
            excused[0].message,
            "no (excused by PolicyException team-a/shell until 2027-01-15T00:00:00Z, ticket OPS-1)"
        );
    }

    #[test]
    fn no_findings_allows() {
        let d = aggregate(
            vec![],
            &[result("a", &[], &[], None)],
            &BTreeMap::new(),
            &[],
            RiskLevel::High,
        );
        assert!(d.allowed && d.findings.is_empty());
    }
}
