//! The image reference parser. Beyond "does not crash": a reference that parses re-serialises
//! to one that parses to the same value (normalisation is idempotent), and nothing that is not
//! `sha256:` + 64 lowercase hex is ever taken as a digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::images::reference::{is_sha256_digest, ImageReference};

fuzz_target!(|input: &str| {
    let Ok(reference) = ImageReference::parse(input) else {
        return;
    };
    if let Some(digest) = &reference.digest {
        assert!(is_sha256_digest(digest), "{input:?} gave the digest {digest:?}");
        assert!(digest.len() == 71 && digest.bytes().skip(7).all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
    assert!(
        reference.registry.bytes().all(|b| !b.is_ascii_uppercase()),
        "{reference:?}"
    );
    let written = reference.to_string();
    let again = ImageReference::parse(&written).unwrap_or_else(|e| panic!("{input:?} -> {written:?}: {e}"));
    assert_eq!(again, reference, "{input:?} -> {written:?}");
    assert_eq!(again.to_string(), written);
    if let Some(digest) = &reference.digest {
        assert_eq!(
            ImageReference::parse(&reference.pinned_to(digest)).map(|r| r.digest),
            Ok(Some(digest.clone()))
        );
    }
});
