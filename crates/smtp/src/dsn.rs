//! Delivery status notifications (RFC 3464, with RFC 3461's NOTIFY/RET/
//! ENVID/ORCPT and RFC 6533 for messages that need UTF-8): the bounce sent
//! to the envelope sender when a recipient fails for good or the message
//! expires, the "delayed" warning, and the "delivered"/"relayed" report a
//! sender asked for with `NOTIFY=SUCCESS`.

use postamt_store::{Outbound, OutboundEnvelope, QueueEntry, QueuedRecipient};
use postamt_wire::time::rfc5322_date;

/// RFC 3464 §2.3.3 `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
    /// The RFC 3461 §4.1 NOTIFY keyword that asks for this report.
    fn notify_keyword(self) -> &'static str {
        match self {
            Action::Failed => "FAILURE",
            Action::Delayed => "DELAY",
            Action::Delivered | Action::Relayed => "SUCCESS",
        }
    }
}

/// One recipient's line in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub recipient: QueuedRecipient,
    pub action: Action,
    /// Enhanced status code (RFC 3463).
    pub status: String,
    /// `smtp; 550 5.1.1 …` or a text of our own.
    pub diagnostic: String,
    /// The server that answered, as `name[ip]:port`.
    pub remote_mta: Option<String>,
}

/// Whether the sender wants a report of this kind for this recipient
/// (RFC 3461 §4.1: no NOTIFY means FAILURE and, at our discretion, DELAY;
/// SUCCESS only when asked; NEVER means none). Never for the null sender:
/// a notification about a notification could loop.
pub fn wanted(sender: &str, recipient: &QueuedRecipient, action: Action) -> bool {
    if sender.is_empty() {
        return false;
    }
    match recipient.notify.as_deref() {
        None => matches!(action, Action::Failed | Action::Delayed),
        Some(n) => n
            .split(',')
            .any(|k| k.trim().eq_ignore_ascii_case(action.notify_keyword())),
    }
}

/// Settings of the reporting MTA.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub hostname: String,
    /// Messages larger than this are returned as headers only (Postfix's
    /// bounce_size_limit), whatever RET says.
    pub return_limit: usize,
    /// How long the queue keeps trying (seconds), for `Will-Retry-Until`.
    pub max_lifetime: i64,
}

