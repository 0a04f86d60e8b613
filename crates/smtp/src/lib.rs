//! SMTP: the inbound MTA (RFC 5321), message submission (RFC 6409, with
//! AUTH RFC 4954 and STARTTLS RFC 3207) and LMTP (RFC 2033). The sans-IO
//! core is [`command`] (command lines and ESMTP parameters), [`reply`] (the
//! reply table with enhanced status codes) and [`data`] (DATA and BDAT
//! receivers, smuggling-proof); [`session`] runs the server side over a
//! connection. The client side (reply parser, EHLO capabilities) is
//! `postamt_wire::smtp`, shared by the relay and the mail client.

pub mod command;
pub mod data;
pub mod dsn;
pub mod reply;
pub mod session;

pub use session::{Mode, Smtp, SmtpConfig, SpoofPolicy};
