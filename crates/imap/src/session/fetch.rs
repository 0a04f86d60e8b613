//! FETCH (RFC 9051 §6.4.5, the data items of §7.5.2; RFC 3516 BINARY;
//! RFC 7162 §3.1.4 CHANGEDSINCE and MODSEQ, §3.2.6 VANISHED). Metadata and
//! content are read in bulk, a chunk of messages at a time; sections are
//! cut by [`crate::fetch`], strings, ENVELOPE and BODYSTRUCTURE rendered by
//! `postamt_wire::imap`.

use std::collections::BTreeSet;
use std::io::Write as _;

use postamt_store::{FlagOp, Flags, MessageMeta, Uid};
use postamt_wire::imap::{self as render, body_structure, envelope, literal};
use tokio::io::{AsyncRead, AsyncWrite};

use super::flags::{flag_names, write_flags};
use super::store_access::{FetchData, FetchParts, Prefetch};
use super::{MAX_PENDING_OUTPUT, Reply, Session};
use crate::command::FetchItem;
use crate::sequence::SequenceSet;
use crate::status::{Code, Status};

/// Messages one FETCH reads per store query: fewer, larger queries
/// matter on PostgreSQL, where each is a round trip (`FETCH 1:* (FLAGS
/// ENVELOPE)` on 10,000 messages: 36 ms in chunks of 512, 26 ms in chunks
/// of 4,096; bench/README.md). A stored ENVELOPE is about 260 bytes;
/// content is bounded by [`FETCH_CHUNK_BYTES`] too.
const FETCH_CHUNK: usize = 4096;
/// The same when the full metadata is read (BODYSTRUCTURE, sections):
/// a parsed [`MessageMeta`] is some kilobytes.
const FETCH_CHUNK_META: usize = 512;
/// About how much message content one FETCH holds in memory at a time.
const FETCH_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// The end of the FETCH chunk that starts at `idx[n]`: at most `most`
/// messages and, when content is read, about [`FETCH_CHUNK_BYTES`] of it
/// (at least one message).
fn chunk_after(
    msgs: &[super::view::Msg],
    idx: &[usize],
    n: usize,
    most: usize,
    needs_content: bool,
) -> usize {
    let mut bytes = 0u64;
    let mut end = n;
    while end < idx.len()
        && end - n < most
        && (end == n || !needs_content || bytes < FETCH_CHUNK_BYTES)
    {
        bytes += msgs[idx[end]].size;
        end += 1;
    }
    end
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn fetch(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        items: &[FetchItem],
        changed_since: Option<u64>,
        vanished: bool,
    ) -> Reply {
        if vanished && !self.qresync {
            return Err(Status::bad("VANISHED needs ENABLE QRESYNC first"));
        }
        let utf8 = self.utf8();
        let rev2 = self.rev2;
        let qresync = self.qresync;
        if changed_since.is_some() || items.contains(&FetchItem::ModSeq) {
            // RFC 7162 §3.1: these make the client CONDSTORE-aware.
            self.enable_condstore();
        }
        // CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1).
        let mut items = items.to_vec();
        if changed_since.is_some() && !items.contains(&FetchItem::ModSeq) {
            items.push(FetchItem::ModSeq);
        }
        let items = &items[..];
        let sel = self.selected.as_ref().expect("selected");
        let idx = sel.resolve(set, uid)?;
        if let (true, Some(since)) = (vanished, changed_since) {
            // RFC 7162 §3.2.6: expunged since, within the set, as UIDs.
            let gone = self.store.read_expunged_since(sel.mailbox.id, since)?;
            // `*` reaches past the last UID still in use here: `1:*`
            // asks for everything that vanished.
            let gone: Vec<u32> = gone
                .into_iter()
                .map(|u| u.0)
                .filter(|&u| set.contains(u, u32::MAX))
                .collect();
            if !gone.is_empty() {
                self.untagged(&format!(
                    "VANISHED (EARLIER) {}",
                    SequenceSet::compact(&gone)
                ));
            }
        }
        let sel = self.selected.as_ref().expect("selected");
        let read_only = sel.read_only;
        let mailbox = sel.mailbox.id;
        // ENVELOPE alone comes from the form rendered at delivery; the
        // other structure items need the whole parsed metadata.
        let needs_env = items.contains(&FetchItem::Envelope);
        // The parsed structure is read only for what needs it: a part
        // number. The whole message, its header and its text (BODY[],
        // BODY[HEADER], BODY[TEXT], RFC822.*) come from the content and
        // its header length alone, so `BODY.PEEK[]` of many small
        // messages parses no stored metadata.
        let needs_meta = items.iter().any(|i| match i {
            FetchItem::Body | FetchItem::BodyStructure => true,
            FetchItem::BodySection { section, .. } => !section.part.is_empty(),
            FetchItem::Binary { part, .. } | FetchItem::BinarySize { part } => !part.is_empty(),
            _ => false,
        });
        let needs_content = items.iter().any(|i| {
            matches!(
                i,
                FetchItem::BodySection { .. }
                    | FetchItem::Rfc822
                    | FetchItem::Rfc822Header
                    | FetchItem::Rfc822Text
                    | FetchItem::Binary { .. }
                    | FetchItem::BinarySize { .. }
            )
        });
        let sets_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    FetchItem::BodySection { peek: false, .. }
                        | FetchItem::Binary { peek: false, .. }
                        | FetchItem::Rfc822
                        | FetchItem::Rfc822Text
                )
            });
        let idx: Vec<usize> = idx
            .into_iter()
            .filter(|&i| changed_since.is_none_or(|c| sel.msgs[i].modseq > c))
            .collect();
        // RFC 9051 §6.4.5: a non-PEEK body fetch sets \Seen; done first so
        // that the FLAGS sent below already include it.
        let mut flags_changed: BTreeSet<usize> = BTreeSet::new();
        if sets_seen {
            let unseen: Vec<Uid> = idx
                .iter()
                .filter(|&&i| !sel.msgs[i].gone && !sel.msgs[i].flags.contains(Flags::SEEN))
                .map(|&i| sel.msgs[i].uid)
                .collect();
            if !unseen.is_empty() {
                let (updates, _) = self
                    .store
                    .write_flags(mailbox, unseen, FlagOp::Add, Flags::SEEN, Vec::new(), None)
                    .await?;
                let sel = self.selected.as_mut().expect("selected");
                for u in updates {
                    if let Some(i) = sel.msgs.iter().position(|m| m.uid == u.uid) {
                        sel.msgs[i].flags = u.flags;
                        sel.msgs[i].modseq = u.modseq.0;
                        flags_changed.insert(i);
                    }
                }
            }
        }
        let mut expunged_seen = false;
        // Metadata and content are read in bulk, a chunk of messages (at
        // most FETCH_CHUNK or FETCH_CHUNK_META, and about FETCH_CHUNK_BYTES
        // of content) at a time.
        let needs_env = needs_env && !needs_meta;
        let parts = FetchParts {
            meta: needs_meta,
            envelope: needs_env,
            content: needs_content,
        };
        let mut data = FetchData::default();
        let mut chunk_end = 0;
        let most = if needs_meta {
            FETCH_CHUNK_META
        } else {
            FETCH_CHUNK
        };
        // The next chunk is read on the blocking pool while this one is
        // written (on PostgreSQL the database works while the client
        // reads): (its end, the read). It starts where this one ends.
        let mut next: Option<(usize, Prefetch)> = None;
        for (n, &i) in idx.iter().enumerate() {
            if (needs_meta || needs_content || needs_env) && n >= chunk_end {
                let sel = self.selected.as_ref().expect("selected");
                let uids_of = |from: usize, to: usize| -> Vec<Uid> {
                    idx[from..to].iter().map(|&j| sel.msgs[j].uid).collect()
                };
                (chunk_end, data) = match next.take() {
                    Some((end, read)) => (end, read.wait().await?),
                    None => {
                        let end = chunk_after(&sel.msgs, &idx, n, most, needs_content);
                        let data = self
                            .store
                            .read_fetch_data(mailbox, &uids_of(n, end), parts)?;
                        (end, data)
                    }
                };
                if chunk_end < idx.len() {
                    let end = chunk_after(&sel.msgs, &idx, chunk_end, most, needs_content);
                    let read = self.store.prefetch(mailbox, uids_of(chunk_end, end), parts);
                    next = Some((end, read));
                }
            }
            let sel = self.selected.as_ref().expect("selected");
            let m = sel.msgs[i].clone();
            if m.gone {
                expunged_seen = true;
                continue;
            }
            let meta = if needs_meta {
                data.metas.remove(&m.uid)
            } else {
                None
            };
            let env = if needs_env {
                data.envelopes.remove(&m.uid)
            } else {
                None
            };
            if needs_env && env.is_none() {
                expunged_seen = true;
                continue;
            }
            let content = if needs_content {
                data.contents.remove(&m.uid)
            } else {
                None
            };
            if (needs_meta && meta.is_none()) || (needs_content && content.is_none()) {
                // Expunged meanwhile by another session.
                expunged_seen = true;
                continue;
            }
            let content = content.unwrap_or_default();
            let meta = meta.unwrap_or_else(|| MessageMeta {
                header_len: postamt_wire::meta::header_len(&content) as u64,
                ..MessageMeta::default()
            });
            // Written straight into the output buffer (one copy of the
            // content less than building each response apart).
            let mut out = std::mem::take(&mut self.out);
            let start = out.len();
            let _ = write!(out, "* {} FETCH (", i + 1);
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !first {
                    out.push(b' ');
                }
                first = false;
            };
            // RFC 7162 §3.2.4: with QRESYNC every FETCH response carries UID.
            if (uid || qresync) && !items.contains(&FetchItem::Uid) {
                sep(&mut out);
                let _ = write!(out, "UID {}", m.uid.0);
            }
            if flags_changed.contains(&i) && self.condstore && !items.contains(&FetchItem::ModSeq) {
                sep(&mut out);
                out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes());
            }
            if flags_changed.contains(&i) && !items.contains(&FetchItem::Flags) {
                sep(&mut out);
                out.extend_from_slice(
                    format!(
                        "FLAGS {}",
                        flag_names(m.flags, &m.keywords, m.recent && !rev2)
                    )
                    .as_bytes(),
                );
            }
            for item in items {
                sep(&mut out);
                match item {
                    FetchItem::Flags => {
                        out.extend_from_slice(b"FLAGS ");
                        write_flags(&mut out, m.flags, &m.keywords, m.recent && !rev2);
                    }
                    FetchItem::Uid => {
                        let _ = write!(out, "UID {}", m.uid.0);
                    }
                    FetchItem::ModSeq => {
                        out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes())
                    }
                    FetchItem::InternalDate => out.extend_from_slice(
                        format!("INTERNALDATE \"{}\"", render::date_time(m.internaldate))
                            .as_bytes(),
                    ),
                    FetchItem::Rfc822Size => {
                        out.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes())
                    }
                    FetchItem::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        match &env {
                            Some(postamt_store::StoredEnvelope::Rendered(r)) => {
                                out.extend_from_slice(r)
                            }
                            Some(postamt_store::StoredEnvelope::Parsed(e)) => {
                                envelope(&mut out, e, utf8)
                            }
                            None => envelope(&mut out, &meta.envelope, utf8),
                        }
                    }
                    FetchItem::Body => {
                        out.extend_from_slice(b"BODY ");
                        body_structure(&mut out, &meta.body, false, utf8);
                    }
                    FetchItem::BodyStructure => {
                        out.extend_from_slice(b"BODYSTRUCTURE ");
                        body_structure(&mut out, &meta.body, true, utf8);
                    }
                    FetchItem::Rfc822 => {
                        out.extend_from_slice(b"RFC822 ");
                        literal(&mut out, &content);
                    }
                    FetchItem::Rfc822Header => {
                        out.extend_from_slice(b"RFC822.HEADER ");
                        literal(
                            &mut out,
                            &content[..(meta.header_len as usize).min(content.len())],
                        );
                    }
                    FetchItem::Rfc822Text => {
                        out.extend_from_slice(b"RFC822.TEXT ");
                        literal(
                            &mut out,
                            &content[(meta.header_len as usize).min(content.len())..],
                        );
                    }
                    FetchItem::Binary { part, partial, .. } => {
                        let name = dotted(part);
                        match crate::fetch::binary(&content, &meta, part) {
                            Ok(Some(d)) => {
                                let (d, origin) = match partial {
                                    Some((start, len)) => (
                                        crate::fetch::partial(&d, *start, *len),
                                        format!("<{start}>"),
                                    ),
                                    None => (&d[..], String::new()),
                                };
                                out.extend_from_slice(
                                    format!("BINARY[{name}]{origin} ").as_bytes(),
                                );
                                // RFC 3516 §4.2: literal8 when there is a NUL.
                                if d.contains(&0) {
                                    render::literal8(&mut out, d);
                                } else {
                                    literal(&mut out, d);
                                }
                            }
                            Ok(None) => {
                                out.extend_from_slice(format!("BINARY[{name}] \"\"").as_bytes())
                            }
                            Err(cte) => {
                                out.truncate(start);
                                self.out = out;
                                return Err(unknown_cte(cte));
                            }
                        }
                    }
                    FetchItem::BinarySize { part } => {
                        let name = dotted(part);
                        match crate::fetch::binary(&content, &meta, part) {
                            Ok(d) => out.extend_from_slice(
                                format!("BINARY.SIZE[{name}] {}", d.map_or(0, |d| d.len()))
                                    .as_bytes(),
                            ),
                            Err(cte) => {
                                out.truncate(start);
                                self.out = out;
                                return Err(unknown_cte(cte));
                            }
                        }
                    }
                    FetchItem::BodySection {
                        section, partial, ..
                    } => {
                        let data = crate::fetch::section(&content, &meta, section);
                        let name = crate::fetch::section_name(section);
                        match (data, partial) {
                            (Some(d), Some((start, len))) => {
                                out.extend_from_slice(format!("BODY[{name}]<{start}> ").as_bytes());
                                literal(&mut out, crate::fetch::partial(&d, *start, *len));
                            }
                            (Some(d), None) => {
                                out.extend_from_slice(format!("BODY[{name}] ").as_bytes());
                                literal(&mut out, &d);
                            }
                            (None, p) => {
                                let origin = p.map(|(s, _)| format!("<{s}>")).unwrap_or_default();
                                out.extend_from_slice(
                                    format!("BODY[{name}]{origin} \"\"").as_bytes(),
                                );
                            }
                        }
                    }
                }
            }
            out.extend_from_slice(b")\r\n");
            self.out = out;
            self.record_pushed(start);
            if self.out.len() > MAX_PENDING_OUTPUT && !self.flush_keeping_buffer().await {
                return Err(Status::no("write failed").with_code(Code::Unavailable));
            }
        }
        Ok(if expunged_seen {
            Status::ok("some messages were expunged meanwhile").with_code(Code::ExpungeIssued)
        } else {
            Status::ok("FETCH completed")
        })
    }
}

/// RFC 3516 §4.3: a part whose content-transfer-encoding we cannot undo.
fn unknown_cte(cte: impl std::fmt::Display) -> Status {
    Status::no(format!("cannot decode content-transfer-encoding {cte}")).with_code(Code::UnknownCte)
}

/// Part numbers as written in a section (`1.2`).
fn dotted(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}
