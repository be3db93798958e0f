//! The AdmissionReview answer: uid, allowed, a denial message that lists every violated policy,
//! warnings within the apiserver's limits, and audit annotations. Never a patch.

use serde_json::{json, Map, Value};

use crate::policy::Decision;
use crate::results::Enforcement;

use super::review::API_VERSION;

/// Kubernetes recommends warnings of at most 120 characters.
const WARNING_WIDTH: usize = 120;
/// The apiserver keeps at most 4 KiB of warnings per response.
const WARNINGS_BUDGET: usize = 4000;
/// Upper bound of the denial message kubectl shows.
const MESSAGE_BUDGET: usize = 8 * 1024;

pub fn respond(uid: &str, kind: &str, decision: &Decision) -> Value {
    let mut response = Map::new();
    response.insert("uid".into(), json!(uid));
    response.insert("allowed".into(), json!(decision.allowed));
    if !decision.allowed {
        response.insert(
            "status".into(),
            json!({"code": 403, "reason": "Forbidden", "message": denial_message(kind, decision)}),
        );
    }
    let warnings = warnings(decision);
    if !warnings.is_empty() {
        response.insert("warnings".into(), json!(warnings));
    }
    let annotations = audit_annotations(decision);
    if !annotations.is_empty() {
        response.insert("auditAnnotations".into(), Value::Object(annotations));
    }
    json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response})
}

/// Marks a denial as the server's overload rather than the request's fault: HTTP 429 in the
/// status the apiserver passes on, so that clients and controllers know a retry may succeed.
pub fn too_many_requests(answer: &mut Value) {
    if let Some(status) = answer.pointer_mut("/response/status").and_then(Value::as_object_mut) {
        status.insert("code".into(), json!(429));
        status.insert("reason".into(), json!("TooManyRequests"));
    }
}

/// `2 policies denied this Pod:` followed by one `- policy: message` line per denial.
pub fn denial_message(kind: &str, decision: &Decision) -> String {
    let denials: Vec<_> = decision.denials().collect();
    let policies = decision.policies(Enforcement::Deny).len();
    let what = if kind.is_empty() {
        "request".to_string()
    } else {
        kind.to_string()
    };
    let mut message = format!(
        "{policies} {} denied this {what} (risk level {}):",
        if policies == 1 { "policy" } else { "policies" },
        decision.risk_level
    );
    for (shown, denial) in denials.iter().enumerate() {
        let line = format!("\n- {}: {}", denial.policy, denial.message);
        if message.len() + line.len() > MESSAGE_BUDGET {
            message.push_str(&format!("\n- ... and {} more", denials.len() - shown));
            break;
        }
        message.push_str(&line);
    }
    message
}

/// One warning per finding, wrapped at word boundaries into lines of at most 120 characters
/// (kubectl prints each as its own `Warning:` line), within the apiserver's total budget.
pub fn warnings(decision: &Decision) -> Vec<String> {
    let mut lines = Vec::new();
    let mut used = 0;
    let all: Vec<_> = decision.warnings().collect();
    for (index, warning) in all.iter().enumerate() {
        let wrapped = wrap(&format!("{}: {}", warning.policy, warning.message), WARNING_WIDTH);
        let size: usize = wrapped.iter().map(String::len).sum();
        if used + size > WARNINGS_BUDGET {
            lines.push(format!("... and {} more warnings", all.len() - index));
            break;
        }
        used += size;
        lines.extend(wrapped);
    }
    lines
}

fn audit_annotations(decision: &Decision) -> Map<String, Value> {
    let mut annotations = Map::new();
    for (key, action) in [
        ("denied-by", Enforcement::Deny),
        ("warned-by", Enforcement::Warn),
        ("dryrun-by", Enforcement::DryRun),
    ] {
        let ids = decision.policies(action);
        if !ids.is_empty() {
            annotations.insert(key.into(), json!(ids.join(",")));
        }
    }
    // `policy=namespace/name` for each excused policy: who said "not yet", for the audit log.
    let mut excused: Vec<String> = decision
        .findings
        .iter()
        .filter_map(|f| Some(format!("{}={}", f.policy, f.excused_by.as_ref()?)))
        .collect();
    excused.dedup();
    if !excused.is_empty() {
        annotations.insert("excused-by".into(), json!(excused.join(",")));
    }
    if !decision.findings.is_empty() {
        annotations.insert("risk-level".into(), json!(decision.risk_level.as_str()));
    }
    annotations
}

