//! DMARC aggregate reports (RFC 9990, which obsoletes RFC 7489 §7.2):
//! what the receiver saw of a domain's mail in one reporting period,
//! counted by source IP and result, as the XML the domain owner's report
//! consumer reads, in the mail that carries it.
//!
//! Without I/O: the SMTP server records one [`Observation`] per message
//! whose DMARC record asks for reports (`rua=`); a [`Collector`] counts
//! them in memory; the counts go to the store ([`Counted`], opaque JSON to
//! it) and, once their period is over, become one report per policy
//! domain ([`aggregate_xml`], [`report_message`]). The destinations are
//! checked first ([`authorized_destinations`], RFC 9990 §4: "Verifying
//! External Destinations").

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::dmarc::{self, Record};
use crate::dns::{Dns, DnsError};

/// The XML namespace of RFC 9990 reports.
pub const NAMESPACE: &str = "urn:ietf:params:xml:ns:dmarc-2.0";

/// The policy record as the receiver saw it (RFC 9990 §2.1.3
/// `policy_published`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Published {
    /// The policy domain: where the record was found.
    pub domain: String,
    pub p: String,
    pub sp: String,
    pub np: String,
    /// `r` or `s`.
    pub adkim: String,
    pub aspf: String,
    /// `y` or `n`.
    pub testing: String,
    /// `treewalk` (RFC 9989) or `psl` (RFC 7489).
    #[serde(default = "treewalk")]
    pub discovery_method: String,
    /// The `rua=` addresses (mailto: only), in the record's order.
    pub rua: Vec<String>,
    /// Size limits of some of them, in octets (RFC 7489 §6.2 `!10m`).
    #[serde(default)]
    pub rua_limits: Vec<(String, u64)>,
}

fn treewalk() -> String {
    "treewalk".into()
}

impl Published {
    pub fn new(domain: &str, r: &Record, discovery_method: &str) -> Published {
        let rs = |strict| if strict { "s" } else { "r" };
        Published {
            domain: domain.to_ascii_lowercase(),
            p: r.p.as_str().into(),
            sp: r.sp.as_str().into(),
            np: r.np.as_str().into(),
            adkim: rs(r.strict_dkim).into(),
            aspf: rs(r.strict_spf).into(),
            testing: if r.testing { "y" } else { "n" }.into(),
            discovery_method: discovery_method.into(),
            rua: r.rua.clone(),
            rua_limits: r.rua_limits.clone(),
        }
    }
}

/// The policy override types of RFC 9990 §2.1.13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Override {
    LocalPolicy,
    MailingList,
    Other,
    PolicyTestMode,
    TrustedForwarder,
}

impl Override {
    pub fn as_str(self) -> &'static str {
        match self {
            Override::LocalPolicy => "local_policy",
            Override::MailingList => "mailing_list",
            Override::Other => "other",
            Override::PolicyTestMode => "policy_test_mode",
            Override::TrustedForwarder => "trusted_forwarder",
        }
    }
}

/// One DKIM signature's result (RFC 9990 `auth_results/dkim`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DkimResult {
    pub domain: String,
    pub selector: String,
    /// An RFC 8601 §2.7.1 result: pass, fail, policy, neutral, …
    pub result: String,
}

/// What was learnt about one message: the report's `row`, `identifiers`
/// and `auth_results`. Messages with equal rows are counted together.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Row {
    pub source_ip: String,
    pub header_from: String,
    /// The MAIL FROM domain; empty for the null reverse-path.
    pub envelope_from: String,
    /// `none`, `quarantine` or `reject`: what this receiver did.
    pub disposition: String,
    /// DMARC's DKIM and SPF alignment results: `pass` or `fail`.
    pub dkim: String,
    pub spf: String,
    /// Why the disposition is milder than the policy asked.
    pub reasons: Vec<(Override, String)>,
    /// Every verified signature (at most 100, RFC 9990 §2.1.5).
    pub dkim_results: Vec<DkimResult>,
    /// The SPF check of the MAIL FROM identity: (domain, result).
    pub spf_result: Option<(String, String)>,
}

/// One message for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub published: Published,
    pub row: Row,
}

/// Counts of equal rows of one period and policy domain, as the store
/// keeps them: the published policy and the row as JSON (opaque to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub begin: i64,
    pub end: i64,
    pub domain: String,
    pub published: String,
    pub row: String,
    pub count: u64,
}

