//! `check --output markdown` and `--summary`: the result as a pull-request comment or a job
//! summary, for people who read it rather than tools: the verdict first, then what to change.

use crate::batch::{object_name, ObjectResult};
use crate::policy::metadata::Metadata;

/// A policy is shown by its title where it has one (its id beside), and its remediation follows
/// the finding's message.
pub fn render_markdown(results: &[ObjectResult], metadata: &Metadata) -> String {
    let denied = results.iter().filter(|r| !r.allowed).count();
    let findings: Vec<_> = results
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r, f)))
        .collect();
    let warnings = findings.iter().filter(|(_, f)| f.action != "deny").count();
    let mut out = match denied {
        0 => format!("### ✅ portcullis: all {} object(s) admitted\n\n", results.len()),
        _ => format!(
            "### ❌ portcullis: {denied} of {} object(s) would be refused\n\n",
            results.len()
        ),
    };
    if findings.is_empty() {
        out.push_str("No policy finds anything to change.\n");
        return out;
    }
    out.push_str("| result | object | policy | what to change | where |\n|---|---|---|---|---|\n");
    // Denials first: they are what blocks the merge.
    let ordered = findings
        .iter()
        .filter(|(_, f)| f.action == "deny")
        .chain(findings.iter().filter(|(_, f)| f.action != "deny"));
    for (result, finding) in ordered {
        let place = match result.location.as_ref().and_then(|location| location.line) {
            Some(line) => format!("`{}:{line}`", result.file()),
            None => format!("`{}`", result.file()),
        };
        let words = metadata.get(&finding.policy);
        let policy = match words.and_then(|m| m.title.as_deref()) {
            Some(title) => format!("{} (`{}`)", cell(title), cell(&finding.policy)),
            None => format!("`{}`", cell(&finding.policy)),
        };
        let change = match words.and_then(|m| m.remediation.as_deref()) {
            Some(remediation) => format!("{}<br>How to fix: {}", cell(&finding.message), cell(remediation)),
            None => cell(&finding.message),
        };
        out.push_str(&format!(
            "| {} | `{}` | {policy} | {change} | {} |\n",
            finding.action,
            cell(&object_name(result)),
            cell(&place)
        ));
    }
    if warnings > 0 {
        out.push_str(&format!(
            "\n{warnings} warning(s) (`warn`, `dryrun`) do not block the merge; fix them before the policy is enforced.\n"
        ));
    }
    out
}

/// A table cell: `|` would end it and a line break would end the table.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace("\r\n", "<br>").replace('\n', "<br>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::sample;

    fn result(name: &str, findings: &[(&str, &'static str, &str)]) -> ObjectResult {
        sample::result(name, findings, &[])
    }

    #[test]
    fn the_verdict_then_denials_before_warnings() {
        let metadata = Metadata::from([(
            "pods.host_path".to_string(),
            crate::policy::metadata::PolicyMetadata {
                title: Some("No hostPath volumes".into()),
                remediation: Some("Use an emptyDir.".into()),
                ..Default::default()
            },
        )]);
        let text = render_markdown(
            &[
                result("a", &[("images.digest_pinning", "warn", "pin it")]),
                result("b", &[("pods.host_path", "deny", "remove | the\nvolume")]),
            ],
            &metadata,
        );
        assert_eq!(
            text,
            "### ❌ portcullis: 1 of 2 object(s) would be refused\n\n\
             | result | object | policy | what to change | where |\n|---|---|---|---|---|\n\
             | deny | `Pod team-a/b` | No hostPath volumes (`pods.host_path`) | remove \\| the<br>volume<br>How to fix: Use an emptyDir. | `app.yaml:3` |\n\
             | warn | `Pod team-a/a` | `images.digest_pinning` | pin it | `app.yaml:3` |\n\
             \n1 warning(s) (`warn`, `dryrun`) do not block the merge; fix them before the policy is enforced.\n"
        );
    }

    #[test]
    fn a_clean_run_says_so() {
        assert_eq!(
            render_markdown(&[result("a", &[])], &Metadata::new()),
            "### ✅ portcullis: all 1 object(s) admitted\n\nNo policy finds anything to change.\n"
        );
    }
}
