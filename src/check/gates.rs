//! `portcullis gates APP_YAML`: what a pull request of this app needs besides the checks, at
//! its risk level: the approvals and who gives them, for a CI job to request the reviewers.

use serde_json::json;

use super::App;
use crate::config::Gate;

/// One line: the app, its level, and what its pull requests need.
pub fn render_text(app: &App, gate: &Gate) -> String {
    format!(
        "{} (risk level {}): {}\n",
        app.name,
        app.risk_level,
        needs(gate, |r| r.to_string())
    )
}

pub fn render_json(app: &App, gate: &Gate) -> String {
    let document = json!({
        "app": app.name,
        "owner": app.owner,
        "risk_level": app.risk_level.as_str(),
        "approvals": gate.approvals,
        "reviewers": gate.reviewers,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

/// A paragraph for a pull-request comment (also the end of `check --output markdown --app`).
pub fn render_markdown(app: &App, gate: &Gate) -> String {
    format!(
        "**Gates at risk level {}** (from `{}`): {}.\n",
        app.risk_level,
        app.file,
        needs(gate, |r| format!("`{r}`"))
    )
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
    use crate::risk::RiskLevel;

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

    #[test]
    fn what_a_pull_request_needs() {
        let gate = Gate {
            approvals: 2,
            reviewers: vec!["@acme/platform".into(), "@acme/security".into()],
        };
        assert_eq!(
            render_text(&app(), &gate),
            "where2eat (risk level high): the checks and 2 approval(s) from @acme/platform, @acme/security\n"
        );
        assert_eq!(
            render_markdown(&app(), &gate),
            "**Gates at risk level high** (from `app.yaml`): the checks and 2 approval(s) from `@acme/platform`, `@acme/security`.\n"
        );
        let document: serde_json::Value = serde_json::from_str(&render_json(&app(), &gate)).unwrap();
        assert_eq!(document["approvals"], 2);
        assert_eq!(document["reviewers"][1], "@acme/security");
        assert_eq!(
            render_text(&app(), &Gate::default()),
            "where2eat (risk level high): the checks alone, no approval required\n"
        );
    }
}
