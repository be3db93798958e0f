//! `check --output junit`: JUnit XML as CI systems read it (Jenkins, GitLab, Azure, the test
//! report actions): a test suite per file, a test case per object and policy that applied to it.

use std::collections::BTreeMap;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::batch::{object_name, ObjectResult};

/// How one policy ended for one object.
struct Case<'a> {
    policy: &'a str,
    /// It could not be evaluated (fail closed: a denial with the reason).
    error: bool,
    denials: Vec<&'a str>,
    /// Warnings and dry-run findings: the case passes, the messages stay in its output.
    notes: Vec<String>,
}

/// The case of an object no policy applies to (a Namespace, say), so that it is still listed.
const NO_POLICY: &str = "(no policy applies)";

impl<'a> Case<'a> {
    fn new(policy: &'a str, error: bool) -> Case<'a> {
        Case {
            policy,
            error,
            denials: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn failed(&self) -> bool {
        !self.error && !self.denials.is_empty()
    }
}

/// The cases of one object: every policy that applied, and any policy that found something.
fn cases(result: &ObjectResult) -> Vec<Case<'_>> {
    let mut cases: BTreeMap<&str, Case> = BTreeMap::new();
    for applied in &result.applied {
        cases
            .entry(&applied.policy)
            .or_insert_with(|| Case::new(&applied.policy, applied.error));
    }
    for finding in &result.findings {
        let entry = cases
            .entry(&finding.policy)
            .or_insert_with(|| Case::new(&finding.policy, false));
        match finding.action {
            "deny" => entry.denials.push(&finding.message),
            action => entry.notes.push(format!("{action}: {}", finding.message)),
        }
    }
    if cases.is_empty() {
        cases.insert(NO_POLICY, Case::new(NO_POLICY, false));
    }
    cases.into_values().collect()
}

/// One file's objects, each with its cases.
type Suite<'a> = Vec<(&'a ObjectResult, Vec<Case<'a>>)>;

/// Tests, failures and errors of `suites`' cases.
fn count<'a>(suites: impl IntoIterator<Item = &'a Suite<'a>>) -> (usize, usize, usize) {
    let cases: Vec<&Case> = suites.into_iter().flatten().flat_map(|(_, cases)| cases).collect();
    let failures = cases.iter().filter(|c| c.failed()).count();
    let errors = cases.iter().filter(|c| c.error).count();
    (cases.len(), failures, errors)
}

/// XML 1.0 cannot carry most control characters, escaped or not.
fn xml_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 => '\u{FFFD}',
            c => c,
        })
        .collect()
}

pub fn render_junit(results: &[ObjectResult]) -> String {
    // Each object's cases, worked out once for the counts and the cases written.
    let mut files: BTreeMap<&str, Suite> = BTreeMap::new();
    for result in results {
        files.entry(result.file()).or_default().push((result, cases(result)));
    }
    let (tests, failures, errors) = count(files.values());

    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    let written: std::io::Result<()> = (|| {
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        writer
            .create_element("testsuites")
            .with_attributes([
                ("name", "portcullis check"),
                ("tests", tests.to_string().as_str()),
                ("failures", failures.to_string().as_str()),
                ("errors", errors.to_string().as_str()),
            ])
            .write_inner_content(|writer| {
                for (file, suite) in &files {
                    let (tests, failures, errors) = count([suite]);
                    writer
                        .create_element("testsuite")
                        .with_attributes([
                            ("name", xml_text(file).as_str()),
                            ("tests", tests.to_string().as_str()),
                            ("failures", failures.to_string().as_str()),
                            ("errors", errors.to_string().as_str()),
                            ("skipped", "0"),
                        ])
                        .write_inner_content(|writer| {
                            for (result, cases) in suite {
                                write_cases(writer, file, result, cases)?;
                            }
                            Ok(())
                        })?;
                }
                Ok(())
            })?;
        Ok(())
    })();
    // Writing into a Vec cannot fail.
    debug_assert!(written.is_ok());
    let mut text = String::from_utf8(writer.into_inner()).unwrap_or_default();
    text.push('\n');
    text
}

fn write_cases(writer: &mut Writer<Vec<u8>>, file: &str, result: &ObjectResult, cases: &[Case]) -> std::io::Result<()> {
    let object = xml_text(&object_name(result));
    let line = result.location.as_ref().and_then(|l| l.line).map(|l| l.to_string());
    for case in cases {
        let mut attributes = vec![
            ("classname", object.clone()),
            ("name", xml_text(case.policy)),
            ("file", xml_text(file)),
        ];
        if let Some(line) = &line {
            attributes.push(("line", line.clone()));
        }
        let element = writer
            .create_element("testcase")
            .with_attributes(attributes.iter().map(|(k, v)| (*k, v.as_str())));
        let failed = case.error || case.failed();
        if !failed && case.notes.is_empty() {
            element.write_empty()?;
            continue;
        }
        element.write_inner_content(|writer| {
            if failed {
                let (tag, kind) = if case.error {
                    ("error", "error")
                } else {
                    ("failure", "deny")
                };
                let message = xml_text(&case.denials.join("\n"));
                writer
                    .create_element(tag)
                    .with_attributes([("message", message.as_str()), ("type", kind)])
                    .write_text_content(BytesText::new(&message))?;
            }
            if !case.notes.is_empty() {
                writer
                    .create_element("system-out")
                    .write_text_content(BytesText::new(&xml_text(&case.notes.join("\n"))))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::sample::result;

    #[test]
    fn a_case_per_object_and_policy_with_failures_errors_and_notes() {
        let text = render_junit(&[result(
            "web",
            &[
                ("pods.host_path", "deny", "no <hostPath> & co"),
                ("images.digest_pinning", "warn", "pin it"),
                ("broken", "deny", "policy broken failed: timeout"),
            ],
            &[
                ("pods.host_path", false),
                ("images.digest_pinning", false),
                ("broken", true),
                ("pods.privileged", false),
            ],
        )]);
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"portcullis check\" tests=\"4\" failures=\"1\" errors=\"1\">"), "{text}");
        assert!(
            text.contains("<testsuite name=\"app.yaml\" tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"0\">"),
            "{text}"
        );
        assert!(
            text.contains(
                "<testcase classname=\"Pod team-a/web\" name=\"pods.privileged\" file=\"app.yaml\" line=\"3\"/>"
            ),
            "{text}"
        );
        assert!(text.contains("<failure message=\"no &lt;hostPath&gt; &amp; co\" type=\"deny\">no &lt;hostPath&gt; &amp; co</failure>"), "{text}");
        assert!(
            text.contains("<error message=\"policy broken failed: timeout\" type=\"error\">"),
            "{text}"
        );
        assert!(text.contains("<system-out>warn: pin it</system-out>"), "{text}");
    }

    #[test]
    fn an_object_no_policy_applies_to_is_still_a_case() {
        let text = render_junit(&[result("web", &[], &[])]);
        assert!(text.contains("name=\"(no policy applies)\""), "{text}");
        assert!(text.contains("tests=\"1\" failures=\"0\""), "{text}");
    }

    #[test]
    fn control_characters_never_reach_the_xml() {
        let text = render_junit(&[result("web", &[("p", "deny", "bell\u{7}")], &[("p", false)])]);
        assert!(text.contains("bell\u{FFFD}"), "{text}");
        assert!(!text.contains('\u{7}'));
    }
}
