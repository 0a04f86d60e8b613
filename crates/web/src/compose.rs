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
    let content = postamt_client::compose::compose(&postamt_client::compose::Draft {
        from_name: None,
        from: &login.address,
        to: &to,
        cc: &cc,
        subject: &one_line(&f.subject),
        body: &body,
        attachments: &[],
        domain,
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
    }
}
