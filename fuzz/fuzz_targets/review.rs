//! The AdmissionReview decode and the whole offline decision, body bytes to the answer, on the
//! default library. Beyond "does not crash":
//! - a review read as `check` reads it (serde) is decided exactly as the webhook decides it;
//! - a semantically neutral rewrite (keys in another order, other whitespace, unknown fields
//!   where the API allows them) is answered exactly as the original: never allowed where the
//!   original is denied, nor the other way round.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::admission::{respond, Subject};
use portcullis_fuzz::{reversed_and_spaced, reviewer, served};
use serde_json::{json, Value};

fuzz_target!(|body: &[u8]| {
    let Some(answer) = served(body) else { return };
    let Ok(review) = serde_json::from_slice::<Value>(body) else {
        panic!("the webhook read a body that serde refuses: {answer}");
    };

    let request = &review["request"];
    let checked = reviewer().decide(request);
    let uid = request["uid"].as_str().unwrap_or_default();
    let checked = respond::respond(uid, &Subject::of(request).kind, &checked.decision);
    assert_eq!(checked, answer, "check's reading decides otherwise");

    let mut extended = review.clone();
    extended["portcullisFuzzUnknown"] = json!({"a": [1, "b"]});
    extended["request"]["portcullisFuzzUnknown"] = json!(null);
    let neutral = [
        reversed_and_spaced(&review).into_bytes(),
        serde_json::to_vec(&extended).expect("a value serialises"),
    ];
    for rewritten in neutral {
        let again = served(&rewritten).unwrap_or_else(|| panic!("a neutral rewrite is refused: {answer}"));
        assert_eq!(again, answer, "a neutral rewrite is decided otherwise");
    }
});
