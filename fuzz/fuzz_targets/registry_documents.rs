//! What a registry serves and verification reads: an image manifest's layers (signature and
//! attestation manifests) and a referrers index. Beyond "does not crash": every digest read
//! from them, which then goes into a registry URL, is `sha256:` + 64 lowercase hex, and no
//! more than the bound is ever read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::images::envelope::{bundle_referrers, manifest_layers, BUNDLE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE};
use portcullis::images::reference::is_sha256_digest;

fuzz_target!(|document: &[u8]| {
    for (media_type, max) in [(SIMPLE_SIGNING_MEDIA_TYPE, 5), (BUNDLE_MEDIA_TYPE, 2)] {
        let layers = manifest_layers(document, media_type, max);
        assert!(layers.len() <= max);
        for layer in layers {
            assert!(is_sha256_digest(&layer.digest), "layer digest {:?}", layer.digest);
        }
    }
    let referrers = bundle_referrers(document, 3);
    assert!(referrers.len() <= 3);
    for digest in referrers {
        assert!(is_sha256_digest(&digest), "referrer digest {digest:?}");
    }
});
