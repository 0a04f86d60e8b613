//! What happens to a received message before delivery, as pure functions of
//! their inputs: the inbound checks ([`check_message`]: RFC 5321 §6.3 mail
//! loops, spoofed local senders on port 25, RFC 6409 §8 `From:` ownership
//! and the `Message-ID`/`Date` an MSA adds, the `X-Postamt-Warning` header)
//! and the trace header ([`received_header`]: RFC 5321 §4.4, with the
//! RFC 3848 / RFC 6531 protocol type and the TLS version and cipher).
//!
//! The checks may need the directory (the local domains, whether the user
//! owns an address); they say so with [`Check::Need`], and the core asks the
//! session and calls them again with the answer. SPF, DKIM, ARC and DMARC
//! are such checks on the inbound port; what DMARC saw of a message is
//! also kept for the domain owner's aggregate report
//! ([`dmarc_observation`], RFC 9990).

use std::net::IpAddr;

use mail_parser::{HeaderName, MessageParser};
use postamt_wire::meta::{header_fields, header_len};
use postamt_wire::time::rfc5322_date;

use crate::core::{DmarcPolicy, DmarcQuery, Lookup, Mode, SpfPolicy, SpfQuery, SpoofPolicy};
use crate::reply::{R, Reply};
use postamt_auth::arc::Verdict as ArcVerdict;
use postamt_auth::dkim::Verdict as DkimVerdict;
use postamt_auth::dmarc::{Alignment, DmarcResult, Policy, Verdict as DmarcVerdict};
use postamt_auth::report::{DkimResult, Observation, Override, Published, Row};
use postamt_auth::spf::{SpfResult, Verdict};

/// What the checks read from a message's header block, parsed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    /// The number of `Received:` headers.
    pub received: usize,
    /// The addresses in `From:`.
    pub from: Vec<String>,
    /// How many `From:` fields there are (RFC 5322 §3.6: exactly one).
    pub from_fields: usize,
    pub has_message_id: bool,
    pub has_date: bool,
}

impl HeaderFacts {
    pub fn read(content: &[u8]) -> HeaderFacts {
        let header = &content[..header_len(content)];
        let Some(headers) = MessageParser::default().parse_headers(header) else {
            return HeaderFacts::default();
        };
        let has = |n: HeaderName<'static>| headers.headers().iter().any(|h| h.name == n);
        HeaderFacts {
            received: headers
                .headers()
                .iter()
                .filter(|h| h.name == HeaderName::Received)
                .count(),
            from: headers
                .from()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.address())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            from_fields: headers
                .headers()
                .iter()
                .filter(|h| h.name == HeaderName::From)
                .count(),
            has_message_id: has(HeaderName::MessageId),
            has_date: has(HeaderName::Date),
        }
    }
}

/// The circumstances of a message.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub mode: Mode,
    pub spoof_policy: SpoofPolicy,
    /// More `Received:` headers than this is a loop.
    pub max_received: usize,
    /// The authenticated user's address (submission).
    pub user: Option<&'a str>,
    /// What `MAIL FROM` already noticed (spoof policy `Mark`).
    pub warning: Option<&'a str>,
    pub hostname: &'a str,
    /// The message's id, for a `Message-ID` added on submission.
    pub id: &'a str,
    /// Unix time, for a `Date` added on submission.
    pub now: u64,
    /// SPF on the inbound port, and what it checks: the client, its HELO
    /// name and the MAIL FROM address (empty: the null reverse-path).
    pub spf: SpfPolicy,
    /// Verify DKIM signatures on the inbound port.
    pub dkim: bool,
    pub dmarc: DmarcPolicy,
    pub trusted_arc_sealers: &'a [String],
    pub peer: IpAddr,
    pub helo: &'a str,
    pub mail_from: &'a str,
}

/// The directory's answers to what the checks asked so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    pub local_domains: Option<Vec<String>>,
    /// `From:` addresses, and whether the authenticated user owns each.
    pub owned: Vec<(String, bool)>,
    /// The SPF verdict (inbound, when checked).
    pub spf: Option<Verdict>,
    /// The SPF verdict for the HELO identity (RFC 7208 §2.3), when MAIL
    /// FROM is not empty (for `<>` the MAIL FROM check is HELO's).
    pub spf_helo: Option<Verdict>,
    /// The DKIM verdicts, one per signature (inbound, when checked).
    pub dkim: Option<Vec<DkimVerdict>>,
    /// The DMARC verdict (inbound, when evaluated).
    pub dmarc: Option<DmarcVerdict>,
    /// The ARC verdict (inbound, with DMARC).
    pub arc: Option<ArcVerdict>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Ask the directory, then check again with the answer.
    Need(Lookup),
    /// Refuse the message with this reply.
    Refuse(Reply),
    /// Accept it, with these header lines put in front (after `Received:`).
    Accept(String),
    /// Accept it as [`Check::Accept`] does, into the recipients' Junk
    /// mailboxes (DMARC `p=quarantine`, RFC 7489 §6.3).
    Quarantine(String),
}

