//! `portcullis audit`: the running fleet decided with the webhook's own pipeline.
//!
//! Every object of the kinds the webhook reviews is listed from the apiserver in pages, each
//! becomes the AdmissionRequest that would create it now, and the same reviewer (facts,
//! verification and its cache, risk levels, policies, enforcement) decides it. Only its result
//! is kept, not the object. Pods and ReplicaSets that a listed workload controls count in the
//! fleet posture (they are what runs) but their findings are reported once, on that workload;
//! an orphan Pod or a bare ReplicaSet is reported itself.

pub mod audited;
pub mod changes;
pub mod continuous;
pub mod fleet;
pub mod lease;
pub mod listing;
pub mod reports;
pub mod summary;
pub mod what_if;
pub mod writer;

use crate::batch::{Change, ObjectResult};

pub use audited::{controller, pass, reported, AuditError, Audited, Completed, Pass, USER};
pub use listing::{exceptions, inventory, namespaces, ListError, Pages, Selection, PAGE};
pub use summary::Summary;

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
