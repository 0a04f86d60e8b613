//! Message submission (RFC 6409) from the client: TLS (implicit or
//! STARTTLS), AUTH PLAIN/LOGIN (RFC 4954), one transaction, QUIT.

use base64::Engine;
use postamt_wire::smtp::{Capabilities, ServerReply, path};

use crate::account::Security;
use crate::wire::{Tracer, Wire};
use crate::{ClientError, Result};

/// Where and how to submit.
pub struct Submission<'a> {
    pub endpoint: &'a str,
    pub security: Security,
    pub tls_trust: Option<&'a str>,
    pub login: &'a str,
    pub password: &'a str,
    /// Our name in EHLO.
    pub helo: &'a str,
}

fn reply(w: &mut Wire) -> Result<ServerReply> {
    let mut lines = Vec::new();
    loop {
        let l = w.read_line()?;
        let b = l.as_bytes();
        if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
            return Err(ClientError::Protocol(format!("not an SMTP reply: {l:?}")));
        }
        let last = b.get(3) != Some(&b'-');
        lines.push(l.get(4..).unwrap_or("").to_string());
        if last {
            let code = l[..3].parse().unwrap_or(0);
            return Ok(ServerReply { code, lines });
        }
        if lines.len() > 1000 {
            return Err(ClientError::Protocol("endless multi-line reply".into()));
        }
    }
}

fn expect(w: &mut Wire, code: u16, what: &str) -> Result<ServerReply> {
    let r = reply(w)?;
    if r.code != code {
        return Err(ClientError::Refused(format!("{what}: {r}")));
    }
    Ok(r)
}

/// Submits `content` from `from` to `rcpts`; returns the server's final
/// reply (e.g. `250 2.0.0 Ok: queued as …`).
pub fn submit(
    s: &Submission<'_>,
    from: &str,
    rcpts: &[String],
    content: &[u8],
    trace: Option<Tracer>,
) -> Result<String> {
    let mut w = Wire::open(s.endpoint, s.security, s.tls_trust, "smtp_security", trace)?;
    expect(&mut w, 220, "greeting")?;
    w.send(&format!("EHLO {}", s.helo))?;
    let mut caps = Capabilities::from_ehlo(&expect(&mut w, 250, "EHLO")?);
    if s.security == Security::Starttls {
        if !caps.starttls {
            return Err(ClientError::Tls(
                w.host.clone(),
                "the server does not offer STARTTLS".into(),
            ));
        }
        w.send("STARTTLS")?;
        expect(&mut w, 220, "STARTTLS")?;
        if w.has_buffered() {
            return Err(ClientError::Protocol(
                "the server sent data before the TLS handshake".into(),
            ));
        }
        w.start_tls(crate::tls::config(s.tls_trust)?)?;
        w.send(&format!("EHLO {}", s.helo))?;
        caps = Capabilities::from_ehlo(&expect(&mut w, 250, "EHLO")?);
    }
    let b64 = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
    if caps.auth.iter().any(|m| m == "PLAIN") {
        let token = b64(format!("\0{}\0{}", s.login, s.password).as_bytes());
        w.send_masked(&format!("AUTH PLAIN {token}"), "AUTH PLAIN ********")?;
    } else if caps.auth.iter().any(|m| m == "LOGIN") {
        w.send("AUTH LOGIN")?;
        expect(&mut w, 334, "AUTH LOGIN")?;
        w.send_masked(&b64(s.login.as_bytes()), "******** (user name, base64)")?;
        expect(&mut w, 334, "AUTH LOGIN")?;
        w.send_masked(&b64(s.password.as_bytes()), "******** (password, base64)")?;
    } else if !caps.auth.is_empty() {
        return Err(ClientError::Auth(format!(
            "{} offers no AUTH PLAIN or LOGIN (only {})",
            w.host,
            caps.auth.join(" ")
        )));
    }
    // No AUTH offered at all: a server that takes mail without login (an
    // MTA that trusts this network, e.g. Postfix with mynetworks); the
    // transaction goes on unauthenticated and the server decides.
    if !caps.auth.is_empty() {
        let r = reply(&mut w)?;
        if r.code != 235 {
            return Err(ClientError::Auth(r.to_string()));
        }
    }
    let utf8 = !from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii()) || !header_is_ascii(content);
    let mut mail = format!("MAIL FROM:{}", path(from));
    if content.iter().any(|&b| b >= 0x80) && caps.eight_bit_mime {
        mail.push_str(" BODY=8BITMIME");
    }
    if utf8 {
        if !caps.smtputf8 {
            return Err(ClientError::Refused(
                "the message needs SMTPUTF8, which the server does not offer".into(),
            ));
        }
        mail.push_str(" SMTPUTF8");
    }
    w.send(&mail)?;
    expect(&mut w, 250, "MAIL FROM")?;
    for rcpt in rcpts {
        w.send(&format!("RCPT TO:{}", path(rcpt)))?;
        let r = reply(&mut w)?;
        if r.code != 250 && r.code != 251 {
            let _ = w.send("RSET").and_then(|_| reply(&mut w).map(|_| ()));
            return Err(ClientError::Refused(format!("recipient <{rcpt}>: {r}")));
        }
    }
    w.send("DATA")?;
    expect(&mut w, 354, "DATA")?;
    let mut data = Vec::new();
    postamt_wire::dot::stuff(content, &mut data);
    let lines = content.split(|&b| b == b'\n').count();
    w.send_content(
        &data[..data.len() - 3],
        &format!("(the message: {lines} lines, {} octets)", content.len()),
    )?;
    w.send_content_end()?;
    let done = expect(&mut w, 250, "end of data")?;
    w.send("QUIT")?;
    let _ = reply(&mut w);
    Ok(done.to_string())
}

fn header_is_ascii(content: &[u8]) -> bool {
    let h = postamt_wire::meta::header_len(content);
    content[..h].is_ascii()
}
