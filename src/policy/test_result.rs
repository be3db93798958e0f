//! One result of `portcullis test`: a Rego unit test or a gator suite case.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct TestResult {
    /// `data.<package>.<rule>`
    pub name: String,
    pub passed: bool,
    /// Why it failed: false, undefined, or an evaluation error.
    pub detail: Option<String>,
    pub duration: Duration,
}
