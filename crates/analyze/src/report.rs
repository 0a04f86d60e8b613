//! The analysis as a report a person reads top-down: the verdict and its
//! reasons, the hops oldest first with the trust boundary, the
//! identities, authentication, findings.

use std::fmt::Write;

use crate::analysis::Analysis;
use crate::text::Lang;

fn l(lang: Lang, en: &'static str, de: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::De => de,
    }
}

pub fn text(a: &Analysis, lang: Lang) -> String {
    let mut o = String::new();
    let verdict = match (lang, a.verdict.as_str()) {
        (Lang::De, "genuine") => "echt",
        (Lang::De, "suspicious") => "verdächtig",
        (Lang::De, "forged") => "gefälscht",
        (Lang::De, _) => "unbekannt",
        (_, v) => v,
    };
    let _ = writeln!(o, "{}: {verdict}", l(lang, "Verdict", "Urteil"));
    for r in &a.reasons {
        let _ = writeln!(o, "  - {r}");
    }
    let _ = writeln!(
        o,
        "\n{} ({} Received, {}):",
        l(lang, "Hops, oldest first", "Stationen, älteste zuerst"),
        a.received_count,
        l(lang, "* = believed", "* = glaubwürdig")
    );
    for h in &a.hops {
        let from = [h.from_helo.as_str(), h.from_rdns.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" / ");
        let ip = h.from_ip.as_deref().unwrap_or("-");
        let mark = if h.trusted { '*' } else { ' ' };
        let _ = write!(
            o,
            " {mark}{:>2}. {from} [{ip}] -> {}",
            h.index,
            if h.by.is_empty() { "?" } else { &h.by }
        );
        if !h.with.is_empty() {
            let _ = write!(o, " {}", h.with);
        }
        if !h.tls.is_empty() {
            let _ = write!(o, " ({})", h.tls);
        }
        if let Some(d) = &h.date {
            let _ = write!(o, " {d}");
        }
        if let Some(s) = h.delay_s {
            let _ = write!(o, " ({s:+.0} s)");
        }
        if h.local {
            let _ = write!(o, " [{}]", l(lang, "local", "lokal"));
        } else if !h.trusted {
            let _ = write!(o, " [{}]", l(lang, "claimed", "behauptet"));
        }
        o.push('\n');
    }
    let ip = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(
        o,
        "{}: {}   {}: {}",
        l(lang, "Origin IP", "Herkunfts-IP"),
        ip(&a.origin_ip),
        l(lang, "entry IP", "Eingangs-IP"),
        ip(&a.entry_ip)
    );
    if let Some(t) = a.transit_s {
        let _ = writeln!(
            o,
            "{}: {t:.0} s",
            l(lang, "Transit since Date:", "Laufzeit seit Date:")
        );
    }
    let i = &a.identities;
    let _ = writeln!(o, "\n{}:", l(lang, "Identities", "Identitäten"));
    let show = |o: &mut String, k: &str, v: &Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(o, "  {k:<12} {v}");
        }
    };
    show(&mut o, "From", &i.from);
    show(&mut o, l(lang, "Name", "Name"), &i.from_name);
    show(&mut o, "Sender", &i.sender);
    show(&mut o, "Reply-To", &i.reply_to);
    show(&mut o, "Return-Path", &i.return_path);
    show(&mut o, "SPF", &i.spf_domain);
    if !i.dkim_domains.is_empty() {
        let _ = writeln!(o, "  {:<12} {}", "DKIM d=", i.dkim_domains.join(", "));
    }
    let yes_no = |b: bool| {
        if b {
            l(lang, "yes", "ja")
        } else {
            l(lang, "no", "nein")
        }
    };
    let _ = writeln!(
        o,
        "  {}: DKIM {}, SPF {}",
        l(lang, "aligned with From:", "passend zu From:"),
        yes_no(a.alignment.dkim),
        yes_no(a.alignment.spf)
    );
    if !a.signatures.is_empty() || !a.recorded.is_empty() {
        let _ = writeln!(o, "\n{}:", l(lang, "Authentication", "Authentifizierung"));
        for r in &a.recorded {
            let _ = writeln!(
                o,
                "  {} {}={}",
                l(lang, "recorded:", "vermerkt:"),
                r.method,
                r.detail
            );
        }
        for s in &a.signatures {
            let on_arrival = s
                .recorded
                .as_deref()
                .map(|r| format!(", {} {r}", l(lang, "on arrival", "bei Ankunft")))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  DKIM d={} s={}: {}{on_arrival} ({} {})",
                s.domain,
                s.selector,
                s.result,
                l(lang, "signs", "signiert"),
                s.covers.join(":")
            );
        }
    }
    if !a.findings.is_empty() {
        let _ = writeln!(o, "\n{}:", l(lang, "Findings", "Befunde"));
        for f in &a.findings {
            let sev = match f.severity {
                crate::analysis::Severity::High => l(lang, "high", "hoch"),
                crate::analysis::Severity::Medium => l(lang, "medium", "mittel"),
                crate::analysis::Severity::Low => l(lang, "low", "niedrig"),
            };
            let _ = writeln!(o, "  [{sev}] {}: {}", f.code, f.detail);
        }
    }
    for u in &a.unreadable {
        let _ = writeln!(o, "\n{}: {u}", l(lang, "Not read", "Nicht gelesen"));
    }
    o
}
