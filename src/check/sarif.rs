//! `check --output sarif`: SARIF 2.1.0, as code-scanning UIs (GitHub, GitLab, Azure DevOps)
//! read it: a rule per policy, a result per finding at its object's file and line.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::batch::{object_name, ObjectResult};
use crate::policy::metadata::Metadata;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The rules carry the policies' own words where they have them: the title as the short
/// description, the description as the full one, the remediation as the help.
pub fn render_sarif(results: &[ObjectResult], metadata: &Metadata) -> String {
    // Every policy that applied or found something, so that a clean run still lists its rules.
    let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
    for result in results {
        let policies = result.applied.iter().map(|a| a.policy.as_str());
        for policy in policies.chain(result.findings.iter().map(|f| f.policy.as_str())) {
            rules.entry(policy).or_default();
        }
    }
    for (index, slot) in rules.values_mut().enumerate() {
        *slot = index;
    }
    let rule_list: Vec<Value> = rules
        .keys()
        .map(|id| {
            let words = metadata.get(*id).cloned().unwrap_or_default();
            let title = words.title.unwrap_or_else(|| format!("portcullis policy {id}"));
            let mut rule = json!({"id": id, "shortDescription": {"text": title}});
            if let Some(description) = words.description {
                rule["fullDescription"] = json!({"text": description});
            }
            if let Some(remediation) = words.remediation {
                rule["help"] = json!({"text": remediation});
            }
            rule
        })
        .collect();
    let found: Vec<Value> = results
        .iter()
        .flat_map(|result| {
            let object = object_name(result);
            let location = result.location.as_ref().map(|location| {
                let mut physical = json!({"artifactLocation": {"uri": uri(&location.file)}});
                if let Some(line) = location.line {
                    physical["region"] = json!({"startLine": line});
                }
                json!({"physicalLocation": physical})
            });
            let rules = &rules;
            result.findings.iter().map(move |finding| {
                let level = match finding.action {
                    "deny" => "error",
                    "warn" => "warning",
                    _ => "note",
                };
                json!({
                    "ruleId": finding.policy,
                    "ruleIndex": rules[finding.policy.as_str()],
                    "level": level,
                    "message": {"text": format!("{object}: {}", finding.message)},
                    "locations": location.iter().cloned().collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "portcullis",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_list,
            }},
            "results": found,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default()
}

/// A file path as a relative (or `file://` absolute) URI reference: the characters a URI
/// cannot hold percent-encoded, `/` kept.
fn uri(path: &str) -> String {
    let mut out = String::new();
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    if path.starts_with('/') {
        format!("file://{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{sample, Location};

    #[test]
    fn rules_for_every_policy_results_at_their_lines() {
        let result = ObjectResult {
            location: Some(Location {
                file: "deploy/my app.yaml".into(),
                line: Some(7),
            }),
            ..sample::result(
                "web",
                &[("pods.host_path", "deny", "remove it")],
                &[("images.latest_tag", false), ("pods.host_path", false)],
            )
        };
        let metadata = Metadata::from([(
            "pods.host_path".to_string(),
            crate::policy::metadata::PolicyMetadata {
                title: Some("No hostPath volumes".into()),
                description: Some("Pods do not mount files from the node.".into()),
                remediation: Some("Use an emptyDir.".into()),
                ..Default::default()
            },
        )]);
        let log: Value = serde_json::from_str(&render_sarif(&[result], &metadata)).unwrap();
        let run = &log["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "images.latest_tag");
        let rule = &run["tool"]["driver"]["rules"][1];
        assert_eq!(rule["id"], "pods.host_path");
        assert_eq!(rule["shortDescription"]["text"], "No hostPath volumes");
        assert_eq!(
            rule["fullDescription"]["text"],
            "Pods do not mount files from the node."
        );
        assert_eq!(rule["help"]["text"], "Use an emptyDir.");
        let plain = &run["tool"]["driver"]["rules"][0];
        assert_eq!(plain["shortDescription"]["text"], "portcullis policy images.latest_tag");
        assert!(plain.get("help").is_none());
        let found = &run["results"][0];
        assert_eq!(found["ruleIndex"], 1);
        assert_eq!(found["level"], "error");
        assert_eq!(found["message"]["text"], "Pod team-a/web: remove it");
        let physical = &found["locations"][0]["physicalLocation"];
        assert_eq!(physical["artifactLocation"]["uri"], "deploy/my%20app.yaml");
        assert_eq!(physical["region"]["startLine"], 7);
        assert_eq!(uri("/abs/a b"), "file:///abs/a%20b");
    }
}
