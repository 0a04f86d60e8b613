//! TLS with rustls on the ring provider. Certificates come from the config
//! or, when none is configured, a self-signed one is generated with rcgen
//! into `data_dir/tls/` on first start. [`TlsManager::reload`] (SIGHUP)
//! re-reads the files; connections accepted afterwards use the new ones.
//! The client side (relay, mail client) is [`client`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

pub mod client;

pub struct TlsManager {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl TlsManager {
    /// Uses `cert`/`key` when given, else `data_dir/tls/{cert,key}.pem`,
    /// generated for `hostname` if missing.
    pub fn new(
        cert_key: Option<(PathBuf, PathBuf)>,
        data_dir: &Path,
        hostname: &str,
    ) -> Result<TlsManager> {
        let (cert, key) = match cert_key {
            Some(pair) => pair,
            None => {
                let dir = data_dir.join("tls");
                let cert = dir.join("cert.pem");
                let key = dir.join("key.pem");
                if !cert.exists() || !key.exists() {
                    generate_self_signed(&dir, &cert, &key, hostname)?;
                }
                (cert, key)
            }
        };
        let acceptor = load(&cert, &key)?;
        Ok(TlsManager {
            cert,
            key,
            current: RwLock::new(acceptor),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().expect("tls lock").clone()
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// Re-reads certificate and key; on error the old ones stay in use.
    pub fn reload(&self) -> Result<()> {
        let acceptor = load(&self.cert, &self.key)?;
        *self.current.write().expect("tls lock") = acceptor;
        Ok(())
    }
}

fn generate_self_signed(dir: &Path, cert: &Path, key: &Path, hostname: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![hostname.to_string()];
    // Clients that connect to the loopback address by number check the
    // name against IP subject alternative names (RFC 6125 §1.7.2).
    for n in ["localhost", "127.0.0.1", "::1"] {
        if hostname != n {
            names.push(n.into());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names).context("generating certificate")?;
    std::fs::write(cert, ck.cert.pem()).with_context(|| format!("writing {}", cert.display()))?;
    write_private(key, ck.signing_key.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate");
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, as
/// `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(cert: &Path) -> Result<String> {
    let der = CertificateDer::pem_file_iter(cert)?
        .next()
        .context("no certificate")??;
    Ok(client::fingerprint(der.as_ref()))
}

/// SHA-256 of `data` (certificate fingerprints).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring_digest(data)
}

fn ring_digest(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated certificate names the host, localhost and the
    /// loopback addresses as IP subject alternative names (a client
    /// connecting to 127.0.0.1 or ::1 then has no name to warn about).
    #[test]
    fn self_signed_certificates_name_the_loopback_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        generate_self_signed(dir.path(), &cert, &key, "mx.example.test").unwrap();
        load(&cert, &key).unwrap();
        let der: Vec<u8> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .to_vec();
        let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        // GeneralName iPAddress is [7] IMPLICIT OCTET STRING (RFC 5280 §4.2.1.6).
        assert!(has(&[0x87, 4, 127, 0, 0, 1]), "127.0.0.1");
        let mut v6 = vec![0x87, 16];
        v6.extend_from_slice(&[0; 15]);
        v6.push(1);
        assert!(has(&v6), "::1");
        assert!(has(b"mx.example.test") && has(b"localhost"));
    }
}