/// The inbound checks between the end of the content and delivery.
pub fn check_message(facts: &HeaderFacts, input: &CheckInput<'_>, answers: &Answers) -> Check {
    // RFC 5321 §6.3: count Received headers to stop loops.
    if facts.received > input.max_received {
        return Check::Refuse(Reply::new(R::Loop));
    }
    // Two From: fields, or one without an address, is the classic bypass
    // of sender checks: a verifier reads one From, the reader sees the
    // other (RFC 5322 §3.6 allows exactly one, with a mailbox). LMTP comes
    // from a trusted MTA that checked already.
    if input.mode != Mode::Lmtp {
        if facts.from_fields > 1 {
            return Check::Refuse(Reply::with(
                R::BadFromField,
                format!(
                    "the message has {} From: fields; exactly one is allowed (RFC 5322 §3.6)",
                    facts.from_fields
                ),
            ));
        }
        if facts.from_fields == 1 && facts.from.is_empty() {
            return Check::Refuse(Reply::with(
                R::BadFromField,
                "the From: field has no address (RFC 5322 §3.6.2)",
            ));
        }
    }
    let mut headers = String::new();
    let mut warning = input.warning.map(str::to_string);
    match input.mode {
        Mode::Submission => {
            // RFC 6409 §8: the MSA may check the From: field.
            for a in &facts.from {
                if input.user.is_some_and(|u| u.eq_ignore_ascii_case(a)) {
                    continue;
                }
                match answers.owned.iter().find(|(o, _)| o == a) {
                    Some((_, true)) => {}
                    Some((_, false)) => {
                        return Check::Refuse(Reply::with(
                            R::NotYourAddress,
                            format!("From: <{a}> is not an address of yours"),
                        ));
                    }
                    None => return Check::Need(Lookup::Resolve(a.clone())),
                }
            }
            // RFC 6409 §8.3, §8.1: add Message-ID and Date when missing.
            if !facts.has_message_id {
                headers.push_str(&format!(
                    "Message-ID: <{}@{}>\r\n",
                    input.id, input.hostname
                ));
            }
            if !facts.has_date {
                headers.push_str(&format!("Date: {}\r\n", rfc5322_date(input.now)));
            }
        }
        Mode::Inbound if input.spoof_policy != SpoofPolicy::Off => {
            let Some(domains) = &answers.local_domains else {
                return Check::Need(Lookup::LocalDomains);
            };
            let spoofed = facts.from.iter().find(|a| {
                a.rsplit_once('@')
                    .is_some_and(|(_, d)| domains.iter().any(|l| l.eq_ignore_ascii_case(d)))
            });
            if let Some(a) = spoofed {
                if input.spoof_policy == SpoofPolicy::Reject {
                    return Check::Refuse(Reply::with(
                        R::SpoofedSender,
                        format!(
                            "From: <{a}> is in a local domain, but the client did not authenticate"
                        ),
                    ));
                }
                warning.get_or_insert_with(|| {
                    format!(
                        "From: <{a}> claims a local domain, but the client did not authenticate"
                    )
                });
            }
        }
        _ => {}
    }
    let spf_on = input.mode == Mode::Inbound && input.spf != SpfPolicy::Off;
    let dkim_on = input.mode == Mode::Inbound && input.dkim;
    if spf_on {
        let query = |helo_identity| {
            Check::Need(Lookup::Spf(SpfQuery {
                ip: input.peer,
                helo: input.helo.to_string(),
                mail_from: input.mail_from.to_string(),
                helo_identity,
            }))
        };
        let Some(verdict) = &answers.spf else {
            return query(false);
        };
        if !input.mail_from.is_empty() && !input.helo.is_empty() && answers.spf_helo.is_none() {
            return query(true);
        }
        if input.spf == SpfPolicy::Reject {
            match verdict.result {
                SpfResult::Fail => {
                    let mut text = format!("SPF: {} (RFC 7208)", verdict.reason);
                    if let Some(e) = &verdict.explanation {
                        text.push_str(&format!(": {}", clean(e)));
                    }
                    return Check::Refuse(Reply::with(R::SpfFail, text));
                }
                SpfResult::TempError => {
                    return Check::Refuse(Reply::with(
                        R::SpfTempError,
                        format!("SPF: {}; try again later", verdict.reason),
                    ));
                }
                _ => {}
            }
        }
    }
    if dkim_on && answers.dkim.is_none() {
        return Check::Need(Lookup::Dkim);
    }
    let dmarc_on = input.mode == Mode::Inbound && input.dmarc != DmarcPolicy::Off;
    let mut quarantine = false;
    if dmarc_on && dkim_on && answers.arc.is_none() {
        return Check::Need(Lookup::Arc);
    }
    let excused_by = excused_by(input, answers);
    if dmarc_on {
        let Some(verdict) = &answers.dmarc else {
            return Check::Need(Lookup::Dmarc(dmarc_query(facts, input, answers)));
        };
        // With t=y the verdict's policy is already one step milder.
        let enforce = input.dmarc == DmarcPolicy::Enforce
            && verdict.result == DmarcResult::Fail
            && excused_by.is_none();
        match verdict.policy {
            Some(Policy::Reject) if enforce => {
                return Check::Refuse(Reply::with(
                    R::DmarcReject,
                    format!(
                        "DMARC: {} (RFC 7489 §6.3: p=reject)",
                        clean(&verdict.reason)
                    ),
                ));
            }
            Some(Policy::Quarantine) if enforce => quarantine = true,
            _ => {}
        }
        if verdict.result == DmarcResult::TempError && input.dmarc == DmarcPolicy::Enforce {
            return Check::Refuse(Reply::with(
                R::DmarcTempError,
                format!("DMARC: {}; try again later", clean(&verdict.reason)),
            ));
        }
    }
    if spf_on || dkim_on || dmarc_on {
        // RFC 8601 §4: ours goes first, right after our Received:.
        let spf = answers.spf.as_ref().filter(|_| spf_on);
        let spf_helo = answers.spf_helo.as_ref().filter(|_| spf_on);
        let dkim = answers.dkim.as_deref().filter(|_| dkim_on);
        let dmarc = answers.dmarc.as_ref().filter(|_| dmarc_on);
        let arc = answers.arc.as_ref().filter(|_| dmarc_on);
        headers.insert_str(
            0,
            &verdict_headers(
                Spf {
                    mail_from: spf,
                    helo: spf_helo,
                },
                dkim,
                dmarc,
                arc,
                excused_by,
                facts,
                input,
            ),
        );
    }
    if let Some(w) = &warning {
        headers.push_str(&format!("X-Postamt-Warning: possibly forged: {w}\r\n"));
    }
    if quarantine {
        Check::Quarantine(headers)
    } else {
        Check::Accept(headers)
    }
}

