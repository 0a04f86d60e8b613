//! DMARC (RFC 7489, with RFC 9989's DNS tree walk, `np=` and `psd=`):
//! does the author domain in `From:` stand behind this message, and what
//! does it ask a receiver to do when it does not?
//!
//! The policy record and the organizational domains come from DNS alone
//! (the tree walk of RFC 9989 §4.10, [`Discovery::TreeWalk`], the
//! default): no public suffix list is needed, and a domain marks itself
//! as a public suffix domain with `psd=y`. [`Discovery::Psl`] is RFC
//! 7489's way: organizational domains from the Public Suffix List
//! ([`crate::psl`]), the record at the author domain or else at its
//! organizational domain.

use crate::dns::{Dns, DnsError};

/// What the domain owner asks for failing mail (RFC 7489 §6.3 `p=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    fn parse(v: &str) -> Option<Policy> {
        match v.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }
}

/// `psd=` (RFC 9989): is this a public suffix domain's record?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Psd {
    Yes,
    No,
    Unknown,
}

/// A DMARC record (RFC 7489 §6.3; RFC 9989 adds `np`, `psd`, `t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub p: Policy,
    pub sp: Policy,
    pub np: Policy,
    /// Strict DKIM / SPF alignment (`adkim=s`, `aspf=s`).
    pub strict_dkim: bool,
    pub strict_spf: bool,
    pub psd: Psd,
    /// `t=y`: testing; the policy is not applied (RFC 9989).
    pub testing: bool,
    /// Aggregate report addresses (`rua=mailto:`), without size limits.
    pub rua: Vec<String>,
    /// The size limits some of them carry (`mailto:a@b.example!10m`,
    /// RFC 7489 §6.2), in octets.
    pub rua_limits: Vec<(String, u64)>,
}

/// The `mailto:` addresses of a `rua=` value (RFC 7489 §6.2, other URI
/// schemes skipped), each with its size limit (`!10m`) if it has one.
pub fn mailto_uris(value: &str) -> Vec<(String, Option<u64>)> {
    value
        .split(',')
        .filter_map(|u| {
            let u = u.trim();
            let rest = u
                .get(..7)
                .filter(|p| p.eq_ignore_ascii_case("mailto:"))
                .map(|_| &u[7..])?;
            let (addr, limit) = match rest.split_once('!') {
                Some((a, l)) => (a, size_limit(l)),
                None => (rest, None),
            };
            Some((addr.trim().replace("%20", ""), limit))
        })
        .filter(|(a, _)| a.contains('@'))
        .collect()
}

/// `10m` → 10 MiB (RFC 7489 §6.2: `1*DIGIT [ "k" / "m" / "g" / "t" ]`,
/// powers of two); `None` when it is not a size.
fn size_limit(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, ' '),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        ' ' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// Parses a TXT record; `None` when it is not a valid DMARC record.
/// Unknown tags are ignored; a missing or invalid `p=` is `none` when
/// `rua=` is valid (RFC 9989), otherwise the record is invalid.
pub fn parse(txt: &str) -> Option<Record> {
    let mut tags = txt.split(';').map(|t| t.trim()).filter(|t| !t.is_empty());
    let first = tags.next()?;
    let (k, v) = first.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case("v") || v.trim() != "DMARC1" {
        return None;
    }
    let (mut p, mut sp, mut np) = (None, None, None);
    let mut r = Record {
        p: Policy::None,
        sp: Policy::None,
        np: Policy::None,
        strict_dkim: false,
        strict_spf: false,
        psd: Psd::Unknown,
        testing: false,
        rua: Vec::new(),
        rua_limits: Vec::new(),
    };
    for tag in tags {
        let Some((k, v)) = tag.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "p" => p = Policy::parse(v),
            "sp" => sp = Policy::parse(v),
            "np" => np = Policy::parse(v),
            "adkim" => r.strict_dkim = v.eq_ignore_ascii_case("s"),
            "aspf" => r.strict_spf = v.eq_ignore_ascii_case("s"),
            "psd" => {
                r.psd = match v.to_ascii_lowercase().as_str() {
                    "y" => Psd::Yes,
                    "n" => Psd::No,
                    _ => Psd::Unknown,
                }
            }
            "t" => r.testing = v.eq_ignore_ascii_case("y"),
            "rua" => {
                let uris = mailto_uris(v);
                r.rua_limits = uris
                    .iter()
                    .filter_map(|(a, l)| l.map(|l| (a.clone(), l)))
                    .collect();
                r.rua = uris.into_iter().map(|(a, _)| a).collect();
            }
            _ => {}
        }
    }
    r.p = match p {
        Some(p) => p,
        None if !r.rua.is_empty() => Policy::None,
        None => return None,
    };
    r.sp = sp.unwrap_or(r.p);
    r.np = np.unwrap_or(r.sp);
    Some(r)
}

