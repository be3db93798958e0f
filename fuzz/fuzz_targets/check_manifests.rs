//! `check`'s manifest reader: multi-document YAML or JSON, Lists, AdmissionReviews, with the
//! line each object starts at. Beyond "does not crash": every object it reads becomes a CREATE
//! request (or the review's own request) that the reviewer decides, and every line it points
//! at is a line of the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::check::read_text;

fuzz_target!(|text: &str| {
    let Ok(documents) = read_text("fuzz.yaml", text) else {
        return;
    };
    let lines = text.lines().count().max(1);
    for document in documents.iter().take(4) {
        if let Some(line) = document.location.as_ref().and_then(|l| l.line) {
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
        }
        assert!(document.request.is_object());
        portcullis_fuzz::reviewer().decide(&document.request);
    }
});