/// The trusted sealer whose passing ARC chain excuses a DMARC failure:
/// RFC 8617 §7.2, a chain sealed last by a trusted forwarder or list (the
/// list broke the signature).
fn excused_by<'a>(input: &CheckInput<'_>, answers: &'a Answers) -> Option<&'a str> {
    answers
        .arc
        .as_ref()
        .and_then(|a| a.newest_passing_sealer())
        .filter(|s| {
            input
                .trusted_arc_sealers
                .iter()
                .any(|t| t.eq_ignore_ascii_case(s))
        })
}

/// What the aggregate report (RFC 9990) says about a message that DMARC
/// evaluated under a record asking for reports (`rua=`); `None` for any
/// other. `disposition` is what became of the message: `reject` (refused),
/// `quarantine` (delivered to Junk) or `none`.
pub fn dmarc_observation(
    facts: &HeaderFacts,
    input: &CheckInput<'_>,
    answers: &Answers,
    disposition: Policy,
) -> Option<Observation> {
    let verdict = answers.dmarc.as_ref()?;
    let record = verdict.record.as_ref()?;
    if record.rua.is_empty() || input.mode != Mode::Inbound {
        return None;
    }
    let query = dmarc_query(facts, input, answers);
    let mut reasons = Vec::new();
    // RFC 9990 §2.1.7: a reason whenever a failing message was treated
    // more mildly than the policy domain asked: by this receiver (a
    // trusted ARC sealer, or DMARC not enforced), or by the record's own
    // testing mode (the verdict's policy is already the milder one).
    let from_domain = query.from_domain.to_ascii_lowercase();
    let applied = verdict.policy.unwrap_or(Policy::None);
    let requested = if verdict.policy_domain == from_domain {
        record.p
    } else {
        record.sp
    };
    if verdict.result == DmarcResult::Fail {
        if disposition != applied {
            if let Some(sealer) = excused_by(input, answers) {
                reasons.push((
                    Override::TrustedForwarder,
                    format!("passing ARC chain sealed by {sealer}, a trusted sealer"),
                ));
            } else {
                reasons.push((
                    Override::LocalPolicy,
                    "the receiver records DMARC results without enforcing them".to_string(),
                ));
            }
        }
        if record.testing && requested != applied {
            reasons.push((Override::PolicyTestMode, "t=y".to_string()));
        }
    }
    let pass_fail = |a: Alignment| if a == Alignment::Pass { "pass" } else { "fail" };
    let envelope_from = input
        .mail_from
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase();
    let spf_domain = if input.mail_from.is_empty() {
        input.helo.to_ascii_lowercase()
    } else {
        envelope_from.clone()
    };
    Some(Observation {
        published: Published::new(&verdict.policy_domain, record, verdict.discovery),
        row: Row {
            source_ip: input.peer.to_canonical().to_string(),
            header_from: from_domain,
            envelope_from,
            disposition: disposition.as_str().to_string(),
            dkim: pass_fail(verdict.dkim).to_string(),
            spf: pass_fail(verdict.spf).to_string(),
            reasons,
            dkim_results: answers
                .dkim
                .iter()
                .flatten()
                .take(100)
                .map(|d| DkimResult {
                    domain: d.domain.to_ascii_lowercase(),
                    selector: d.selector.clone(),
                    result: d.result.clone(),
                })
                .collect(),
            spf_result: answers
                .spf
                .as_ref()
                .map(|v| (spf_domain, v.result.as_str().to_string())),
        },
    })
}

