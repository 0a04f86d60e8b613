//! TLS for the client: the server's certificate is checked against the
//! system's CA certificates and the host name, or — with `tls_trust =
//! "sha256:…"` — must be exactly the pinned certificate (so `serve --dev`'s
//! self-signed certificate works without turning verification off). The
//! configuration is [`postamt_server::tls::client`]'s, as the relay's is.

use std::sync::Arc;

use postamt_server::tls::client::Trust;
pub use postamt_server::tls::client::{SYSTEM_CA_FILE, fingerprint};

use crate::{ClientError, Result};

pub fn config(tls_trust: Option<&str>) -> Result<Arc<rustls::ClientConfig>> {
    Trust::from_tls_trust(tls_trust)
        .and_then(|trust| postamt_server::tls::client::config(&trust))
        .map_err(|e| ClientError::Config(e.to_string()))
}
