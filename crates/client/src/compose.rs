//! Composing a message with mail-builder: UTF-8 headers as encoded words,
//! attachments with their media types, Message-ID and Date. Bcc
//! recipients go into the envelope only, never into the header.

use std::path::Path;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;

use crate::{ClientError, Result};

pub struct Draft<'a> {
    pub from_name: Option<&'a str>,
    pub from: &'a str,
    pub to: &'a [String],
    pub cc: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
    pub attachments: &'a [std::path::PathBuf],
    /// The host part of the Message-ID.
    pub domain: &'a str,
    /// A reply: the Message-ID answered (without `<>`) and the References
    /// of the thread, oldest first, that one included (RFC 5322 §3.6.4).
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
}

/// The media type for a file name (RFC 2046 types for the common cases).
pub fn media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "text" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "json" => "application/json",
        "xml" => "application/xml",
        "ics" => "text/calendar",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

pub fn compose(d: &Draft<'_>) -> Result<Vec<u8>> {
    let addr = |a: &String| Address::new_address(None::<&str>, a.clone());
    let mut b = MessageBuilder::new()
        .from(Address::new_address(
            d.from_name.map(str::to_string),
            d.from.to_string(),
        ))
        .subject(d.subject.to_string())
        .text_body(d.body.to_string());
    if !d.to.is_empty() {
        b = b.to(Address::new_list(d.to.iter().map(addr).collect()));
    }
    if !d.cc.is_empty() {
        b = b.cc(Address::new_list(d.cc.iter().map(addr).collect()));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos())
        .unwrap_or(0);
    b = b.message_id(format!("{now:x}.{}@{}", std::process::id(), d.domain));
    if let Some(id) = d.in_reply_to {
        b = b.in_reply_to(id);
    }
    if !d.references.is_empty() {
        b = b.references(d.references);
    }
    b = b.date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_secs() as i64)
            .unwrap_or(0),
    );
    for path in d.attachments {
        let bytes = std::fs::read(path)
            .map_err(|e| ClientError::Config(format!("attachment {}: {e}", path.display())))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        // A "text" file that is not UTF-8 goes as bytes: readers decode
        // text parts as text and would mangle it.
        let ctype = match media_type(path) {
            t if t.starts_with("text/") && std::str::from_utf8(&bytes).is_err() => {
                "application/octet-stream"
            }
            t => t,
        };
        b = b.attachment(ctype, name, bytes);
    }
    let mut out = b
        .write_to_vec()
        .map_err(|e| ClientError::Io(e.to_string()))?;
    // mail-builder writes CRLF; make sure the last line ends in one.
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};

    #[test]
    fn utf8_subject_attachment_and_no_bcc_header() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("report.pdf");
        std::fs::write(&f, b"%PDF-1.4 fake\x00\xff").unwrap();
        let to = vec!["bob@example.org".to_string()];
        let m = compose(&Draft {
            from_name: Some("Jörg Müller"),
            from: "joerg@example.org",
            to: &to,
            cc: &[],
            subject: "Grüße aus Köln",
            body: "Hallo Bob,\nanbei der Bericht.\n",
            in_reply_to: None,
            references: &[],
            attachments: &[f],
            domain: "example.org",
        })
        .unwrap();
        let text = String::from_utf8_lossy(&m);
        assert!(text.is_ascii(), "headers must be encoded words: {text}");
        assert!(!text.to_ascii_lowercase().contains("\nbcc:"));
        let p = MessageParser::default().parse(&m).unwrap();
        assert_eq!(p.subject(), Some("Grüße aus Köln"));
        assert_eq!(
            p.from().unwrap().first().unwrap().name(),
            Some("Jörg Müller")
        );
        assert!(p.message_id().unwrap().ends_with("@example.org"));
        assert!(p.date().is_some());
        let att = p.attachment(0).unwrap();
        assert_eq!(att.attachment_name(), Some("report.pdf"));
        assert_eq!(att.content_type().unwrap().subtype(), Some("pdf"));
        assert_eq!(att.contents(), b"%PDF-1.4 fake\x00\xff");
        assert!(p.body_text(0).unwrap().contains("anbei der Bericht"));
    }
}
