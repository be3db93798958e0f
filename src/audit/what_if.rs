//! What-if: one object's findings under the installed policy set and under a proposed one,
//! merged into one list in which every finding says whether the proposal brings it (`new`),
//! ends it (`resolved`) or keeps it (`unchanged`).

use crate::batch::{Change, FindingResult, ObjectResult};

/// `after`'s findings marked against `before`'s, then `before`'s that `after` lacks, marked
/// resolved. The object's other fields (allowed, risk level) are `after`'s. A finding is the
/// same when its policy, action and message are.
pub fn compare(before: ObjectResult, after: ObjectResult) -> ObjectResult {
    let same =
        |a: &FindingResult, b: &FindingResult| a.policy == b.policy && a.action == b.action && a.message == b.message;
    let mut findings: Vec<FindingResult> = after
        .findings
        .iter()
        .map(|finding| FindingResult {
            change: Some(match before.findings.iter().any(|b| same(b, finding)) {
                true => Change::Unchanged,
                false => Change::New,
            }),
            ..finding.clone()
        })
        .collect();
    findings.extend(
        before
            .findings
            .into_iter()
            .filter(|b| !after.findings.iter().any(|a| same(a, b)))
            .map(|finding| FindingResult {
                change: Some(Change::Resolved),
                ..finding
            }),
    );
    ObjectResult { findings, ..after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::sample::{self, finding};

    fn result(allowed: bool, findings: Vec<FindingResult>) -> ObjectResult {
        ObjectResult {
            allowed,
            findings,
            ..sample::result("p", &[], &[])
        }
    }

    #[test]
    fn every_finding_says_what_the_proposal_does_to_it() {
        let before = result(
            false,
            vec![
                finding("pinned", "deny", "not pinned"),
                finding("busybox", "deny", "busybox"),
            ],
        );
        let after = result(
            false,
            vec![
                finding("pinned", "deny", "not pinned"),
                // Promoted from warn to deny: the deny is new, the warn resolved.
                finding("latest", "deny", "latest tag"),
            ],
        );
        let merged = compare(
            ObjectResult {
                findings: [before.findings.clone(), vec![finding("latest", "warn", "latest tag")]].concat(),
                ..before
            },
            after,
        );
        let seen: Vec<(&str, &str, Change)> = merged
            .findings
            .iter()
            .map(|f| (f.policy.as_str(), f.action, f.change.unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("pinned", "deny", Change::Unchanged),
                ("latest", "deny", Change::New),
                ("busybox", "deny", Change::Resolved),
                ("latest", "warn", Change::Resolved),
            ]
        );
        assert!(!merged.allowed);
    }
}
