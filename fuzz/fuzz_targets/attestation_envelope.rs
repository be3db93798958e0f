//! A DSSE envelope of an in-toto statement (cosign's `.att` layer, a bundle's `dsseEnvelope`),
//! read and checked as verification does, against a trust entry with a key the fuzzer does not
//! hold. Beyond "does not crash": nothing is ever a verified attestation, and an attestation is
//! only reported for a statement that reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::images::attest;
use portcullis::images::envelope::Envelope;
use serde_json::{json, Value};

fuzz_target!(|input: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<Value>(input) else {
        return;
    };
    let read = Envelope::read(&envelope);
    if let Some(read) = &read {
        let pae = read.signed_bytes();
        assert!(pae.ends_with(&read.payload) && pae.starts_with(b"DSSEv1 "));
    }
    // A key-signed bundle around it, as cosign v3 stores attestations among the referrers.
    let bundle = json!({"verificationMaterial": {"publicKey": {"hint": "fuzz"}}, "dsseEnvelope": envelope});
    let bundles = [("sha256:".to_string() + &"0".repeat(64), bundle.to_string().into_bytes())];
    let digest = portcullis_fuzz::SIGNED_DIGEST;
    let found = attest::from_bundles(
        portcullis_fuzz::signature_client(),
        None,
        &bundles,
        digest,
        portcullis_fuzz::trust_entry(),
    );
    assert!(found.len() <= 1);
    for attestation in found {
        assert!(!attestation.verified, "forged attestation verified: {attestation:?}");
        assert_eq!(
            read.as_ref().and_then(Envelope::predicate_type),
            Some(attestation.predicate_type.as_str())
        );
    }
});
