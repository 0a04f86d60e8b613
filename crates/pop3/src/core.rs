//! The sans-IO POP3 core: bytes of one command line in, a [`Step`] out. No
//! sockets, no store, no clock. The session in [`crate::session`] performs
//! the steps that need the outside world (checking a password, loading a
//! message, upgrading to TLS, expunging) and reports back.
//!
//! RFC 1939 (POP3), RFC 2449 (CAPA, RESP-CODES), RFC 2595 §4 (STLS),
//! RFC 5034 (SASL: AUTH PLAIN, AUTH LOGIN), RFC 3206 (SYS and AUTH codes).

use postamt_server::sasl::{MECHANISMS, SaslExchange, SaslStep};
use postamt_store::Uid;
use postamt_wire::Secret;

/// A parsed command (RFC 1939 §§ 4–7, RFC 2449 §5, RFC 2595 §4, RFC 5034).
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(Secret<String>),
    Auth {
        mechanism: Option<String>,
        initial: Option<Secret<String>>,
    },
    Apop,
    Capa,
    Stls,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Unknown,
    /// Known command, bad or missing arguments.
    Syntax(&'static str),
}

/// RFC 1939 §3: "keywords are case-insensitive"; arguments are separated by
/// a single space (we accept runs of spaces and tabs, as Dovecot does).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("command is not UTF-8"))?;
    let text = text.trim_end_matches(['\r', '\n']);
    let (keyword, rest) = match text.split_once([' ', '\t']) {
        Some((k, r)) => (k, r.trim_matches([' ', '\t'])),
        None => (text, ""),
    };
    let args: Vec<&str> = rest.split([' ', '\t']).filter(|a| !a.is_empty()).collect();
    let keyword = keyword.to_ascii_uppercase();
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("no arguments expected"))
        }
    };
    match keyword.as_str() {
        "USER" => match args.as_slice() {
            // A name with spaces is taken whole, as RFC 1939 leaves open.
            [_, ..] => Ok(Command::User(rest.to_string())),
            [] => Err(ParseError::Syntax("USER needs a name")),
        },
        // RFC 1939 §7: the password may contain spaces; take the rest of the line.
        "PASS" if !rest.is_empty() => Ok(Command::Pass(Secret::new(text[5..].to_string()))),
        "PASS" => Err(ParseError::Syntax("PASS needs a password")),
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth {
                mechanism: None,
                initial: None,
            }),
            [m] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: None,
            }),
            [m, i] => Ok(Command::Auth {
                mechanism: Some(m.to_ascii_uppercase()),
                initial: Some(Secret::new(i.to_string())),
            }),
            _ => Err(ParseError::Syntax("AUTH mechanism [initial-response]")),
        },
        "APOP" => Ok(Command::Apop),
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        "STAT" => none(Command::Stat),
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        "LIST" | "UIDL" => {
            let n = match args.as_slice() {
                [] => None,
                [n] => Some(number(n)?),
                _ => return Err(ParseError::Syntax("at most one message number")),
            };
            Ok(if keyword == "LIST" {
                Command::List(n)
            } else {
                Command::Uidl(n)
            })
        }
        "RETR" | "DELE" => match args.as_slice() {
            [n] => {
                let n = number(n)?;
                Ok(if keyword == "RETR" {
                    Command::Retr(n)
                } else {
                    Command::Dele(n)
                })
            }
            _ => Err(ParseError::Syntax("a message number is required")),
        },
        "TOP" => match args.as_slice() {
            [n, l] => Ok(Command::Top(number(n)?, lines(l)?)),
            _ => Err(ParseError::Syntax("TOP msg n")),
        },
        _ => Err(ParseError::Unknown),
    }
}

/// A message number: decimal digits only, no sign (RFC 1939 §3).
fn number(s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax("invalid message number"));
    }
    // Numbers too large for u32 can't name a message: map to 0 (no such).
    Ok(s.parse::<u32>().unwrap_or(0))
}

fn lines(s: &str) -> Result<u32, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax("invalid line count"));
    }
    Ok(s.parse::<u32>().unwrap_or(u32::MAX))
}

/// One message of the maildrop as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: Uid,
    pub size: u64,
    pub deleted: bool,
    pub retrieved: bool,
}