/// What DMARC is asked about: the `From:` domain and the identities SPF
/// and DKIM passed for (a DKIM signature counts only if it covers `From:`,
/// RFC 6376 §5.4; SPF's is MAIL FROM's domain, or HELO's for `<>`).
fn dmarc_query(facts: &HeaderFacts, input: &CheckInput<'_>, answers: &Answers) -> DmarcQuery {
    let domain_of = |a: &str| a.rsplit_once('@').map_or(a, |(_, d)| d).to_string();
    DmarcQuery {
        from_domain: facts.from.first().map(|a| domain_of(a)).unwrap_or_default(),
        spf_pass_domain: answers
            .spf
            .as_ref()
            .filter(|v| v.result == SpfResult::Pass)
            .map(|_| {
                if input.mail_from.is_empty() {
                    input.helo.to_string()
                } else {
                    domain_of(input.mail_from)
                }
            }),
        dkim_pass_domains: answers
            .dkim
            .iter()
            .flatten()
            .filter(|v| v.result == "pass" && v.signs_from)
            .map(|v| v.domain.clone())
            .collect(),
    }
}

/// `Authentication-Results:` (RFC 8601 §2.2: the `spf` method of §2.7.2,
/// one `dkim` result per signature, §2.7.1, or `dkim=none`) and, with an
/// SPF verdict, `Received-SPF:` (RFC 7208 §9.1).
/// The SPF verdicts of the two identities (RFC 7208 §2.3, §2.4).
#[derive(Debug, Clone, Copy, Default)]
pub struct Spf<'a> {
    pub mail_from: Option<&'a Verdict>,
    pub helo: Option<&'a Verdict>,
}

