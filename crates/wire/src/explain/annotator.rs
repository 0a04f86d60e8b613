//! [`Annotator`]: follows a dialogue line by line, explains each line and
//! says which state each reply puts the session in.

use super::{Entry, Explanation, Lang, Proto, command, ehlo_keyword, pick, reply};

/// Follows a dialogue line by line and explains each: commands by their
/// verb, replies by their code and the command they answer (only the
/// first line of a multi-line SMTP reply, except EHLO keywords). The
/// client's `--trace --explain` and `postamt trace show --explain` both
/// use it.
#[derive(Debug, Clone)]
pub struct Annotator {
    pub proto: Proto,
    pub lang: Lang,
    /// The verb of the last command (replies are explained by it).
    last_verb: String,
    /// Lines of the current multi-line reply seen so far.
    reply_lines: usize,
    /// The state the last reply put the session in, until taken.
    state: Option<Explanation>,
    /// POP3: in the TRANSACTION state (QUIT then means UPDATE).
    pop3_transaction: bool,
}

/// The states a session goes through, by (protocol, key): English,
/// German, RFC section. Keys: the command whose success leads there
/// (`GREETING` for the greeting), `!X` for its failure.
pub(super) const STATES: &[(Proto, Entry)] = &[
    (
        Proto::Smtp,
        (
            "GREETING",
            "waiting for EHLO (or HELO)",
            "wartet auf EHLO (oder HELO)",
            "RFC 5321 §3.1",
        ),
    ),
    (
        Proto::Smtp,
        (
            "EHLO",
            "greeted: waiting for MAIL (or STARTTLS, AUTH)",
            "begrüßt: wartet auf MAIL (oder STARTTLS, AUTH)",
            "RFC 5321 §4.1.1.1",
        ),
    ),
    (
        Proto::Smtp,
        (
            "HELO",
            "greeted: waiting for MAIL",
            "begrüßt: wartet auf MAIL",
            "RFC 5321 §4.1.1.1",
        ),
    ),
    (
        Proto::Smtp,
        (
            "STARTTLS",
            "the TLS handshake comes next, then EHLO again: what was said before is forgotten",
            "als Nächstes der TLS-Handshake, dann wieder EHLO: das bisher Gesagte gilt nicht mehr",
            "RFC 3207 §4.2",
        ),
    ),
    (
        Proto::Smtp,
        (
            "AUTH",
            "authenticated: waiting for MAIL",
            "angemeldet: wartet auf MAIL",
            "RFC 4954 §4",
        ),
    ),
    (
        Proto::Smtp,
        (
            "MAIL",
            "after MAIL: sender accepted, waiting for RCPT",
            "nach MAIL: Absender angenommen, wartet auf RCPT",
            "RFC 5321 §3.3",
        ),
    ),
    (
        Proto::Smtp,
        (
            "RCPT",
            "after RCPT: recipient accepted; another RCPT, or DATA",
            "nach RCPT: Empfänger angenommen; noch ein RCPT oder DATA",
            "RFC 5321 §3.3",
        ),
    ),
    (
        Proto::Smtp,
        (
            "DATA",
            "the message comes now; a line with only a dot ends it",
            "jetzt kommt die Nachricht; eine Zeile nur mit einem Punkt beendet sie",
            "RFC 5321 §4.1.1.4",
        ),
    ),
    (
        Proto::Smtp,
        (
            ".",
            "message accepted, the transaction is over: next MAIL, or QUIT",
            "Nachricht angenommen, die Transaktion ist vorbei: als Nächstes MAIL oder QUIT",
            "RFC 5321 §4.1.1.4",
        ),
    ),
    (
        Proto::Smtp,
        (
            "!.",
            "message refused, the transaction is over: next MAIL, or QUIT",
            "Nachricht abgelehnt, die Transaktion ist vorbei: als Nächstes MAIL oder QUIT",
            "RFC 5321 §4.1.1.4",
        ),
    ),
    (
        Proto::Smtp,
        (
            "RSET",
            "transaction reset: waiting for MAIL",
            "Transaktion zurückgesetzt: wartet auf MAIL",
            "RFC 5321 §4.1.1.5",
        ),
    ),
    (
        Proto::Smtp,
        (
            "QUIT",
            "the server closes the connection",
            "der Server schließt die Verbindung",
            "RFC 5321 §4.1.1.10",
        ),
    ),
    (
        Proto::Pop3,
        (
            "GREETING",
            "AUTHORIZATION state: waiting for USER and PASS (or AUTH)",
            "Zustand AUTHORIZATION: wartet auf USER und PASS (oder AUTH)",
            "RFC 1939 §4",
        ),
    ),
    (
        Proto::Pop3,
        (
            "PASS",
            "TRANSACTION state: the maildrop is locked for this session",
            "Zustand TRANSACTION: das Postfach ist für diese Sitzung gesperrt",
            "RFC 1939 §5",
        ),
    ),
    (
        Proto::Pop3,
        (
            "QUIT",
            "UPDATE state: messages marked deleted are removed, then the connection closes",
            "Zustand UPDATE: die zum Löschen markierten Nachrichten werden entfernt, dann wird die Verbindung geschlossen",
            "RFC 1939 §6",
        ),
    ),
    (
        Proto::Pop3,
        (
            "!QUIT",
            "the server closes the connection (nothing is deleted before login)",
            "der Server schließt die Verbindung (vor der Anmeldung wird nichts gelöscht)",
            "RFC 1939 §4",
        ),
    ),
    (
        Proto::Imap,
        (
            "GREETING",
            "not authenticated state: waiting for LOGIN or AUTHENTICATE (or STARTTLS)",
            "Zustand nicht angemeldet: wartet auf LOGIN oder AUTHENTICATE (oder STARTTLS)",
            "RFC 9051 §3.1",
        ),
    ),
    (
        Proto::Imap,
        (
            "PREAUTH",
            "authenticated state: mailboxes can be listed and selected",
            "Zustand angemeldet: Postfächer können aufgelistet und gewählt werden",
            "RFC 9051 §3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "LOGIN",
            "authenticated state: mailboxes can be listed and selected",
            "Zustand angemeldet: Postfächer können aufgelistet und gewählt werden",
            "RFC 9051 §3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "SELECT",
            "selected state: the messages of this mailbox can be read and changed",
            "Zustand ausgewählt: die Nachrichten dieses Postfachs können gelesen und geändert werden",
            "RFC 9051 §3.3",
        ),
    ),
    (
        Proto::Imap,
        (
            "EXAMINE",
            "selected state, read-only: the messages of this mailbox can be read",
            "Zustand ausgewählt, nur lesend: die Nachrichten dieses Postfachs können gelesen werden",
            "RFC 9051 §3.3",
        ),
    ),
    (
        Proto::Imap,
        (
            "!SELECT",
            "no mailbox selected (a failed SELECT leaves the selected state)",
            "kein Postfach ausgewählt (ein gescheitertes SELECT verlässt den Zustand ausgewählt)",
            "RFC 9051 §6.3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "CLOSE",
            "authenticated state again: no mailbox selected",
            "wieder Zustand angemeldet: kein Postfach ausgewählt",
            "RFC 9051 §3.2",
        ),
    ),
    (
        Proto::Imap,
        (
            "LOGOUT",
            "logout state: the server closes the connection",
            "Zustand abmelden: der Server schließt die Verbindung",
            "RFC 9051 §3.4",
        ),
    ),
];

