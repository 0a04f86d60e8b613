//! What a protocol line means, in a few words, with the RFC section that
//! defines it — in English and German. Used by `postamt mail --explain`
//! (the client's transcript) and meant for the server's transcripts too.
//!
//! Commands are looked up by their verb; replies by their code (SMTP: the
//! three digits, refined by the enhanced status code and the command they
//! answer; POP3: `+OK`/`-ERR` and the command they answer).
//!
//! `tables.rs` holds the words (every entry in English and German, with
//! its RFC section), this file the lookups, `annotator.rs` the
//! [`Annotator`] that follows a dialogue, and the session states.

mod annotator;
mod tables;

pub use annotator::Annotator;
use tables::*;

/// The language of the explanations (and of `postamt analyze`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    En,
    De,
}

impl Lang {
    /// `de` for a German locale (`de_DE.UTF-8`, `de`), else English.
    pub fn from_locale(s: &str) -> Lang {
        if s.to_ascii_lowercase().starts_with("de") {
            Lang::De
        } else {
            Lang::En
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Smtp,
    Pop3,
    Imap,
}

/// One explanation: the text and where the rule is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub text: &'static str,
    pub rfc: &'static str,
}

type Entry = (&'static str, &'static str, &'static str, &'static str);

fn pick(entry: &Entry, lang: Lang) -> Explanation {
    Explanation {
        text: if lang == Lang::De { entry.2 } else { entry.1 },
        rfc: entry.3,
    }
}

/// Explains a command line the client sent (`verb` is its first word;
/// use `MESSAGE` for message content and `.` for the end of data).
pub fn command(proto: Proto, verb: &str, lang: Lang) -> Option<Explanation> {
    let table = match proto {
        Proto::Smtp => SMTP_COMMANDS,
        Proto::Pop3 => POP3_COMMANDS,
        Proto::Imap => IMAP_COMMANDS,
    };
    let verb = verb.to_ascii_uppercase();
    table.iter().find(|e| e.0 == verb).map(|e| pick(e, lang))
}

/// Explains a server reply line, given the verb of the command it
/// answers (empty for a greeting).
pub fn reply(proto: Proto, line: &str, answering: &str, lang: Lang) -> Option<Explanation> {
    let answering = answering.to_ascii_uppercase();
    match proto {
        Proto::Smtp => {
            let code = line.get(..3)?;
            let enhanced = line.get(4..)?.split(' ').next().unwrap_or("");
            let keys = [
                format!("{code}:{answering}"),
                format!("{code}:{enhanced}"),
                format!("{code}:"),
                code[..1].to_string(),
            ];
            keys.iter()
                .find_map(|k| SMTP_REPLIES.iter().find(|e| e.0 == k))
                .map(|e| pick(e, lang))
        }
        Proto::Pop3 => {
            let status = if line.starts_with("+OK") {
                "+OK"
            } else if line.starts_with("-ERR") {
                "-ERR"
            } else {
                return None;
            };
            let keys = [format!("{status}:{answering}"), format!("{status}:")];
            keys.iter()
                .find_map(|k| POP3_REPLIES.iter().find(|e| e.0 == k))
                .map(|e| pick(e, lang))
        }
        Proto::Imap => imap_response(line, answering == "GREETING", lang),
    }
}

/// An IMAP server line: untagged (`* …`), continuation (`+ …`) or the
/// tagged completion of a command.
fn imap_response(line: &str, greeting: bool, lang: Lang) -> Option<Explanation> {
    let mut words = line.split(' ');
    let first = words.next()?;
    let key = if first == "+" {
        "CONTINUE".to_string()
    } else if first == "*" {
        let second = words.next().unwrap_or("").to_ascii_uppercase();
        let third = words.next().unwrap_or("").to_ascii_uppercase();
        if second.bytes().all(|b| b.is_ascii_digit()) && !second.is_empty() {
            third
        } else if second == "OK" && greeting {
            "GREETING".into()
        } else if second == "OK" && third.starts_with('[') {
            let code = third
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if IMAP_RESPONSES.iter().any(|e| e.0 == code) {
                code
            } else {
                "OK".into()
            }
        } else {
            second
        }
    } else {
        let status = words.next().unwrap_or("").to_ascii_uppercase();
        format!("TAGGED {status}")
    };
    IMAP_RESPONSES
        .iter()
        .find(|e| e.0 == key)
        .map(|e| pick(e, lang))
}

/// EHLO keywords (lines of a 250 EHLO reply after the first).
pub fn ehlo_keyword(keyword: &str, lang: Lang) -> Option<Explanation> {
    const K: &[Entry] = &[
        (
            "PIPELINING",
            "Commands may be sent in groups without waiting for each reply.",
            "Befehle dürfen gebündelt gesendet werden, ohne jede Antwort abzuwarten.",
            "RFC 2920",
        ),
        (
            "SIZE",
            "The largest message the server accepts, in octets.",
            "Die größte Nachricht, die der Server annimmt, in Oktetten.",
            "RFC 1870",
        ),
        (
            "8BITMIME",
            "Message bodies may contain 8-bit bytes.",
            "Nachrichtenrümpfe dürfen 8-Bit-Bytes enthalten.",
            "RFC 6152",
        ),
        (
            "SMTPUTF8",
            "Addresses and headers may be UTF-8.",
            "Adressen und Kopfzeilen dürfen UTF-8 sein.",
            "RFC 6531",
        ),
        (
            "STARTTLS",
            "The connection can be switched to TLS.",
            "Die Verbindung kann auf TLS umgestellt werden.",
            "RFC 3207",
        ),
        (
            "AUTH",
            "Login methods (SASL) the server accepts.",
            "Anmeldeverfahren (SASL), die der Server annimmt.",
            "RFC 4954",
        ),
        (
            "CHUNKING",
            "The message may be sent in chunks with BDAT.",
            "Die Nachricht darf in Stücken mit BDAT gesendet werden.",
            "RFC 3030",
        ),
        (
            "DSN",
            "Delivery status notifications can be requested.",
            "Zustellberichte können angefordert werden.",
            "RFC 3461",
        ),
        (
            "ENHANCEDSTATUSCODES",
            "Replies carry detailed codes like 2.1.0.",
            "Antworten tragen genauere Codes wie 2.1.0.",
            "RFC 2034, RFC 3463",
        ),
        (
            "BINARYMIME",
            "Binary message bodies are accepted (with BDAT).",
            "Binäre Nachrichtenrümpfe werden angenommen (mit BDAT).",
            "RFC 3030",
        ),
    ];
    let k = keyword.split(' ').next()?.to_ascii_uppercase();
    K.iter().find(|e| e.0 == k).map(|e| pick(e, lang))
}

/// Explains a note the server wrote into a transcript about a message's
/// authentication (`SPF: fail (…)`, `DKIM: pass d=…`, `DMARC: …`).
pub fn verification(note: &str, lang: Lang) -> Option<Explanation> {
    let (check, rest) = note.split_once(": ")?;
    let result = rest.split([' ', '(']).next().unwrap_or("");
    let key = format!("{check}: {}", result.to_ascii_lowercase());
    VERIFICATION
        .iter()
        .find(|e| e.0 == key)
        .map(|e| pick(e, lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_explained_in_context() {
        let e = reply(Proto::Smtp, "250 2.1.0 Sender ok", "MAIL", Lang::En).unwrap();
        assert!(e.text.contains("not verified"), "{}", e.text);
        assert_eq!(e.rfc, "RFC 5321 §4.1.1.2");
        let e = reply(Proto::Smtp, "550 5.1.1 no such user", "RCPT", Lang::De).unwrap();
        assert!(e.text.contains("Postfach"));
        assert!(reply(Proto::Smtp, "599 9.9.9 odd", "X", Lang::En).is_some());
        // The verdicts of mail authentication, in both languages.
        let e = reply(Proto::Smtp, "550 5.7.26 DMARC: no", ".", Lang::De).unwrap();
        assert!(e.text.contains("gefälschter Absender"), "{}", e.text);
        assert_eq!(e.rfc, "RFC 7489 §6.3, RFC 7372 §3.2");
        let e = reply(Proto::Smtp, "550 5.7.23 SPF: no", ".", Lang::En).unwrap();
        assert!(e.text.contains("SPF"), "{}", e.text);
        let e = reply(Proto::Pop3, "+OK 2 320", "STAT", Lang::En).unwrap();
        assert!(e.text.contains("Number of messages"));
        assert!(reply(Proto::Pop3, "garbage", "STAT", Lang::En).is_none());
        let e = reply(Proto::Imap, "* 3 EXISTS", "SELECT", Lang::En).unwrap();
        assert!(e.text.contains("messages the mailbox holds"));
        let e = reply(Proto::Imap, "* OK [UIDVALIDITY 17] ok", "SELECT", Lang::En).unwrap();
        assert_eq!(e.rfc, "RFC 9051 §2.3.1.1");
        let e = reply(
            Proto::Imap,
            "a4 NO [TRYCREATE] no such mailbox",
            "UID MOVE",
            Lang::De,
        )
        .unwrap();
        assert!(e.text.contains("gescheitert"));
        let e = reply(Proto::Imap, "* OK IMAP ready", "GREETING", Lang::En).unwrap();
        assert!(e.text.contains("ready"));
    }

    #[test]
    fn every_entry_has_both_languages_and_an_rfc() {
        for table in [
            SMTP_COMMANDS,
            POP3_COMMANDS,
            SMTP_REPLIES,
            POP3_REPLIES,
            IMAP_COMMANDS,
            IMAP_RESPONSES,
        ] {
            for e in table {
                assert!(!e.1.is_empty() && !e.2.is_empty() && e.1 != e.2, "{}", e.0);
                assert!(e.3.starts_with("RFC "), "{}", e.0);
            }
        }
        assert_eq!(Lang::from_locale("de_DE.UTF-8"), Lang::De);
        assert_eq!(Lang::from_locale("C.UTF-8"), Lang::En);
    }

    #[test]
    fn verification_notes_are_explained_in_both_languages() {
        let e = verification("DMARC: fail (neither DKIM nor SPF passed)", Lang::De).unwrap();
        assert!(e.text.contains("gefälscht"), "{}", e.text);
        assert_eq!(e.rfc, "RFC 7489 §6.6.2");
        let e = verification("DKIM: pass d=bank.test s=lab", Lang::En).unwrap();
        assert!(e.text.starts_with("DKIM: the signature is valid"));
        assert!(verification("SPF: softfail (x)", Lang::En).is_some());
        assert!(verification("ARC: none []", Lang::De).is_some());
        assert!(verification("TLS started: TLSv1_3", Lang::En).is_none());
        assert!(verification("DMARC: maybe", Lang::En).is_none());
        for e in VERIFICATION {
            assert!(e.3.starts_with("RFC "), "{}", e.0);
        }
    }
}
