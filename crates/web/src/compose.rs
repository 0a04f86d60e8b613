//! Compose: a message written in the browser goes out through a real
//! submission session of this server (the [`crate::Host::submit`] hook),
//! logged in as the user, so its transcript is the SMTP dialogue the
//! server held for it — shown right after sending.

use serde::{Deserialize, Serialize};

use crate::security::{WebError, WebResult};
use crate::sessions::Login;
use crate::{Submitted, Web};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ComposeForm {
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub cc: String,
    #[serde(default)]
    pub bcc: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    /// A reply: the Message-ID answered, and the thread's References
    /// (space-separated), kept in hidden fields of the form.
    #[serde(default)]
    pub in_reply_to: String,
    #[serde(default)]
    pub references: String,
}

/// Most References carried into a reply (the newest are kept).
const MAX_REFERENCES: usize = 50;

/// A message id as it may stand in In-Reply-To/References: `<>` taken
/// off; `None` for anything with spaces, controls or brackets inside.
fn msg_id(s: &str) -> Option<String> {
    let id = s.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = !id.is_empty()
        && id.len() <= 250
        && id.contains('@')
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !"<>()[]\\\",;".contains(c));
    ok.then(|| id.to_string())
}

/// The compose form for a reply to message `uid` of mailbox `id`: to the
/// Reply-To (else the From), `Re:` subject, the text quoted, the thread's
/// ids (RFC 5322 §3.6.4).
pub fn reply_to(web: &Web, login: &Login, id: i64, uid: u32) -> WebResult<ComposeForm> {
    use mail_parser::MessageParser;
    let raw = crate::mail::raw(web, login.account, id, uid)?;
    let m = MessageParser::default()
        .parse(&raw)
        .ok_or(WebError::NotFound)?;
    let first = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address.as_ref().map(|s| s.to_string()))
    };
    let to = first(m.reply_to())
        .or_else(|| first(m.from()))
        .unwrap_or_default();
    let subject = m.subject().unwrap_or("").trim().to_string();
    let subject = if subject.to_ascii_lowercase().starts_with("re:") {
        subject
    } else {
        format!("Re: {subject}")
    };
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let mut body = format!("\n\n{to} wrote:\n");
    for line in text.lines().take(500) {
        body.push_str("> ");
        body.push_str(line);
        body.push('\n');
    }
    let own = m.message_id().and_then(msg_id);
    let mut refs: Vec<String> = m
        .references()
        .as_text_list()
        .map(|l| l.iter().filter_map(|r| msg_id(r)).collect())
        .or_else(|| m.references().as_text().and_then(msg_id).map(|r| vec![r]))
        .unwrap_or_default();
    if let Some(own) = &own {
        refs.push(own.clone());
    }
    let skip = refs.len().saturating_sub(MAX_REFERENCES);
    Ok(ComposeForm {
        to,
        subject,
        body,
        in_reply_to: own.unwrap_or_default(),
        references: refs[skip..].join(" "),
        ..ComposeForm::default()
    })
}

/// Most recipients of one message from the web.
const MAX_RECIPIENTS: usize = 100;

fn addresses(field: &str) -> WebResult<Vec<String>> {
    let mut out = Vec::new();
    for a in field.split([',', ';', '\n', '\r']) {
        let a = a.trim();
        if a.is_empty() {
            continue;
        }
        // "Name <addr>" or a bare address.
        let addr = match (a.rfind('<'), a.rfind('>')) {
            (Some(i), Some(j)) if i < j => &a[i + 1..j],
            _ => a,
        };
        let addr = addr.trim();
        let ok = addr
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
            && !addr
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>\"(),;:\\[]".contains(c));
        if !ok {
            return Err(WebError::BadRequest(format!("not an address: {a}")));
        }
        out.push(addr.to_string());
    }
    Ok(out)
}

/// One line: a header value never carries a line break (no injection).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// Builds the message and submits it as the logged-in user.
pub async fn send(
    web: &Web,
    login: &Login,
    peer: std::net::SocketAddr,
    f: &ComposeForm,
) -> WebResult<Submitted> {
    let to = addresses(&f.to)?;
    let cc = addresses(&f.cc)?;
    let bcc = addresses(&f.bcc)?;
    // Each recipient once, in the order given (RCPT TO twice would
    // deliver twice).
    let mut seen = std::collections::HashSet::new();
    let rcpts: Vec<String> = to
        .iter()
        .chain(&cc)
        .chain(&bcc)
        .filter(|a| seen.insert(a.to_lowercase()))
        .cloned()
        .collect();
    if rcpts.is_empty() {
        return Err(WebError::BadRequest("give at least one recipient".into()));
    }
    if rcpts.len() > MAX_RECIPIENTS {
        return Err(WebError::BadRequest(format!(
            "at most {MAX_RECIPIENTS} recipients"
        )));
    }
    let account = web
        .store
        .account(&login.address)?
        .ok_or(WebError::Unauthorized)?;
    let domain = login.address.rsplit('@').next().unwrap_or("localhost");
    let body = f.body.replace("\r\n", "\n");
    let in_reply_to = msg_id(&f.in_reply_to);
    let references: Vec<String> = f
        .references
        .split_whitespace()
        .filter_map(msg_id)
        .take(MAX_REFERENCES)
        .collect();
    let content = postamt_client::compose::compose(&postamt_client::compose::Draft {
        from_name: None,
        from: &login.address,
        to: &to,
        cc: &cc,
        subject: &one_line(&f.subject),
        body: &body,
        attachments: &[],
        domain,
        in_reply_to: in_reply_to.as_deref(),
        references: &references,
    })
    .map_err(|e| WebError::BadRequest(e.to_string()))?;
    Ok(web
        .host
        .submit(account, peer, login.address.clone(), rcpts, content)
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_parsed_and_checked() {
        assert_eq!(
            addresses("bob@postamt.test, Carol <carol@example.test>").unwrap(),
            vec!["bob@postamt.test", "carol@example.test"]
        );
        assert!(addresses("bob").is_err());
        assert!(addresses("bob@x.test>\r\nRCPT TO:<evil@x.test").is_err());
        assert_eq!(one_line("a\r\nBcc: x"), "a  Bcc: x");
        assert_eq!(msg_id(" <a.b@x.test> ").as_deref(), Some("a.b@x.test"));
        assert_eq!(msg_id("a b@x"), None);
        assert_eq!(msg_id("a@x>\r\nBcc: y@z"), None);
    }
}
