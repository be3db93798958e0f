//! The Gatekeeper loader: a YAML file of ConstraintTemplates and Constraints read as a policy
//! library reads it, the templates' Rego compiled and the constraints checked against their
//! templates. Beyond "does not crash": a set that loads answers a review, and a set that does
//! not load says why.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use portcullis::policy::bundle::gatekeeper_documents;
use portcullis::policy::gatekeeper::GatekeeperSet;

fuzz_target!(|text: &str| {
    let Ok(documents) = gatekeeper_documents("fuzz.yaml", text) else {
        return;
    };
    match GatekeeperSet::build(&documents, Duration::from_secs(30)) {
        Ok(set) => portcullis_fuzz::evaluate_gatekeeper(&set),
        Err(error) => assert!(!error.problems.is_empty()),
    }
});