/// The state `key` names for `proto`.
fn state(proto: Proto, key: &str, lang: Lang) -> Option<Explanation> {
    STATES
        .iter()
        .find(|(p, e)| *p == proto && e.0 == key)
        .map(|(_, e)| pick(e, lang))
}

impl Annotator {
    pub fn new(proto: Proto, lang: Lang) -> Annotator {
        Annotator {
            proto,
            lang,
            last_verb: "GREETING".into(),
            reply_lines: 0,
            state: None,
            pop3_transaction: false,
        }
    }

    /// The state the session entered with the last server line, if it
    /// changed ("after MAIL: sender accepted, waiting for RCPT"); taken
    /// once.
    pub fn take_state(&mut self) -> Option<Explanation> {
        self.state.take()
    }

    /// Notes the state a complete reply (its last line, or IMAP's tagged
    /// line) leads to.
    fn reply_done(&mut self, line: &str) {
        let verb = self.last_verb.as_str();
        let key: Option<String> = match self.proto {
            Proto::Smtp => {
                // Success is 2xx; DATA's is 354 (AUTH's 334 is a step of
                // the exchange, not its end).
                let ok = line.starts_with('2');
                match verb {
                    "." | "MESSAGE" if ok => Some(".".into()),
                    "." | "MESSAGE" => Some("!.".into()),
                    "DATA" if line.starts_with("354") => Some("DATA".into()),
                    "GREETING" | "EHLO" | "HELO" | "STARTTLS" | "AUTH" | "MAIL" | "RCPT"
                    | "RSET" | "QUIT"
                        if ok =>
                    {
                        Some(verb.into())
                    }
                    _ => None,
                }
            }
            Proto::Pop3 => {
                let ok = line.starts_with("+OK");
                match verb {
                    "GREETING" if ok => Some("GREETING".into()),
                    "PASS" | "APOP" | "AUTH" if ok => {
                        self.pop3_transaction = true;
                        Some("PASS".into())
                    }
                    "QUIT" if self.pop3_transaction => Some("QUIT".into()),
                    "QUIT" => Some("!QUIT".into()),
                    _ => None,
                }
            }
            Proto::Imap => {
                let mut w = line.split(' ');
                let (tag, status) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
                let ok = status.eq_ignore_ascii_case("OK");
                match verb {
                    "GREETING" if tag == "*" && status.eq_ignore_ascii_case("PREAUTH") => {
                        Some("PREAUTH".into())
                    }
                    "GREETING" if tag == "*" && ok => Some("GREETING".into()),
                    _ if tag == "*" || tag == "+" => None,
                    "LOGIN" | "AUTHENTICATE" if ok => Some("LOGIN".into()),
                    "SELECT" | "EXAMINE" if ok => Some(verb.into()),
                    "SELECT" | "EXAMINE" => Some("!SELECT".into()),
                    "CLOSE" | "UNSELECT" if ok => Some("CLOSE".into()),
                    "LOGOUT" => Some("LOGOUT".into()),
                    _ => None,
                }
            }
        };
        if let Some(k) = key {
            self.state = state(self.proto, &k, self.lang);
        }
    }

