//! The path of a message as a picture (SVG, drawn on the server, no
//! script): the hops of its Received chain from left (where it started)
//! to right (our mailbox), a padlock or an open line per hop for TLS, the
//! trust boundary as a dashed line (hops left of it are only what the
//! sender claims), and below the results of DKIM, SPF, DMARC and ARC and
//! the findings. Every text is escaped here; nothing of the message
//! reaches the picture unescaped.

use postamt_analyze::Analysis;

/// XML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

const BOX_W: usize = 190;
const GAP: usize = 70;
const BOX_H: usize = 86;
const TOP: usize = 56;
/// The picture is at least this wide (the findings below need room).
const MIN_WIDTH: usize = 900;

/// The picture of `a` (the analysis of the forensics issue).
pub fn path_svg(a: &Analysis) -> String {
    // Nodes: the origin (the first hop's client), then each hop's server.
    struct Node {
        title: String,
        sub: String,
        trusted: bool,
        local: bool,
    }
    let mut nodes: Vec<Node> = Vec::new();
    if let Some(first) = a.hops.first() {
        let name = if !first.from_rdns.is_empty() {
            first.from_rdns.clone()
        } else {
            first.from_helo.clone()
        };
        nodes.push(Node {
            title: if name.is_empty() {
                "sender".into()
            } else {
                name
            },
            sub: first.from_ip.clone().unwrap_or_default(),
            trusted: false,
            local: false,
        });
    } else {
        nodes.push(Node {
            title: "sender".into(),
            sub: String::new(),
            trusted: false,
            local: false,
        });
    }
    for h in &a.hops {
        nodes.push(Node {
            title: if h.by.is_empty() {
                "(unnamed)".into()
            } else {
                h.by.clone()
            },
            sub: h.date.clone().unwrap_or_default(),
            trusted: h.trusted,
            local: h.local,
        });
    }
    let n = nodes.len();
    let width = (20 + n * BOX_W + n.saturating_sub(1) * GAP + 20).max(MIN_WIDTH);
    let results_y = TOP + BOX_H + 60;
    let findings = a.findings.len();
    let height = results_y + 40 + 22 * (findings + 2);
    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"path\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"the path of this message\">"
    ));
    s.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>");
    // The trust boundary: left of the first trusted node.
    let first_trusted = nodes.iter().position(|x| x.trusted || x.local);
    if let Some(i) = first_trusted.filter(|&i| i > 0) {
        let x = 20 + i * (BOX_W + GAP) - GAP / 2;
        s.push_str(&format!(
            "<line class=\"boundary\" x1=\"{x}\" y1=\"22\" x2=\"{x}\" y2=\"{}\" stroke=\"#b00\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>",
            TOP + BOX_H + 20
        ));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"16\" font-size=\"12\" fill=\"#b00\" text-anchor=\"middle\">trust boundary</text>",
            x
        ));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"36\" font-size=\"11\" fill=\"#777\" text-anchor=\"end\">claimed by the sender ←</text>",
            x.saturating_sub(8)
        ));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"36\" font-size=\"11\" fill=\"#2a6\">→ recorded by servers we trust</text>",
            x + 8
        ));
    }
    for (i, node) in nodes.iter().enumerate() {
        let x = 20 + i * (BOX_W + GAP);
        let (fill, stroke) = match (node.local, node.trusted) {
            (true, _) => ("#e6f4ea", "#2a6"),
            (_, true) => ("#eef3fb", "#36c"),
            _ => ("#fdf1e6", "#c73"),
        };
        s.push_str(&format!(
            "<g class=\"hop\"><rect x=\"{x}\" y=\"{TOP}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"8\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>"
        ));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\" text-anchor=\"middle\">{}</text>",
            x + BOX_W / 2,
            TOP + 26,
            esc(&cut(&node.title, 26))
        ));
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">{}</text>",
            x + BOX_W / 2,
            TOP + 46,
            esc(&cut(&node.sub, 30))
        ));
        let role = match (i, node.local, node.trusted) {
            (0, _, _) => "origin",
            (_, true, _) => "this server",
            (_, _, true) => "trusted relay",
            _ => "claimed hop",
        };
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{stroke}\" text-anchor=\"middle\">{role}</text></g>",
            x + BOX_W / 2,
            TOP + 70
        ));
        // The arrow to the next node: the hop a.hops[i], with its TLS.
        if let Some(h) = a.hops.get(i) {
            let x1 = x + BOX_W;
            let x2 = x1 + GAP;
            let y = TOP + BOX_H / 2;
            let tls = !h.tls.is_empty();
            s.push_str(&format!(
                "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\" {}marker-end=\"url(#arrow)\"/>",
                x2 - 2,
                if tls { "#2a6" } else { "#c33" },
                if tls { "" } else { "stroke-dasharray=\"4 3\" " }
            ));
            let label = if tls { "🔒 TLS" } else { "no TLS" };
            s.push_str(&format!(
                "<text class=\"tls\" x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"{}\"><title>{}</title>{label}</text>",
                x1 + GAP / 2,
                y - 8,
                if tls { "#2a6" } else { "#c33" },
                esc(if tls { &h.tls } else { "the hop's Received line names no TLS" })
            ));
            if let Some(d) = h.delay_s {
                s.push_str(&format!(
                    "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#777\" text-anchor=\"middle\">{}</text>",
                    x1 + GAP / 2,
                    y + 16,
                    esc(&format!("{d:.0} s"))
                ));
            }
        }
    }
    // The results below.
    let mut y = results_y;
    let verdict = format!("{:?}", a.verdict).to_lowercase();
    s.push_str(&format!(
        "<text x=\"20\" y=\"{y}\" font-size=\"15\" font-weight=\"bold\">verdict: {}</text>",
        esc(&verdict)
    ));
    y += 26;
    let mut x = 20;
    for (name, result) in results(a) {
        let good = result == "pass";
        let color = if good {
            "#2a6"
        } else if result == "none" || result.is_empty() {
            "#777"
        } else {
            "#c33"
        };
        let text = format!(
            "{name}: {}",
            if result.is_empty() { "none" } else { &result }
        );
        let w = 14 + 7 * text.chars().count();
        s.push_str(&format!(
            "<g class=\"result\"><rect x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"22\" rx=\"11\" fill=\"white\" stroke=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{color}\">{}</text></g>",
            y - 15,
            x + 7,
            y,
            esc(&text)
        ));
        x += w + 10;
    }
    y += 30;
    for f in &a.findings {
        let color = match f.severity {
            postamt_analyze::analysis::Severity::High => "#c33",
            postamt_analyze::analysis::Severity::Medium => "#c73",
            postamt_analyze::analysis::Severity::Low => "#555",
        };
        s.push_str(&format!(
            "<text class=\"finding\" x=\"20\" y=\"{y}\" font-size=\"12\" fill=\"{color}\">⚠ {}: {}</text>",
            esc(f.code),
            esc(&cut(&f.detail, (width - 60) / 7 - f.code.len()))
        ));
        y += 22;
    }
    s.push_str("</svg>");
    s
}

