//! `portcullis gates APP_YAML`: what a pull request of this app needs at its risk level: the
//! policies that apply there (and whether each denies or only warns) and the approvals and who
//! gives them, for a CI job to request the reviewers.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::App;
use crate::config::Gate;
use crate::policy::engine::PolicyKind;
use crate::policy::PolicySet;
use crate::results::Enforcement;
use crate::risk::RiskLevel;

/// A policy that applies at a risk level, and what it does there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyAt {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `deny`, `warn` or `dryrun`.
    pub action: &'static str,
}

/// The policies of `set` that apply at `level`: each native policy at the levels its data names
/// (those that judge verified images only when `verifying`), every Gatekeeper constraint; with
/// the config's enforcement overrides, the policy's `warn_levels`, a constraint's own action.
pub fn policies_at(
    set: &PolicySet,
    overrides: &BTreeMap<String, Enforcement>,
    verifying: bool,
    level: RiskLevel,
) -> Vec<PolicyAt> {
    let constraint_actions: BTreeMap<String, Enforcement> =
        set.constraints().iter().map(|c| (c.id(), c.enforcement)).collect();
    set.policies()
        .iter()
        .filter(|policy| policy.levels.applies_at(level))
        .filter(|policy| verifying || !policy.metadata.requires_verification)
        .map(|policy| {
            let own = match policy.kind {
                PolicyKind::Constraint => constraint_actions.get(&policy.id).copied().unwrap_or(Enforcement::Deny),
                PolicyKind::Native if !policy.has_deny || policy.levels.warns.contains(&level) => Enforcement::Warn,
                PolicyKind::Native => Enforcement::Deny,
            };
            // As decisions apply an override: to a policy's denials; its warnings stay
            // warnings unless it is set to dryrun.
            let action = match (own, overrides.get(&policy.id)) {
                (Enforcement::Warn, Some(Enforcement::DryRun)) => Enforcement::DryRun,
                (Enforcement::Warn, _) => Enforcement::Warn,
                (own, set) => set.copied().unwrap_or(own),
            };
            PolicyAt {
                id: policy.id.clone(),
                title: policy.metadata.title.clone(),
                action: action.as_str(),
            }
        })
        .collect()
}

/// The app, its level and what its pull requests need; then the policies, a line each.
pub fn render_text(app: &App, gate: &Gate, policies: &[PolicyAt]) -> String {
    let mut out = format!(
        "{} (risk level {}): {}\n",
        app.name,
        app.risk_level,
        needs(gate, |r| r.to_string())
    );
    if !policies.is_empty() {
        out.push_str(&format!(
            "the checks at risk level {}: {}\n",
            app.risk_level,
            count(policies)
        ));
    }
    for policy in policies {
        out.push_str(&format!("  {:<6} {}\n", policy.action, policy.id));
    }
    out
}

