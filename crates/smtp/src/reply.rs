//! SMTP replies with enhanced status codes (RFC 5321 §4.2, RFC 3463,
//! RFC 2034), from one table. Call sites name a reply; the code, the
//! enhanced code and the default text live here.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `class.subject.detail`; `None` for greeting-type replies.
    pub enhanced: Option<&'static str>,
    pub lines: Vec<Cow<'static, str>>,
}

macro_rules! replies {
    ($($name:ident => $code:literal $enh:expr, $text:literal;)*) => {
        /// Every reply the server sends, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum R { $($name,)* }
        impl R {
            pub const fn code(self) -> u16 { match self { $(R::$name => $code,)* } }
            pub const fn enhanced(self) -> Option<&'static str> { match self { $(R::$name => $enh,)* } }
            pub const fn text(self) -> &'static str { match self { $(R::$name => $text,)* } }
        }
    };
}

replies! {
    Ok => 250 Some("2.0.0"), "Ok";
    SenderOk => 250 Some("2.1.0"), "Sender ok";
    RecipientOk => 250 Some("2.1.5"), "Recipient ok";
    Vrfy => 252 Some("2.5.0"), "Cannot VRFY user, but will accept message and attempt delivery";
    Help => 214 Some("2.0.0"), "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH";
    Bye => 221 Some("2.0.0"), "Bye";
    StartData => 354 None, "End data with <CR><LF>.<CR><LF>";
    ReadyTls => 220 Some("2.0.0"), "Ready to start TLS";
    AuthOk => 235 Some("2.7.0"), "Authentication successful";
    // 4xx
    ShuttingDown => 421 Some("4.3.2"), "Service shutting down, try again later";
    Timeout => 421 Some("4.4.2"), "Timeout exceeded, closing connection";
    TooManyErrors => 421 Some("4.7.0"), "Too many errors, closing connection";
    TooManyConnections => 421 Some("4.7.0"), "Too many connections from your address";
    AuthThrottled => 421 Some("4.7.0"), "Too many failed logins from your address, try later";
    TempFail => 451 Some("4.3.0"), "Temporary failure, try again later";
    OverQuota => 452 Some("4.2.2"), "Mailbox full";
    TooManyRecipients => 452 Some("4.5.3"), "Too many recipients";
    // 5xx
    Unknown => 500 Some("5.5.1"), "Command unrecognized";
    LineTooLong => 500 Some("5.5.2"), "Line too long";
    BareLineEnding => 500 Some("5.5.2"), "Bare CR or LF, or NUL, in command (RFC 5321 §2.3.8)";
    Syntax => 501 Some("5.5.4"), "Syntax error in parameters";
    BadSender => 501 Some("5.1.7"), "Bad sender address syntax";
    BadRecipient => 501 Some("5.1.3"), "Bad recipient address syntax";
    NotImplemented => 502 Some("5.5.1"), "Command not implemented";
    BadSequence => 503 Some("5.5.1"), "Bad sequence of commands";
    HeloFirst => 503 Some("5.5.1"), "Send HELO/EHLO first";
    LhloFirst => 503 Some("5.5.1"), "Send LHLO first";
    MailFirst => 503 Some("5.5.1"), "Need MAIL before RCPT";
    MailFirstData => 503 Some("5.5.1"), "Need MAIL and RCPT before DATA or BDAT";
    RcptFirst => 503 Some("5.5.1"), "Need RCPT before DATA";
    AlreadyAuthenticated => 503 Some("5.5.1"), "Already authenticated";
    NoAuthHere => 503 Some("5.5.1"), "AUTH is not offered here; use the submission port";
    AuthMechanism => 504 Some("5.5.4"), "Unrecognized authentication mechanism";
    AuthRequired => 530 Some("5.7.0"), "Authentication required";
    AuthInvalid => 535 Some("5.7.8"), "Authentication credentials invalid";
    AuthCancelled => 501 Some("5.0.0"), "Authentication cancelled";
    EncryptionRequired => 538 Some("5.7.11"), "Encryption required for requested authentication mechanism";
    UnknownUser => 550 Some("5.1.1"), "No such user here";
    RelayDenied => 554 Some("5.7.1"), "Relay access denied";
    SpoofedSender => 550 Some("5.7.1"), "Unauthenticated sender claims a local domain";
    NotYourAddress => 553 Some("5.7.1"), "Sender address not owned by the authenticated user";
    SpfFail => 550 Some("5.7.23"), "SPF validation failed";
    DmarcReject => 550 Some("5.7.26"), "Multiple authentication checks failed (DMARC)";
    DmarcTempError => 451 Some("4.7.5"), "DMARC could not be evaluated";
    SpfTempError => 451 Some("4.7.24"), "SPF validation error";
    BadFromField => 550 Some("5.7.1"), "The message must have one From: field with an address (RFC 5322 §3.6)";
    NeedSmtpUtf8 => 553 Some("5.6.7"), "Must declare SMTPUTF8 to send a UTF-8 address";
    TooBig => 552 Some("5.3.4"), "Message size exceeds fixed limit";
    HeaderTooBig => 552 Some("5.3.4"), "Message header size exceeds limit";
    BareLineEndingData => 550 Some("5.6.11"), "Bare CR or LF in message content (RFC 5321 §2.3.8)";
    Loop => 554 Some("5.4.6"), "Too many Received headers: mail loop";
    NoValidRecipients => 554 Some("5.5.1"), "No valid recipients";
    BadParameter => 555 Some("5.5.4"), "Unsupported or malformed MAIL/RCPT parameter";
    TlsUnavailable => 454 Some("4.7.0"), "TLS not available";
}