/// Word-wraps `text` into lines of at most `width` characters; continuation lines are indented
/// so they read as one warning, and a word too long for a line is split.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let piece_width = width.saturating_sub(2).max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for piece in text.split_whitespace().flat_map(|word| chunks(word, piece_width)) {
        let has_words = !line.trim().is_empty();
        if has_words && line.chars().count() + 1 + piece.chars().count() > width {
            lines.push(std::mem::replace(&mut line, "  ".to_string()));
        } else if has_words {
            line.push(' ');
        }
        line.push_str(piece);
    }
    if !line.trim().is_empty() {
        lines.push(line);
    }
    lines
}

/// `word` in pieces of at most `size` characters.
fn chunks(word: &str, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = word;
    while !rest.is_empty() {
        let cut = rest.char_indices().nth(size).map_or(rest.len(), |(i, _)| i);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Finding;
    use crate::risk::RiskLevel;

    fn decision(findings: &[(&str, Enforcement, &str)]) -> Decision {
        let findings: Vec<Finding> = findings
            .iter()
            .map(|(p, a, m)| Finding::new(*p, *a, m.to_string()))
            .collect();
        Decision {
            allowed: !findings.iter().any(|f| f.action == Enforcement::Deny),
            risk_level: RiskLevel::High,
            findings,
        }
    }

    #[test]
    fn denial_lists_every_policy() {
        let d = decision(&[
            ("a.one", Enforcement::Deny, "fix one"),
            ("b.two", Enforcement::Deny, "fix two"),
            ("c", Enforcement::Warn, "hm"),
        ]);
        let answer = respond("uid-1", "Pod", &d);
        assert_eq!(answer["response"]["uid"], "uid-1");
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 403);
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("2 policies denied this Pod (risk level high):"),
            "{message}"
        );
        assert!(message.contains("\n- a.one: fix one\n- b.two: fix two"), "{message}");
        assert_eq!(answer["response"]["warnings"][0], "c: hm");
        assert_eq!(answer["response"]["auditAnnotations"]["denied-by"], "a.one,b.two");
        assert_eq!(answer["response"]["auditAnnotations"]["warned-by"], "c");
        assert!(answer["response"].get("patch").is_none());
    }

    #[test]
    fn excused_denials_are_recorded_with_their_exception() {
        let mut d = decision(&[
            ("a.one", Enforcement::Warn, "fix one (excused)"),
            ("a.one", Enforcement::Warn, "fix it again (excused)"),
            ("b.two", Enforcement::Warn, "fix two (excused)"),
        ]);
        for (finding, by) in d.findings.iter_mut().zip(["team-a/x", "team-a/x", "team-a/y"]) {
            finding.excused_by = Some(by.to_string());
        }
        let answer = respond("u", "Pod", &d);
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(
            answer["response"]["auditAnnotations"]["excused-by"],
            "a.one=team-a/x,b.two=team-a/y"
        );
    }

    #[test]
    fn allowed_without_findings_is_minimal() {
        let answer = respond("u", "Pod", &decision(&[]));
        assert_eq!(answer["response"], json!({"uid": "u", "allowed": true}));
    }

    #[test]
    fn warnings_wrap_at_120_and_keep_every_word() {
        let long = format!(
            "pin it: registry.example.com/team/app@sha256:{} {}",
            "a".repeat(64),
            "word ".repeat(40)
        );
        let d = decision(&[("images.digest_pinning", Enforcement::Warn, &long)]);
        let lines = warnings(&d);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= 120), "{lines:#?}");
        let rejoined: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        let original: Vec<String> = format!("images.digest_pinning: {long}")
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(rejoined, original);
    }

    #[test]
    fn words_longer_than_a_line_are_split() {
        let lines = wrap(&"x".repeat(300), 120);
        assert!(lines.iter().all(|l| l.chars().count() <= 120), "{lines:?}");
        assert_eq!(lines.iter().map(|l| l.trim().len()).sum::<usize>(), 300);
    }

    #[test]
    fn budgets_hold_for_many_findings() {
        let many: Vec<(String, Enforcement, String)> = (0..500)
            .map(|i| (format!("p{i}"), Enforcement::Warn, "w".repeat(100)))
            .collect();
        let refs: Vec<(&str, Enforcement, &str)> = many.iter().map(|(p, a, m)| (p.as_str(), *a, m.as_str())).collect();
        let total: usize = warnings(&decision(&refs)).iter().map(String::len).sum();
        assert!(total < 4096, "{total}");
        let denies: Vec<(String, Enforcement, String)> = (0..500)
            .map(|i| (format!("p{i}"), Enforcement::Deny, "d".repeat(100)))
            .collect();
        let refs: Vec<(&str, Enforcement, &str)> =
            denies.iter().map(|(p, a, m)| (p.as_str(), *a, m.as_str())).collect();
        let message = denial_message("Pod", &decision(&refs));
        assert!(message.len() <= MESSAGE_BUDGET + 40, "{}", message.len());
        assert!(message.ends_with("more"));
    }
}
