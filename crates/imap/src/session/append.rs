//! APPEND (RFC 9051 §6.3.12) with RFC 3502 MULTIAPPEND (all messages or
//! none), RFC 4315 APPENDUID, RFC 7889 APPENDLIMIT and RFC 6855 UTF8.

use postamt_store::{Delivery, DeliveryTarget, meta::MessageMeta};
use tokio::io::{AsyncRead, AsyncWrite};

use super::flags::split_flags;
use super::{Reply, Session};
use crate::command::AppendMessage;
use crate::status::{Code, Status};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn append(&mut self, raw: &[u8], messages: Vec<AppendMessage>) -> Reply {
        if messages.iter().any(|m| m.utf8) && !self.utf8 {
            // RFC 6855 §4.
            return Err(Status::bad("APPEND UTF8 needs ENABLE UTF8=ACCEPT"));
        }
        let name = self.name_in(raw)?;
        let mailbox = self.find_target(&name, Code::TryCreate)?;
        let account = self.account().id;
        let mut deliveries = Vec::with_capacity(messages.len());
        for m in messages {
            if m.content.is_empty() {
                return Err(Status::no("an empty message cannot be stored").with_code(Code::Cannot));
            }
            if m.content.len() as u64 > self.config.max_append {
                return Err(Status::no("message too big").with_code(Code::TooBig));
            }
            let (flags, keywords) = split_flags(&m.flags)?;
            // Stored as sent, except that line ends become CRLF (no CRLF
            // is added after an unterminated last line); binary content
            // (a literal8, RFC 3516 §4.4) exactly as sent.
            let content = if m.binary {
                m.content
            } else {
                let unterminated = !m.content.ends_with(b"\n") && !m.content.ends_with(b"\r");
                let mut content = postamt_wire::crlf::normalize_owned(m.content);
                if unterminated {
                    content.truncate(content.len() - 2);
                }
                content
            };
            let meta = MessageMeta::parse(&content);
            deliveries.push(Delivery {
                // Rendered once, here, as at SMTP delivery (`postamt_mda`).
                imap_envelope: postamt_wire::imap::prerendered_envelope(&meta.envelope),
                search_headers: Some(postamt_store::SearchHeaders::of(&content)),
                meta,
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
        // RFC 3502 §6.3.11: all of them or none.
        let delivered = self.store.write_deliveries(deliveries).await?;
        let uids: Vec<u32> = delivered.iter().flatten().map(|d| d.uid.0).collect();
        let uidvalidity = delivered
            .iter()
            .flatten()
            .next()
            .ok_or_else(|| Status::no("nothing stored").with_code(Code::ServerBug))?
            .uidvalidity
            .0;
        if let Some(sel) = &mut self.selected
            && sel.mailbox.id == mailbox.id
        {
            sel.dirty = true;
        }
        Ok(Status::ok("APPEND completed").with_code(Code::AppendUid { uidvalidity, uids }))
    }
}