/// The reporting period that holds `now`: periods are `interval` seconds
/// long and start at multiples of it since the epoch (86,400 s: UTC days,
/// RFC 9990 §2.1: "hour boundaries").
pub fn period(now: i64, interval: i64) -> (i64, i64) {
    let interval = interval.max(1);
    let begin = now - now.rem_euclid(interval);
    (begin, begin + interval)
}

/// (period begin, policy domain) → the latest published policy, and the
/// count of each row.
type Counts = HashMap<(i64, String), (Published, HashMap<Row, u64>)>;

/// Counts observations in memory until they are taken for the store.
/// Most messages of a day repeat a few rows, so the store is written per
/// flush, not per message; a crash loses at most the counts since the
/// last flush (statistics, not mail).
#[derive(Debug)]
pub struct Collector {
    interval: i64,
    /// (begin, policy domain) → latest published policy, rows and counts.
    counts: Mutex<Counts>,
}

/// More distinct rows than this per period and domain are folded into
/// the last one kept (a flood of unique rows must not grow memory).
pub const MAX_ROWS: usize = 10_000;

impl Collector {
    pub fn new(interval_seconds: u64) -> Collector {
        Collector {
            interval: interval_seconds.clamp(1, i64::MAX as u64) as i64,
            counts: Mutex::new(HashMap::new()),
        }
    }

    pub fn interval(&self) -> i64 {
        self.interval
    }

    /// Counts one message seen at `now`.
    pub fn add(&self, now: i64, o: Observation) {
        let (begin, _) = period(now, self.interval);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counts
            .entry((begin, o.published.domain.clone()))
            .or_insert_with(|| (o.published.clone(), HashMap::new()));
        // RFC 9990 §2.1: "SHOULD note only the final configuration".
        entry.0 = o.published;
        let rows = &mut entry.1;
        if rows.len() >= MAX_ROWS && !rows.contains_key(&o.row) {
            if let Some(n) = rows.values_mut().next() {
                *n += 1;
            }
            return;
        }
        *rows.entry(o.row).or_insert(0) += 1;
    }

    /// Everything counted so far, emptied.
    pub fn take(&self) -> Vec<Counted> {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        let mut out = Vec::new();
        for ((begin, domain), (published, rows)) in taken {
            let published = serde_json::to_string(&published).unwrap_or_default();
            for (row, count) in rows {
                out.push(Counted {
                    begin,
                    end: begin + self.interval,
                    domain: domain.clone(),
                    published: published.clone(),
                    row: serde_json::to_string(&row).unwrap_or_default(),
                    count,
                });
            }
        }
        out
    }
}

/// One report: a policy domain's rows of one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub begin: i64,
    pub end: i64,
    pub published: Published,
    pub rows: Vec<(Row, u64)>,
}

/// Groups stored counts into reports, one per (period, policy domain);
/// counts whose JSON does not parse are left out.
pub fn reports(counts: &[Counted]) -> Vec<Report> {
    let mut by: HashMap<(i64, &str), Report> = HashMap::new();
    for c in counts {
        let (Ok(published), Ok(row)) = (
            serde_json::from_str::<Published>(&c.published),
            serde_json::from_str::<Row>(&c.row),
        ) else {
            continue;
        };
        let r = by.entry((c.begin, &c.domain)).or_insert_with(|| Report {
            begin: c.begin,
            end: c.end,
            published,
            rows: Vec::new(),
        });
        match r.rows.iter_mut().find(|(have, _)| *have == row) {
            Some((_, n)) => *n += c.count,
            None => r.rows.push((row, c.count)),
        }
    }
    let mut out: Vec<Report> = by.into_values().collect();
    out.sort_by(|a, b| (a.begin, &a.published.domain).cmp(&(b.begin, &b.published.domain)));
    for r in &mut out {
        r.rows.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.source_ip.cmp(&b.0.source_ip))
        });
    }
    out
}

/// Who reports (RFC 9990 §2.1.2 `report_metadata`).
#[derive(Debug, Clone)]
pub struct Reporter {
    /// `org_name`, and the `receiver` of the file name and the
    /// `Submitter:` of the subject: the receiving domain.
    pub org_name: String,
    /// `email`, and the report mail's From:.
    pub email: String,
}

