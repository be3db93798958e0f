//! An RFC 3161 timestamp (a `TimeStampResp` or a bare `TimeStampToken`, DER) checked as
//! verification checks a `.sig` layer's timestamp annotation, against the timestamp authority
//! of the fixtures. Beyond "does not crash": a timestamp gives a time only for the bytes it was
//! made for, signed by that authority, and the fuzzer holds no authority's key, so any time it
//! gets must come from the genuine fixture's signature over these very bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::images::timestamp::{verify, TimestampAuthority};
use portcullis::images::window::Window;

const SIGNED: &[u8] = include_bytes!("../../tests/fixtures/timestamps/signed.bin");
const GENUINE: &[u8] = include_bytes!("../../tests/fixtures/timestamps/response.der");

fn authorities() -> &'static [TimestampAuthority] {
    static AUTHORITIES: OnceLock<Vec<TimestampAuthority>> = OnceLock::new();
    AUTHORITIES.get_or_init(|| {
        let certificate = include_bytes!("../../tests/fixtures/timestamps/tsa.der");
        vec![TimestampAuthority::new(certificate, Window::default()).expect("the fixture's certificate")]
    })
}

fuzz_target!(|input: &[u8]| {
    if let Ok(time) = verify(input, SIGNED, authorities()) {
        // Only the genuine signed content gives a time, and always the same.
        let genuine = verify(GENUINE, SIGNED, authorities()).expect("the fixture verifies");
        assert_eq!(time, genuine, "a time other than the authority signed");
    }
    // Other bytes are never vouched for by any input.
    assert!(verify(input, b"other bytes", authorities()).is_err());
});
