//! Policies: loading the library, evaluating it with regorus, and turning results into decisions.

pub mod bundle;
pub mod decision;
pub mod engine;
pub mod input;
pub mod testing;

pub use bundle::Source;
pub use decision::{Decision, Finding};
pub use engine::{PolicyResult, PolicySet};
