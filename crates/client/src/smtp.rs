//! Message submission (RFC 6409) from the client: TLS (implicit or
//! STARTTLS), AUTH PLAIN/LOGIN (RFC 4954), one transaction, QUIT. What is
//! said is [`postamt_wire::smtp::dialogue`]'s, with
//! [`Options::submission`]; here it is driven over a [`Wire`], which prints
//! it.

use postamt_wire::smtp::dialogue::{
    self, Auth, Dialogue, Envelope, Login, NotSent, Options, Outcome, Recipient, Stage, Step,
    TlsPolicy,
};

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

/// Submits `content` from `from` to `rcpts`; returns the server's final
/// reply (e.g. `250 2.0.0 Ok: queued as …`). A refused recipient means
/// nothing is sent, and the error names it.
pub fn submit(
    s: &Submission<'_>,
    from: &str,
    rcpts: &[String],
    content: &[u8],
    trace: Option<Tracer>,
) -> Result<String> {
    let options = Options {
        starttls: match s.security {
            Security::Starttls => TlsPolicy::Required,
            Security::Tls | Security::Plain => TlsPolicy::Off,
        },
        // No AUTH offered at all: a server that takes mail without login
        // (an MTA that trusts this network, e.g. Postfix with mynetworks);
        // the transaction goes on unauthenticated and the server decides.
        auth: Auth::IfOffered(Login {
            user: s.login.into(),
            password: s.password.to_string().into(),
        }),
        ..Options::submission(s.helo)
    };
    let lines = content.split(|&b| b == b'\n').count();
    let mut c = Client {
        wire: Wire::open(s.endpoint, s.security, s.tls_trust, "smtp_security", trace)?,
        dialogue: Dialogue::new(options),
        tls_trust: s.tls_trust,
        summary: format!("(the message: {lines} lines, {} octets)", content.len()),
    };
    match c.drive()? {
        Step::Ready => {}
        step => return Err(out_of_step(&step)),
    }
    let envelope = Envelope {
        sender: from,
        body: postamt_wire::smtp::is_8bit(content).then_some("8BITMIME"),
        smtputf8: !header_is_ascii(content),
        ..Envelope::default()
    };
    let recipients: Vec<Recipient> = rcpts
        .iter()
        .map(|address| Recipient {
            address,
            ..Recipient::default()
        })
        .collect();
    c.dialogue.transaction(&envelope, &recipients, content);
    let outcomes = match c.drive()? {
        Step::Done(outcomes) => outcomes,
        step => return Err(out_of_step(&step)),
    };
    if let Some(refused) = refusal(rcpts, &outcomes) {
        // Nothing was sent. RSET, as far as the connection still goes.
        let _ = c.drive();
        return Err(refused);
    }
    let Some(Outcome::Delivered(reply)) = outcomes.first() else {
        return Err(ClientError::Protocol("no recipients".into()));
    };
    c.dialogue.quit();
    let _ = c.drive();
    Ok(reply.to_string())
}

/// The dialogue over one connection.
struct Client<'a> {
    wire: Wire,
    dialogue: Dialogue,
    tls_trust: Option<&'a str>,
    /// What the trace shows for the content.
    summary: String,
}

impl Client<'_> {
    /// Does what the dialogue asks until it waits for us.
    fn drive(&mut self) -> Result<Step> {
        let w = &mut self.wire;
        loop {
            match self.dialogue.next_step() {
                Ok(Step::Send(commands)) => {
                    for c in &commands {
                        w.send_masked(c.expose(), c.shown())?;
                    }
                }
                Ok(Step::SendContent(content)) => {
                    let (message, end) = content.parts();
                    w.send_content(message, &self.summary)?;
                    if !end.is_empty() {
                        w.send_content_end()?;
                    }
                }
                Ok(Step::Read(_)) => {
                    let bytes = w.read_some()?;
                    self.dialogue.feed(&bytes);
                }
                Ok(Step::StartTls) => {
                    w.start_tls(crate::tls::config(self.tls_trust)?)?;
                    self.dialogue.tls_established();
                }
                Ok(step) => return Ok(step),
                Err(e) => return Err(error(e, &w.host)),
            }
        }
    }
}

fn out_of_step(step: &Step) -> ClientError {
    ClientError::Protocol(format!("SMTP dialogue out of step at {step:?}"))
}

/// The dialogue's connection-level errors as the user sees them.
fn error(e: dialogue::Error, host: &str) -> ClientError {
    use dialogue::Error as E;
    match e {
        E::Refused(Stage::Auth, r) => ClientError::Auth(r.to_string()),
        E::Refused(stage, r) => ClientError::Refused(format!("{stage}: {r}")),
        E::StartTlsNotOffered => {
            ClientError::Tls(host.into(), "the server does not offer STARTTLS".into())
        }
        E::NoAuthMechanism(offered) => ClientError::Auth(format!(
            "{host} offers no AUTH PLAIN or LOGIN (only {})",
            offered.join(" ")
        )),
        E::DataBeforeTls | E::Reply(_) | E::OutOfTurn => ClientError::Protocol(e.to_string()),
    }
}

/// The first refusal, in recipient order: a refused recipient by name,
/// a refused MAIL, DATA or content by its command.
fn refusal(rcpts: &[String], outcomes: &[Outcome]) -> Option<ClientError> {
    rcpts.iter().zip(outcomes).find_map(|(rcpt, o)| {
        let text = match o {
            Outcome::Delivered(_) | Outcome::NotSent(NotSent::Withheld) => return None,
            Outcome::Refused(Stage::Rcpt, r) => format!("recipient <{rcpt}>: {r}"),
            Outcome::Refused(stage, r) => format!("{stage}: {r}"),
            Outcome::NotSent(NotSent::NeedsSmtpUtf8) => {
                "the message needs SMTPUTF8, which the server does not offer".into()
            }
            Outcome::NotSent(n) => n.describe("the server"),
        };
        Some(ClientError::Refused(text))
    })
}

fn header_is_ascii(content: &[u8]) -> bool {
    let h = postamt_wire::meta::header_len(content);
    content[..h].is_ascii()
}