/// The report's unique id (RFC 9990 §3.1): the same for a re-sent report.
pub fn report_id(r: &Report, submitter: &str) -> String {
    format!("{}.{}.{}@{}", r.published.domain, r.begin, r.end, submitter)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 §2.2: no control characters but tab, CR, LF.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The aggregate report as XML (RFC 9990 §2.1, elements in the order the
/// schema requires).
pub fn aggregate_xml(reporter: &Reporter, r: &Report) -> String {
    let mut x = String::new();
    let el = |x: &mut String, indent: usize, name: &str, value: &str| {
        x.push_str(&format!(
            "{:indent$}<{name}>{}</{name}>\n",
            "",
            escape(value),
            indent = indent
        ));
    };
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!("<feedback xmlns=\"{NAMESPACE}\">\n"));
    el(&mut x, 2, "version", "1.0");
    x.push_str("  <report_metadata>\n");
    el(&mut x, 4, "org_name", &reporter.org_name);
    el(&mut x, 4, "email", &reporter.email);
    el(&mut x, 4, "report_id", &report_id(r, &reporter.org_name));
    x.push_str("    <date_range>\n");
    el(&mut x, 6, "begin", &r.begin.to_string());
    el(&mut x, 6, "end", &r.end.to_string());
    x.push_str("    </date_range>\n");
    el(
        &mut x,
        4,
        "generator",
        concat!("postamt ", env!("CARGO_PKG_VERSION")),
    );
    x.push_str("  </report_metadata>\n");
    let p = &r.published;
    x.push_str("  <policy_published>\n");
    el(&mut x, 4, "domain", &p.domain);
    el(&mut x, 4, "discovery_method", &p.discovery_method);
    el(&mut x, 4, "p", &p.p);
    el(&mut x, 4, "sp", &p.sp);
    el(&mut x, 4, "np", &p.np);
    el(&mut x, 4, "adkim", &p.adkim);
    el(&mut x, 4, "aspf", &p.aspf);
    el(&mut x, 4, "testing", &p.testing);
    x.push_str("  </policy_published>\n");
    for (row, count) in &r.rows {
        x.push_str("  <record>\n    <row>\n");
        el(&mut x, 6, "source_ip", &row.source_ip);
        el(&mut x, 6, "count", &count.to_string());
        x.push_str("      <policy_evaluated>\n");
        el(&mut x, 8, "disposition", &row.disposition);
        el(&mut x, 8, "dkim", &row.dkim);
        el(&mut x, 8, "spf", &row.spf);
        for (kind, comment) in &row.reasons {
            x.push_str("        <reason>\n");
            el(&mut x, 10, "type", kind.as_str());
            if !comment.is_empty() {
                el(&mut x, 10, "comment", comment);
            }
            x.push_str("        </reason>\n");
        }
        x.push_str("      </policy_evaluated>\n    </row>\n    <identifiers>\n");
        el(&mut x, 6, "header_from", &row.header_from);
        el(&mut x, 6, "envelope_from", &row.envelope_from);
        x.push_str("    </identifiers>\n    <auth_results>\n");
        for d in &row.dkim_results {
            x.push_str("      <dkim>\n");
            el(&mut x, 8, "domain", &d.domain);
            el(&mut x, 8, "selector", &d.selector);
            el(&mut x, 8, "result", &d.result);
            x.push_str("      </dkim>\n");
        }
        if let Some((domain, result)) = &row.spf_result {
            x.push_str("      <spf>\n");
            el(&mut x, 8, "domain", domain);
            el(&mut x, 8, "scope", "mfrom");
            el(&mut x, 8, "result", result);
            x.push_str("      </spf>\n");
        }
        x.push_str("    </auth_results>\n  </record>\n");
    }
    x.push_str("</feedback>\n");
    x
}

/// The report's attachment file name (RFC 9990 §3.2):
/// `receiver!policy-domain!begin!end.xml.gz`.
pub fn file_name(reporter: &Reporter, r: &Report) -> String {
    format!(
        "{}!{}!{}!{}.xml.gz",
        reporter.org_name, r.published.domain, r.begin, r.end
    )
}

/// GZIP (RFC 1952) of the XML, as RFC 9990 §3.2 recommends.
pub fn gzip(xml: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(xml.as_bytes());
    e.finish().unwrap_or_default()
}

/// The mail that carries a report (RFC 9990 §3.2): a short text for a
/// person, and the gzipped XML as `application/gzip` with the file name
/// the standard prescribes; Subject `Report Domain: … Submitter: …
/// Report-ID: <…>`, and the Report-ID as Message-ID.
pub fn report_message(reporter: &Reporter, r: &Report, to: &[String], date: &str) -> Vec<u8> {
    use base64::Engine;
    let id = report_id(r, &reporter.org_name);
    let boundary = format!("postamt-dmarc-{}-{}", r.begin, r.end);
    let gz = gzip(&aggregate_xml(reporter, r));
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz);
    let total: u64 = r.rows.iter().map(|(_, n)| n).sum();
    let mut m = String::new();
    m.push_str(&format!("From: {}\r\n", reporter.email));
    m.push_str(&format!("To: {}\r\n", to.join(", ")));
    m.push_str(&format!(
        "Subject: Report Domain: {} Submitter: {} Report-ID: <{id}>\r\n",
        r.published.domain, reporter.org_name
    ));
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: <{id}>\r\n"));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    m.push_str(&format!(
        "This is a DMARC aggregate report (RFC 9990) from {} for {}:\r\n\
         {total} message(s) from {} source(s), {} to {} (seconds since 1970, UTC).\r\n\r\n",
        reporter.org_name,
        r.published.domain,
        r.rows
            .iter()
            .map(|(row, _)| &row.source_ip)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        r.begin,
        r.end
    ));
    let name = file_name(reporter, r);
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(&format!(
        "Content-Type: application/gzip; name=\"{name}\"\r\n"
    ));
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
    ));
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

