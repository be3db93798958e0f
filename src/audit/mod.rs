//! `portcullis audit`: the running fleet decided with the webhook's own pipeline.
//!
//! Every object of the kinds the webhook reviews is listed from the apiserver in pages, each
//! becomes the AdmissionRequest that would create it now, and the same reviewer (facts,
//! verification and its cache, risk levels, policies, enforcement) decides it. Pods and
//! ReplicaSets that a listed workload controls count in the fleet posture (they are what runs)
//! but their findings are reported once, on that workload; an orphan Pod or a bare ReplicaSet
//! is reported itself.

pub mod listing;
pub mod summary;
pub mod what_if;

use crate::admission::Reviewer;
use crate::batch::{self, Change, ObjectResult};

pub use listing::{inventory, list, Fleet, ListError, Selection, PAGE};
pub use summary::Summary;

/// Decides every listed object with `installed` and, with a proposal, with it too on the same
/// facts (each image verified once), the findings merged by [`what_if::compare`]. Returns the
/// reported objects that have findings, and the summary of all.
pub fn decide(
    fleet: &Fleet,
    installed: &Reviewer,
    proposal: Option<&Reviewer>,
    online: Option<&tokio::runtime::Runtime>,
) -> (Vec<ObjectResult>, Summary) {
    let results: Vec<ObjectResult> = fleet
        .documents
        .iter()
        .map(|document| {
            let facts = batch::facts(installed, document, online);
            match proposal {
                None => batch::decide(installed, document, facts),
                Some(proposal) => what_if::compare(
                    batch::decide(installed, document, facts.clone()),
                    batch::decide(proposal, document, facts),
                ),
            }
        })
        .collect();
    let summary = Summary::of(&results, &fleet.reported);
    let reported = results
        .into_iter()
        .zip(&fleet.reported)
        .filter(|(result, reported)| **reported && !result.findings.is_empty())
        .map(|(result, _)| result)
        .collect();
    (reported, summary)
}

/// Exit status: without a proposal 1 when a reported object is denied; with one, 1 when the
/// proposal newly denies a reported object (what would break at its next restart).
pub fn exit_code(results: &[ObjectResult], proposal: bool) -> i32 {
    let failing = |result: &ObjectResult| match proposal {
        false => !result.allowed,
        true => result
            .findings
            .iter()
            .any(|f| f.action == "deny" && f.change == Some(Change::New)),
    };
    i32::from(results.iter().any(failing))
}
