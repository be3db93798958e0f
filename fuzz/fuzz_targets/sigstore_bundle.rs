//! A Sigstore bundle among an image's referrers (cosign v3's default), read as verification
//! reads it: a signing bundle or an attestation, then checked (by the crate when it holds a
//! certificate, by portcullis when it was signed with a key). Beyond "does not crash": a
//! signature is accepted only for a statement about the very digest verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::images::envelope::{signing_bundle, statement_is_about, Envelope};
use portcullis::images::signatures::bundle_signature;

fuzz_target!(|bundle: &[u8]| {
    let digest = portcullis_fuzz::SIGNED_DIGEST;
    let Some(parsed) = signing_bundle(bundle) else { return };
    let layer_digest = portcullis_fuzz::sha256(bundle);
    let source = portcullis_fuzz::source(digest);
    let client = portcullis_fuzz::signature_client();
    if let Ok(layer) = bundle_signature(client, &parsed, bundle, &layer_digest, digest, &source) {
        assert_eq!(layer.simple_signing.critical.image.docker_manifest_digest, digest);
        if layer.certificate_signature.is_none() {
            let envelope = Envelope::read(&parsed["dsseEnvelope"]).expect("an accepted bundle has an envelope");
            assert!(statement_is_about(&envelope.statement, digest));
            assert_eq!(layer.raw_data, envelope.signed_bytes());
        }
    }
});