/// The DMARC result (RFC 8601 §2.7.4 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcResult {
    None,
    Pass,
    Fail,
    TempError,
    PermError,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::None => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

/// How one mechanism counted for DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// It passed, for a domain aligned with the author domain.
    Pass,
    /// It passed, but for a domain not aligned with the author domain.
    NotAligned,
    /// It did not pass at all.
    None,
}

/// How policy records and organizational domains are found.
#[derive(Debug, Clone, Copy, Default)]
pub enum Discovery<'a> {
    /// RFC 9989 §4.10: the DNS tree walk.
    #[default]
    TreeWalk,
    /// RFC 7489 §3.2, §6.6.3: the Public Suffix List.
    Psl(&'a crate::psl::Suffixes),
}

impl Discovery<'_> {
    /// The name RFC 9990 reports use (`discovery_method`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Discovery::TreeWalk => "treewalk",
            Discovery::Psl(_) => "psl",
        }
    }

    /// The organizational domain of `domain` (lower case, no final dot).
    async fn organizational<D: Dns>(&self, dns: &D, domain: &str) -> Result<String, DnsError> {
        match self {
            Discovery::TreeWalk => organizational_domain(dns, domain).await,
            Discovery::Psl(list) => {
                let d = domain.trim_end_matches('.').to_ascii_lowercase();
                Ok(list.organizational(&d).unwrap_or(d))
            }
        }
    }
}

/// What the checks before DMARC found.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    /// Tree walk (default) or Public Suffix List.
    pub discovery: Discovery<'a>,
    /// The domain of the `From:` address.
    pub from_domain: &'a str,
    /// The domain SPF checked (MAIL FROM's, or HELO's for `<>`), when SPF
    /// passed.
    pub spf_pass_domain: Option<&'a str>,
    /// The `d=` of every DKIM signature that passed and covers `From:`.
    pub dkim_pass_domains: Vec<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub result: DmarcResult,
    /// The policy that applies to this message (`p`, `sp` or `np`);
    /// `None` when there is no record.
    pub policy: Option<Policy>,
    /// The record's `t=y`: the owner is testing, and `policy` is already
    /// one step milder than the record says (RFC 9989 §5.3).
    pub testing: bool,
    /// Where the record was found.
    pub policy_domain: String,
    /// How it was found: `treewalk` or `psl` ([`Discovery::as_str`]).
    pub discovery: &'static str,
    pub record: Option<Record>,
    pub dkim: Alignment,
    pub spf: Alignment,
    pub reason: String,
}

/// Most DNS queries of one tree walk (RFC 9989 §4.10).
const MAX_WALK: usize = 8;

/// The names a tree walk from `domain` asks about, longest first: the
/// domain itself, then (if it has 8 labels or more) its 7 rightmost
/// labels, then one label fewer each time, down to a single label.
fn walk(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    let mut names = vec![labels.join(".")];
    let mut n = labels.len();
    if n >= 8 {
        n = 8;
    }
    while n > 1 && names.len() < MAX_WALK {
        n -= 1;
        names.push(labels[labels.len() - n..].join("."));
    }
    names
}

