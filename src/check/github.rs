//! `check --output github`: GitHub Actions workflow commands, one per finding, so that each
//! shows as an annotation on its object's line in the pull request's diff.

use crate::batch::{object_name, ObjectResult};
use crate::policy::metadata::Metadata;

/// `::error` for a denial, `::warning` for a warning, `::notice` for a dry-run finding; the
/// title is the policy's own title with its id (the id alone without one), the message names
/// the object. Allowed objects print nothing.
pub fn render_github<'a>(results: impl IntoIterator<Item = &'a ObjectResult>, metadata: &Metadata) -> String {
    let mut out = String::new();
    for result in results {
        let mut properties = Vec::new();
        if let Some(location) = &result.location {
            properties.push(format!("file={}", property(&location.file)));
            if let Some(line) = location.line {
                properties.push(format!("line={line}"));
            }
        }
        let object = object_name(result);
        for finding in &result.findings {
            let command = match finding.action {
                "deny" => "error",
                "warn" => "warning",
                _ => "notice",
            };
            let mut fields = properties.clone();
            let title = match metadata.get(&finding.policy).and_then(|m| m.title.as_deref()) {
                Some(title) => format!("{title} ({})", finding.policy),
                None => finding.policy.clone(),
            };
            fields.push(format!("title={}", property(&title)));
            out.push_str(&format!(
                "::{command} {}::{}\n",
                fields.join(","),
                data(&format!("{object}: {}", finding.message))
            ));
        }
    }
    out
}

/// A command's message: `%`, CR and LF escaped, as the runner unescapes them.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A command's property value: as [`data`], and `:` and `,`, which end a property.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{sample, Location};

    /// `web`'s result with `findings`, at `location`.
    fn result(location: Option<Location>, findings: &[(&str, &'static str, &str)]) -> ObjectResult {
        ObjectResult {
            location,
            ..sample::result("web", findings, &[])
        }
    }

    fn render_github_plain(results: &[ObjectResult]) -> String {
        render_github(results, &Metadata::new())
    }

    #[test]
    fn a_policys_title_leads_its_id() {
        let metadata = Metadata::from([(
            "pods.host_path".to_string(),
            crate::policy::metadata::PolicyMetadata {
                title: Some("No hostPath volumes".into()),
                ..Default::default()
            },
        )]);
        let text = render_github(&[result(None, &[("pods.host_path", "deny", "m")])], &metadata);
        assert_eq!(
            text,
            "::error title=No hostPath volumes (pods.host_path)::Pod team-a/web: m\n"
        );
    }

    #[test]
    fn one_command_per_finding_on_the_objects_line() {
        let location = Location {
            file: "deploy/app.yaml".into(),
            line: Some(12),
        };
        let text = render_github_plain(&[result(
            Some(location),
            &[
                ("pods.host_path", "deny", "remove the hostPath volume"),
                ("images.digest_pinning", "warn", "pin it"),
                ("K8sRequiredLabels/owner", "dryrun", "add an owner label"),
            ],
        )]);
        assert_eq!(
            text,
            "::error file=deploy/app.yaml,line=12,title=pods.host_path::Pod team-a/web: remove the hostPath volume\n\
             ::warning file=deploy/app.yaml,line=12,title=images.digest_pinning::Pod team-a/web: pin it\n\
             ::notice file=deploy/app.yaml,line=12,title=K8sRequiredLabels/owner::Pod team-a/web: add an owner label\n"
        );
    }

    #[test]
    fn values_are_escaped_so_that_they_cannot_end_the_command() {
        let location = Location {
            file: "a,b:c%.yaml".into(),
            line: None,
        };
        let text = render_github_plain(&[result(
            Some(location),
            &[("x", "deny", "100% wrong:\r\nsee ::stop-commands::")],
        )]);
        assert_eq!(
            text,
            "::error file=a%2Cb%3Ac%25.yaml,title=x::Pod team-a/web: 100%25 wrong:%0D%0Asee ::stop-commands::\n"
        );
    }

    #[test]
    fn an_allowed_object_or_one_without_a_file_prints_accordingly() {
        assert_eq!(render_github_plain(&[result(None, &[])]), "");
        assert_eq!(
            render_github_plain(&[result(None, &[("x", "deny", "m")])]),
            "::error title=x::Pod team-a/web: m\n"
        );
    }
}
