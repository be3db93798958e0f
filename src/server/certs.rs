//! Self-signed certificates for development (`serve --dev`) and for tests.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};

/// A CA and a serving certificate it signed, all PEM.
#[derive(Debug, Clone)]
pub struct CertBundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A fresh CA and a serving certificate for `names` (DNS names or IP addresses).
pub fn generate(names: &[&str]) -> Result<CertBundle, CertError> {
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params()?.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let (cert, key) = serving_certificate(names, &issuer)?;
    Ok(CertBundle {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        cert,
        key,
    })
}

/// Another serving certificate from an existing CA (rotation keeps the CA).
pub fn reissue(bundle: &CertBundle, names: &[&str]) -> Result<CertBundle, CertError> {
    let ca_key = KeyPair::from_pem(&bundle.ca_key)?;
    // Same subject and key as the CA certificate, so what it signs chains to that certificate.
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let (cert, key) = serving_certificate(names, &issuer)?;
    Ok(CertBundle {
        cert,
        key,
        ..bundle.clone()
    })
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "portcullis development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn serving_certificate(names: &[&str], issuer: &Issuer<'_, &KeyPair>) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("portcullis"));
    for name in names {
        params.subject_alt_names.push(match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*name).try_into()?),
        });
    }
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The files `serve --dev` uses, in its state directory.
#[derive(Debug, Clone)]
pub struct DevFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reuses the state directory's certificates when all are there (so a registered caBundle stays
/// valid across restarts), else writes new ones.
pub fn ensure_dev_files(state_dir: &Path) -> Result<DevFiles, CertError> {
    let files = DevFiles {
        ca_cert: state_dir.join("ca.crt"),
        cert: state_dir.join("tls.crt"),
        key: state_dir.join("tls.key"),
    };
    let ca_key = state_dir.join("ca.key");
    if [&files.ca_cert, &files.cert, &files.key, &ca_key]
        .iter()
        .all(|p| p.is_file())
    {
        return Ok(files);
    }
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(state_dir)
            .and_then(|_| write_private(path, text))
            .map_err(|source| CertError::Write {
                path: path.display().to_string(),
                source,
            })
    };
    let bundle = generate(&["localhost", "127.0.0.1", "::1"])?;
    write(&ca_key, &bundle.ca_key)?;
    write(&files.ca_cert, &bundle.ca_cert)?;
    write(&files.key, &bundle.key)?;
    write(&files.cert, &bundle.cert)?;
    Ok(files)
}

/// Keys are readable by their owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only to a new file; an existing one is tightened too.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}
