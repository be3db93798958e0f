//! Policies: loading the library (native Rego and Gatekeeper templates), evaluating it with
//! regorus, turning results into decisions, and testing it.

pub mod bundle;
pub mod decision;
pub mod engine;
pub mod evaluator;
pub mod gatekeeper;
pub mod input;
pub mod levels;
pub mod live;
pub mod metadata;
pub mod rego;
pub mod suite;
pub mod test_result;
pub mod testing;

pub use bundle::Source;
pub use decision::{Decision, Finding};
pub use engine::PolicySet;
pub use live::LivePolicies;