pub fn verdict_headers(
    spf: Spf<'_>,
    dkim: Option<&[DkimVerdict]>,
    dmarc: Option<&DmarcVerdict>,
    arc: Option<&ArcVerdict>,
    excused_by: Option<&str>,
    facts: &HeaderFacts,
    input: &CheckInput<'_>,
) -> String {
    let host = input.hostname;
    let mut out = format!("Authentication-Results: {host}");
    let mut received_spf = String::new();
    if let Some(v) = spf.mail_from {
        let result = v.result.as_str();
        let (property, identity) = if input.mail_from.is_empty() {
            (format!("smtp.helo={}", value(input.helo)), "helo")
        } else {
            (
                format!("smtp.mailfrom={}", value(input.mail_from)),
                "mailfrom",
            )
        };
        out.push_str(&format!(
            ";\r\n\tspf={result} ({reason}) {property}",
            reason = clean(&v.reason)
        ));
        received_spf = format!(
            "Received-SPF: {result} ({host}: {reason}) client-ip={ip};\r\n\
             \tenvelope-from={from}; helo={helo}; receiver={host}; identity={identity}\r\n",
            reason = clean(&v.reason),
            ip = input.peer,
            from = quoted(input.mail_from),
            helo = quoted(input.helo),
        );
    }
    if let Some(v) = spf.helo {
        out.push_str(&format!(
            ";\r\n\tspf={} ({}) smtp.helo={}",
            v.result.as_str(),
            clean(&v.reason),
            value(input.helo)
        ));
    }
    match dkim {
        Some([]) => out.push_str(";\r\n\tdkim=none (no signature)"),
        Some(verdicts) => {
            for v in verdicts {
                let comment = if v.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", clean(&v.detail))
                };
                out.push_str(&format!(
                    ";\r\n\tdkim={}{comment} header.d={} header.s={} header.a={}",
                    v.result,
                    value(&v.domain),
                    value(&v.selector),
                    v.algorithm
                ));
            }
        }
        None => {}
    }
    if let Some(a) = arc {
        let sealers = if a.sealers.is_empty() {
            String::new()
        } else {
            format!(" (sealed by {})", clean(&a.sealers.join(", ")))
        };
        out.push_str(&format!(";\r\n\tarc={}{sealers}", a.result));
    }
    if let Some(v) = dmarc {
        let policy = v
            .policy
            .map(|p| format!(" policy.dmarc={}", p.as_str()))
            .unwrap_or_default();
        let from = facts
            .from
            .first()
            .and_then(|a| a.rsplit_once('@'))
            .map_or("", |(_, d)| d);
        let excuse = match (v.result, excused_by) {
            (DmarcResult::Fail, Some(s)) => {
                format!("; policy not applied: ARC chain sealed by trusted {s}, RFC 8617")
            }
            _ => String::new(),
        };
        out.push_str(&format!(
            ";\r\n\tdmarc={} ({}{}) header.from={}{policy}",
            v.result.as_str(),
            clean(&v.reason),
            clean(&excuse),
            value(from)
        ));
    }
    out.push_str("\r\n");
    out.push_str(&received_spf);
    out
}

/// Text for a header comment or a reply: no parentheses, backslashes or
/// control characters, at most 200 characters.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '(' => '[',
            ')' => ']',
            '\\' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .take(200)
        .collect()
}

/// A dot-atom as it is, anything else as a quoted-string (RFC 5322 §3.2).
fn value(s: &str) -> String {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c);
    if !s.is_empty() && s.chars().all(atext) {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Removes the `Authentication-Results:` fields whose authserv-id is
/// `hostname` from the header block (RFC 8601 §5: a forged verdict of
/// ours must not reach the reader). Other servers' results stay.
pub fn remove_our_authentication_results(content: &mut Vec<u8>, hostname: &str) {
    let ours: Vec<_> = header_fields(content)
        .into_iter()
        .filter(|r| claims(&content[r.clone()], hostname))
        .collect();
    for r in ours.into_iter().rev() {
        content.drain(r);
    }
}

/// Whether a header field is `Authentication-Results:` with `hostname` as
/// its authserv-id (after optional comments and white space).
fn claims(field: &[u8], hostname: &str) -> bool {
    const NAME: &[u8] = b"authentication-results:";
    if field.len() < NAME.len() || !field[..NAME.len()].eq_ignore_ascii_case(NAME) {
        return false;
    }
    let value = String::from_utf8_lossy(&field[NAME.len()..]);
    let mut rest = value.trim_start();
    while let Some(after) = rest.strip_prefix('(') {
        rest = after.split_once(')').map_or("", |(_, r)| r).trim_start();
    }
    let id_end = rest
        .find(|c: char| c == ';' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..id_end].eq_ignore_ascii_case(hostname)
}

/// What the `Received:` header says about the session and the message.
#[derive(Debug, Clone, Copy)]
pub struct TraceInput<'a> {
    pub mode: Mode,
    /// The HELO/EHLO/LHLO argument.
    pub helo: Option<&'a str>,
    /// The client greeted with EHLO (or LHLO).
    pub esmtp: bool,
    pub smtputf8: bool,
    pub authenticated: bool,
    /// TLS protocol version and cipher suite, as rustls prints them.
    pub tls: Option<(&'a str, &'a str)>,
    pub peer: IpAddr,
    pub hostname: &'a str,
    /// The recipient, when the message has exactly one.
    pub recipient: Option<&'a str>,
}

