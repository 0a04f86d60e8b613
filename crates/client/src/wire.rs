//! A line-based connection for the client, plain or TLS, that can print
//! the dialogue as it happens (`--trace`: `C:`/`S:` lines, credentials
//! masked, message content shortened) and explain each line (`--explain`,
//! from [`postamt_wire::explain`]).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use postamt_wire::explain::{self, Lang, Proto};
use rustls_pki_types::ServerName;

use crate::{ClientError, Result};

/// Longest line read from a server.
const MAX_LINE: usize = 64 * 1024;

/// Prints the dialogue.
pub struct Tracer {
    pub proto: Proto,
    /// Explanations in this language, or none.
    pub explain: Option<Lang>,
    pub out: Box<dyn Write + Send>,
    /// Follows the dialogue to explain each line.
    annotator: explain::Annotator,
    /// The start of a server line whose end has not come yet.
    partial: Vec<u8>,
}

impl Tracer {
    pub fn new(proto: Proto, explain: Option<Lang>, out: Box<dyn Write + Send>) -> Tracer {
        Tracer {
            proto,
            explain,
            out,
            annotator: explain::Annotator::new(proto, explain.unwrap_or(Lang::En)),
            partial: Vec::new(),
        }
    }

    fn note(&mut self, e: Option<explain::Explanation>) {
        if let (Some(_), Some(e)) = (self.explain, e) {
            let _ = writeln!(self.out, "     ^ {} ({})", e.text, e.rfc);
        }
    }

    fn client(&mut self, shown: &str, verb: &str) {
        let _ = writeln!(self.out, "C: {shown}");
        let e = self.annotator.client(shown, verb);
        self.note(e);
    }

    fn server(&mut self, line: &str) {
        let _ = writeln!(self.out, "S: {line}");
        let e = self.annotator.server(line);
        self.note(e);
        // The state the reply put the session in (after MAIL: waiting
        // for RCPT, ...).
        if let (Some(_), Some(st)) = (self.explain, self.annotator.take_state()) {
            let _ = writeln!(self.out, "     = {} ({})", st.text, st.rfc);
        }
    }

    /// Server lines from bytes as they were read; a line cut by a read is
    /// shown when its end comes.
    fn server_bytes(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(p) = self.partial.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.partial.drain(..=p).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.server(&String::from_utf8_lossy(&line));
        }
    }

    fn server_summary(&mut self, text: &str) {
        let _ = writeln!(self.out, "S: {text}");
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Gone,
}

pub struct Wire {
    stream: Stream,
    buf: Vec<u8>,
    pub host: String,
    pub trace: Option<Tracer>,
    pub tls: bool,
}

impl Wire {
    /// Connects to `addr` (`host:port`); `host` is also the TLS name.
    /// Connects to an account's endpoint with its security: `plain` only to
    /// loopback (`what` names the setting in the error, e.g.
    /// `imap_security`), `tls` with the handshake done here; STARTTLS is
    /// the protocol's business.
    pub fn open(
        endpoint: &str,
        security: crate::account::Security,
        tls_trust: Option<&str>,
        what: &str,
        trace: Option<Tracer>,
    ) -> Result<Wire> {
        use crate::account::Security;
        let mut w = Wire::connect(endpoint, trace)?;
        if security == Security::Plain && !is_loopback(&w.host) {
            return Err(ClientError::Config(format!(
                "{what} = \"plain\" is allowed for loopback servers only"
            )));
        }
        if security == Security::Tls {
            w.start_tls(crate::tls::config(tls_trust)?)?;
        }
        Ok(w)
    }

