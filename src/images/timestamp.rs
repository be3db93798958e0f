//! RFC 3161 timestamps: a timestamp authority's signed statement that some bytes (a signature)
//! existed at a time. A keyless signature's certificate lives ten minutes, so what matters is
//! when the signature was made: a transparency-log entry says so, and so does a timestamp from
//! an authority of the trusted root (`timestampAuthorities`), as cosign and policy-controller
//! accept it. This checks one timestamp, as cosign writes it (`--timestamp-server-url`), and
//! gives its time.

use cms::cert::x509::der::asn1::{ObjectIdentifier, OctetString};
use cms::cert::x509::der::{self, Decode, Encode, Reader as _, Tagged as _};
use cms::cert::x509::{self as x509, Certificate};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use sha2::Digest as _;
use x509_tsp::{MessageImprint, TimeStampResp};

use super::window::Window;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A timestamp authority of the trusted root: the certificate that signs its timestamps (the
/// first of its chain) and the window in which it may.
#[derive(Debug, Clone)]
pub struct TimestampAuthority {
    certificate: Certificate,
    window: Window,
}

/// Why a timestamp gives no time (it then vouches for nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("not an RFC 3161 timestamp: {0}")]
    Malformed(String),
    #[error("the timestamp authority refused the request (status {0})")]
    Refused(u8),
    #[error("the timestamp is of other bytes than this signature")]
    OtherBytes,
    #[error("the timestamp uses an unsupported algorithm ({0})")]
    Unsupported(ObjectIdentifier),
    #[error("the timestamp's signed attributes do not match its content")]
    Attributes,
    #[error("the timestamp is not signed by a timestamp authority of the trusted root")]
    UnknownSigner,
    #[error("the timestamp's signature does not verify")]
    BadSignature,
    #[error("the timestamp authority was not valid at the timestamp's time")]
    OutsideWindow,
    #[error("the signing certificate was not valid at the timestamp's time")]
    CertificateNotValid,
    #[error("no trusted root, so no timestamp authority to trust")]
    NoTrustedRoot,
    #[error("no RFC 3161 timestamp")]
    Absent,
}

impl TimestampAuthority {
    /// From the trusted root: the signing certificate's DER and the authority's `validFor`,
    /// narrowed to the certificate's own validity.
    pub fn new(certificate_der: &[u8], window: Window) -> Result<TimestampAuthority, String> {
        let certificate = Certificate::from_der(certificate_der)
            .map_err(|e| format!("a timestamp authority's certificate is not X.509: {e}"))?;
        let validity = &certificate.tbs_certificate.validity;
        let window = window.within(unix(&validity.not_before), unix(&validity.not_after));
        Ok(TimestampAuthority { certificate, window })
    }

    pub fn window(&self) -> Window {
        self.window
    }