/// What `_dmarc.name` holds.
#[derive(Debug, Clone)]
enum AtName {
    /// No valid DMARC record (other TXT records are none of ours).
    Nothing,
    One(Record),
    /// More than one: the set is discarded, and the walk stops
    /// (RFC 9989 §4.10 step 2).
    Several,
}

async fn record_at<D: Dns>(dns: &D, name: &str) -> Result<AtName, DnsError> {
    let txts = match dns.txt(&format!("_dmarc.{name}")).await {
        Ok(t) => t,
        Err(DnsError::NxDomain) => return Ok(AtName::Nothing),
        Err(e) => return Err(e),
    };
    let mut records = txts.iter().filter_map(|t| parse(t));
    Ok(match (records.next(), records.next()) {
        (None, _) => AtName::Nothing,
        (Some(r), None) => AtName::One(r),
        _ => AtName::Several,
    })
}

/// One tree walk from `domain` (RFC 9989 §4.10): the records found, in
/// walk order, up to a `psd=n` record (which ends it) or a set of several.
async fn tree_walk<D: Dns>(dns: &D, domain: &str) -> Result<Vec<(String, AtName)>, DnsError> {
    let mut found = Vec::new();
    for name in walk(domain) {
        let at = record_at(dns, &name).await?;
        let stop = match &at {
            AtName::Nothing => continue,
            AtName::One(r) => r.psd == Psd::No,
            AtName::Several => true,
        };
        found.push((name, at));
        if stop {
            break;
        }
    }
    Ok(found)
}

/// The organizational domain from a tree walk's records (RFC 9989
/// §4.10.2): where a `psd=n` record is, one label below a `psd=y` record,
/// else the shortest name with a record; the domain itself without any.
fn organizational_from(domain: &str, found: &[(String, AtName)]) -> String {
    let labels: Vec<&str> = domain.split('.').collect();
    let mut shortest = None;
    for (name, at) in found {
        let AtName::One(r) = at else { continue };
        match r.psd {
            Psd::No => return name.clone(),
            Psd::Yes => {
                let n = name.split('.').count();
                return if n < labels.len() {
                    labels[labels.len() - n - 1..].join(".")
                } else {
                    domain.to_string()
                };
            }
            Psd::Unknown => shortest = Some(name.clone()),
        }
    }
    shortest.unwrap_or_else(|| domain.to_string())
}

/// The organizational domain of `domain` by the tree walk.
pub async fn organizational_domain<D: Dns>(dns: &D, domain: &str) -> Result<String, DnsError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let found = tree_walk(dns, &domain).await?;
    Ok(organizational_from(&domain, &found))
}