/// The `with` protocol type: RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA,
/// LMTP, LMTPS, …) and RFC 6531 §3.7.3 (UTF8SMTP, UTF8LMTP, …).
pub fn protocol_type(t: &TraceInput<'_>) -> String {
    let base = match (t.mode, t.esmtp, t.smtputf8) {
        (Mode::Lmtp, _, false) => "LMTP",
        (Mode::Lmtp, _, true) => "UTF8LMTP",
        (_, false, _) => "SMTP",
        (_, true, false) => "ESMTP",
        (_, true, true) => "UTF8SMTP",
    };
    let suffix = match (t.tls.is_some(), t.authenticated) {
        (true, true) => "SA",
        (true, false) => "S",
        (false, true) => "A",
        (false, false) => "",
    };
    // RFC 3848 registers the S/A suffixes for ESMTP and LMTP only.
    let suffix = if base == "SMTP" { "" } else { suffix };
    format!("{base}{suffix}")
}

/// The RFC 5321 §4.4 trace header for a message with the id `id`,
/// received at `now` (Unix time).
pub fn received_header(t: &TraceInput<'_>, id: &str, now: u64) -> String {
    let helo = t
        .helo
        .unwrap_or("unknown")
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let tls = match t.tls {
        Some((v, c)) => format!(
            "\r\n\t(using {} with cipher {})",
            tls_version(v),
            cipher_name(c)
        ),
        None => String::new(),
    };
    let single = match t.recipient {
        Some(r) => format!("\r\n\tfor <{r}>"),
        None => String::new(),
    };
    format!(
        "Received: from {helo} ([{}])\r\n\tby {} (postamt) with {} id {id}{tls}{single};\r\n\t{}\r\n",
        t.peer,
        t.hostname,
        protocol_type(t),
        rfc5322_date(now)
    )
}

fn tls_version(v: &str) -> String {
    // rustls prints TLSv1_3; mail headers write TLSv1.3.
    v.replace('_', ".")
}

