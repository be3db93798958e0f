//! A cosign `.sig` layer as the registry serves it, read by the sigstore crate the way
//! verification reads it: the simple-signing payload and its annotations (signature,
//! certificate, Rekor bundle). The input is the layer's parts separated by lines `--`: payload,
//! then the annotations' values. Beyond "does not crash": a layer is accepted only when its
//! payload names the very digest verified (a signature of another image is none of this one).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use portcullis::images::envelope::SIMPLE_SIGNING_MEDIA_TYPE;
use portcullis_fuzz::SIGNED_DIGEST as DIGEST;

const ANNOTATIONS: [&str; 3] = [
    "dev.cosignproject.cosign/signature",
    "dev.sigstore.cosign/certificate",
    "dev.sigstore.cosign/bundle",
];

fuzz_target!(|input: &[u8]| {
    let mut parts = split(input);
    let payload = parts.next().unwrap_or_default().to_vec();
    let annotations: BTreeMap<String, String> = ANNOTATIONS
        .iter()
        .zip(parts)
        .map(|(key, value)| (key.to_string(), String::from_utf8_lossy(value).into_owned()))
        .collect();
    let client = portcullis_fuzz::signature_client();
    let layer_digest = portcullis_fuzz::sha256(&payload);
    if let Ok(layer) = client.signature_layer(SIMPLE_SIGNING_MEDIA_TYPE, &layer_digest, annotations, payload, DIGEST) {
        assert_eq!(layer.simple_signing.critical.image.docker_manifest_digest, DIGEST);
    }
});

/// The parts of `input` between lines that are exactly `--`.
fn split(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(input);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.windows(4).position(|w| w == b"\n--\n") {
            Some(at) => {
                rest = Some(&text[at + 4..]);
                Some(&text[..at])
            }
            None => rest.take(),
        }
    })
}
