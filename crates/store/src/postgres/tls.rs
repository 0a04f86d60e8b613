//! TLS between a node and PostgreSQL, with rustls (the server's own TLS
//! library): tokio-postgres asks for a connector ([`MakeTlsConnect`]) and
//! this is it.
//!
//! The URL says what is wanted, with libpq's parameter names:
//!
//! - `sslmode=verify-full` or `sslmode=require`: TLS, the server's
//!   certificate verified, name included. (libpq's `require` encrypts
//!   without verifying; postamt never sends a password or mail over a
//!   channel whose other end it has not verified, so `require` is read
//!   as `verify-full`.)
//! - `sslmode=verify-ca`: TLS, the certificate's chain verified, its
//!   name not (a database reached by an address its certificate does not
//!   name).
//! - `sslmode=disable`, `allow`, `prefer`, or none: plain TCP (`prefer`
//!   would encrypt without verifying, see above), for a database on a
//!   private network or the same machine.
//! - `sslrootcert=/path/ca.pem`: the certificates to trust (PEM);
//!   without it, or with `sslrootcert=system`, the system's bundle.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and no
//! `sslrootcert`, so [`split`] takes both out of the URL before it is
//! parsed. No channel binding is offered (SCRAM works without it).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::{Result, StoreError};

/// The system's certificate bundle (Debian's ca-certificates).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Wanted {
    Plain,
    /// TLS; `names`: whether the certificate must name the host.
    Verified {
        names: bool,
        roots: Option<PathBuf>,
    },
}

/// The URL without the parameters this module reads, and what they say.
/// Both forms tokio-postgres takes: `postgres://…?k=v&…` and `k=v k=v`.
pub(super) fn split(url: &str) -> Result<(String, Wanted)> {
    let mut mode = None;
    let mut roots = None;
    let mut take = |key: &str, value: String| -> Result<bool> {
        match key {
            "sslmode" => mode = Some(value),
            "sslrootcert" => roots = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if let Some((base, query)) = url
        .split_once('?')
        .filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, percent_decoded(v)?)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if url.contains("://") {
        url.to_string()
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k.trim(), v.trim_matches('\'').to_string())? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    let roots = roots.filter(|r| r != "system").map(PathBuf::from);
    let wanted = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => {
            if roots.is_some() {
                return Err(StoreError::Invalid(
                    "[store] url: sslrootcert without sslmode=verify-full (or verify-ca): \
                     the connection would not use TLS"
                        .into(),
                ));
            }
            Wanted::Plain
        }
        Some("require" | "verify-full") => Wanted::Verified { names: true, roots },
        Some("verify-ca") => Wanted::Verified {
            names: false,
            roots,
        },
        Some(other) => {
            return Err(StoreError::Invalid(format!(
                "[store] url: sslmode={other} is not one of disable, prefer, require, \
                 verify-ca, verify-full"
            )));
        }
    };
    Ok((rest, wanted))
}

fn percent_decoded(v: &str) -> Result<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| StoreError::Invalid(format!("[store] url: bad escape in {v}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| StoreError::Invalid(format!("[store] url: {v}")))
}

/// Sets the client configuration's TLS mode and makes the connector.
pub(super) fn connector(wanted: &Wanted, config: &mut tokio_postgres::Config) -> Result<Connector> {
    let Wanted::Verified { names, roots } = wanted else {
        config.ssl_mode(SslMode::Disable);
        return Ok(Connector { config: None });
    };
    config.ssl_mode(SslMode::Require);
    let store = trusted(roots.as_deref().unwrap_or(Path::new(SYSTEM_ROOTS)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| StoreError::Invalid(format!("[store] url: sslrootcert: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Invalid(format!("[store] url: TLS: {e}")))?;
    let tls = if *names {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
    };
    Ok(Connector {
        config: Some(Arc::new(tls.with_no_client_auth())),
    })
}

/// The certificates of a PEM file: unreadable, or none in it, is an error.
fn trusted(path: &Path) -> Result<rustls::RootCertStore> {
    let bad = |e: String| {
        StoreError::Invalid(format!("[store] url: sslrootcert {}: {e}", path.display()))
    };
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        store.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(store)
}

/// `verify-ca`: the chain and the handshake are checked as always, a
/// certificate that names another host is accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The connector tokio-postgres is given; without a TLS configuration
/// (plain TCP) the client never asks it, `sslmode` being `disable`.
#[derive(Clone)]
pub(super) struct Connector {
    config: Option<Arc<rustls::ClientConfig>>,
}

impl MakeTlsConnect<Socket> for Connector {
    type Stream = Stream;
    type TlsConnect = Connect;
    type Error = io::Error;

    /// Asked for every connection, TLS or not: what cannot be done is
    /// said when a handshake is asked for ([`Connect`]).
    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        Ok(Connect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_string()).map_err(|e| format!("{domain}: {e}")),
        })
    }
}

/// One handshake to do.
pub(super) struct Connect {
    config: Option<Arc<rustls::ClientConfig>>,
    name: std::result::Result<ServerName<'static>, String>,
}

impl TlsConnect<Socket> for Connect {
    type Stream = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is off (sslmode)"))?;
            let name = self
                .name
                .map_err(|e| io::Error::other(format!("TLS: host name {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, socket)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
            Ok(Stream(Box::new(tls)))
        })
    }
}

/// A connection to PostgreSQL over TLS.
pub(super) struct Stream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl tokio_postgres::tls::TlsStream for Stream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_both_url_forms() {
        let (rest, w) = split(
            "postgres://u@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h:5432/db?application_name=x");
        assert_eq!(
            w,
            Wanted::Verified {
                names: true,
                roots: Some("/etc/ca.pem".into())
            }
        );
        let (rest, w) = split("host=h user=u sslmode=verify-ca sslrootcert=/ca.pem").unwrap();
        assert_eq!(rest, "host=h user=u");
        assert_eq!(
            w,
            Wanted::Verified {
                names: false,
                roots: Some("/ca.pem".into())
            }
        );
        // libpq's `require` is verified here; `system` is the bundle.
        let (rest, w) = split("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(
            w,
            Wanted::Verified {
                names: true,
                roots: None
            }
        );
        for plain in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=prefer",
            "postgres://u@h/db?sslmode=disable",
        ] {
            assert_eq!(split(plain).unwrap().1, Wanted::Plain, "{plain}");
        }
        assert!(split("postgres://u@h/db?sslmode=sometimes").is_err());
        assert!(split("postgres://u@h/db?sslrootcert=/ca.pem").is_err());
        assert!(split("postgres://u@h/db?sslmode=require&sslrootcert=%zz").is_err());
    }
}
