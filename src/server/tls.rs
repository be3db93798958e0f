//! rustls serving configuration with a certificate that is reloaded without a restart.
//!
//! Kubelet updates a mounted Secret by writing a new timestamped directory and swapping the
//! `..data` symlink, so `tls.crt` and `tls.key` change together. A poll reads both, and the new
//! pair is used only when the key matches the certificate: a half-written or mixed pair (new
//! certificate, old key) is never served; the previous pair stays until the files agree.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no complete PEM certificate chain")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key found")]
    NoKey { path: String },
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(String),
    #[error("the reload state is poisoned (a reload panicked)")]
    Poisoned,
}

impl TlsError {
    /// Stable machine reason, for logs that must not repeat one refusal every poll.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "unreadable",
            TlsError::NoCertificate { .. } => "no_certificate",
            TlsError::NoKey { .. } => "no_key",
            TlsError::Pair(_) => "pair_mismatch",
            TlsError::Poisoned => "poisoned",
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The bytes of a certificate chain file and a key file, and their fingerprint.
struct PairFiles {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    fingerprint: [u8; 32],
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<PairFiles, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let (cert_pem, key_pem) = (read(cert_path)?, read(key_path)?);
    let fingerprint: [u8; 32] = Sha256::new()
        .chain_update(&cert_pem)
        .chain_update(&key_pem)
        .finalize()
        .into();
    Ok(PairFiles {
        cert_pem,
        key_pem,
        fingerprint,
    })
}

/// Checks that the files hold a certificate chain and the key that goes with it.
fn check_pair(files: &PairFiles, cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    // Any unreadable PEM section (a half-written intermediate, say) refuses the whole chain.
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: cert_path.display().to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key_pem).map_err(|_| TlsError::NoKey {
        path: key_path.display().to_string(),
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Pair(e.to_string()))
}

/// Reads and checks a certificate chain and key pair.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<(CertifiedKey, [u8; 32]), TlsError> {
    let files = read_pair(cert_path, key_path)?;
    Ok((check_pair(&files, cert_path, key_path)?, files.fingerprint))
}

/// Serves the current pair to every handshake and swaps in a new one when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// Fingerprint of the pair being served, so an unchanged pair is not swapped again.
    seen: Mutex<[u8; 32]>,
}

/// What a reload poll did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Reloaded,
    /// The files changed but are not a usable pair yet; the old pair is still served.
    /// `files` is the fingerprint of what was read (none when a file could not be read), so a
    /// caller tells one refused change from the next.
    Refused {
        reason: &'static str,
        message: String,
        files: Option<[u8; 32]>,
    },
}

impl ReloadingCert {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ReloadingCert, TlsError> {
        let (certified, fingerprint) = load_pair(cert_path, key_path)?;
        Ok(ReloadingCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: ArcSwap::from_pointee(certified),
            seen: Mutex::new(fingerprint),
        })
    }

    /// When the served certificate (the chain's first) expires, in seconds since the epoch.
    pub fn expires_at(&self) -> Option<i64> {
        use x509_cert::der::Decode as _;
        let current = self.current.load();
        let leaf = x509_cert::Certificate::from_der(current.end_entity_cert().ok()?).ok()?;
        let not_after = leaf.tbs_certificate().validity().not_after.to_unix_duration();
        i64::try_from(not_after.as_secs()).ok()
    }

    pub fn reload(&self) -> Reload {
        let refused = |error: TlsError, files: Option<[u8; 32]>| Reload::Refused {
            reason: error.reason(),
            message: error.to_string(),
            files,
        };
        let files = match read_pair(&self.cert_path, &self.key_path) {
            Ok(files) => files,
            Err(error) => return refused(error, None),
        };
        let certified = match check_pair(&files, &self.cert_path, &self.key_path) {
            Ok(certified) => certified,
            Err(error) => return refused(error, Some(files.fingerprint)),
        };
        let Ok(mut seen) = self.seen.lock() else {
            return refused(TlsError::Poisoned, Some(files.fingerprint));
        };
        if *seen == files.fingerprint {
            return Reload::Unchanged;
        }
        *seen = files.fingerprint;
        self.current.store(Arc::new(certified));
        Reload::Reloaded
    }

    /// A rustls config for HTTP/1.1 over TLS 1.2 and 1.3 that always uses the current pair.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair for `localhost` that expires at midnight UTC of the given day.
    fn pair_expiring(dir: &Path, name: &str, year: i32, month: u8, day: u8) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    #[test]
    fn the_expiry_is_the_served_certificates_and_follows_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_expiring(dir.path(), "first", 2031, 5, 17);
        let served = ReloadingCert::load(&cert, &key).unwrap();
        assert_eq!(served.expires_at(), Some(1_936_742_400), "2031-05-17T00:00:00Z");
        let (next_cert, next_key) = pair_expiring(dir.path(), "next", 2032, 5, 17);
        std::fs::rename(next_cert, &cert).unwrap();
        std::fs::rename(next_key, &key).unwrap();
        assert_eq!(served.reload(), Reload::Reloaded);
        assert_eq!(
            served.expires_at(),
            Some(1_936_742_400 + 366 * 86_400),
            "2032-05-17, a leap year later"
        );
    }

    #[test]
    fn each_refused_change_is_told_apart_and_the_same_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair_expiring(dir.path(), "served", 2031, 5, 17);
        let served = ReloadingCert::load(&cert, &key).unwrap();
        let refusal = |reload: Reload| match reload {
            Reload::Refused { reason, files, .. } => (reason, files),
            other => panic!("expected a refusal, got {other:?}"),
        };
        // A new certificate with the old key (a poll in the middle of a swap), twice.
        let (other_cert, _) = pair_expiring(dir.path(), "other", 2032, 5, 17);
        std::fs::copy(&other_cert, &cert).unwrap();
        let first = refusal(served.reload());
        assert_eq!(first.0, "pair_mismatch");
        assert!(first.1.is_some());
        assert_eq!(refusal(served.reload()), first, "the same files are the same refusal");
        // Another mismatched certificate: the same reason, but a change of its own.
        let (third_cert, _) = pair_expiring(dir.path(), "third", 2033, 5, 17);
        std::fs::copy(&third_cert, &cert).unwrap();
        let second = refusal(served.reload());
        assert_eq!(second.0, first.0);
        assert_ne!(second.1, first.1);
        assert_eq!(
            served.expires_at(),
            Some(1_936_742_400),
            "the first pair is still served"
        );
    }
}