impl Reply {
    pub fn new(r: R) -> Reply {
        Reply {
            code: r.code(),
            enhanced: r.enhanced(),
            lines: vec![Cow::Borrowed(r.text())],
        }
    }

    /// The named reply with another text.
    pub fn with(r: R, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code: r.code(),
            enhanced: r.enhanced(),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced code (greeting, EHLO response).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: lines.into_iter().map(Cow::Owned).collect(),
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Writes the reply: `code-text` continuation lines and a final
    /// `code text` line (RFC 5321 §4.2.1).
    pub fn render(&self, out: &mut Vec<u8>) {
        let n = self.lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let text = self.lines.get(i).map(|t| t.as_ref()).unwrap_or("");
            let line = match self.enhanced {
                Some(e) => format!("{}{sep}{e} {text}\r\n", self.code),
                None => format!("{}{sep}{text}\r\n", self.code),
            };
            out.extend_from_slice(line.as_bytes());
        }
    }
}

impl From<R> for Reply {
    fn from(r: R) -> Reply {
        Reply::new(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: Reply) -> String {
        let mut v = Vec::new();
        r.render(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn rendering() {
        assert_eq!(wire(R::SenderOk.into()), "250 2.1.0 Sender ok\r\n");
        assert_eq!(
            wire(Reply::plain(
                250,
                vec![
                    "mx greets you".into(),
                    "PIPELINING".into(),
                    "SIZE 100".into()
                ]
            )),
            "250-mx greets you\r\n250-PIPELINING\r\n250 SIZE 100\r\n"
        );
        assert_eq!(
            wire(Reply::with(R::Ok, "Ok: queued as 7")),
            "250 2.0.0 Ok: queued as 7\r\n"
        );
    }

    #[test]
    fn enhanced_codes_agree_with_their_reply_class() {
        // RFC 3463 §2: the class digit of the enhanced code equals the
        // first digit of the reply code (2, 4 or 5).
        let all = [
            R::Ok,
            R::SenderOk,
            R::RecipientOk,
            R::Vrfy,
            R::Help,
            R::Bye,
            R::ReadyTls,
            R::AuthOk,
            R::ShuttingDown,
            R::Timeout,
            R::TooManyErrors,
            R::TooManyConnections,
            R::AuthThrottled,
            R::TempFail,
            R::OverQuota,
            R::TooManyRecipients,
            R::Unknown,
            R::LineTooLong,
            R::BareLineEnding,
            R::Syntax,
            R::BadSender,
            R::BadRecipient,
            R::NotImplemented,
            R::BadSequence,
            R::HeloFirst,
            R::LhloFirst,
            R::MailFirst,
            R::RcptFirst,
            R::AlreadyAuthenticated,
            R::NoAuthHere,
            R::AuthMechanism,
            R::AuthRequired,
            R::AuthInvalid,
            R::AuthCancelled,
            R::EncryptionRequired,
            R::UnknownUser,
            R::RelayDenied,
            R::SpoofedSender,
            R::NotYourAddress,
            R::BadFromField,
            R::SpfFail,
            R::DmarcReject,
            R::DmarcTempError,
            R::SpfTempError,
            R::NeedSmtpUtf8,
            R::TooBig,
            R::HeaderTooBig,
            R::BareLineEndingData,
            R::Loop,
            R::NoValidRecipients,
            R::BadParameter,
            R::TlsUnavailable,
        ];
        for r in all {
            if let Some(e) = r.enhanced() {
                assert_eq!(e.as_bytes()[0], r.code().to_string().as_bytes()[0], "{r:?}");
            }
        }
    }
}
