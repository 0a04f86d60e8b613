//! Reading over POP3 (RFC 1939, STLS RFC 2595): list, read, delete — what
//! POP3 can do.

use crate::account::Security;
use crate::wire::{Tracer, Wire};
use crate::{ClientError, Result};

/// The longest multi-line answer (a message) the client takes in.
const MAX_ANSWER: usize = 256 * 1024 * 1024;

pub struct Pop3 {
    w: Wire,
}

/// One message as `LIST` and `UIDL` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub number: u32,
    pub size: u64,
    pub uidl: String,
}

impl Pop3 {
    pub fn open(
        endpoint: &str,
        security: Security,
        tls_trust: Option<&str>,
        login: &str,
        password: &str,
        trace: Option<Tracer>,
    ) -> Result<Pop3> {
        let w = Wire::open(endpoint, security, tls_trust, "pop3_security", trace)?;
        let mut p = Pop3 { w };
        p.status()?;
        if security == Security::Starttls {
            p.w.send("STLS")?;
            p.status()?;
            if p.w.has_buffered() {
                return Err(ClientError::Protocol(
                    "the server sent data before the TLS handshake".into(),
                ));
            }
            p.w.start_tls(crate::tls::config(tls_trust)?)?;
        }
        p.w.send(&format!("USER {login}"))?;
        p.status().map_err(|e| ClientError::Auth(e.to_string()))?;
        p.w.send_masked(&format!("PASS {password}"), "PASS ********")?;
        p.status().map_err(|e| ClientError::Auth(e.to_string()))?;
        Ok(p)
    }

    fn status(&mut self) -> Result<String> {
        let l = self.w.read_line()?;
        if l.starts_with("+OK") {
            Ok(l)
        } else if l.starts_with("-ERR") {
            Err(ClientError::Refused(l))
        } else {
            Err(ClientError::Protocol(format!(
                "not a POP3 status line: {l:?}"
            )))
        }
    }

    /// The lines of a multi-line answer, dot-unstuffed (RFC 1939 §3).
    fn multiline(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut lines = 0usize;
        loop {
            let l = self.w.read_line_bytes()?;
            if l == b"." {
                break;
            }
            let l = l.strip_prefix(b".").unwrap_or(&l);
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
            lines += 1;
            if out.len() > MAX_ANSWER {
                return Err(ClientError::Protocol(format!(
                    "the server's answer is longer than {MAX_ANSWER} octets"
                )));
            }
        }
        self.w.trace_server_summary(&format!(
            "({lines} lines, {} octets) and the final \".\"",
            out.len()
        ));
        Ok(out)
    }

    pub fn list(&mut self) -> Result<Vec<Listed>> {
        self.w.send("LIST")?;
        self.status()?;
        let sizes = String::from_utf8_lossy(&self.multiline()?).into_owned();
        self.w.send("UIDL")?;
        self.status()?;
        let uidls = String::from_utf8_lossy(&self.multiline()?).into_owned();
        let mut out = Vec::new();
        for l in sizes.lines() {
            let mut f = l.split_whitespace();
            let (Some(n), Some(size)) = (f.next(), f.next()) else {
                continue;
            };
            let number: u32 = n
                .parse()
                .map_err(|_| ClientError::Protocol(format!("LIST line {l:?}")))?;
            let uidl = uidls
                .lines()
                .find(|u| u.split_whitespace().next() == Some(n))
                .and_then(|u| u.split_whitespace().nth(1))
                .unwrap_or("")
                .to_string();
            out.push(Listed {
                number,
                size: size.parse().unwrap_or(0),
                uidl,
            });
        }
        Ok(out)
    }

    /// The header of message `n` (TOP n 0).
    pub fn header(&mut self, n: u32) -> Result<Vec<u8>> {
        self.w.send(&format!("TOP {n} 0"))?;
        self.status()?;
        self.multiline()
    }

    pub fn retr(&mut self, n: u32) -> Result<Vec<u8>> {
        self.w.send(&format!("RETR {n}"))?;
        self.status()?;
        self.multiline()
    }

    pub fn dele(&mut self, n: u32) -> Result<()> {
        self.w.send(&format!("DELE {n}"))?;
        self.status().map(|_| ())
    }

    /// QUIT: deletions take effect (UPDATE state).
    pub fn quit(mut self) -> Result<()> {
        self.w.send("QUIT")?;
        self.status().map(|_| ())
    }
}