    fn signed(&self, signer: &SignerIdentifier) -> bool {
        let tbs = &self.certificate.tbs_certificate;
        match signer {
            SignerIdentifier::IssuerAndSerialNumber(id) => {
                id.issuer == tbs.issuer && id.serial_number == tbs.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(id) => tbs
                .extensions
                .iter()
                .flatten()
                .filter(|e| e.extn_id == der::oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
                .any(|e| {
                    OctetString::from_der(e.extn_value.as_bytes())
                        .is_ok_and(|key_id| key_id.as_bytes() == id.0.as_bytes())
                }),
        }
    }
}

fn unix(time: &x509::time::Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The time (seconds since the epoch) at which `token` (a DER `TimeStampResp`, or the bare
/// `TimeStampToken`) says `signed` existed, if an authority of `authorities` signed it inside
/// its window.
pub fn verify(token: &[u8], signed: &[u8], authorities: &[TimestampAuthority]) -> Result<i64, TimestampError> {
    let malformed = |what: &str, e: der::Error| TimestampError::Malformed(format!("{what}: {e}"));
    let content = match TimeStampResp::from_der(token) {
        Ok(response) => {
            let status = response.status.status as u8;
            // 0: granted, 1: granted with modifications.
            if status > 1 {
                return Err(TimestampError::Refused(status));
            }
            response
                .time_stamp_token
                .ok_or_else(|| TimestampError::Malformed("a response without a token".into()))?
        }
        Err(_) => ContentInfo::from_der(token).map_err(|e| malformed("token", e))?,
    };
    if content.content_type != ID_SIGNED_DATA {
        return Err(TimestampError::Malformed("the token is not CMS SignedData".into()));
    }
    let signed_data: SignedData = content.content.decode_as().map_err(|e| malformed("SignedData", e))?;
    let encapsulated = &signed_data.encap_content_info;
    if encapsulated.econtent_type != ID_CT_TST_INFO {
        return Err(TimestampError::Malformed("the token does not hold a TSTInfo".into()));
    }
    let tst_der = encapsulated
        .econtent
        .as_ref()
        .ok_or_else(|| TimestampError::Malformed("the token has no content".into()))?
        .decode_as::<OctetString>()
        .map_err(|e| malformed("TSTInfo octets", e))?;
    let (imprint, time) = read_tst_info(tst_der.as_bytes())?;

    if digest(&imprint.hash_algorithm.oid, signed)? != imprint.hashed_message.as_bytes() {
        return Err(TimestampError::OtherBytes);
    }
    let [signer] = signed_data.signer_infos.0.as_slice() else {
        return Err(TimestampError::Malformed("not exactly one signer".into()));
    };
    let signed_attributes = check_attributes(signer, tst_der.as_bytes())?;
    let authority = authorities
        .iter()
        .find(|authority| authority.signed(&signer.sid))
        .ok_or(TimestampError::UnknownSigner)?;
    verify_signature(authority, signer, &signed_attributes)?;
    if !authority.window.contains(time) {
        return Err(TimestampError::OutsideWindow);
    }
    Ok(time)
}

/// The message imprint and time of a TSTInfo. Read field by field rather than with
/// `x509_tsp::TstInfo`: RFC 3161 allows fractional seconds in `genTime` (timestamp authorities
/// write them), which DER's strict GeneralizedTime refuses.
fn read_tst_info(der_bytes: &[u8]) -> Result<(MessageImprint, i64), TimestampError> {
    let malformed = |e: der::Error| TimestampError::Malformed(format!("TSTInfo: {e}"));
    let mut reader = der::SliceReader::new(der_bytes).map_err(malformed)?;
    let (imprint, time) = reader
        .sequence(|fields| {
            let _version = der::asn1::Int::decode(fields)?;
            let _policy = ObjectIdentifier::decode(fields)?;
            let imprint = MessageImprint::decode(fields)?;
            let _serial = der::asn1::Int::decode(fields)?;
            let time = der::Any::decode(fields)?;
            // accuracy, ordering, nonce, tsa and extensions do not change what is vouched for.
            fields.read_slice(fields.remaining_len())?;
            Ok((imprint, time))
        })
        .map_err(malformed)?;
    if time.tag() != der::Tag::GeneralizedTime {
        return Err(TimestampError::Malformed(
            "TSTInfo: genTime is not a GeneralizedTime".into(),
        ));
    }
    Ok((imprint, generalized_time(time.value())?))
}

/// `YYYYMMDDHHMMSS[.fraction]Z` in seconds since the epoch (the fraction dropped).
fn generalized_time(text: &[u8]) -> Result<i64, TimestampError> {
    let invalid = || TimestampError::Malformed(format!("genTime {:?}", String::from_utf8_lossy(text)));
    let body = std::str::from_utf8(text)
        .ok()
        .filter(|text| text.is_ascii())
        .and_then(|text| text.strip_suffix('Z'))
        .ok_or_else(invalid)?;
    let (whole, fraction) = body.split_at(body.len().min(14));
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if whole.len() != 14 || !digits(whole) || !(fraction.is_empty() || fraction.strip_prefix('.').is_some_and(digits)) {
        return Err(invalid());
    }
    let time = jiff::fmt::strtime::parse("%Y%m%d%H%M%S", whole)
        .and_then(|parsed| parsed.to_datetime())
        .and_then(|datetime| datetime.to_zoned(jiff::tz::TimeZone::UTC))
        .map_err(|_| invalid())?;
    Ok(time.timestamp().as_second())
}

/// The signer's signed attributes (their DER, which is what it signed), once they are shown
/// to be about this content: its type is TSTInfo and its digest is the content's.
fn check_attributes(signer: &SignerInfo, content: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let attributes = signer.signed_attrs.as_ref().ok_or(TimestampError::Attributes)?;
    let value_of = |oid: ObjectIdentifier| {
        attributes
            .iter()
            .find(|attribute| attribute.oid == oid)
            .and_then(|attribute| attribute.values.get(0))
    };
    let content_type = value_of(ID_CONTENT_TYPE).and_then(|value| value.decode_as::<ObjectIdentifier>().ok());
    let message_digest = value_of(ID_MESSAGE_DIGEST).and_then(|value| value.decode_as::<OctetString>().ok());
    let expected = digest(&signer.digest_alg.oid, content)?;
    if content_type != Some(ID_CT_TST_INFO) || message_digest.is_none_or(|d| d.as_bytes() != expected.as_slice()) {
        return Err(TimestampError::Attributes);
    }
    attributes.to_der().map_err(|_| TimestampError::Attributes)
}

fn digest(algorithm: &ObjectIdentifier, bytes: &[u8]) -> Result<Vec<u8>, TimestampError> {
    Ok(match *algorithm {
        SHA256 => sha2::Sha256::digest(bytes).to_vec(),
        SHA384 => sha2::Sha384::digest(bytes).to_vec(),
        SHA512 => sha2::Sha512::digest(bytes).to_vec(),
        other => return Err(TimestampError::Unsupported(other)),
    })
}

fn verify_signature(authority: &TimestampAuthority, signer: &SignerInfo, message: &[u8]) -> Result<(), TimestampError> {
    use ring::signature;
    let key_info = &authority.certificate.tbs_certificate.subject_public_key_info;
    let curve = key_info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|parameters| parameters.decode_as::<ObjectIdentifier>().ok());
    let is_ec = key_info.algorithm.oid == EC_PUBLIC_KEY;
    let algorithm: &dyn signature::VerificationAlgorithm = match (signer.signature_algorithm.oid, is_ec, curve) {
        (ECDSA_SHA256, true, Some(P256)) => &signature::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA384, true, Some(P256)) => &signature::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA256, true, Some(P384)) => &signature::ECDSA_P384_SHA256_ASN1,
        (ECDSA_SHA384, true, Some(P384)) => &signature::ECDSA_P384_SHA384_ASN1,
        (RSA_SHA256, false, _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (RSA_SHA384, false, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (RSA_SHA512, false, _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (other, ..) => return Err(TimestampError::Unsupported(other)),
    };
    let key = key_info
        .subject_public_key
        .as_bytes()
        .ok_or(TimestampError::BadSignature)?;
    signature::UnparsedPublicKey::new(algorithm, key)
        .verify(message, signer.signature.as_bytes())
        .map_err(|_| TimestampError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &[u8] = include_bytes!("../../tests/fixtures/timestamps/response.der");
    const TOKEN: &[u8] = include_bytes!("../../tests/fixtures/timestamps/token.der");
    const SIGNED: &[u8] = include_bytes!("../../tests/fixtures/timestamps/signed.bin");
    const TSA: &[u8] = include_bytes!("../../tests/fixtures/timestamps/tsa.der");

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn authority(window: Window) -> Vec<TimestampAuthority> {
        vec![TimestampAuthority::new(TSA, window).unwrap()]
    }

    #[test]
    fn a_response_or_a_bare_token_of_a_trusted_authority_gives_its_time() {
        let trusted = authority(Window::default());
        for token in [RESPONSE, TOKEN] {
            assert_eq!(verify(token, SIGNED, &trusted), Ok(at("2026-12-07T10:44:54Z")));
        }
    }

    #[test]
    fn a_timestamp_of_other_bytes_vouches_for_nothing() {
        let trusted = authority(Window::default());
        assert_eq!(
            verify(RESPONSE, b"other bytes", &trusted),
            Err(TimestampError::OtherBytes)
        );
    }

    #[test]
    fn only_an_authority_of_the_trusted_root_and_inside_its_window_counts() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "tsa signing");
        let other = params.self_signed(&key).unwrap();
        let others = vec![TimestampAuthority::new(other.der(), Window::default()).unwrap()];
        assert_eq!(verify(RESPONSE, SIGNED, &others), Err(TimestampError::UnknownSigner));
        assert_eq!(verify(RESPONSE, SIGNED, &[]), Err(TimestampError::UnknownSigner));
        let retired = authority(Window {
            start: None,
            end: Some(at("2026-12-07T10:00:00Z")),
        });
        assert_eq!(verify(RESPONSE, SIGNED, &retired), Err(TimestampError::OutsideWindow));
    }

    #[test]
    fn a_changed_signature_or_garbage_is_refused() {
        let trusted = authority(Window::default());
        let mut tampered = RESPONSE.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(verify(&tampered, SIGNED, &trusted), Err(TimestampError::BadSignature));
        for garbage in [&b""[..], b"\x30\x03\x02\x01\x00", &RESPONSE[..100]] {
            assert!(
                matches!(verify(garbage, SIGNED, &trusted), Err(TimestampError::Malformed(_))),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn generalized_times_with_and_without_a_fraction() {
        assert_eq!(generalized_time(b"20261207104454Z"), Ok(at("2026-12-07T10:44:54Z")));
        assert_eq!(generalized_time(b"20261207104454.352Z"), Ok(at("2026-12-07T10:44:54Z")));
        for bad in [
            &b"20261207104454"[..],
            b"20261207104454.Z2",
            b"2026120710445Z",
            b"Z",
            b"",
        ] {
            assert!(generalized_time(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
