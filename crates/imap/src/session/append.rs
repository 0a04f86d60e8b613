//! APPEND (RFC 9051 §6.3.12) with RFC 3502 MULTIAPPEND, RFC 4315
//! APPENDUID and RFC 6855 UTF8.

use std::sync::Arc;

use postamt_store::{Delivery, DeliveryTarget, blocking, meta::MessageMeta, normalize_crlf_owned};
use tokio::io::{AsyncRead, AsyncWrite};

use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn append(
        &mut self,
        raw: &[u8],
        messages: Vec<command::AppendMessage>,
    ) -> Result<String, String> {
        if messages.iter().any(|m| m.utf8) && !self.utf8 {
            // RFC 6855 §4.
            return Err("BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT".into());
        }
        let name = self.name_in(raw)?;
        let mailbox = match self.find_mailbox(&name) {
            Ok(m) => m,
            Err(_) => return Err("NO [TRYCREATE] no such mailbox".into()),
        };
        let account = self.account().id;
        let mut deliveries = Vec::with_capacity(messages.len());
        for m in messages {
            if m.content.is_empty() {
                return Err("NO [CANNOT] an empty message cannot be stored".into());
            }
            if m.content.len() as u64 > self.config.max_append {
                return Err("NO [TOOBIG] message too big".into());
            }
            let (flags, keywords) = split_flags(&m.flags).map_err(|e| format!("BAD {e}"))?;
            // Stored as sent, except that line ends become CRLF (no CRLF
            // is added after an unterminated last line).
            let unterminated = !m.content.ends_with(b"\n") && !m.content.ends_with(b"\r");
            let mut content = normalize_crlf_owned(m.content);
            if unterminated {
                content.truncate(content.len() - 2);
            }
            deliveries.push(Delivery {
                meta: MessageMeta::parse(&content),
                content,
                internaldate: m
                    .date
                    .unwrap_or_else(|| postamt_wire::time::unix_now() as i64),
                targets: vec![DeliveryTarget {
                    account,
                    mailbox: mailbox.name.clone(),
                    prefix: Vec::new(),
                    flags,
                    keywords,
                }],
            });
        }
        let store = Arc::clone(self.store);
        // RFC 3502 §6.3.11: all of them or none.
        let delivered = blocking(move || store.deliver_many(deliveries))
            .await
            .map_err(|e| store_no(&e))?;
        let uids: Vec<u32> = delivered.iter().flatten().map(|d| d.uid.0).collect();
        let uidvalidity = delivered
            .iter()
            .flatten()
            .next()
            .ok_or("NO [SERVERBUG] nothing stored")?
            .uidvalidity
            .0;
        if let Some(sel) = &mut self.selected
            && sel.mailbox.id == mailbox.id
        {
            sel.dirty = true;
        }
        Ok(format!(
            "OK [APPENDUID {uidvalidity} {}] APPEND completed",
            SequenceSet::compact(&uids)
        ))
    }
}
