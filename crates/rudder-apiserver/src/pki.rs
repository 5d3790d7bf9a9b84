//! The cluster CA and the certificates it signs.
//!
//! The CA is generated at first start and kept in `<data-dir>/server/tls/`
//! (restarts reuse it, so kubeconfigs stay valid); the serving certificate
//! is re-issued at every start for the current host names and addresses.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Cert { what: String, source: rcgen::Error },
}

pub(crate) use rudder_http::CertKey;

pub(crate) struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn cert_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Cert {
        what: what.to_string(),
        source,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file atomically (temp file + rename), private if `secret`.
pub fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Pki {
    /// Loads the CA from `dir`, or creates it there.
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        if cert_path.exists() && key_path.exists() {
            let ca_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
            let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
            let key = KeyPair::from_pem(&key_pem).map_err(cert_err("reading ca.key"))?;
            let issuer =
                Issuer::from_ca_cert_pem(&ca_pem, key).map_err(cert_err("reading ca.crt"))?;
            return Ok(Self { ca_pem, issuer });
        }
        let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        dn.push(DnType::CommonName, format!("rudder-ca@{now}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(cert_err("signing the CA"))?;
        let ca_pem = cert.pem();
        write_atomic(&key_path, key.serialize_pem().as_bytes(), true).map_err(io_err(&key_path))?;
        write_atomic(&cert_path, ca_pem.as_bytes(), false).map_err(io_err(&cert_path))?;
        tracing::info!(dir = %dir.display(), "created the cluster CA");
        Ok(Self {
            ca_pem,
            issuer: Issuer::new(params, key),
        })
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A serving certificate for these DNS names and IP addresses.
    pub(crate) fn serving_cert(&self, names: &[String]) -> Result<CertKey, PkiError> {
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(cert_err("serving names"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "rudder-apiserver");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, "the serving certificate")
    }

    /// A client certificate: `user` as the CN, `group` as O (how Kubernetes
    /// reads client certificates; rcgen writes at most one O).
    pub(crate) fn client_cert(&self, user: &str, group: Option<&str>) -> Result<CertKey, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        if let Some(g) = group {
            dn.push(DnType::OrganizationName, g);
        }
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, "a client certificate")
    }

    /// Signs a leaf certificate (the key usages of every leaf we issue).
    fn sign(&self, mut params: CertificateParams, what: &str) -> Result<CertKey, PkiError> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(cert_err(what))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_err(what))?;
        Ok(CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