impl Reporter {
    /// Builds the notification about `reports` (all of one kind) for the
    /// queue entry, addressed to its envelope sender, from the null sender.
    pub fn notice(
        &self,
        entry: &QueueEntry,
        content: &[u8],
        reports: &[Report],
        now: i64,
    ) -> Outbound {
        let action = reports.first().map(|r| r.action).unwrap_or(Action::Failed);
        let utf8 = entry.envelope.smtputf8
            || !entry.sender.is_ascii()
            || reports.iter().any(|r| !r.recipient.address.is_ascii());
        let boundary = format!("{}/{}.{}", entry.id.0, now, self.hostname);
        let date = rfc5322_date(now.max(0) as u64);
        let subject = match action {
            Action::Failed => "Undelivered Mail Returned to Sender",
            Action::Delayed => "Delayed Mail (still being retried)",
            Action::Delivered => "Successful Mail Delivery Report",
            Action::Relayed => "Mail Relayed Report",
        };
        let mut m = String::new();
        m.push_str(&format!(
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
             To: <{to}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <dsn.{id}.{now}.{action}@{host}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\
             \r\n\
             This is a MIME-encapsulated message (RFC 3464).\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n",
            host = self.hostname,
            to = sanitize(&entry.sender),
            id = entry.id.0,
            action = action.as_str(),
        ));
        m.push_str(&self.human_text(action, reports));
        let status_type = if utf8 {
            "message/global-delivery-status"
        } else {
            "message/delivery-status"
        };
        m.push_str(&format!(
            "\r\n--{boundary}\r\nContent-Type: {status_type}\r\n\r\n"
        ));
        m.push_str(&format!("Reporting-MTA: dns; {}\r\n", self.hostname));
        if entry.id.0 > 0 {
            m.push_str(&format!("X-Postamt-Queue-ID: {}\r\n", entry.id.0));
        }
        if let Some(envid) = &entry.envelope.envid {
            m.push_str(&format!("Original-Envelope-Id: {}\r\n", sanitize(envid)));
        }
        if let Some(sender) = Some(&entry.sender).filter(|s| !s.is_empty()) {
            m.push_str(&format!(
                "X-Original-Sender: rfc822; {}\r\n",
                sanitize(sender)
            ));
        }
        m.push_str(&format!(
            "Arrival-Date: {}\r\n",
            rfc5322_date(entry.created.max(0) as u64)
        ));
        for r in reports {
            m.push_str("\r\n");
            let kind = if r.recipient.address.is_ascii() {
                "rfc822"
            } else {
                "utf-8"
            };
            m.push_str(&format!(
                "Final-Recipient: {kind}; {}\r\n",
                sanitize(&r.recipient.address)
            ));
            if let Some(orcpt) = &r.recipient.orcpt {
                // Kept as the sender gave it (type;xtext), RFC 3461 §4.2.
                let orcpt = sanitize(orcpt);
                let orcpt = orcpt.replacen(';', "; ", 1);
                m.push_str(&format!("Original-Recipient: {orcpt}\r\n"));
            }
            m.push_str(&format!("Action: {}\r\n", r.action.as_str()));
            m.push_str(&format!("Status: {}\r\n", r.status));
            if let Some(mta) = &r.remote_mta {
                let host = mta.split('[').next().unwrap_or(mta);
                m.push_str(&format!("Remote-MTA: dns; {}\r\n", sanitize(host)));
            }
            m.push_str(&format!(
                "Diagnostic-Code: {}\r\n",
                fold(&sanitize(&r.diagnostic))
            ));
            m.push_str(&format!("Last-Attempt-Date: {date}\r\n"));
            if r.action == Action::Delayed {
                // When the queue gives up (RFC 3464 §2.3.8).
                let until = (entry.created + self.max_lifetime).max(0) as u64;
                m.push_str(&format!("Will-Retry-Until: {}\r\n", rfc5322_date(until)));
            }
        }
        // The original: in full (RET=FULL, the default for failures), or
        // its header (RET=HDRS, large messages, and every other report).
        let full = action == Action::Failed
            && !entry
                .envelope
                .ret
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("HDRS"))
            && content.len() <= self.return_limit;
        let (part_type, part) = if full {
            (
                if utf8 {
                    "message/global"
                } else {
                    "message/rfc822"
                },
                content,
            )
        } else {
            let h = postamt_wire::meta::header_len(content);
            (
                if utf8 {
                    "message/global-headers"
                } else {
                    "text/rfc822-headers"
                },
                &content[..h],
            )
        };
        m.push_str(&format!(
            "\r\n--{boundary}\r\nContent-Type: {part_type}\r\n\r\n"
        ));
        let mut out = m.into_bytes();
        out.extend_from_slice(part);
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut rcpt = QueuedRecipient::new(entry.sender.clone());
        // A notification asks for nothing itself.
        rcpt.notify = Some("NEVER".into());
        Outbound {
            sender: String::new(),
            recipients: vec![rcpt],
            envelope: OutboundEnvelope {
                body: Some("8BITMIME".into()),
                smtputf8: utf8,
                ..OutboundEnvelope::default()
            },
            content: out,
        }
    }

    fn human_text(&self, action: Action, reports: &[Report]) -> String {
        let mut t = String::new();
        t.push_str(&format!(
            "This is the mail system at host {}.\r\n\r\n",
            self.hostname
        ));
        t.push_str(match action {
            Action::Failed => {
                "I'm sorry to have to inform you that your message could not\r\n\
                 be delivered to one or more recipients. The details are below.\r\n"
            }
            Action::Delayed => {
                "Your message could not be delivered yet. The mail system will\r\n\
                 keep trying; you do not need to send it again.\r\n"
            }
            Action::Delivered => "Your message was delivered to the recipients below.\r\n",
            Action::Relayed => {
                "Your message was passed on to a mail server that does not send\r\n\
                 delivery notifications (RFC 3461 §5.2.2); no further report will come.\r\n"
            }
        });
        t.push_str("\r\n");
        for r in reports {
            t.push_str(&format!(
                "<{}>: {}\r\n",
                sanitize(&r.recipient.address),
                sanitize(&r.diagnostic)
            ));
        }
        t
    }
}

