//! The client side of TLS, for the relay (STARTTLS to other MTAs) and the
//! mail client (implicit TLS, STARTTLS, STLS): one rustls `ClientConfig`
//! built from one [`Trust`], whom the client takes the server to be.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Where the system keeps its CA bundle (Debian's ca-certificates).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Whom a TLS client trusts to be the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's CA certificates ([`SYSTEM_CA_FILE`]) and the host
    /// name. Without the bundle nobody is trusted.
    System,
    /// The CA certificates in this PEM file and the host name (the relay's
    /// `tls_verify = true` with `tls_ca_file`).
    CaFile(PathBuf),
    /// Exactly the certificate with this SHA-256 fingerprint, `AB:CD:…`
    /// (the mail client's `tls_trust = "sha256:…"`: `serve --dev`'s
    /// self-signed certificate works without turning verification off).
    Pinned(String),
    /// Any certificate: the connection is encrypted, the server not
    /// authenticated (opportunistic TLS, RFC 7435; Postfix's `may`).
    EncryptOnly,
}

impl Trust {
    /// The mail client's `tls_trust`: none means the system's CAs,
    /// `sha256:AB:CD:…` (any case) a pinned certificate.
    pub fn from_tls_trust(tls_trust: Option<&str>) -> Result<Trust, Error> {
        let Some(pin) = tls_trust else {
            return Ok(Trust::System);
        };
        let fingerprint = pin
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::BadPin(pin.into()))?;
        Ok(Trust::Pinned(fingerprint.to_ascii_uppercase()))
    }

    /// The relay's `tls_verify` and `tls_ca_file`.
    pub fn from_relay(verify: bool, ca_file: &Path) -> Trust {
        if verify {
            Trust::CaFile(ca_file.to_path_buf())
        } else {
            Trust::EncryptOnly
        }
    }
}

/// Why no configuration could be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tls_trust {0:?}: expected sha256:AB:CD:…")]
    BadPin(String),
    #[error("{}: {error}", path.display())]
    CaFile { path: PathBuf, error: String },
    #[error("{}: no CA certificate", .0.display())]
    NoCaCertificate(PathBuf),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The client configuration for `trust`, on the ring provider.
pub fn config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::System => builder
            .with_root_certificates(system_roots())
            .with_no_client_auth(),
        Trust::CaFile(path) => builder
            .with_root_certificates(ca_file_roots(path)?)
            .with_no_client_auth(),
        Trust::Pinned(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CertificateCheck {
                pinned: Some(fingerprint.clone()),
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::EncryptOnly => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CertificateCheck {
                pinned: None,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `AB:CD:…`, the SHA-256 of a certificate (DER) as `postamt serve --dev`
/// and `openssl x509 -fingerprint -sha256` print it.
pub fn fingerprint(der: &[u8]) -> String {
    super::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The system's bundle; certificates that cannot be read are left out.
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(certs) = CertificateDer::pem_file_iter(SYSTEM_CA_FILE) {
        for cert in certs.flatten() {
            let _ = roots.add(cert);
        }
    }
    roots
}

/// A configured CA file: unreadable or without certificates is an error.
fn ca_file_roots(path: &Path) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let unreadable = |e: rustls_pki_types::pem::Error| Error::CaFile {
        path: path.into(),
        error: e.to_string(),
    };
    for cert in CertificateDer::pem_file_iter(path).map_err(unreadable)? {
        let _ = roots.add(cert.map_err(unreadable)?);
    }
    if roots.is_empty() {
        return Err(Error::NoCaCertificate(path.into()));
    }
    Ok(roots)
}

/// The verifier of the two trust modes that are not WebPKI: the pinned
/// certificate, or any. Either way the handshake signatures are checked,
/// so the server holds the key of the certificate it showed.
#[derive(Debug)]
struct CertificateCheck {
    /// The fingerprint the certificate must have; `None`: any.
    pinned: Option<String>,
    /// The provider's, for the handshake signatures.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for CertificateCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(want) = &self.pinned else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = fingerprint(end_entity.as_ref());
        if &got == want {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate sha256:{got} is not the pinned sha256:{want}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    #[test]
    fn trust_modes_from_the_settings() {
        assert_eq!(Trust::from_tls_trust(None).unwrap(), Trust::System);
        assert_eq!(
            Trust::from_tls_trust(Some("sha256:ab:cd:EF")).unwrap(),
            Trust::Pinned("AB:CD:EF".into())
        );
        let bad = Trust::from_tls_trust(Some("md5:AB")).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "tls_trust \"md5:AB\": expected sha256:AB:CD:…"
        );
        let ca = Path::new("/etc/postamt/ca.pem");
        assert_eq!(Trust::from_relay(true, ca), Trust::CaFile(ca.into()));
        assert_eq!(Trust::from_relay(false, ca), Trust::EncryptOnly);
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = config(&Trust::CaFile(missing.clone())).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", missing.display())),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = config(&Trust::CaFile(empty.clone())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: no CA certificate", empty.display())
        );
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ck.cert.pem()).unwrap();
        assert!(config(&Trust::CaFile(ca)).is_ok());
        // The system bundle may be missing: then nobody is trusted.
        assert!(config(&Trust::System).is_ok());
    }

    /// A handshake in memory between a client with `trust` and a server
    /// with a fresh self-signed certificate; returns that certificate's
    /// fingerprint and the client's verdict.
    fn handshake(trust: impl FnOnce(&str) -> Trust) -> (String, Result<(), String>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = ck.cert.der().clone();
        let fp = fingerprint(cert.as_ref());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let client_config = config(&trust(&fp)).unwrap();
        let mut client = rustls::ClientConnection::new(client_config, name).unwrap();
        // Pass the flights back and forth until neither side has more.
        loop {
            let sent = pass(&mut client, &mut server).map_err(|e| format!("server: {e}"));
            let answered = pass(&mut server, &mut client).map_err(|e| e.to_string());
            match (sent, answered) {
                (Ok(false), Ok(false)) => break,
                (Err(e), _) | (_, Err(e)) => return (fp, Err(e)),
                _ => {}
            }
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        (fp, Ok(()))
    }

    /// Moves what `from` has to send into `to`: whether anything moved, or
    /// the error `to` found in it.
    fn pass<A, B>(
        from: &mut rustls::ConnectionCommon<A>,
        to: &mut rustls::ConnectionCommon<B>,
    ) -> Result<bool, rustls::Error> {
        let mut wire = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut wire).unwrap();
        }
        let mut rest = &wire[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
            to.process_new_packets()?;
        }
        Ok(!wire.is_empty())
    }

    #[test]
    fn pinned_certificate_and_encrypt_only() {
        let (_, verdict) = handshake(|fp| Trust::Pinned(fp.into()));
        assert_eq!(verdict, Ok(()));
        let (fp, verdict) = handshake(|_| Trust::Pinned("00:11:22".into()));
        let e = verdict.unwrap_err();
        assert!(
            e.contains(&format!(
                "certificate sha256:{fp} is not the pinned sha256:00:11:22"
            )),
            "{e}"
        );
        // A self-signed certificate: any is fine without authentication,
        // none with the system's CAs.
        assert_eq!(handshake(|_| Trust::EncryptOnly).1, Ok(()));
        assert!(handshake(|_| Trust::System).1.is_err());
    }

    #[test]
    fn fingerprint_is_colon_separated_upper_hex() {
        let fp = fingerprint(b"abc");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("BA:78:16:BF:"), "{fp}");
    }
}
