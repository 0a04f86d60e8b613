//! The analysis of one message: hops oldest first with the trust
//! boundary, the identities and how they align, the authentication the
//! receiver recorded and what a re-check says, findings with stable codes
//! (`../shared/spec/interface.md`), and a verdict with its reasons.

use std::net::IpAddr;

use serde::Serialize;

use crate::received::{self, Parsed};
use crate::text::{Lang, t};
use crate::trust::{self, TrustConfig};

/// Most `Received:` fields read (the rest are counted, not parsed).
pub const MAX_RECEIVED: usize = 200;

/// Longest header read.
pub const MAX_HEADER: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Genuine,
    Suspicious,
    Forged,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Genuine => "genuine",
            Verdict::Suspicious => "suspicious",
            Verdict::Forged => "forged",
            Verdict::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HopReport {
    /// 1 = the oldest hop.
    pub index: usize,
    pub from_helo: String,
    pub from_rdns: String,
    pub from_ip: Option<String>,
    pub by: String,
    pub with: String,
    pub tls: String,
    pub id: String,
    #[serde(rename = "for")]
    pub for_: String,
    /// RFC 3339, UTC.
    pub date: Option<String>,
    /// Seconds since the previous (older) hop.
    pub delay_s: Option<f64>,
    /// Written by a server whose word is believed.
    pub trusted: bool,
    /// A local hop (pickup, scanner) that names no client.
    pub local: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Identities {
    pub from: Option<String>,
    pub from_domain: Option<String>,
    pub from_name: Option<String>,
    pub sender: Option<String>,
    pub reply_to: Option<String>,
    pub return_path: Option<String>,
    pub dkim_domains: Vec<String>,
    pub spf_domain: Option<String>,
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Alignment {
    /// A DKIM signature's `d=` is in the From: domain's organization.
    pub dkim: bool,
    /// The SPF domain (Return-Path) is in the From: domain's organization.
    pub spf: bool,
}

/// One DKIM signature as the header shows it, and what a re-check said.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Signature {
    pub domain: String,
    pub selector: String,
    /// The header fields it signs (`h=`), lower case.
    pub covers: Vec<String>,
    /// `pass`, `fail`, … or `not checkable` (offline).
    pub result: String,
    /// What our server recorded for it on arrival (RFC 8601 `dkim=` with
    /// this `header.d=`/`header.s=`), if it did.
    pub recorded: Option<String>,
}

/// One result of our own `Authentication-Results:` (RFC 8601).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recorded {
    pub method: String,
    pub result: String,
    pub detail: String,
}

/// DKIM and ARC checked again by the caller (with DNS), or `None`.
#[derive(Debug, Clone, Default)]
pub struct Recheck {
    /// (d=, s=, result) per signature.
    pub dkim: Vec<(String, String, String)>,
    /// The ARC chain's result and sealers, when the message has one.
    pub arc: Option<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Our host names: the authserv-id of our results, the `by` of our
    /// own Received lines.
    pub hostnames: Vec<String>,
    /// Local domains (look-alikes of them are flagged).
    pub local_domains: Vec<String>,
    /// Other domains to protect from look-alikes.
    pub protected_domains: Vec<String>,
    /// Display names to protect (local users' names).
    pub protected_names: Vec<String>,
    pub trust: TrustConfig,
    pub lang: Lang,
    pub recheck: Option<Recheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub received_count: usize,
    pub hops: Vec<HopReport>,
    pub origin_ip: Option<String>,
    pub entry_ip: Option<String>,
    pub identities: Identities,
    pub alignment: Alignment,
    pub signatures: Vec<Signature>,
    pub recorded: Vec<Recorded>,
    /// Seconds from `Date:` to the newest hop.
    pub transit_s: Option<f64>,
    pub findings: Vec<Finding>,
    /// What could not be read.
    pub unreadable: Vec<String>,
}

/// The header fields of a message: (name, unfolded value), in order.
fn fields(message: &[u8]) -> (Vec<(String, String)>, bool) {
    let end = postamt_wire::meta::header_len(message).min(MAX_HEADER);
    let cut = end < postamt_wire::meta::header_len(message);
    let head = String::from_utf8_lossy(&message[..end]);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim_start());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (out, cut)
}

fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// The organizational domain (Public Suffix List, as DMARC's RFC 7489).
fn org(domain: &str) -> String {
    postamt_auth::psl::Suffixes::Embedded
        .organizational(domain)
        .unwrap_or_else(|| domain.to_ascii_lowercase())
}

/// Tags of a DKIM-Signature (`d`, `s`, `h`).
fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.split_whitespace().collect::<String>(),
            )
        })
        .collect()
}

/// The results of an `Authentication-Results:` value whose authserv-id is
/// one of `ids` (RFC 8601 §2.2).
fn recorded(value: &str, ids: &[String]) -> Option<Vec<Recorded>> {
    let (id, rest) = value.split_once(';')?;
    let id = id.split_whitespace().next().unwrap_or("");
    if !ids.iter().any(|h| h.eq_ignore_ascii_case(id)) {
        return None;
    }
    let mut out = Vec::new();
    for part in rest.split(';') {
        let part = part.trim();
        let Some((method, after)) = part.split_once('=') else {
            continue;
        };
        let result = after
            .split([' ', '('])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        out.push(Recorded {
            method: method.trim().to_ascii_lowercase(),
            result,
            detail: after.trim().to_string(),
        });
    }
    Some(out)
}

/// The address of a mailbox field and its display name.
fn mailbox(value: &str) -> (Option<String>, Option<String>) {
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].trim().to_string(),
        _ => value
            .split_whitespace()
            .find(|w| w.contains('@'))
            .unwrap_or("")
            .trim_matches(|c| c == '"' || c == ',')
            .to_string(),
    };
    let name = value
        .rfind('<')
        .map(|a| value[..a].trim().trim_matches('"').trim().to_string())
        .filter(|n| !n.is_empty());
    ((!addr.is_empty()).then_some(addr), name)
}

fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = postamt_wire::time::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Analyses a message (its header; the body is not read).
pub fn analyze(message: &[u8], o: &Options) -> Analysis {
    let lang = o.lang;
    let (fields, cut) = fields(message);
    let mut unreadable = Vec::new();
    if cut {
        unreadable.push(t(lang, "header_cut", &[&MAX_HEADER.to_string()]));
    }
    if fields.is_empty() {
        unreadable.push(t(lang, "no_header", &[]));
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    fn all<'a>(fields: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
        fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    let all = |name: &'static str| all(&fields, name);

    // Hops, newest first as in the header.
    let received: Vec<&str> = all("received").collect();
    let received_count = received.len();
    if received_count > MAX_RECEIVED {
        unreadable.push(t(
            lang,
            "too_many_received",
            &[&received_count.to_string(), &MAX_RECEIVED.to_string()],
        ));
    }
    let parsed: Vec<Parsed> = received
        .iter()
        .take(MAX_RECEIVED)
        .map(|v| received::parse(v))
        .collect();
    // X-Originating-IP (webmail): the oldest hop, as SpamAssassin counts it.
    let originating = get("x-originating-ip").and_then(received::ip_in);
    let relays: Vec<&received::Hop> = parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Relay(h) => Some(h),
            Parsed::Local(..) => None,
        })
        .collect();

    // The trust boundary: our newest Received line is the first fact;
    // without one, SpamAssassin's trust path from the top.
    let is_ours = |h: &received::Hop| o.hostnames.iter().any(|n| n.eq_ignore_ascii_case(&h.by));
    let mut ips: Vec<Option<IpAddr>> = relays.iter().map(|h| h.ip).collect();
    if let Some(ip) = originating {
        ips.push(Some(ip));
    }
    let ours = relays.iter().position(|h| is_ours(h));
    let trusted_relays = match ours {
        Some(first) => {
            // Ours and those above it are facts; below, while the client
            // we (or a trusted relay) recorded is a trusted network and
            // the next line is written by that very host.
            let mut n = first + 1;
            while n < relays.len() {
                let client = relays[n - 1];
                let trusted_client = client.ip.is_some_and(|ip| {
                    o.trust.trusted.contains(ip)
                        || o.trust.internal.contains(ip)
                        || ip.is_loopback()
                });
                let by = relays[n].by.to_ascii_lowercase();
                let names_match = !by.is_empty()
                    && (by == client.rdns.to_ascii_lowercase()
                        || by == client.helo.to_ascii_lowercase());
                if trusted_client && names_match {
                    n += 1;
                } else {
                    break;
                }
            }
            n
        }
        None if !o.trust.trusted.is_empty() || !o.trust.internal.is_empty() => {
            trust::trusted_count(&ips[..relays.len()], &o.trust)
        }
        // Nothing of ours and no networks: the newest relay line was
        // written by the recipient's own provider (where the message was
        // read from), and a private or loopback client of a believed line
        // is one of the provider's own hosts, so the line it wrote is
        // believed too (SpamAssassin's inference), up to the first public
        // client: the origin.
        None => {
            let mut n = usize::from(!relays.is_empty());
            while n < relays.len() && relays[n - 1].ip.is_some_and(trust::private) {
                n += 1;
            }
            n
        }
    };
    // The origin: the client of the oldest believed hop; the entry: the
    // client of the oldest hop written inside our own systems.
    let origin_ip = trusted_relays
        .checked_sub(1)
        .and_then(|i| relays.get(i))
        .and_then(|h| h.ip)
        .map(|ip| ip.to_string());
    // A hop's client in our own networks wrote the hop below it: the
    // message was already inside.
    let internal =
        |ip: Option<IpAddr>| ip.is_some_and(|ip| o.trust.internal.contains(ip) || ip.is_loopback());
    let entry_ip = match ours {
        Some(first) => {
            let mut i = first;
            while i + 1 < trusted_relays && internal(relays[i].ip) {
                i += 1;
            }
            relays[i].ip.map(|ip| ip.to_string())
        }
        None => origin_ip.clone(),
    };

    // Hop reports, oldest first.
    let total = parsed.len();
    let mut hops: Vec<HopReport> = Vec::with_capacity(total);
    let mut relay_index = relays.len();
    let mut previous_ms: Option<i64> = None;
    for (k, p) in parsed.iter().rev().enumerate() {
        let h = p.hop();
        let local = matches!(p, Parsed::Local(..));
        let trusted = if local {
            // A local line is as believable as the relays around it.
            relay_index < trusted_relays || (relay_index == trusted_relays && trusted_relays > 0)
        } else {
            relay_index -= 1;
            relay_index < trusted_relays
        };
        let delay_s = match (previous_ms, h.date_ms) {
            (Some(a), Some(b)) => Some((b - a) as f64 / 1000.0),
            _ => None,
        };
        if h.date_ms.is_some() {
            previous_ms = h.date_ms;
        }
        hops.push(HopReport {
            index: k + 1,
            from_helo: h.helo.clone(),
            from_rdns: h.rdns.clone(),
            from_ip: h.ip.map(|i| i.to_string()),
            by: h.by.clone(),
            with: h.with.clone(),
            tls: h.tls.clone(),
            id: h.id.clone(),
            for_: h.for_.clone(),
            date: h.date_ms.map(rfc3339),
            delay_s,
            trusted,
            local,
        });
    }

    // Identities, read by mail-parser (encoded words, groups, quoting).
    let end = postamt_wire::meta::header_len(message).min(MAX_HEADER);
    let parsed_head = mail_parser::MessageParser::new().parse_headers(&message[..end]);
    let first_of = |a: Option<&mail_parser::Address<'_>>| {
        a.and_then(|a| a.first()).map(|m| {
            (
                m.address().map(|s| s.to_string()),
                m.name()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            )
        })
    };
    let from_fields: Vec<&str> = all("from").collect();
    let from_addresses = parsed_head
        .as_ref()
        .and_then(|m| m.from())
        .map_or(0, |a| a.iter().count());
    let (from, from_name) = match first_of(parsed_head.as_ref().and_then(|m| m.from())) {
        Some(f) => f,
        None => from_fields
            .first()
            .map(|v| mailbox(v))
            .unwrap_or((None, None)),
    };
    let from_domain = from.as_deref().and_then(domain_of);
    let return_path = get("return-path")
        .map(|v| mailbox(v).0.unwrap_or_default())
        .filter(|s| !s.is_empty());
    let mut signatures: Vec<Signature> = all("dkim-signature")
        .take(20)
        .map(|v| {
            let tg = tags(v);
            let tag = |k: &str| {
                tg.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            Signature {
                domain: tag("d").to_ascii_lowercase(),
                selector: tag("s"),
                covers: tag("h")
                    .split(':')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect(),
                result: t(lang, "not_checkable", &[]),
                recorded: None,
            }
        })
        .collect();
    if let Some(r) = &o.recheck {
        for s in &mut signatures {
            if let Some((_, _, result)) = r
                .dkim
                .iter()
                .find(|(d, sel, _)| d.eq_ignore_ascii_case(&s.domain) && sel == &s.selector)
            {
                s.result = result.clone();
            }
        }
    }
    let mut recorded_results = Vec::new();
    for v in all("authentication-results") {
        if let Some(r) = recorded(v, &o.hostnames) {
            recorded_results = r;
            break;
        }
    }
    let spf_domain = recorded_results
        .iter()
        .find(|r| r.method == "spf" && r.detail.contains("smtp.mailfrom="))
        .and_then(|r| r.detail.split("smtp.mailfrom=").nth(1))
        .and_then(|m| domain_of(m.split_whitespace().next().unwrap_or("")))
        .or_else(|| return_path.as_deref().and_then(domain_of));
    let identities = Identities {
        from: from.clone(),
        from_domain: from_domain.clone(),
        from_name: from_name.clone(),
        sender: first_of(parsed_head.as_ref().and_then(|m| m.sender())).and_then(|f| f.0),
        reply_to: first_of(parsed_head.as_ref().and_then(|m| m.reply_to())).and_then(|f| f.0),
        return_path: return_path.clone(),
        dkim_domains: {
            let mut d: Vec<String> = signatures
                .iter()
                .map(|s| s.domain.clone())
                .filter(|d| !d.is_empty())
                .collect();
            d.dedup();
            d
        },
        spf_domain: spf_domain.clone(),
        message_id: get("message-id").map(|v| v.trim_matches(|c| c == '<' || c == '>').to_string()),
    };
    let from_org = from_domain.as_deref().map(org);
    let alignment = Alignment {
        dkim: from_org
            .as_ref()
            .is_some_and(|fo| identities.dkim_domains.iter().any(|d| &org(d) == fo)),
        spf: from_org
            .as_ref()
            .zip(spf_domain.as_ref())
            .is_some_and(|(fo, s)| &org(s) == fo),
    };

    // Findings.
    let mut findings: Vec<Finding> = Vec::new();
    let mut add = |code: &'static str, severity: Severity, key: &str, args: &[&str]| {
        findings.push(Finding {
            code,
            severity,
            detail: t(lang, key, args),
        });
    };
    if from_fields.len() > 1 || from_addresses > 1 {
        add(
            "multiple_from",
            Severity::High,
            "multiple_from",
            &[&from_fields.len().to_string()],
        );
    }
    // A list's Reply-To to the list is what lists do (RFC 2369 List-*).
    let list = get("list-id").is_some() || get("list-post").is_some();
    if let (Some(fo), Some(rt)) = (
        &from_org,
        identities.reply_to.as_deref().and_then(domain_of),
    ) && &org(&rt) != fo
        && !list
    {
        add(
            "from_reply_to_mismatch",
            Severity::Medium,
            "from_reply_to_mismatch",
            &[&rt, from_domain.as_deref().unwrap_or("")],
        );
    }
    if let (Some(name), Some(addr)) = (&from_name, &from) {
        let token = |w: &str| {
            w.trim_matches(|c: char| {
                matches!(
                    c,
                    '"' | '\'' | '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':'
                )
            })
            .to_string()
        };
        if let Some(other) = name.split_whitespace().map(token).find(|w| {
            w.split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'))
        }) {
            let other = other.as_str();
            if !other.eq_ignore_ascii_case(addr) {
                add(
                    "display_name_address",
                    Severity::High,
                    "display_name_address",
                    &[other, addr],
                );
            }
        }
        let local_sender = from_domain
            .as_ref()
            .is_some_and(|d| o.local_domains.iter().any(|l| l.eq_ignore_ascii_case(d)));
        if !local_sender
            && let Some(p) = o
                .protected_names
                .iter()
                .find(|p| name.to_lowercase().contains(&p.to_lowercase()))
        {
            add(
                "display_name_impersonation",
                Severity::Medium,
                "display_name_impersonation",
                &[name, p],
            );
        }
    }
    if let Some(fd) = &from_domain {
        let protected = o.local_domains.iter().chain(&o.protected_domains);
        if let Some(p) = protected
            .clone()
            .find(|p| crate::lookalike::imitates(fd, p))
        {
            add(
                "lookalike_domain",
                Severity::High,
                "lookalike_domain",
                &[fd, p],
            );
        }
        // Replies diverted to a look-alike of the sender's (or of the
        // address the display name shows).
        let shown = from_name.as_deref().and_then(|n| {
            n.split_whitespace().find_map(|w| {
                domain_of(w.trim_matches(|c: char| {
                    !c.is_alphanumeric() && c != '.' && c != '@' && c != '-'
                }))
            })
        });
        if let Some(rt) = identities.reply_to.as_deref().and_then(domain_of) {
            let guarded = o.local_domains.iter().chain(&o.protected_domains).cloned();
            for real in [Some(fd.clone()), shown]
                .into_iter()
                .flatten()
                .chain(guarded)
            {
                if crate::lookalike::imitates(&rt, &real) {
                    add(
                        "lookalike_domain",
                        Severity::High,
                        "reply_to_lookalike",
                        &[&rt, &real],
                    );
                    break;
                }
            }
        }
        if crate::lookalike::mixed_script(fd) {
            add(
                "idn_mixed_script",
                Severity::High,
                "idn_mixed_script",
                &[&crate::lookalike::unicode(fd)],
            );
        }
    }
    // Received lines: one below the boundary claiming to be ours; dates
    // going backwards by more than a few minutes.
    for h in relays.iter().skip(trusted_relays) {
        if is_ours(h) {
            add(
                "forged_received",
                Severity::High,
                "claims_our_host",
                &[&h.by],
            );
        }
    }
    for w in hops.windows(2) {
        if let (Some(d), false) = (w[1].delay_s, w[1].local) {
            if d < -3600.0 {
                add(
                    "forged_received",
                    Severity::Medium,
                    "backwards",
                    &[&w[1].index.to_string(), &format!("{:.0}", -d)],
                );
            } else if d < -300.0 {
                add(
                    "clock_skew",
                    Severity::Low,
                    "backwards",
                    &[&w[1].index.to_string(), &format!("{:.0}", -d)],
                );
            } else if d > 3600.0 {
                add(
                    "long_delay",
                    Severity::Low,
                    "long_delay",
                    &[&w[1].index.to_string(), &format!("{:.0}", d / 60.0)],
                );
            }
        }
    }
    let newest_ms = parsed.first().and_then(|p| p.hop().date_ms);
    let date_ms = get("date").and_then(crate::date::parse);
    let transit_s = newest_ms.zip(date_ms).map(|(n, d)| (n - d) as f64 / 1000.0);
    if let Some(tr) = transit_s {
        if tr < -900.0 {
            add(
                "clock_skew",
                Severity::Low,
                "date_in_future",
                &[&format!("{:.0}", -tr / 60.0)],
            );
        } else if tr > 86_400.0 {
            add(
                "long_delay",
                Severity::Low,
                "long_transit",
                &[&format!("{:.1}", tr / 3600.0)],
            );
        }
    }
    for h in hops.iter().filter(|h| h.trusted && !h.local) {
        let w = h.with.to_ascii_uppercase();
        let public = h
            .from_ip
            .as_deref()
            .and_then(|i| i.parse::<IpAddr>().ok())
            .is_some_and(|ip| !trust::private(ip));
        if public && (w == "SMTP" || w == "ESMTP" || w == "ESMTPA") && h.tls.is_empty() {
            add(
                "no_tls_hop",
                Severity::Low,
                "no_tls_hop",
                &[&h.index.to_string(), h.from_ip.as_deref().unwrap_or("")],
            );
        }
    }
    for r in &recorded_results {
        match (r.method.as_str(), r.result.as_str()) {
            ("dkim", "fail") => add(
                "dkim_fail",
                Severity::Medium,
                "recorded_dkim_fail",
                &[&r.detail],
            ),
            ("spf", "fail") => add(
                "spf_fail",
                Severity::Medium,
                "recorded_spf_fail",
                &[&r.detail],
            ),
            ("dmarc", "fail") => add(
                "dmarc_fail",
                Severity::High,
                "recorded_dmarc_fail",
                &[&r.detail],
            ),
            ("arc", "fail") => add(
                "arc_chain_broken",
                Severity::Medium,
                "arc_broken",
                &[&r.detail],
            ),
            _ => {}
        }
    }
    // Each signature against what our server recorded for it on arrival.
    for s in &mut signatures {
        s.recorded = recorded_results
            .iter()
            .find(|r| {
                r.method == "dkim"
                    && r.detail.contains(&format!("header.d={}", s.domain))
                    && (s.selector.is_empty()
                        || !r.detail.contains("header.s=")
                        || r.detail.contains(&format!("header.s={}", s.selector)))
            })
            .map(|r| r.result.clone());
    }
    for s in &signatures {
        match (s.recorded.as_deref(), s.result.as_str()) {
            // Passed on arrival, fails now: changed since it arrived.
            (Some("pass"), "fail") => add(
                "dkim_fail",
                Severity::Medium,
                "changed_since_arrival",
                &[&s.domain, &s.selector],
            ),
            (Some("fail"), _) => {}
            (_, "fail") => add(
                "dkim_fail",
                Severity::Medium,
                "recheck_dkim_fail",
                &[&s.domain, &s.selector],
            ),
            _ => {}
        }
        if !s.covers.iter().any(|h| h == "from") {
            add(
                "dkim_from_unsigned",
                Severity::Medium,
                "dkim_from_unsigned",
                &[&s.domain],
            );
        } else {
            let missing: Vec<&str> = ["subject", "to"]
                .into_iter()
                .filter(|h| !s.covers.iter().any(|c| c == h))
                .collect();
            if !missing.is_empty() {
                add(
                    "dkim_from_unsigned",
                    Severity::Low,
                    "dkim_partly_unsigned",
                    &[&s.domain, &missing.join(", ")],
                );
            }
        }
    }
    if let Some((result, _)) = o.recheck.as_ref().and_then(|r| r.arc.as_ref())
        && result == "fail"
        && !recorded_results.iter().any(|r| r.method == "arc")
    {
        add(
            "arc_chain_broken",
            Severity::Medium,
            "arc_broken",
            &[result],
        );
    }
    if let (Some(mid), Some(fo)) = (&identities.message_id, &from_org)
        && let Some(md) = domain_of(mid)
    {
        let related = &org(&md) == fo || identities.dkim_domains.iter().any(|d| org(d) == org(&md));
        if !related && md.contains('.') {
            add(
                "message_id_mismatch",
                Severity::Low,
                "message_id_mismatch",
                &[&md, from_domain.as_deref().unwrap_or("")],
            );
        }
    }

    // The verdict.
    let aligned_pass = recorded_results
        .iter()
        .any(|r| r.method == "dmarc" && r.result == "pass")
        || signatures.iter().any(|s| {
            s.result == "pass" && from_org.as_deref().is_some_and(|fo| org(&s.domain) == fo)
        });
    let high = findings.iter().any(|f| f.severity == Severity::High);
    let medium = findings.iter().any(|f| f.severity == Severity::Medium);
    let verdict = if findings
        .iter()
        .any(|f| f.code == "dmarc_fail" || f.code == "multiple_from")
        || (high && !aligned_pass)
    {
        Verdict::Forged
    } else if high || medium {
        Verdict::Suspicious
    } else if aligned_pass {
        Verdict::Genuine
    } else {
        Verdict::Unknown
    };
    let mut reasons: Vec<String> = findings
        .iter()
        .filter(|f| f.severity >= Severity::Medium)
        .map(|f| f.detail.clone())
        .collect();
    if aligned_pass {
        reasons.push(t(
            lang,
            "aligned_pass",
            &[from_domain.as_deref().unwrap_or("")],
        ));
    }
    if reasons.is_empty() {
        reasons.push(t(
            lang,
            match verdict {
                Verdict::Unknown => "nothing_checkable",
                _ => "nothing_wrong",
            },
            &[],
        ));
    }
    Analysis {
        verdict,
        reasons,
        received_count,
        hops,
        origin_ip,
        entry_ip,
        identities,
        alignment,
        signatures,
        recorded: recorded_results,
        transit_s,
        findings,
        unreadable,
    }
}