/// The maildrop, fixed at login (RFC 1939 §8: numbers don't change during
/// a session).
#[derive(Debug, Clone, Default)]
pub struct Maildrop {
    pub uidvalidity: u32,
    pub entries: Vec<Entry>,
}

impl Maildrop {
    /// The UIDL of a message: UID and UIDVALIDITY as 8 hex digits each,
    /// Dovecot's default `%08Xu%08Xv`, so a migration keeps clients' state.
    pub fn uidl(&self, e: &Entry) -> String {
        format!("{:08X}{:08X}", e.uid.0, self.uidvalidity)
    }

    fn get(&self, n: u32) -> Option<&Entry> {
        let e = self.entries.get((n as usize).checked_sub(1)?)?;
        (!e.deleted).then_some(e)
    }
}

/// A reply, rendered to the wire in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(String),
    /// `-ERR [CODE] text`: code from RFC 2449 §8 / RFC 3206.
    Err(Option<&'static str>, String),
    /// `+OK text` and a dot-terminated list.
    List(String, Vec<String>),
    /// A SASL challenge (`+ base64`).
    Challenge(String),
}

impl Reply {
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Err(None, text.into())
    }
    pub fn err_code(code: &'static str, text: impl Into<String>) -> Reply {
        Reply::Err(Some(code), text.into())
    }

    pub fn render(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Ok(t) if t.is_empty() => out.extend_from_slice(b"+OK\r\n"),
            Reply::Ok(t) => out.extend_from_slice(format!("+OK {t}\r\n").as_bytes()),
            Reply::Err(Some(code), t) => {
                out.extend_from_slice(format!("-ERR [{code}] {t}\r\n").as_bytes())
            }
            Reply::Err(None, t) => out.extend_from_slice(format!("-ERR {t}\r\n").as_bytes()),
            Reply::List(t, lines) => {
                out.extend_from_slice(format!("+OK {t}\r\n").as_bytes());
                for l in lines {
                    if l.starts_with('.') {
                        out.push(b'.');
                    }
                    out.extend_from_slice(l.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b".\r\n");
            }
            Reply::Challenge(c) => out.extend_from_slice(format!("+ {c}\r\n").as_bytes()),
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Ok(_) | Reply::List(..))
    }
}

/// What the session must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Reply(Reply),
    /// Check the credentials, lock and load the maildrop, then call
    /// [`Pop3Core::login_result`].
    Authenticate {
        user: String,
        password: Secret<String>,
    },
    /// Send the message (`lines`: TOP's body line count), then nothing.
    Send {
        uid: Uid,
        size: u64,
        top: Option<u32>,
    },
    /// Send `+OK`, then upgrade the connection to TLS and call
    /// [`Pop3Core::tls_started`].
    StartTls,
    /// RFC 1939 §6 UPDATE state: expunge `delete`, mark `seen` as \Seen,
    /// answer with [`Pop3Core::update_result`] and close.
    Update {
        delete: Vec<Uid>,
        seen: Vec<Uid>,
        left: usize,
    },
    /// Send the reply and close the connection.
    Close(Reply),
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginResult {
    Ok(Maildrop),
    BadCredentials,
    /// Another session holds the maildrop (RFC 2449 §8.1.1 `[IN-USE]`).
    Locked,
    /// Too many failures from this client.
    Throttled,
    TempFail,
}

#[derive(Debug)]
enum State {
    Authorization {
        user: Option<String>,
        sasl: Option<SaslExchange>,
    },
    Transaction(Maildrop),
    Done,
}

/// Settings the session gives the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// TLS is active on the connection.
    pub tls: bool,
    /// STLS can be offered (a certificate is configured).
    pub tls_available: bool,
    /// Passwords may be sent here (TLS, loopback, or allowed by config).
    pub plaintext_ok: bool,
    /// Protocol errors before the session is closed.
    pub max_errors: u32,
}

pub struct Pop3Core {
    state: State,
    config: CoreConfig,
    errors: u32,
}

impl Pop3Core {
    pub fn new(config: CoreConfig) -> Pop3Core {
        Pop3Core {
            state: State::Authorization {
                user: None,
                sasl: None,
            },
            config,
            errors: 0,
        }
    }

