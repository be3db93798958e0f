//! `portcullis audit`: the running fleet decided with the webhook's own pipeline.
//!
//! Every object of the kinds the webhook reviews is listed from the apiserver in pages, each
//! becomes the AdmissionRequest that would create it now, and the same reviewer (facts,
//! verification and its cache, risk levels, policies, enforcement) decides it. Pods and
//! ReplicaSets that a listed workload controls count in the fleet posture (they are what runs)
//! but their findings are reported once, on that workload; an orphan Pod or a bare ReplicaSet
//! is reported itself.

pub mod listing;
pub mod reports;
pub mod summary;
pub mod what_if;

use crate::admission::Reviewer;
use crate::batch::{self, Change, Document, ObjectResult};

pub use listing::{inventory, list, Fleet, ListError, Selection, PAGE};
pub use summary::Summary;

/// Decides every listed object (in the fleet's order) with `installed` and, with a proposal,
/// with it too on the same facts (each image verified once), the findings merged by
/// [`what_if::compare`].
pub fn decide(
    fleet: &Fleet,
    installed: &Reviewer,
    proposal: Option<&Reviewer>,
    online: Option<&tokio::runtime::Runtime>,
) -> Vec<ObjectResult> {
    fleet
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
        .collect()
}

/// The objects whose findings are reported on themselves, with their results (`results` in the
/// fleet's order, as [`decide`] gives them).
pub fn reported<'a>(
    fleet: &'a Fleet,
    results: &'a [ObjectResult],
) -> impl Iterator<Item = (&'a Document, &'a ObjectResult)> {
    fleet
        .documents
        .iter()
        .zip(results)
        .zip(&fleet.reported)
        .filter(|(_, reported)| **reported)
        .map(|(pair, _)| pair)
}

/// Exit status: without a proposal 1 when a reported object is denied; with one, 1 when the
/// proposal newly denies a reported object (what would break at its next restart).
pub fn exit_code<'a>(mut results: impl Iterator<Item = &'a ObjectResult>, proposal: bool) -> i32 {
    let failing = |result: &ObjectResult| match proposal {
        false => !result.allowed,
        true => result
            .findings
            .iter()
            .any(|f| f.action == "deny" && f.change == Some(Change::New)),
    };
    i32::from(results.any(failing))
}