/// The IANA name of a cipher suite (rustls prints TLS 1.3 suites as
/// `TLS13_AES_256_GCM_SHA384`; the registry and Postfix say
/// `TLS_AES_256_GCM_SHA384`).
fn cipher_name(c: &str) -> String {
    match c.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mode: Mode) -> CheckInput<'static> {
        CheckInput {
            mode,
            spoof_policy: SpoofPolicy::Reject,
            max_received: 3,
            user: None,
            warning: None,
            hostname: "mx.test",
            id: "ID1",
            now: 1_796_461_377,
            spf: SpfPolicy::Off,
            dkim: false,
            dmarc: DmarcPolicy::Off,
            trusted_arc_sealers: &[],
            peer: "192.0.2.7".parse().unwrap(),
            helo: "client.test",
            mail_from: "carol@remote.test",
        }
    }

    fn facts(header: &str) -> HeaderFacts {
        HeaderFacts::read(format!("{header}\r\n\r\nbody\r\n").as_bytes())
    }

    fn domains() -> Answers {
        Answers {
            local_domains: Some(vec!["example.test".into()]),
            owned: vec![],
            spf: None,
            spf_helo: None,
            dkim: None,
            dmarc: None,
            arc: None,
        }
    }

    #[test]
    fn header_facts_are_read_from_the_header_only() {
        let f = facts(
            "Received: from a\r\nReceived: from b\r\nFrom: A <a@x.test>, b@y.test\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000",
        );
        assert_eq!(f.received, 2);
        assert_eq!(f.from, ["a@x.test", "b@y.test"]);
        assert!(f.has_date && !f.has_message_id);
        let f =
            HeaderFacts::read(b"Subject: x\r\n\r\nReceived: from body\r\nMessage-ID: <b@x>\r\n");
        assert_eq!(f.received, 0, "a body line is not a header");
        assert!(!f.has_message_id);
        assert_eq!(HeaderFacts::read(b""), HeaderFacts::default());
    }

    /// RFC 5322 §3.6: exactly one From: field, with an address. Two fields
    /// (a verifier reads one, the reader sees the other) or one without a
    /// mailbox are refused on port 25 and on submission; a message
    /// without From: is not this rule's business.
    #[test]
    fn rfc5322_3_6_one_from_field_with_an_address() {
        let refused = |header: &str, mode: Mode| {
            let r = check_message(&facts(header), &input(mode), &domains());
            matches!(r, Check::Refuse(ref reply) if reply.code == 550 && reply.enhanced == Some("5.7.1"))
        };
        for mode in [Mode::Inbound, Mode::Submission] {
            assert!(refused("From: a@x.test\r\nFrom: ceo@bank.test", mode));
            assert!(refused(
                "From: a@x.test\r\nSubject: s\r\nfrom: b@y.test",
                mode
            ));
            assert!(refused("From: undisclosed-recipients:;", mode));
            assert!(refused("From: Just A Name", mode));
            assert!(refused("From:", mode));
        }
        assert!(!refused("From: Joe <a@x.test>, b@y.test", Mode::Inbound));
        assert!(!refused("Subject: no From at all", Mode::Inbound));
        assert!(!refused(
            "From: a@x.test\r\nFrom: ceo@bank.test",
            Mode::Lmtp
        ));
        let f = facts("From: a@x.test\r\nFrom: ceo@bank.test");
        assert_eq!(f.from_fields, 2);
    }

    /// RFC 5321 §6.3: more Received headers than allowed is a loop; checked
    /// first, before anything is looked up.
    #[test]
    fn rfc5321_6_3_too_many_received_headers_is_a_loop() {
        let f = facts(
            "Received: a\r\nReceived: b\r\nReceived: c\r\nReceived: d\r\nFrom: a@example.test",
        );
        let r = check_message(&f, &input(Mode::Inbound), &Answers::default());
        assert_eq!(r, Check::Refuse(Reply::new(R::Loop)));
        let f = facts("Received: a\r\nReceived: b\r\nReceived: c");
        assert_eq!(
            check_message(&f, &input(Mode::Inbound), &domains()),
            Check::Accept(String::new())
        );
    }

    #[test]
    fn spoofed_from_on_port_25_needs_the_local_domains_then_is_refused() {
        let f = facts("From: Alice <alice@EXAMPLE.test>");
        let i = input(Mode::Inbound);
        assert_eq!(
            check_message(&f, &i, &Answers::default()),
            Check::Need(Lookup::LocalDomains)
        );
        let Check::Refuse(r) = check_message(&f, &i, &domains()) else {
            panic!()
        };
        assert_eq!((r.code, r.enhanced), (550, Some("5.7.1")));
        assert_eq!(
            r.lines[0],
            "From: <alice@EXAMPLE.test> is in a local domain, but the client did not authenticate"
        );
        let honest = facts("From: eve@remote.test");
        assert_eq!(
            check_message(&honest, &i, &domains()),
            Check::Accept(String::new())
        );
    }

    #[test]
    fn spoof_policy_mark_warns_and_off_does_not_look() {
        let f = facts("From: alice@example.test");
        let mark = CheckInput {
            spoof_policy: SpoofPolicy::Mark,
            ..input(Mode::Inbound)
        };
        assert_eq!(
            check_message(&f, &mark, &domains()),
            Check::Accept(
                "X-Postamt-Warning: possibly forged: From: <alice@example.test> claims a local domain, but the client did not authenticate\r\n".into()
            )
        );
        // What MAIL FROM saw comes first.
        let envelope = CheckInput {
            warning: Some("envelope sender <x@example.test> claims a local domain"),
            ..mark
        };
        assert_eq!(
            check_message(&f, &envelope, &domains()),
            Check::Accept(
                "X-Postamt-Warning: possibly forged: envelope sender <x@example.test> claims a local domain\r\n".into()
            )
        );
        let off = CheckInput {
            spoof_policy: SpoofPolicy::Off,
            ..input(Mode::Inbound)
        };
        assert_eq!(
            check_message(&f, &off, &Answers::default()),
            Check::Accept(String::new())
        );
        // LMTP: the MTA in front decided.
        assert_eq!(
            check_message(&f, &input(Mode::Lmtp), &Answers::default()),
            Check::Accept(String::new())
        );
    }

    /// RFC 6409 §8: the From: addresses must be the user's: their own
    /// address needs no lookup, any other is resolved, one at a time.
    #[test]
    fn rfc6409_8_from_must_be_owned_on_submission() {
        let f = facts("From: Alice <ALICE@example.test>, sales@example.test, bob@example.test");
        let mut i = input(Mode::Submission);
        i.user = Some("alice@example.test");
        let mut a = Answers::default();
        assert_eq!(
            check_message(&f, &i, &a),
            Check::Need(Lookup::Resolve("sales@example.test".into()))
        );
        a.owned.push(("sales@example.test".into(), true));
        assert_eq!(
            check_message(&f, &i, &a),
            Check::Need(Lookup::Resolve("bob@example.test".into()))
        );
        a.owned.push(("bob@example.test".into(), false));
        let Check::Refuse(r) = check_message(&f, &i, &a) else {
            panic!()
        };
        assert_eq!((r.code, r.enhanced), (553, Some("5.7.1")));
        assert_eq!(
            r.lines[0],
            "From: <bob@example.test> is not an address of yours"
        );
    }

    /// RFC 6409 §8.3 and §8.1: an MSA adds Message-ID and Date when missing.
    #[test]
    fn rfc6409_8_submission_adds_message_id_and_date() {
        let mut i = input(Mode::Submission);
        i.user = Some("alice@example.test");
        let f = facts("From: alice@example.test\r\nSubject: x");
        assert_eq!(
            check_message(&f, &i, &Answers::default()),
            Check::Accept(
                "Message-ID: <ID1@mx.test>\r\nDate: Sat, 05 Dec 2026 09:02:57 +0000\r\n".into()
            )
        );
        let f = facts("Message-ID: <m@x>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000");
        assert_eq!(
            check_message(&f, &i, &Answers::default()),
            Check::Accept(String::new())
        );
    }

    fn trace() -> TraceInput<'static> {
        TraceInput {
            mode: Mode::Inbound,
            helo: Some("client.test"),
            esmtp: true,
            smtputf8: false,
            authenticated: false,
            tls: None,
            peer: "192.0.2.7".parse().unwrap(),
            hostname: "mx.test",
            recipient: None,
        }
    }

    /// RFC 3848 §2 and RFC 6531 §3.7.3: the protocol types.
    #[test]
    fn rfc3848_protocol_types() {
        let tls = Some(("TLSv1_3", "TLS13_AES_256_GCM_SHA384"));
        let cases = [
            (Mode::Inbound, false, false, None, false, "SMTP"),
            (Mode::Inbound, false, false, tls, true, "SMTP"),
            (Mode::Inbound, true, false, None, false, "ESMTP"),
            (Mode::Inbound, true, false, tls, false, "ESMTPS"),
            (Mode::Submission, true, false, None, true, "ESMTPA"),
            (Mode::Submission, true, false, tls, true, "ESMTPSA"),
            (Mode::Inbound, true, true, None, false, "UTF8SMTP"),
            (Mode::Submission, true, true, tls, true, "UTF8SMTPSA"),
            (Mode::Lmtp, true, false, None, false, "LMTP"),
            (Mode::Lmtp, false, true, tls, false, "UTF8LMTPS"),
        ];
        for (mode, esmtp, smtputf8, tls, authenticated, want) in cases {
            let t = TraceInput {
                mode,
                esmtp,
                smtputf8,
                tls,
                authenticated,
                ..trace()
            };
            assert_eq!(
                protocol_type(&t),
                want,
                "{mode:?} {esmtp} {smtputf8} {tls:?}"
            );
        }
    }

    /// RFC 5321 §4.4: `from` the client's greeting and address, `by` us,
    /// `with` the protocol, the id, `for` a single recipient, the date.
    #[test]
    fn rfc5321_4_4_received_header() {
        assert_eq!(
            received_header(&trace(), "ID1", 1_796_461_377),
            "Received: from client.test ([192.0.2.7])\r\n\tby mx.test (postamt) with ESMTP id ID1;\r\n\tSat, 05 Dec 2026 09:02:57 +0000\r\n"
        );
        let t = TraceInput {
            helo: Some("evil\u{7}.test"),
            tls: Some(("TLSv1_3", "TLS13_AES_256_GCM_SHA384")),
            recipient: Some("alice@example.test"),
            peer: "2001:db8::1".parse().unwrap(),
            ..trace()
        };
        assert_eq!(
            received_header(&t, "ID2", 0),
            "Received: from evil.test ([2001:db8::1])\r\n\tby mx.test (postamt) with ESMTPS id ID2\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n\tfor <alice@example.test>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
        let t = TraceInput {
            helo: None,
            tls: Some(("TLSv1_2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")),
            ..trace()
        };
        assert!(
            received_header(&t, "x", 0).starts_with(
                "Received: from unknown ([192.0.2.7])\r\n\tby mx.test (postamt) with ESMTPS id x\r\n\t(using TLSv1.2 with cipher TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);"
            )
        );
    }
}