    /// Whether the next line is a SASL response (mask it in transcripts).
    pub fn in_sasl(&self) -> bool {
        matches!(self.state, State::Authorization { sasl: Some(_), .. })
    }

    pub fn is_transaction(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    pub fn maildrop(&self) -> Option<&Maildrop> {
        match &self.state {
            State::Transaction(m) => Some(m),
            _ => None,
        }
    }

    fn error(&mut self, reply: Reply) -> Step {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.state = State::Done;
            return Step::Close(Reply::err("too many errors, closing"));
        }
        Step::Reply(reply)
    }

    /// The capability list (RFC 2449 §5), which depends on the state.
    pub fn capabilities(&self) -> Vec<String> {
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        if matches!(self.state, State::Authorization { .. }) {
            if self.config.plaintext_ok {
                caps.push("USER".into());
                caps.push(format!("SASL {}", MECHANISMS.join(" ")));
            }
            if !self.config.tls && self.config.tls_available {
                caps.push("STLS".into());
            }
        }
        caps.push("IMPLEMENTATION postamt".into());
        caps
    }

    /// The client sent a line longer than allowed (it was drained).
    pub fn too_long(&mut self) -> Step {
        if let State::Authorization { sasl, .. } = &mut self.state {
            sasl.take();
        }
        self.error(Reply::err("line too long"))
    }

    /// Feeds one line from the client.
    pub fn line(&mut self, line: &[u8]) -> Step {
        if let State::Authorization { sasl: Some(_), .. } = self.state {
            return self.sasl_response(line);
        }
        match parse(line) {
            Ok(cmd) => self.command(cmd),
            Err(ParseError::Unknown) => self.error(Reply::err("unknown command")),
            Err(ParseError::Syntax(why)) => self.error(Reply::err(why)),
        }
    }