/// DKIM, SPF, DMARC and ARC as the message's recorded results say them
/// (the first of each method), DKIM re-checked where it was.
fn results(a: &Analysis) -> Vec<(&'static str, String)> {
    let recorded = |m: &str| {
        a.recorded
            .iter()
            .find(|r| r.method.eq_ignore_ascii_case(m))
            .map(|r| r.result.to_lowercase())
    };
    let dkim = a
        .signatures
        .first()
        .map(|s| s.result.to_lowercase())
        .or_else(|| recorded("dkim"))
        .unwrap_or_default();
    vec![
        ("DKIM", dkim),
        ("SPF", recorded("spf").unwrap_or_default()),
        ("DMARC", recorded("dmarc").unwrap_or_default()),
        ("ARC", recorded("arc").unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_the_message_is_escaped() {
        let msg = b"Received: from evil (<script>alert(1)</script> [192.0.2.1])\r\n\tby mx.example.test with ESMTPS id x; Sat, 5 Dec 2026 10:00:00 +0000\r\nFrom: \"<svg onload=alert(1)>\" <a@example.test>\r\nSubject: x\r\n\r\nbody\r\n";
        let a = postamt_analyze::analyze(msg, &postamt_analyze::analysis::Options::default());
        let svg = path_svg(&a);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<svg onload"), "{svg}");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("class=\"hop\""));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