    pub fn connect(addr: &str, trace: Option<Tracer>) -> Result<Wire> {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            .ok_or_else(|| ClientError::Config(format!("{addr:?}: expected host:port")))?;
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| ClientError::Connect(addr.into(), e.to_string()))?
            .collect();
        let mut last = String::from("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(15)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(120)))?;
                    s.set_write_timeout(Some(Duration::from_secs(120)))?;
                    let _ = s.set_nodelay(true);
                    return Ok(Wire {
                        stream: Stream::Plain(s),
                        buf: Vec::new(),
                        host,
                        trace,
                        tls: false,
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(ClientError::Connect(addr.into(), last))
    }

    /// The TLS handshake on this connection (implicit TLS, or after
    /// STARTTLS/STLS was accepted). Buffered plaintext is discarded.
    pub fn start_tls(&mut self, config: Arc<rustls::ClientConfig>) -> Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(ClientError::Protocol("TLS already active".into()));
        };
        self.buf.clear();
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| ClientError::Tls(self.host.clone(), "bad server name".into()))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| ClientError::Tls(self.host.clone(), e.to_string()))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // Drive the handshake now, so a bad certificate is reported here.
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| ClientError::Tls(self.host.clone(), e.to_string()))?;
        }
        self.stream = Stream::Tls(Box::new(tls));
        self.tls = true;
        if let Some(t) = &mut self.trace {
            let _ = writeln!(
                t.out,
                "-- TLS established; everything below is encrypted --"
            );
        }
        Ok(())
    }

    /// Sends a command line; `shown` replaces it in the trace (masking).
    pub fn send_masked(&mut self, line: &str, shown: &str) -> Result<()> {
        let verb = shown.split(' ').next().unwrap_or("").to_string();
        if let Some(t) = &mut self.trace {
            t.client(shown, &verb);
        }
        self.write(format!("{line}\r\n").as_bytes())
    }

    pub fn send(&mut self, line: &str) -> Result<()> {
        self.send_masked(line, line)
    }

    /// Sends message content (already encoded); the trace shows `summary`.
    pub fn send_content(&mut self, bytes: &[u8], summary: &str) -> Result<()> {
        if let Some(t) = &mut self.trace {
            t.client(summary, "MESSAGE");
        }
        self.write(bytes)
    }

    /// Sends the end-of-data line `.` (RFC 5321 §4.5.2).
    pub fn send_content_end(&mut self) -> Result<()> {
        if let Some(t) = &mut self.trace {
            t.client(".", ".");
        }
        self.write(b".\r\n")
    }

    /// Traces a client line without sending it (e.g. the final dot that is
    /// part of the content already written).
    pub fn trace_client(&mut self, shown: &str) {
        if let Some(t) = &mut self.trace {
            t.client(shown, shown);
        }
    }

    /// Reads one line (without its CRLF) and traces it.
    pub fn read_line(&mut self) -> Result<String> {
        let line = self.read_line_quiet()?;
        if let Some(t) = &mut self.trace {
            t.server(&line);
        }
        Ok(line)
    }

    /// Notes a summary of data read quietly (e.g. "(message, 1234 octets)").
    pub fn trace_server_summary(&mut self, text: &str) {
        if let Some(t) = &mut self.trace {
            t.server_summary(text);
        }
    }

    /// Reads exactly `n` octets (an IMAP literal), traced as a summary.
    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill()?;
        }
        let data: Vec<u8> = self.buf.drain(..n).collect();
        if let Some(t) = &mut self.trace {
            t.server_summary(&format!("(literal data: {n} octets)"));
            let lang = t.explain.unwrap_or(Lang::En);
            let e = explain::reply(Proto::Imap, "* 0 LITERAL", "", lang);
            t.note(e);
        }
        Ok(data)
    }

    /// Writes raw bytes (an IMAP literal) with a summary in the trace.
    pub fn send_literal(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(t) = &mut self.trace {
            let _ = writeln!(t.out, "C: (literal data: {} octets)", bytes.len());
        }
        self.write(bytes)
    }

    /// Ends a command line whose last part was a literal.
    pub fn end_line(&mut self) -> Result<()> {
        self.write(b"\r\n")
    }

    /// Reads one line without tracing it.
    pub fn read_line_quiet(&mut self) -> Result<String> {
        self.read_line_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
    }

    /// Reads one line as bytes (message content is not always UTF-8),
    /// without its line end and without tracing it.
    pub fn read_line_bytes(&mut self) -> Result<Vec<u8>> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=p).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(ClientError::Protocol(format!(
                    "{} sent a line longer than {MAX_LINE} octets",
                    self.host
                )));
            }
            self.fill()?;
        }
    }

    /// Reads what the server sent next as it came — what is buffered, else
    /// one read — and traces its lines: for a codec that frames replies
    /// itself (SMTP's [`postamt_wire::smtp::dialogue`]).
    pub fn read_some(&mut self) -> Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.fill()?;
        }
        let bytes = std::mem::take(&mut self.buf);
        if let Some(t) = &mut self.trace {
            t.server_bytes(&bytes);
        }
        Ok(bytes)
    }

    /// One read from the connection into the buffer.
    fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut chunk),
            Stream::Tls(s) => s.read(&mut chunk),
            Stream::Gone => return Err(ClientError::Io("connection closed".into())),
        }
        .map_err(|e| ClientError::Io(format!("reading from {}: {e}", self.host)))?;
        if n == 0 {
            return Err(ClientError::Io(format!(
                "{} closed the connection",
                self.host
            )));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let r = match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).and_then(|_| s.flush()),
            Stream::Tls(s) => s.write_all(bytes).and_then(|_| s.flush()),
            Stream::Gone => return Err(ClientError::Io("connection closed".into())),
        };
        r.map_err(|e| ClientError::Io(format!("writing to {}: {e}", self.host)))
    }

    /// Whether the server sent more than was asked for (checked before a
    /// TLS upgrade: such bytes would be injected — CVE-2011-0411 shape).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Is `host` a loopback name or address (plaintext logins are allowed
/// only there)?
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