    fn command(&mut self, cmd: Command) -> Step {
        // RFC 1939 §7: PASS may only come immediately after a successful
        // USER; any other command in between forgets the name.
        if let State::Authorization { user, .. } = &mut self.state
            && !matches!(cmd, Command::Pass(_))
        {
            user.take();
        }
        match cmd {
            Command::Capa => {
                return Step::Reply(Reply::List(
                    "capability list follows".into(),
                    self.capabilities(),
                ));
            }
            Command::Noop if self.is_transaction() => return Step::Reply(Reply::Ok(String::new())),
            _ => {}
        }
        match &mut self.state {
            State::Authorization { user, sasl } => {
                match cmd {
                    Command::Quit => {
                        self.state = State::Done;
                        Step::Close(Reply::Ok("postamt POP3 server signing off".into()))
                    }
                    Command::Stls if self.config.tls => {
                        self.error(Reply::err("TLS already active"))
                    }
                    Command::Stls if !self.config.tls_available => {
                        self.error(Reply::err("TLS not available"))
                    }
                    Command::Stls => Step::StartTls,
                    Command::User(_)
                    | Command::Pass(_)
                    | Command::Auth {
                        mechanism: Some(_), ..
                    } if !self.config.plaintext_ok => {
                        // RFC 2595 §3.1 / RFC 8314: no passwords in the clear.
                        self.error(Reply::err_code(
                            "AUTH",
                            "plaintext authentication disallowed without TLS; use STLS",
                        ))
                    }
                    Command::User(name) => {
                        *user = Some(name);
                        Step::Reply(Reply::Ok("send PASS".into()))
                    }
                    Command::Pass(password) => match user.take() {
                        Some(user) => Step::Authenticate { user, password },
                        None => self.error(Reply::err("USER first")),
                    },
                    Command::Auth {
                        mechanism: None, ..
                    } => Step::Reply(Reply::List(
                        "SASL mechanisms follow".into(),
                        MECHANISMS.iter().map(|m| m.to_string()).collect(),
                    )),
                    Command::Auth {
                        mechanism: Some(m),
                        initial,
                    } => {
                        match SaslExchange::start(&m, initial.as_ref().map(|i| i.expose().as_str()))
                        {
                            Some((exchange, step)) => {
                                *sasl = exchange;
                                self.sasl_step(step)
                            }
                            None => self.error(Reply::err("unsupported SASL mechanism")),
                        }
                    }
                    Command::Apop => {
                        self.error(Reply::err("APOP is not supported; use USER/PASS or AUTH"))
                    }
                    _ => self.error(Reply::err("not allowed before login")),
                }
            }
            State::Transaction(drop) => match cmd {
                Command::Stat => {
                    let (n, size) = drop
                        .entries
                        .iter()
                        .filter(|e| !e.deleted)
                        .fold((0u64, 0u64), |(n, s), e| (n + 1, s + e.size));
                    Step::Reply(Reply::Ok(format!("{n} {size}")))
                }
                Command::List(None) => {
                    let lines = drop
                        .entries
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| !e.deleted)
                        .map(|(i, e)| format!("{} {}", i + 1, e.size))
                        .collect::<Vec<_>>();
                    let total: u64 = drop
                        .entries
                        .iter()
                        .filter(|e| !e.deleted)
                        .map(|e| e.size)
                        .sum();
                    Step::Reply(Reply::List(
                        format!("{} messages ({total} octets)", lines.len()),
                        lines,
                    ))
                }
                Command::List(Some(n)) => match drop.get(n) {
                    Some(e) => Step::Reply(Reply::Ok(format!("{n} {}", e.size))),
                    None => self.error(Reply::err("no such message")),
                },
                Command::Uidl(None) => {
                    let lines = drop
                        .entries
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| !e.deleted)
                        .map(|(i, e)| format!("{} {}", i + 1, drop.uidl(e)))
                        .collect();
                    Step::Reply(Reply::List("unique-id listing follows".into(), lines))
                }
                Command::Uidl(Some(n)) => match drop.get(n) {
                    Some(e) => Step::Reply(Reply::Ok(format!("{n} {}", drop.uidl(e)))),
                    None => self.error(Reply::err("no such message")),
                },
                Command::Retr(n) | Command::Top(n, _) => {
                    let top = if let Command::Top(_, l) = cmd {
                        Some(l)
                    } else {
                        None
                    };
                    let idx = (n as usize).wrapping_sub(1);
                    match drop.entries.get_mut(idx).filter(|e| !e.deleted) {
                        Some(e) => {
                            if top.is_none() {
                                e.retrieved = true;
                            }
                            Step::Send {
                                uid: e.uid,
                                size: e.size,
                                top,
                            }
                        }
                        None => self.error(Reply::err("no such message")),
                    }
                }
                Command::Dele(n) => {
                    let idx = (n as usize).wrapping_sub(1);
                    match drop.entries.get_mut(idx) {
                        Some(e) if e.deleted => {
                            self.error(Reply::err(format!("message {n} already deleted")))
                        }
                        Some(e) => {
                            e.deleted = true;
                            Step::Reply(Reply::Ok(format!("message {n} deleted")))
                        }
                        None => self.error(Reply::err("no such message")),
                    }
                }
                Command::Rset => {
                    for e in &mut drop.entries {
                        e.deleted = false;
                    }
                    let n = drop.entries.len();
                    Step::Reply(Reply::Ok(format!("maildrop has {n} messages")))
                }
                Command::Quit => {
                    let delete = drop
                        .entries
                        .iter()
                        .filter(|e| e.deleted)
                        .map(|e| e.uid)
                        .collect();
                    let seen = drop
                        .entries
                        .iter()
                        .filter(|e| e.retrieved && !e.deleted)
                        .map(|e| e.uid)
                        .collect();
                    let left = drop.entries.iter().filter(|e| !e.deleted).count();
                    self.state = State::Done;
                    Step::Update { delete, seen, left }
                }
                _ => self.error(Reply::err("not allowed after login")),
            },
            State::Done => Step::Close(Reply::err("session ended")),
        }
    }

    fn sasl_response(&mut self, line: &[u8]) -> Step {
        let State::Authorization { sasl, .. } = &mut self.state else {
            unreachable!()
        };
        let exchange = sasl.take().expect("in SASL");
        let (next, step) = exchange.respond(&String::from_utf8_lossy(line));
        if let State::Authorization { sasl, .. } = &mut self.state {
            *sasl = next;
        }
        self.sasl_step(step)
    }

    fn sasl_step(&mut self, step: SaslStep) -> Step {
        match step {
            // RFC 5034 §4: challenges are "+ " and base64.
            SaslStep::Challenge(c) => Step::Reply(Reply::Challenge(c)),
            SaslStep::Done { user, password } => Step::Authenticate { user, password },
            SaslStep::Failed {
                reason,
                cancelled: true,
            } => self.error(Reply::err(reason)),
            SaslStep::Failed {
                reason,
                cancelled: false,
            } => self.error(Reply::err_code("AUTH", reason)),
        }
    }

    /// Reports how [`Step::Authenticate`] ended.
    pub fn login_result(&mut self, result: LoginResult) -> Step {
        match result {
            LoginResult::Ok(drop) => {
                let n = drop.entries.len();
                let size: u64 = drop.entries.iter().map(|e| e.size).sum();
                self.state = State::Transaction(drop);
                Step::Reply(Reply::Ok(format!(
                    "logged in, {n} messages ({size} octets)"
                )))
            }
            LoginResult::BadCredentials => {
                self.error(Reply::err_code("AUTH", "authentication failed"))
            }
            LoginResult::Locked => self.error(Reply::err_code(
                "IN-USE",
                "maildrop is locked by another session",
            )),
            LoginResult::Throttled => {
                self.state = State::Done;
                // RFC 3206 §4: [AUTH] would tell the client its password is
                // wrong; this is a temporary refusal of the address (§5).
                Step::Close(Reply::err_code(
                    "SYS/TEMP",
                    "too many failed logins from your address, try later",
                ))
            }
            LoginResult::TempFail => self.error(Reply::err_code(
                "SYS/TEMP",
                "temporary failure, try again later",
            )),
        }
    }

    /// After a STLS handshake: the session starts over (RFC 2595 §4).
    pub fn tls_started(&mut self, plaintext_ok: bool) {
        self.config.tls = true;
        self.config.plaintext_ok = plaintext_ok;
        self.state = State::Authorization {
            user: None,
            sasl: None,
        };
    }

    /// Reports how [`Step::Update`] ended.
    pub fn update_result(&self, ok: bool, left: usize) -> Reply {
        if ok {
            Reply::Ok(format!(
                "postamt POP3 server signing off ({left} messages left)"
            ))
        } else {
            // RFC 1939 §6: some deleted messages not removed.
            Reply::err_code("SYS/TEMP", "some deleted messages not removed")
        }
    }
}

