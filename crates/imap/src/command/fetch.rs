//! The FETCH grammar (RFC 9051 §6.4.5): data items and the ALL / FAST /
//! FULL macros, `BODY[section]<partial>` sections, and RFC 3516 BINARY.

use super::syntax::{Parser, R};
use super::{FetchItem, Section, SectionText};

impl Parser<'_> {
    pub(super) fn section(&mut self) -> R<Section> {
        self.expect(b'[')?;
        let mut part = Vec::new();
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            let n = self.number32()?;
            if n == 0 {
                return Err("part numbers start at 1".into());
            }
            part.push(n);
            if part.len() > 64 {
                return Err("part number too deep".into());
            }
            if !self.eat(b'.') {
                break;
            }
        }
        let text = if self.peek() == Some(b']') {
            None
        } else {
            let w = self
                .take_while(|b| b.is_ascii_alphanumeric() || b == b'.')
                .to_ascii_uppercase();
            Some(match &w[..] {
                b"HEADER" => SectionText::Header,
                b"TEXT" => SectionText::Text,
                b"MIME" if !part.is_empty() => SectionText::Mime,
                b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
                    let not = w.len() > 13;
                    self.sp()?;
                    self.open()?;
                    let mut fields = vec![self.astring_lossy()?];
                    while self.eat(b' ') {
                        fields.push(self.astring_lossy()?);
                    }
                    self.close()?;
                    SectionText::HeaderFields { not, fields }
                }
                _ => return Err("bad section".into()),
            })
        };
        self.expect(b']')?;
        Ok(Section { part, text })
    }

    pub(super) fn fetch_item(&mut self) -> R<FetchItem> {
        let w = self
            .take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            .to_ascii_uppercase();
        Ok(match &w[..] {
            b"FLAGS" => FetchItem::Flags,
            b"INTERNALDATE" => FetchItem::InternalDate,
            b"RFC822.SIZE" => FetchItem::Rfc822Size,
            b"ENVELOPE" => FetchItem::Envelope,
            b"BODYSTRUCTURE" => FetchItem::BodyStructure,
            b"UID" => FetchItem::Uid,
            b"MODSEQ" => FetchItem::ModSeq,
            b"RFC822" => FetchItem::Rfc822,
            b"RFC822.HEADER" => FetchItem::Rfc822Header,
            b"RFC822.TEXT" => FetchItem::Rfc822Text,
            b"BODY" if self.peek() != Some(b'[') => FetchItem::Body,
            b"BODY" | b"BODY.PEEK" => {
                let section = self.section()?;
                let partial = self.partial()?;
                FetchItem::BodySection {
                    section,
                    peek: w.len() > 4,
                    partial,
                }
            }
            b"BINARY" | b"BINARY.PEEK" | b"BINARY.SIZE" => {
                let section = self.section()?;
                if section.text.is_some() {
                    // RFC 3516 §4.1: part numbers only.
                    return Err("BINARY takes part numbers only".into());
                }
                if &w[..] == b"BINARY.SIZE" {
                    FetchItem::BinarySize { part: section.part }
                } else {
                    FetchItem::Binary {
                        part: section.part,
                        peek: w.len() > 6,
                        partial: self.partial()?,
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown fetch item {}",
                    String::from_utf8_lossy(&w)
                ));
            }
        })
    }

    /// `<start.len>` after a section, if present.
    pub(super) fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let start = self.number32()?;
        self.expect(b'.')?;
        let len = self.number32()?;
        self.expect(b'>')?;
        if len == 0 {
            return Err("partial length must be at least 1".into());
        }
        Ok(Some((start, len)))
    }

    pub(super) fn fetch_items(&mut self) -> R<Vec<FetchItem>> {
        use FetchItem as F;
        if self.peek() == Some(b'(') {
            self.open()?;
            let mut items = vec![self.fetch_item()?];
            while self.eat(b' ') {
                items.push(self.fetch_item()?);
            }
            self.close()?;
            return Ok(items);
        }
        // RFC 9051 §6.4.5 macros.
        if self.eat_word("ALL") {
            return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope]);
        }
        if self.eat_word("FAST") {
            return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size]);
        }
        if self.eat_word("FULL") {
            return Ok(vec![
                F::Flags,
                F::InternalDate,
                F::Rfc822Size,
                F::Envelope,
                F::Body,
            ]);
        }
        Ok(vec![self.fetch_item()?])
    }
}
