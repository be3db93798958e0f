//! Risk levels: how strict the gates are for an app.
//!
//! The namespace (platform-owned) sets a floor; the object (from the app's `app.yaml`) may raise
//! it, never lower it. Unknown values count as `high`, the strictest, and say so in a warning.

use std::collections::BTreeMap;
use std::fmt;

use crate::document::Document;

/// The label that carries a risk level on namespaces, objects and pod templates.
pub const LABEL: &str = "portcullis.io/risk-level";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub const ALL: [RiskLevel; 3] = [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High];

    pub fn parse(text: &str) -> Option<RiskLevel> {
        match text {
            "low" => Some(RiskLevel::Low),
            "medium" => Some(RiskLevel::Medium),
            "high" => Some(RiskLevel::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The effective level of one review, with the warnings that explain any surprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub level: RiskLevel,
    pub warnings: Vec<String>,
}

/// Effective level: the higher of the namespace's (its label, else `default`) and the object's
/// own label (on its metadata or its pod template), if there is an object.
pub fn resolve(
    namespace_labels: &BTreeMap<String, String>,
    object: Option<&impl Document>,
    default: RiskLevel,
) -> Resolved {
    let mut warnings = Vec::new();
    let mut read = |value: &str, whose: &str| match RiskLevel::parse(value) {
        Some(level) => level,
        None => {
            warnings.push(format!(
                "unknown {LABEL} {value:?} on the {whose}: treated as high (use low, medium or high)"
            ));
            RiskLevel::High
        }
    };
    let namespace_level = namespace_labels
        .get(LABEL)
        .map(|value| read(value, "namespace"))
        .unwrap_or(default);
    let object_level = object
        .into_iter()
        .flat_map(object_labels)
        .filter_map(|labels| labels.text_of(LABEL))
        .map(|value| read(value, "object"))
        .max();
    let level = object_level.map_or(namespace_level, |own| own.max(namespace_level));
    Resolved { level, warnings }
}

/// The label maps that may carry an app's risk level: the object's own and its pod template's.
fn object_labels<D: Document>(object: &D) -> impl Iterator<Item = &D> {
    const TEMPLATE_LABELS: [&str; 4] = [
        "/metadata/labels",
        "/spec/template/metadata/labels",
        "/spec/jobTemplate/spec/template/metadata/labels",
        "/template/metadata/labels",
    ];
    TEMPLATE_LABELS
        .into_iter()
        .filter_map(|pointer| object.at(pointer).filter(|labels| labels.is_object()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(level: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL.to_string(), level.to_string())])
    }

    #[test]
    fn namespace_label_sets_the_level() {
        let r = resolve(&labels("low"), Some(&json!({})), RiskLevel::High);
        assert_eq!(r.level, RiskLevel::Low);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn without_an_object_the_namespace_decides() {
        let r = resolve(&labels("medium"), None::<&serde_json::Value>, RiskLevel::High);
        assert_eq!(r.level, RiskLevel::Medium);
    }

    #[test]
    fn unlabelled_namespace_takes_the_default() {
        let r = resolve(&BTreeMap::new(), Some(&json!({})), RiskLevel::Medium);
        assert_eq!(r.level, RiskLevel::Medium);
    }

    #[test]
    fn object_can_raise_but_not_lower() {
        let raise = json!({"metadata": {"labels": {LABEL: "high"}}});
        assert_eq!(
            resolve(&labels("low"), Some(&raise), RiskLevel::High).level,
            RiskLevel::High
        );
        let lower = json!({"spec": {"template": {"metadata": {"labels": {LABEL: "low"}}}}});
        assert_eq!(
            resolve(&labels("medium"), Some(&lower), RiskLevel::High).level,
            RiskLevel::Medium
        );
    }

    #[test]
    fn cronjob_template_label_counts() {
        let cron =
            json!({"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {LABEL: "medium"}}}}}}});
        assert_eq!(
            resolve(&labels("low"), Some(&cron), RiskLevel::High).level,
            RiskLevel::Medium
        );
    }

    #[test]
    fn unknown_values_count_as_high_and_warn() {
        let r = resolve(&labels("extreme"), Some(&json!({})), RiskLevel::Low);
        assert_eq!(r.level, RiskLevel::High);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("\"extreme\""), "{:?}", r.warnings);
        let r = resolve(
            &labels("low"),
            Some(&json!({"metadata": {"labels": {LABEL: "LOW"}}})),
            RiskLevel::Low,
        );
        assert_eq!(r.level, RiskLevel::High);
        assert!(r.warnings[0].contains("object"));
    }
}