/// Writes a message as RETR/TOP send it (RFC 1939 §§ 7, 3): byte-stuffed,
/// CRLF line endings, ended by `.CRLF`. `top`: the header, the blank line
/// and that many body lines.
pub fn render_message(content: &[u8], top: Option<u32>, out: &mut Vec<u8>) {
    let end = top.map_or(content.len(), |lines| top_end(content, lines));
    postamt_wire::dot::stuff(&content[..end], out);
}

/// Where TOP cuts: after the header, the blank line and `lines` body lines
/// (RFC 1939 §7); the whole message when it is shorter.
fn top_end(content: &[u8], lines: u32) -> usize {
    let mut in_body = false;
    let mut body_lines = 0u32;
    let mut at = 0;
    while at < content.len() {
        if in_body && body_lines >= lines {
            return at;
        }
        let end = memchr::memchr(b'\n', &content[at..]).map_or(content.len(), |p| at + p + 1);
        let line = &content[at..end];
        if in_body {
            body_lines += 1;
        } else if line == b"\r\n" || line == b"\n" {
            in_body = true;
        }
        at = end;
    }
    content.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;

    fn core(plaintext_ok: bool) -> Pop3Core {
        Pop3Core::new(CoreConfig {
            tls: false,
            tls_available: true,
            plaintext_ok,
            max_errors: 5,
        })
    }

    fn drop2() -> Maildrop {
        Maildrop {
            uidvalidity: 7,
            entries: vec![
                Entry {
                    uid: Uid(1),
                    size: 120,
                    deleted: false,
                    retrieved: false,
                },
                Entry {
                    uid: Uid(3),
                    size: 200,
                    deleted: false,
                    retrieved: false,
                },
            ],
        }
    }

    fn wire(step: &Step) -> String {
        match step {
            Step::Reply(r) | Step::Close(r) => {
                let mut v = Vec::new();
                r.render(&mut v);
                String::from_utf8(v).unwrap()
            }
            other => format!("{other:?}"),
        }
    }

    /// Logs in with USER/PASS and the RFC 1939 §10 maildrop (2 messages,
    /// 320 octets).
    fn logged_in() -> Pop3Core {
        let mut c = core(true);
        assert_eq!(wire(&c.line(b"USER mrose\r\n")), "+OK send PASS\r\n");
        match c.line(b"PASS tanstaaf\r\n") {
            Step::Authenticate { user, password } => {
                assert_eq!(user, "mrose");
                assert_eq!(password.expose(), "tanstaaf");
            }
            s => panic!("{s:?}"),
        }
        let s = c.login_result(LoginResult::Ok(drop2()));
        assert_eq!(wire(&s), "+OK logged in, 2 messages (320 octets)\r\n");
        c
    }

    #[test]
    fn rfc1939_section_10_example_session() {
        let mut c = logged_in();
        assert_eq!(wire(&c.line(b"STAT\r\n")), "+OK 2 320\r\n");
        assert_eq!(
            wire(&c.line(b"LIST\r\n")),
            "+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"
        );
        assert_eq!(
            c.line(b"RETR 1\r\n"),
            Step::Send {
                uid: Uid(1),
                size: 120,
                top: None
            }
        );
        assert_eq!(wire(&c.line(b"DELE 1\r\n")), "+OK message 1 deleted\r\n");
        assert_eq!(
            c.line(b"RETR 2\r\n"),
            Step::Send {
                uid: Uid(3),
                size: 200,
                top: None
            }
        );
        assert_eq!(wire(&c.line(b"DELE 2\r\n")), "+OK message 2 deleted\r\n");
        assert_eq!(
            c.line(b"QUIT\r\n"),
            Step::Update {
                delete: vec![Uid(1), Uid(3)],
                seen: vec![],
                left: 0
            }
        );
        assert_eq!(
            wire(&Step::Close(c.update_result(true, 0))),
            "+OK postamt POP3 server signing off (0 messages left)\r\n"
        );
    }

    #[test]
    fn rfc1939_command_examples() {
        let mut c = logged_in();
        // §5 LIST msg
        assert_eq!(wire(&c.line(b"LIST 2\r\n")), "+OK 2 200\r\n");
        assert_eq!(wire(&c.line(b"LIST 3\r\n")), "-ERR no such message\r\n");
        // §5 DELE of a deleted message
        assert_eq!(wire(&c.line(b"DELE 1\r\n")), "+OK message 1 deleted\r\n");
        assert_eq!(
            wire(&c.line(b"DELE 1\r\n")),
            "-ERR message 1 already deleted\r\n"
        );
        // deleted messages vanish from STAT, LIST, RETR, UIDL
        assert_eq!(wire(&c.line(b"STAT\r\n")), "+OK 1 200\r\n");
        assert_eq!(wire(&c.line(b"LIST 1\r\n")), "-ERR no such message\r\n");
        assert_eq!(wire(&c.line(b"RETR 1\r\n")), "-ERR no such message\r\n");
        assert_eq!(
            wire(&c.line(b"UIDL\r\n")),
            "+OK unique-id listing follows\r\n2 0000000300000007\r\n.\r\n"
        );
        // §5 RSET
        assert_eq!(
            wire(&c.line(b"RSET\r\n")),
            "+OK maildrop has 2 messages\r\n"
        );
        assert_eq!(wire(&c.line(b"STAT\r\n")), "+OK 2 320\r\n");
        // §7 UIDL msg, TOP
        assert_eq!(wire(&c.line(b"UIDL 1\r\n")), "+OK 1 0000000100000007\r\n");
        assert_eq!(
            c.line(b"TOP 1 10\r\n"),
            Step::Send {
                uid: Uid(1),
                size: 120,
                top: Some(10)
            }
        );
        assert_eq!(wire(&c.line(b"NOOP\r\n")), "+OK\r\n");
        // RETR marks \Seen at QUIT; TOP does not.
        assert!(matches!(c.line(b"RETR 2\r\n"), Step::Send { .. }));
        assert_eq!(
            c.line(b"QUIT\r\n"),
            Step::Update {
                delete: vec![],
                seen: vec![Uid(3)],
                left: 2
            }
        );
    }

    #[test]
    fn bad_message_numbers() {
        let mut c = logged_in();
        for cmd in [
            "RETR 0",
            "RETR -1",
            "RETR 99999999999999999999",
            "DELE 0",
            "DELE 3",
            "TOP 1",
            "TOP x 1",
            "RETR",
            "RETR 1 2",
            "LIST a",
            "RETR +1",
        ] {
            let w = wire(&c.line(format!("{cmd}\r\n").as_bytes()));
            assert!(w.starts_with("-ERR"), "{cmd}: {w}");
            c.errors = 0;
        }
        assert_eq!(
            wire(&c.line(b"STAT\r\n")),
            "+OK 2 320\r\n",
            "nothing deleted"
        );
    }

    #[test]
    fn commands_before_login_are_refused() {
        let mut c = core(true);
        for cmd in [
            "STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET", "NOOP",
        ] {
            let w = wire(&c.line(format!("{cmd}\r\n").as_bytes()));
            assert_eq!(w, "-ERR not allowed before login\r\n", "{cmd}");
            c.errors = 0;
        }
        assert_eq!(wire(&c.line(b"PASS x\r\n")), "-ERR USER first\r\n");
        // PASS must follow USER immediately (RFC 1939 §7).
        c.line(b"USER alice\r\n");
        c.line(b"CAPA\r\n");
        assert_eq!(wire(&c.line(b"PASS x\r\n")), "-ERR USER first\r\n");
        c.errors = 0;
        assert_eq!(wire(&c.line(b"FOO\r\n")), "-ERR unknown command\r\n");
        assert!(
            wire(&c.line(b"user alice\r\n")).starts_with("+OK"),
            "case-insensitive"
        );
    }

    #[test]
    fn too_many_errors_close_the_session() {
        let mut c = core(true);
        for _ in 0..4 {
            assert!(matches!(c.line(b"BOGUS\r\n"), Step::Reply(_)));
        }
        assert!(matches!(c.line(b"BOGUS\r\n"), Step::Close(_)));
    }

    #[test]
    fn login_failures_carry_resp_codes() {
        let mut c = core(true);
        c.line(b"USER a\r\n");
        c.line(b"PASS b\r\n");
        assert_eq!(
            wire(&c.login_result(LoginResult::BadCredentials)),
            "-ERR [AUTH] authentication failed\r\n"
        );
        c.line(b"USER a\r\n");
        c.line(b"PASS b\r\n");
        assert_eq!(
            wire(&c.login_result(LoginResult::Locked)),
            "-ERR [IN-USE] maildrop is locked by another session\r\n"
        );
        assert_eq!(
            wire(&c.login_result(LoginResult::TempFail)),
            "-ERR [SYS/TEMP] temporary failure, try again later\r\n"
        );
    }

    #[test]
    fn plaintext_refused_without_tls_off_loopback() {
        let mut c = core(false);
        assert!(wire(&c.line(b"USER alice\r\n")).starts_with("-ERR [AUTH]"));
        assert!(wire(&c.line(b"AUTH PLAIN AGEAYg==\r\n")).starts_with("-ERR [AUTH]"));
        let caps = c.capabilities();
        assert!(caps.contains(&"STLS".to_string()));
        assert!(!caps.iter().any(|c| c == "USER" || c.starts_with("SASL")));
        assert_eq!(c.line(b"STLS\r\n"), Step::StartTls);
        c.tls_started(true);
        let caps = c.capabilities();
        assert!(!caps.contains(&"STLS".to_string()));
        assert!(caps.contains(&"USER".to_string()));
        assert!(wire(&c.line(b"STLS\r\n")).starts_with("-ERR"));
    }

    #[test]
    fn sasl_plain_and_login() {
        let mut c = core(true);
        // RFC 4616: authzid NUL authcid NUL passwd
        let ir = B64.encode("\0alice@x\0pw");
        match c.line(format!("AUTH PLAIN {ir}\r\n").as_bytes()) {
            Step::Authenticate { user, password } => assert_eq!(
                (user.as_str(), password.expose().as_str()),
                ("alice@x", "pw")
            ),
            s => panic!("{s:?}"),
        }
        assert_eq!(wire(&c.line(b"AUTH PLAIN\r\n")), "+ \r\n");
        assert!(c.in_sasl());
        assert!(matches!(
            c.line(format!("{ir}\r\n").as_bytes()),
            Step::Authenticate { .. }
        ));
        assert_eq!(wire(&c.line(b"AUTH LOGIN\r\n")), "+ VXNlcm5hbWU6\r\n");
        assert_eq!(
            wire(&c.line(format!("{}\r\n", B64.encode("bob")).as_bytes())),
            "+ UGFzc3dvcmQ6\r\n"
        );
        match c.line(format!("{}\r\n", B64.encode("secret")).as_bytes()) {
            Step::Authenticate { user, password } => assert_eq!(
                (user.as_str(), password.expose().as_str()),
                ("bob", "secret")
            ),
            s => panic!("{s:?}"),
        }
        // cancel, bad base64, other authzid, unknown mechanism
        c.line(b"AUTH PLAIN\r\n");
        assert_eq!(wire(&c.line(b"*\r\n")), "-ERR authentication cancelled\r\n");
        assert!(wire(&c.line(b"AUTH PLAIN !!!\r\n")).starts_with("-ERR [AUTH]"));
        let other = B64.encode("root\0alice\0pw");
        assert!(
            wire(&c.line(format!("AUTH PLAIN {other}\r\n").as_bytes())).starts_with("-ERR [AUTH]")
        );
        assert_eq!(
            wire(&c.line(b"AUTH CRAM-MD5\r\n")),
            "-ERR unsupported SASL mechanism\r\n"
        );
        assert_eq!(
            wire(&c.line(b"AUTH\r\n")),
            "+OK SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n"
        );
    }

    #[test]
    fn capa_lists_rfc2449_capabilities() {
        let c = logged_in();
        let caps = c.capabilities();
        for cap in ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"] {
            assert!(caps.contains(&cap.to_string()), "{cap}");
        }
        assert!(!caps.contains(&"USER".to_string()), "no USER after login");
    }

    #[test]
    fn password_with_spaces_is_kept_whole() {
        let mut c = core(true);
        c.line(b"USER a\r\n");
        match c.line(b"PASS correct horse battery\r\n") {
            Step::Authenticate { password, .. } => {
                assert_eq!(password.expose(), "correct horse battery")
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn render_message_byte_stuffs_and_tops() {
        let msg = b"Subject: x\r\n.hidden: y\r\n\r\n.line one\r\n..two\r\nthree\r\n";
        let mut out = Vec::new();
        render_message(msg, None, &mut out);
        assert_eq!(
            out,
            b"Subject: x\r\n..hidden: y\r\n\r\n..line one\r\n...two\r\nthree\r\n.\r\n"
        );
        let mut out = Vec::new();
        render_message(msg, Some(1), &mut out);
        assert_eq!(out, b"Subject: x\r\n..hidden: y\r\n\r\n..line one\r\n.\r\n");
        let mut out = Vec::new();
        render_message(msg, Some(0), &mut out);
        assert_eq!(out, b"Subject: x\r\n..hidden: y\r\n\r\n.\r\n");
        // A last line without CRLF still ends with CRLF before the dot.
        let mut out = Vec::new();
        render_message(b"S: x\r\n\r\nno newline", None, &mut out);
        assert_eq!(out, b"S: x\r\n\r\nno newline\r\n.\r\n");
    }

    #[test]
    fn parser_never_panics_on_prefixes_and_garbage() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\r\n",
            b" \r\n",
            b"\xff\xfe\r\n",
            b"RETR \r\n",
            b"TOP 1 \r\n",
            b"AUTH a b c\r\n",
            b"LIST 1 2 3\r\n",
        ];
        for i in inputs {
            let _ = parse(i);
        }
        let full = b"TOP 12 3\r\n";
        for n in 0..=full.len() {
            let _ = parse(&full[..n]);
        }
    }
}