/// The domain of an address.
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// The `rua=` addresses that may receive `policy_domain`'s reports (RFC
/// 9990 §4): one in the policy domain's organizational domain is taken
/// as it is; one elsewhere only when its domain publishes
/// `<policy_domain>._report._dmarc.<its domain>` TXT starting `v=DMARC1`.
/// Such a record may name other addresses of the same host instead
/// (step 9); one naming another host cancels the destination. Each
/// refused address comes back with the reason.
pub async fn authorized_destinations<D: Dns>(
    dns: &D,
    policy_domain: &str,
    rua: &[String],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    let policy_org = match dmarc::organizational_domain(dns, policy_domain).await {
        Ok(o) => o,
        Err(_) => {
            let why = "DNS failed finding the policy domain's organizational domain";
            return (
                ok,
                rua.iter().map(|a| (a.clone(), why.to_string())).collect(),
            );
        }
    };
    for address in rua {
        let host = domain_of(address)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host.is_empty() {
            refused.push((address.clone(), "no domain".into()));
            continue;
        }
        match dmarc::organizational_domain(dns, &host).await {
            Ok(org) if org == policy_org => {
                ok.push(address.clone());
                continue;
            }
            Ok(_) => {}
            Err(_) => {
                refused.push((address.clone(), "DNS failed".into()));
                continue;
            }
        }
        let name = format!("{policy_domain}._report._dmarc.{host}");
        // RFC 1035 §2.3.4: 253 characters at most.
        if name.len() > 253 {
            refused.push((address.clone(), format!("{name} is too long for DNS")));
            continue;
        }
        let txts = match dns.txt(&name).await {
            Ok(t) => t,
            Err(DnsError::NxDomain) => Vec::new(),
            Err(DnsError::Temporary) => {
                refused.push((address.clone(), format!("DNS failed for {name}")));
                continue;
            }
        };
        let confirming: Vec<&String> = txts
            .iter()
            .filter(|t| {
                t.split(';').next().is_some_and(|v| {
                    v.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("v") && v.trim() == "DMARC1"
                    })
                })
            })
            .collect();
        let Some(record) = confirming.first() else {
            refused.push((
                address.clone(),
                format!("{host} does not accept reports for {policy_domain} ({name} has no v=DMARC1 record)"),
            ));
            continue;
        };
        // Step 9: the consumer may name other addresses, on its own host.
        let overrides = override_rua(record);
        if overrides.is_empty() {
            ok.push(address.clone());
        } else if overrides
            .iter()
            .all(|a| domain_of(a).eq_ignore_ascii_case(&host))
        {
            ok.extend(overrides);
        } else {
            refused.push((
                address.clone(),
                format!("{name} redirects reports to another host"),
            ));
        }
    }
    ok.dedup();
    (ok, refused)
}

