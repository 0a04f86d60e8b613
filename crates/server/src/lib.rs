//! What every postamt listener shares: accept loops with connection limits,
//! TLS (rustls on ring; implicit TLS and STARTTLS upgrades), graceful
//! shutdown, login policy and throttling, the server side of SASL, and
//! session transcripts. Protocol crates implement [`Protocol`].

pub mod auth;
pub mod blocking;
pub mod connection;
pub mod limits;
pub mod listener;
pub mod sasl;
pub mod shutdown;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod transcript;

pub use auth::{AuthPolicy, AuthThrottle, Login};
pub use connection::{Connection, Line};
pub use limits::ConnectionLimits;
pub use listener::{Protocol, ServerContext, SessionContext};
pub use shutdown::{Shutdown, ShutdownController};
pub use tls::TlsManager;
pub use transcript::{Transcript, TranscriptConfig, Transcripts};