/// No CR, LF or other controls in a header value built from outside data.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Folds a long header value at spaces (RFC 5322 §2.2.3).
fn fold(s: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            if line + word.len() > 70 {
                out.push_str("\r\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;
    use postamt_store::{QueueId, RecipientStatus};

    fn entry(sender: &str, ret: Option<&str>) -> QueueEntry {
        QueueEntry {
            id: QueueId(7),
            created: 1_700_000_000,
            next_attempt: 0,
            held: false,
            sender: sender.into(),
            size: 10,
            envelope: OutboundEnvelope {
                ret: ret.map(Into::into),
                envid: Some("abc+2Bdef".into()),
                ..OutboundEnvelope::default()
            },
            recipients: vec![],
            warned: false,
            active: false,
        }
    }

    fn report(addr: &str, notify: Option<&str>) -> Report {
        Report {
            recipient: QueuedRecipient {
                address: addr.into(),
                notify: notify.map(Into::into),
                orcpt: Some("rfc822;bob@remote.test".into()),
                status: RecipientStatus::Pending,
                attempts: 1,
                last_error: None,
            },
            action: Action::Failed,
            status: "5.1.1".into(),
            diagnostic: "smtp; 550 5.1.1 <bob@remote.test>: no such user".into(),
            remote_mta: Some("mx.remote.test[127.0.0.2]:25".into()),
        }
    }

    #[test]
    fn rfc3461_4_1_who_gets_which_report() {
        let r = |n: Option<&str>| report("bob@remote.test", n).recipient;
        assert!(wanted("alice@x", &r(None), Action::Failed));
        assert!(wanted("alice@x", &r(None), Action::Delayed));
        assert!(!wanted("alice@x", &r(None), Action::Delivered));
        assert!(wanted(
            "alice@x",
            &r(Some("SUCCESS,FAILURE")),
            Action::Relayed
        ));
        assert!(!wanted("alice@x", &r(Some("NEVER")), Action::Failed));
        assert!(!wanted("alice@x", &r(Some("SUCCESS")), Action::Failed));
        // Never to the null sender: no bounce loops.
        assert!(!wanted("", &r(Some("FAILURE")), Action::Failed));
    }

    fn test_reporter(hostname: &str) -> Reporter {
        Reporter {
            hostname: hostname.into(),
            return_limit: 50_000,
            max_lifetime: 5 * 86400,
        }
    }

    #[test]
    fn rfc3464_report_structure() {
        let reporter = test_reporter("mail.postamt.test");
        let content = b"Subject: hi\r\nFrom: a@x\r\n\r\nbody\r\n";
        let n = reporter.notice(
            &entry("alice@x", None),
            content,
            &[report("bob@remote.test", None)],
            1_700_000_100,
        );
        assert_eq!(n.sender, "");
        assert_eq!(n.recipients[0].address, "alice@x");
        assert_eq!(n.recipients[0].notify.as_deref(), Some("NEVER"));
        let text = String::from_utf8(n.content).unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(parsed.content_type().unwrap().ctype(), "multipart");
        assert_eq!(parsed.content_type().unwrap().subtype(), Some("report"));
        assert_eq!(
            parsed.content_type().unwrap().attribute("report-type"),
            Some("delivery-status")
        );
        assert_eq!(parsed.parts.len(), 4, "{text}");
        for needle in [
            "Reporting-MTA: dns; mail.postamt.test\r\n",
            "Original-Envelope-Id: abc+2Bdef\r\n",
            "Final-Recipient: rfc822; bob@remote.test\r\n",
            "Original-Recipient: rfc822; bob@remote.test\r\n",
            "Action: failed\r\nStatus: 5.1.1\r\n",
            "Remote-MTA: dns; mx.remote.test\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: no such user\r\n",
            "Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n",
            "Auto-Submitted: auto-replied\r\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in\n{text}");
        }
        assert!(postamt_wire::crlf::is_clean(text.as_bytes()));
    }

    #[test]
    fn rfc3461_4_3_ret_hdrs_returns_the_header_only() {
        let reporter = test_reporter("h");
        let content = b"Subject: hi\r\n\r\nsecret body\r\n";
        let n = reporter.notice(
            &entry("a@x", Some("HDRS")),
            content,
            &[report("b@y", None)],
            1,
        );
        let text = String::from_utf8(n.content).unwrap();
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"));
        assert!(!text.contains("secret body"));
    }
}