/// The `rua=` mailto addresses of a confirming record.
fn override_rua(record: &str) -> Vec<String> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("rua"))
        .flat_map(|(_, v)| dmarc::mailto_uris(v))
        .map(|(a, _)| a)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Record as Rr, Zone};

    fn published(domain: &str, rua: &[&str]) -> Published {
        let r = dmarc::parse(&format!(
            "v=DMARC1; p=reject; adkim=s; rua={}",
            rua.iter()
                .map(|a| format!("mailto:{a}"))
                .collect::<Vec<_>>()
                .join(",")
        ))
        .unwrap();
        Published::new(domain, &r, "treewalk")
    }

    fn row(ip: &str, disposition: &str) -> Row {
        Row {
            source_ip: ip.into(),
            header_from: "bank.example".into(),
            envelope_from: "bank.example".into(),
            disposition: disposition.into(),
            dkim: "fail".into(),
            spf: "fail".into(),
            reasons: vec![],
            dkim_results: vec![DkimResult {
                domain: "bank.example".into(),
                selector: "s1".into(),
                result: "fail".into(),
            }],
            spf_result: Some(("bank.example".into(), "fail".into())),
        }
    }

    #[test]
    fn rfc9990_periods_start_on_interval_boundaries() {
        assert_eq!(period(86_400 * 3 + 5, 86_400), (86_400 * 3, 86_400 * 4));
        assert_eq!(period(7, 1), (7, 8));
        assert_eq!(period(7, 0), (7, 8));
    }

    #[test]
    fn collector_counts_equal_rows_once_per_period_and_domain() {
        let c = Collector::new(100);
        let p = published("bank.example", &["dmarc@bank.example"]);
        for (now, ip) in [
            (5, "192.0.2.1"),
            (6, "192.0.2.1"),
            (7, "192.0.2.2"),
            (105, "192.0.2.1"),
        ] {
            c.add(
                now,
                Observation {
                    published: p.clone(),
                    row: row(ip, "reject"),
                },
            );
        }
        let counts = c.take();
        assert!(c.take().is_empty(), "take empties");
        let rs = reports(&counts);
        assert_eq!(rs.len(), 2);
        assert_eq!((rs[0].begin, rs[0].end), (0, 100));
        assert_eq!(rs[0].rows.len(), 2);
        assert_eq!(rs[0].rows[0].1, 2, "most frequent first");
        assert_eq!(rs[0].rows[0].0.source_ip, "192.0.2.1");
        assert_eq!((rs[1].begin, rs[1].rows[0].1), (100, 1));
    }

    #[test]
    fn counts_from_several_flushes_add_up() {
        let c = Collector::new(100);
        let o = Observation {
            published: published("bank.example", &[]),
            row: row("192.0.2.1", "none"),
        };
        c.add(1, o.clone());
        let mut all = c.take();
        c.add(2, o.clone());
        c.add(3, o);
        all.extend(c.take());
        let rs = reports(&all);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].rows, vec![(row("192.0.2.1", "none"), 3)]);
    }

    #[test]
    fn a_flood_of_distinct_rows_is_bounded() {
        let c = Collector::new(86_400);
        let p = published("bank.example", &[]);
        for i in 0..(MAX_ROWS + 50) {
            c.add(
                1,
                Observation {
                    published: p.clone(),
                    row: row(
                        &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                        "none",
                    ),
                },
            );
        }
        let counts = c.take();
        assert_eq!(counts.len(), MAX_ROWS);
        assert_eq!(
            counts.iter().map(|c| c.count).sum::<u64>(),
            (MAX_ROWS + 50) as u64,
            "nothing is lost from the totals"
        );
    }

    fn reporter() -> Reporter {
        Reporter {
            org_name: "mx.receiver.example".into(),
            email: "noreply-dmarc@mx.receiver.example".into(),
        }
    }

    #[test]
    fn rfc9990_2_1_xml_has_the_elements_in_schema_order() {
        let mut rw = row("192.0.2.1", "none");
        rw.reasons = vec![(
            Override::TrustedForwarder,
            "ARC sealed by <lists.example>".into(),
        )];
        let r = Report {
            begin: 0,
            end: 86_400,
            published: published("bank.example", &["d@bank.example"]),
            rows: vec![(rw, 3)],
        };
        let x = aggregate_xml(&reporter(), &r);
        let order = [
            "<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">",
            "<version>1.0</version>",
            "<org_name>mx.receiver.example</org_name>",
            "<email>noreply-dmarc@mx.receiver.example</email>",
            "<report_id>bank.example.0.86400@mx.receiver.example</report_id>",
            "<begin>0</begin>",
            "<end>86400</end>",
            "<policy_published>",
            "<domain>bank.example</domain>",
            "<p>reject</p>",
            "<adkim>s</adkim>",
            "<aspf>r</aspf>",
            "<testing>n</testing>",
            "<source_ip>192.0.2.1</source_ip>",
            "<count>3</count>",
            "<disposition>none</disposition>",
            "<type>trusted_forwarder</type>",
            "<comment>ARC sealed by &lt;lists.example&gt;</comment>",
            "<header_from>bank.example</header_from>",
            "<selector>s1</selector>",
            "<scope>mfrom</scope>",
            "</feedback>",
        ];
        let mut at = 0;
        for o in order {
            let found = x[at..]
                .find(o)
                .unwrap_or_else(|| panic!("{o} after {at} in\n{x}"));
            at += found + o.len();
        }
    }

    #[test]
    fn rfc9990_3_2_report_mail_subject_file_name_and_gzip() {
        let r = Report {
            begin: 86_400,
            end: 172_800,
            published: published("bank.example", &["d@bank.example"]),
            rows: vec![(row("192.0.2.1", "reject"), 1)],
        };
        let m = String::from_utf8(report_message(
            &reporter(),
            &r,
            &["d@bank.example".into()],
            "Sat, 05 Dec 2026 00:00:00 +0000",
        ))
        .unwrap();
        assert!(m.contains(
            "Subject: Report Domain: bank.example Submitter: mx.receiver.example Report-ID: <bank.example.86400.172800@mx.receiver.example>\r\n"
        ));
        assert!(m.contains("filename=\"mx.receiver.example!bank.example!86400!172800.xml.gz\""));
        assert!(m.contains("Content-Type: application/gzip"));
        // The attachment decodes to the XML.
        use base64::Engine;
        let b64: String = m
            .split("Content-Disposition: attachment")
            .nth(1)
            .unwrap()
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .split("--")
            .next()
            .unwrap()
            .split("\r\n")
            .collect();
        let gz = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut xml = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut xml)
            .unwrap();
        assert_eq!(xml, aggregate_xml(&reporter(), &r));
        assert!(m.lines().all(|l| l.len() <= 998), "RFC 5322 §2.1.1");
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn rfc9990_4_external_destinations_need_the_consumers_consent() {
        let mut z = Zone::default();
        z.add(
            "_dmarc.bank.example",
            Some(Rr::Txt("v=DMARC1; p=reject".into())),
        );
        z.add(
            "bank.example._report._dmarc.consumer.example",
            Some(Rr::Txt("v=DMARC1".into())),
        );
        z.add(
            "bank.example._report._dmarc.redirect.example",
            Some(Rr::Txt(
                "v=DMARC1; rua=mailto:other@redirect.example".into(),
            )),
        );
        z.add(
            "bank.example._report._dmarc.elsewhere.example",
            Some(Rr::Txt("v=DMARC1; rua=mailto:x@victim.example".into())),
        );
        z.add(
            "bank.example._report._dmarc.wrong.example",
            Some(Rr::Txt("v=spf1 -all".into())),
        );
        let rua: Vec<String> = [
            "dmarc@bank.example",
            "d@sub.bank.example",
            "r@consumer.example",
            "r@redirect.example",
            "r@elsewhere.example",
            "victim@victim.example",
            "r@wrong.example",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (ok, refused) = run(authorized_destinations(&z, "bank.example", &rua));
        assert_eq!(
            ok,
            [
                "dmarc@bank.example",
                "d@sub.bank.example",
                "r@consumer.example",
                "other@redirect.example"
            ]
        );
        let refused: Vec<&str> = refused.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            refused,
            [
                "r@elsewhere.example",
                "victim@victim.example",
                "r@wrong.example"
            ]
        );
    }

    #[test]
    fn a_dns_failure_refuses_rather_than_guesses() {
        let mut z = Zone::default();
        z.add(
            "_dmarc.bank.example",
            Some(Rr::Txt("v=DMARC1; p=reject".into())),
        );
        z.add(
            "bank.example._report._dmarc.slow.example",
            Some(Rr::Timeout),
        );
        let (ok, refused) = run(authorized_destinations(
            &z,
            "bank.example",
            &["r@slow.example".into()],
        ));
        assert!(ok.is_empty());
        assert!(refused[0].1.contains("DNS failed"), "{refused:?}");
    }
}