/// Whether `domain` exists: it has an A, AAAA or MX record (RFC 9989's
/// test for `np=`).
async fn exists<D: Dns>(dns: &D, domain: &str) -> Result<bool, DnsError> {
    for answer in [
        dns.a(domain).await.map(|v| !v.is_empty()),
        dns.aaaa(domain).await.map(|v| !v.is_empty()),
        dns.mx(domain).await.map(|v| !v.is_empty()),
    ] {
        match answer {
            Ok(true) => return Ok(true),
            Ok(false) | Err(DnsError::NxDomain) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Whether `other` aligns with the author domain, whose organizational
/// domain is `author_org`.
async fn aligned<D: Dns>(
    dns: &D,
    discovery: &Discovery<'_>,
    author: &str,
    author_org: &str,
    other: &str,
    strict: bool,
) -> Result<bool, DnsError> {
    let o = other.trim_end_matches('.').to_ascii_lowercase();
    if author == o {
        return Ok(true);
    }
    if strict {
        return Ok(false);
    }
    Ok(author_org == discovery.organizational(dns, &o).await?)
}

/// RFC 7489 §6.6.3: the record at the author domain, or else at its
/// organizational domain by the Public Suffix List; the organizational
/// domain too.
async fn psl_lookup<D: Dns>(
    dns: &D,
    list: &crate::psl::Suffixes,
    author: &str,
) -> Result<(Vec<(String, AtName)>, String), DnsError> {
    let org = list
        .organizational(author)
        .unwrap_or_else(|| author.to_string());
    let mut found = Vec::new();
    for name in [author, org.as_str()] {
        match record_at(dns, name).await? {
            AtName::Nothing => {}
            at => {
                found.push((name.to_string(), at));
                break;
            }
        }
        if name == org {
            break;
        }
    }
    Ok((found, org))
}

/// Evaluates DMARC for a message (RFC 7489 §4.3, RFC 9989 §4.7-4.10).
pub async fn check<D: Dns>(dns: &D, input: &Input<'_>) -> Verdict {
    let author = input.from_domain.trim_end_matches('.').to_ascii_lowercase();
    let mut v = Verdict {
        result: DmarcResult::None,
        policy: None,
        testing: false,
        policy_domain: String::new(),
        discovery: input.discovery.as_str(),
        record: None,
        dkim: Alignment::None,
        spf: Alignment::None,
        reason: String::new(),
    };
    let temp = |mut v: Verdict, what: &str| {
        v.result = DmarcResult::TempError;
        v.reason = format!("DNS failed while {what}");
        v
    };
    // One tree walk gives the policy record (the first found) and the
    // author's organizational domain (or the list gives the latter).
    let (walked, author_org) = match &input.discovery {
        Discovery::TreeWalk => match tree_walk(dns, &author).await {
            Ok(w) => {
                let org = organizational_from(&author, &w);
                (w, org)
            }
            Err(_) => return temp(v, "looking for the DMARC record"),
        },
        Discovery::Psl(list) => match psl_lookup(dns, list, &author).await {
            Ok(found) => found,
            Err(_) => return temp(v, "looking for the DMARC record"),
        },
    };
    let (policy_domain, record) = match walked.into_iter().next() {
        Some((name, AtName::One(r))) => (name, r),
        Some((name, _)) => {
            v.reason = format!("{name} publishes more than one DMARC record (RFC 9989 §4.10)");
            return v;
        }
        None => {
            v.reason = format!("{author} publishes no DMARC record");
            return v;
        }
    };
    let policy = if policy_domain == author {
        record.p
    } else {
        match exists(dns, &author).await {
            Ok(true) => record.sp,
            Ok(false) => record.np,
            Err(_) => return temp(v, "checking that the author domain exists"),
        }
    };
    // t=y (RFC 9989 §5.3): one step milder while the owner is testing.
    let policy = match (record.testing, policy) {
        (true, Policy::Reject) => Policy::Quarantine,
        (true, _) => Policy::None,
        (false, p) => p,
    };
    v.policy = Some(policy);
    v.testing = record.testing;
    v.policy_domain = policy_domain;
    for d in &input.dkim_pass_domains {
        match aligned(
            dns,
            &input.discovery,
            &author,
            &author_org,
            d,
            record.strict_dkim,
        )
        .await
        {
            Ok(true) => {
                v.dkim = Alignment::Pass;
                break;
            }
            Ok(false) => v.dkim = Alignment::NotAligned,
            Err(_) => return temp(v, "finding organizational domains"),
        }
    }
    if let Some(d) = input.spf_pass_domain {
        v.spf = match aligned(
            dns,
            &input.discovery,
            &author,
            &author_org,
            d,
            record.strict_spf,
        )
        .await
        {
            Ok(true) => Alignment::Pass,
            Ok(false) => Alignment::NotAligned,
            Err(_) => return temp(v, "finding organizational domains"),
        };
    }
    v.record = Some(record);
    if v.dkim == Alignment::Pass || v.spf == Alignment::Pass {
        v.result = DmarcResult::Pass;
        v.reason = format!(
            "{} aligned with From: {author}",
            if v.dkim == Alignment::Pass {
                "DKIM"
            } else {
                "SPF"
            }
        );
    } else {
        v.result = DmarcResult::Fail;
        v.reason = format!(
            "neither DKIM nor SPF passed for a domain aligned with From: {author}; \
             {} asks to {} such mail",
            v.policy_domain,
            match policy {
                Policy::Reject => "reject",
                Policy::Quarantine => "quarantine",
                Policy::None => "report, not refuse,",
            }
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9989_4_10_the_tree_walk_asks_at_most_eight_names() {
        assert_eq!(
            walk("a.example.org"),
            ["a.example.org", "example.org", "org"]
        );
        let w = walk("a.b.c.d.e.f.g.h.i.j.mail.example.com");
        assert_eq!(w.len(), 8);
        assert_eq!(w[1], "g.h.i.j.mail.example.com");
        assert_eq!(w[7], "com");
    }

    /// RFC 7489 §6.6.3 with the Public Suffix List: the record at the
    /// author domain, else at its organizational domain (the list's
    /// registrable domain, not a DNS walk); relaxed alignment compares
    /// the list's organizational domains.
    #[test]
    fn rfc7489_6_6_3_discovery_by_the_public_suffix_list() {
        use crate::dns::{Record as Rr, Zone};
        let list = crate::psl::Suffixes::Embedded;
        let mut z = Zone::new();
        z.add(
            "_dmarc.example.co.uk",
            Some(Rr::Txt("v=DMARC1; p=quarantine; sp=reject".into())),
        );
        // A record at the public suffix is never consulted.
        z.add("_dmarc.co.uk", Some(Rr::Txt("v=DMARC1; p=none".into())));
        z.add(
            "mail.example.co.uk",
            Some(Rr::A("192.0.2.1".parse().unwrap())),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let run = |from: &str, dkim: Vec<&str>| {
            rt.block_on(check(
                &z,
                &Input {
                    discovery: Discovery::Psl(&list),
                    from_domain: from,
                    spf_pass_domain: None,
                    dkim_pass_domains: dkim,
                },
            ))
        };
        let v = run("mail.example.co.uk", vec!["example.co.uk"]);
        assert_eq!(v.policy_domain, "example.co.uk");
        assert_eq!(v.policy, Some(Policy::Reject), "sp= for a subdomain");
        assert_eq!(v.result, DmarcResult::Pass, "{v:?}");
        let v = run("mail.example.co.uk", vec!["other.co.uk"]);
        assert_eq!(v.result, DmarcResult::Fail, "{v:?}");
        let v = run("shop.co.uk", vec![]);
        assert_eq!(
            v.result,
            DmarcResult::None,
            "no record at shop.co.uk: {v:?}"
        );
        assert_eq!(Discovery::Psl(&list).as_str(), "psl");
    }

    #[test]
    fn rfc7489_6_2_rua_size_limits() {
        let r = parse("v=DMARC1; p=none; rua=mailto:a@x.example!10m, mailto:b@y.example,mailto:c@z.example!500k")
            .unwrap();
        assert_eq!(r.rua, ["a@x.example", "b@y.example", "c@z.example"]);
        assert_eq!(
            r.rua_limits,
            [
                ("a@x.example".to_string(), 10 << 20),
                ("c@z.example".to_string(), 500 << 10)
            ]
        );
        assert_eq!(size_limit("7"), Some(7));
        assert_eq!(size_limit("2G"), Some(2 << 30));
        assert_eq!(size_limit("1x"), None);
        assert_eq!(size_limit("m"), None);
        assert_eq!(size_limit("99999999999999t"), None, "overflow");
    }
}