pub fn render_json(app: &App, gate: &Gate, policies: &[PolicyAt]) -> String {
    let document = json!({
        "app": app.name,
        "owner": app.owner,
        "risk_level": app.risk_level.as_str(),
        "approvals": gate.approvals,
        "reviewers": gate.reviewers,
        "policies": policies,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

/// A paragraph for a pull-request comment (also the end of `check --output markdown --app`),
/// the policies folded under it.
pub fn render_markdown(app: &App, gate: &Gate, policies: &[PolicyAt]) -> String {
    let mut out = format!(
        "**Gates at risk level {}** (from `{}`): {}.\n",
        app.risk_level,
        app.file,
        needs(gate, |r| format!("`{r}`"))
    );
    if policies.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "\n<details><summary>The checks at risk level {}: {}</summary>\n\n| policy | at this level |\n|---|---|\n",
        app.risk_level,
        count(policies)
    ));
    for policy in policies {
        let name = match &policy.title {
            Some(title) => format!("{} (`{}`)", super::markdown::cell(title), policy.id),
            None => format!("`{}`", policy.id),
        };
        out.push_str(&format!("| {name} | {} |\n", policy.action));
    }
    out + "\n</details>\n"
}

/// `12 policies (10 deny, 2 warn)`.
fn count(policies: &[PolicyAt]) -> String {
    let by_action: Vec<String> = ["deny", "warn", "dryrun"]
        .iter()
        .map(|action| (action, policies.iter().filter(|p| p.action == *action).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(action, n)| format!("{n} {action}"))
        .collect();
    format!("{} policies ({})", policies.len(), by_action.join(", "))
}

fn needs(gate: &Gate, name: impl Fn(&str) -> String) -> String {
    let reviewers: Vec<String> = gate.reviewers.iter().map(|r| name(r)).collect();
    match (gate.approvals, reviewers.is_empty()) {
        (0, _) => "the checks alone, no approval required".to_string(),
        (n, true) => format!("the checks and {n} approval(s) from any reviewer"),
        (n, false) => format!("the checks and {n} approval(s) from {}", reviewers.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            name: "where2eat".into(),
            owner: "rebecca.yu".into(),
            risk_level: RiskLevel::High,
            version: "0.1.0".into(),
            repository: "registry.example.com/micro-apps/where2eat".into(),
            tag: Some("0.1.0".into()),
            file: "app.yaml".into(),
        }
    }

    fn policy(id: &str, title: Option<&str>, action: &'static str) -> PolicyAt {
        PolicyAt {
            id: id.into(),
            title: title.map(str::to_string),
            action,
        }
    }

    #[test]
    fn what_a_pull_request_needs() {
        let gate = Gate {
            approvals: 2,
            reviewers: vec!["@acme/platform".into(), "@acme/security".into()],
        };
        let policies = [
            policy("pods.host_path", Some("No hostPath | volumes"), "deny"),
            policy("images.latest_tag", None, "warn"),
        ];
        assert_eq!(
            render_text(&app(), &gate, &policies),
            "where2eat (risk level high): the checks and 2 approval(s) from @acme/platform, @acme/security\n\
             the checks at risk level high: 2 policies (1 deny, 1 warn)\n  deny   pods.host_path\n  warn   images.latest_tag\n"
        );
        assert_eq!(
            render_markdown(&app(), &gate, &policies),
            "**Gates at risk level high** (from `app.yaml`): the checks and 2 approval(s) from `@acme/platform`, `@acme/security`.\n\
             \n<details><summary>The checks at risk level high: 2 policies (1 deny, 1 warn)</summary>\n\n\
             | policy | at this level |\n|---|---|\n| No hostPath \\| volumes (`pods.host_path`) | deny |\n| `images.latest_tag` | warn |\n\n</details>\n"
        );
        let document: serde_json::Value = serde_json::from_str(&render_json(&app(), &gate, &policies)).unwrap();
        assert_eq!(document["approvals"], 2);
        assert_eq!(document["reviewers"][1], "@acme/security");
        assert_eq!(
            document["policies"][0],
            json!({"id": "pods.host_path", "title": "No hostPath | volumes", "action": "deny"})
        );
        assert_eq!(
            render_text(&app(), &Gate::default(), &[]),
            "where2eat (risk level high): the checks alone, no approval required\n"
        );
    }

    #[test]
    fn the_default_librarys_policies_by_level() {
        let bundle = crate::policy::Source::Embedded.read().unwrap();
        let set = PolicySet::build(&bundle, json!({}), std::time::Duration::from_secs(1)).unwrap();
        let at = |level, overrides: &BTreeMap<String, Enforcement>, verifying| -> BTreeMap<String, &'static str> {
            policies_at(&set, overrides, verifying, level)
                .into_iter()
                .map(|p| (p.id, p.action))
                .collect()
        };
        let none = BTreeMap::new();
        let low = at(RiskLevel::Low, &none, true);
        assert_eq!(low["images.digest_pinning"], "warn", "warn_levels: [low]");
        assert_eq!(low["cost.resources"], "deny", "risk_levels: [low]");
        assert!(!low.contains_key("images.sbom") && !low.contains_key("images.provenance"));
        let medium = at(RiskLevel::Medium, &none, true);
        assert_eq!(medium["images.sbom"], "deny");
        assert_eq!(medium["images.digest_pinning"], "deny");
        assert!(!medium.contains_key("cost.resources") && !medium.contains_key("images.provenance"));
        let high = at(RiskLevel::High, &none, true);
        assert_eq!(high["images.provenance"], "deny");
        assert_eq!(high["pods.host_path"], "deny");
        let offline = at(RiskLevel::High, &none, false);
        for verified in ["images.signatures", "images.sbom", "images.provenance"] {
            assert!(!offline.contains_key(verified), "{verified} judges verified images");
        }
        let overrides = BTreeMap::from([
            ("pods.host_path".to_string(), Enforcement::DryRun),
            ("images.digest_pinning".to_string(), Enforcement::Deny),
        ]);
        assert_eq!(at(RiskLevel::High, &overrides, true)["pods.host_path"], "dryrun");
        assert_eq!(
            at(RiskLevel::Low, &overrides, true)["images.digest_pinning"],
            "warn",
            "an override sets denials; the policy only warns at low"
        );
    }
}