    /// A line the client sent; `verb` is its first word (`MESSAGE` for
    /// message content). IMAP's verb follows the tag; `UID x` is one.
    pub fn client(&mut self, shown: &str, verb: &str) -> Option<Explanation> {
        let imap_verb;
        let verb = if self.proto == Proto::Imap && verb != "MESSAGE" {
            let mut w = shown.split(' ').skip(1);
            let first = w.next().unwrap_or("").to_ascii_uppercase();
            imap_verb = if first == "UID" {
                format!("UID {}", w.next().unwrap_or("").to_ascii_uppercase())
            } else {
                first
            };
            imap_verb.as_str()
        } else {
            verb
        };
        // A SASL response continues the command before it (AUTH,
        // AUTHENTICATE): its reply belongs to that command.
        if !shown.starts_with("(SASL") && !shown.contains(" (SASL") {
            self.last_verb = verb.to_ascii_uppercase();
        }
        self.reply_lines = 0;
        command(self.proto, verb, self.lang)
    }

    /// A line the server sent.
    pub fn server(&mut self, line: &str) -> Option<Explanation> {
        let e = if self.proto == Proto::Smtp && self.last_verb == "EHLO" && self.reply_lines > 0 {
            ehlo_keyword(line.get(4..).unwrap_or(""), self.lang)
        } else if self.reply_lines == 0 || self.proto == Proto::Imap {
            // An IMAP server line is a response of its own.
            reply(self.proto, line, &self.last_verb, self.lang)
        } else {
            None
        };
        let last = match self.proto {
            Proto::Smtp => line.as_bytes().get(3) != Some(&b'-'),
            Proto::Pop3 => self.reply_lines == 0,
            Proto::Imap => true,
        };
        if last {
            self.reply_done(line);
        }
        self.reply_lines += 1;
        if self.proto == Proto::Smtp && line.as_bytes().get(3) == Some(&b' ') {
            self.reply_lines = 0;
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state a session is in after each reply, for the three
    /// protocols (what teaching material says beside a transcript).
    #[test]
    fn the_annotator_follows_the_session_state() {
        // (client line and verb, server line, the state it leads to: its
        // beginning, or "" for no change).
        type Step = (
            Option<(&'static str, &'static str)>,
            &'static str,
            &'static str,
        );
        let smtp: &[Step] = &[
            (None, "220 mx ESMTP", "waiting for EHLO (or HELO)"),
            (Some(("EHLO c", "EHLO")), "250-mx", ""), // not the last line
            (None, "250 PIPELINING", "greeted"),
            (Some(("AUTH LOGIN", "AUTH")), "334 VXNlcm5hbWU6", ""),
            (
                Some(("(SASL response) ****", "(SASL")),
                "235 2.7.0 ok",
                "authenticated: waiting for MAIL",
            ),
            (
                Some(("MAIL FROM:<a@b>", "MAIL")),
                "250 2.1.0 ok",
                "after MAIL: sender accepted, waiting for RCPT",
            ),
            (Some(("RCPT TO:<x@y>", "RCPT")), "550 5.1.1 no", ""),
            (Some(("RCPT TO:<c@d>", "RCPT")), "250 ok", "after RCPT"),
            (
                Some(("DATA", "DATA")),
                "354 go",
                "the message comes now; a line with only a dot",
            ),
            (Some((".", ".")), "250 2.0.0 queued", "message accepted"),
            (Some((".", ".")), "550 5.7.26 no", "message refused"),
        ];
        let pop3: &[Step] = &[
            (None, "+OK ready", "Zustand AUTHORIZATION"),
            (Some(("USER a", "USER")), "+OK", ""),
            (Some(("PASS ****", "PASS")), "+OK", "Zustand TRANSACTION"),
            (Some(("LIST", "LIST")), "+OK 1 messages", ""),
            (None, "1 120", ""),
            (Some(("QUIT", "QUIT")), "+OK bye", "Zustand UPDATE"),
        ];
        let imap: &[Step] = &[
            (None, "* OK IMAP4rev2 ready", "not authenticated"),
            (
                Some(("a1 LOGIN a ****", "a1")),
                "a1 OK done",
                "authenticated",
            ),
            (Some(("a2 SELECT INBOX", "a2")), "* 3 EXISTS", ""),
            (None, "a2 OK [READ-WRITE] done", "selected state"),
            (
                Some(("a3 SELECT nope", "a3")),
                "a3 NO no such",
                "no mailbox selected",
            ),
            (Some(("a4 LOGOUT", "a4")), "* BYE bye", ""),
            (None, "a4 OK done", "logout state"),
        ];
        for (proto, lang, steps) in [
            (Proto::Smtp, Lang::En, smtp),
            (Proto::Pop3, Lang::De, pop3),
            (Proto::Imap, Lang::En, imap),
        ] {
            let mut a = Annotator::new(proto, lang);
            for (client, server, want) in steps {
                if let Some((shown, verb)) = client {
                    a.client(shown, verb);
                }
                a.server(server);
                let got = a.take_state().map(|e| e.text).unwrap_or("");
                if want.is_empty() {
                    assert_eq!(got, "", "{server}");
                } else {
                    assert!(got.starts_with(want), "{server}: {got:?}");
                }
            }
        }
        for (_, e) in STATES {
            assert!(!e.1.is_empty() && !e.2.is_empty() && e.1 != e.2, "{}", e.0);
            assert!(e.3.starts_with("RFC "), "{}", e.0);
        }
    }

    #[test]
    fn the_annotator_explains_the_first_line_of_a_reply_and_ehlo_keywords() {
        let mut a = Annotator::new(Proto::Smtp, Lang::En);
        assert!(a.server("220 mx.test ESMTP").is_some(), "greeting");
        assert!(a.client("EHLO c.test", "EHLO").is_some());
        assert!(a.server("250-mx.test").is_some());
        assert!(a.server("250-PIPELINING").unwrap().text.contains("groups"));
        assert!(a.server("250 SIZE 100").unwrap().text.contains("largest"));
        a.client("DATA", "DATA");
        let e = a.server("550 5.7.26 DMARC: forged").unwrap();
        assert!(e.rfc.contains("7372") || e.text.contains("DMARC"), "{e:?}");
        let mut i = Annotator::new(Proto::Imap, Lang::De);
        assert!(i.client("a1 UID FETCH 1 FLAGS", "a1").is_some());
    }
}
