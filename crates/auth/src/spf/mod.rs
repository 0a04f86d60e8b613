//! SPF (RFC 7208): may this IP address send mail for this domain?
//!
//! [`check_host`] is the RFC's function of that name (§4): the record is
//! fetched, parsed whole, and its mechanisms evaluated in order, with the
//! limits of §4.6.4 (10 terms that query DNS, 2 void lookups, 10 MX and
//! PTR names). [`verify_mail_from`] and [`verify_helo`] are the two
//! identities an MTA checks (§2.3, §2.4).

mod record;

use crate::dns::{Dns, DnsError};
pub use record::{Directive, Mechanism, Qualifier, Record, is_spf1, parse};
use record::{MacroString, Piece};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

/// The result of an SPF check (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The name used in Received-SPF and Authentication-Results.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl From<Qualifier> for SpfResult {
    fn from(q: Qualifier) -> SpfResult {
        match q {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

/// What a check found, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub result: SpfResult,
    /// The domain whose policy was checked.
    pub domain: String,
    /// On "fail": the domain's explanation (its `exp=`), when it has one
    /// that could be fetched and expanded (§6.2).
    pub explanation: Option<String>,
    /// Which term decided, or what went wrong, in words.
    pub reason: String,
}

/// The limits of RFC 7208 §4.6.4, configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Terms that cause DNS queries (include, a, mx, ptr, exists,
    /// redirect): 10.
    pub dns_terms: u32,
    /// Lookups that return no records or NXDOMAIN: 2.
    pub void_lookups: u32,
    /// MX names looked up per `mx`, PTR names per `ptr` or `%{p}`: 10.
    pub names: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            dns_terms: 10,
            void_lookups: 2,
            names: 10,
        }
    }
}

/// Who is asking: the SMTP facts the macros of §7 may use.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The client's address; an IPv4-mapped IPv6 address counts as IPv4.
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: &'a str,
    /// The checking host's name (`%{r}`).
    pub receiver: &'a str,
    /// Seconds since the epoch (`%{t}`).
    pub now: u64,
}

/// The MAIL FROM identity (§2.4); an empty reverse-path is checked as
/// `postmaster@` the HELO name.
pub async fn verify_mail_from<D: Dns>(
    dns: &D,
    req: &Request<'_>,
    mail_from: &str,
    limits: Limits,
) -> Verdict {
    let sender = if mail_from.is_empty() {
        format!("postmaster@{}", req.helo)
    } else {
        mail_from.to_string()
    };
    let domain = sender
        .rsplit_once('@')
        .map_or(sender.as_str(), |(_, d)| d)
        .to_string();
    check_host(dns, req, &domain, &sender, limits).await
}

/// The HELO identity (§2.3): `postmaster@` the HELO name.
pub async fn verify_helo<D: Dns>(dns: &D, req: &Request<'_>, limits: Limits) -> Verdict {
    let sender = format!("postmaster@{}", req.helo);
    check_host(dns, req, req.helo, &sender, limits).await
}

/// check_host(ip, domain, sender) of RFC 7208 §4.
pub async fn check_host<D: Dns>(
    dns: &D,
    req: &Request<'_>,
    domain: &str,
    sender: &str,
    limits: Limits,
) -> Verdict {
    let ip = match req.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(req.ip, IpAddr::V4),
        v4 => v4,
    };
    // §4.3: a sender without a local part is postmaster@domain.
    let (local, sender_domain) = match sender.rsplit_once('@') {
        Some(("", d)) => ("postmaster".to_string(), d.to_string()),
        Some((l, d)) => (l.to_string(), d.to_string()),
        None => ("postmaster".to_string(), sender.to_string()),
    };
    let mut ctx = Check {
        dns,
        ip,
        local,
        sender_domain,
        helo: req.helo.to_string(),
        receiver: req.receiver.to_string(),
        now: req.now,
        limits,
        dns_terms: 0,
        voids: 0,
    };
    let domain = domain.trim_end_matches('.').to_string();
    let out = ctx.check(domain.clone(), true).await;
    Verdict {
        result: out.result,
        domain,
        explanation: out.explanation,
        reason: out.reason,
    }
}

struct Outcome {
    result: SpfResult,
    explanation: Option<String>,
    reason: String,
}

impl Outcome {
    fn new(result: SpfResult, reason: impl Into<String>) -> Outcome {
        Outcome {
            result,
            explanation: None,
            reason: reason.into(),
        }
    }
}

/// A mechanism's evaluation: matched or not, or the check ends with this
/// result.
type Eval = Result<bool, Outcome>;

struct Check<'a, D> {
    dns: &'a D,
    ip: IpAddr,
    local: String,
    sender_domain: String,
    helo: String,
    receiver: String,
    now: u64,
    limits: Limits,
    dns_terms: u32,
    voids: u32,
}

impl<D: Dns> Check<'_, D> {
    /// One level of check_host (the top, an include or a redirect);
    /// `explain` is false inside an include (its exp= is not used, §6.2).
    fn check(
        &mut self,
        domain: String,
        explain: bool,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + '_>> {
        Box::pin(async move {
            if !valid_domain(&domain) {
                return Outcome::new(SpfResult::None, format!("{domain:?} is not a domain name"));
            }
            let txts = match self.dns.txt(&domain).await {
                Ok(t) => t,
                Err(DnsError::NxDomain) => {
                    return Outcome::new(SpfResult::None, format!("{domain} does not exist"));
                }
                Err(DnsError::Temporary) => {
                    return Outcome::new(
                        SpfResult::TempError,
                        format!("DNS failed for the TXT records of {domain}"),
                    );
                }
            };
            let spf: Vec<&String> = txts.iter().filter(|t| is_spf1(t)).collect();
            let txt = match spf.as_slice() {
                [] => {
                    return Outcome::new(
                        SpfResult::None,
                        format!("{domain} publishes no SPF record"),
                    );
                }
                [one] => one.as_str(),
                _ => {
                    return Outcome::new(
                        SpfResult::PermError,
                        format!("{domain} publishes more than one SPF record (RFC 7208 §4.5)"),
                    );
                }
            };
            let record = match parse(txt) {
                Ok(r) => r,
                Err(e) => return Outcome::new(SpfResult::PermError, format!("{domain}: {e}")),
            };
            for d in &record.directives {
                match self.matches(&d.mechanism, &domain).await {
                    Ok(false) => {}
                    Ok(true) => {
                        let result = SpfResult::from(d.qualifier);
                        let mut out = Outcome::new(
                            result,
                            format!("{domain}: {} matched {}", d.text, self.ip),
                        );
                        if result == SpfResult::Fail
                            && explain
                            && let Some(exp) = &record.exp
                        {
                            out.explanation = self.explanation(exp, &domain).await;
                        }
                        return out;
                    }
                    Err(out) => return out,
                }
            }
            if let Some(target) = &record.redirect {
                if let Err(out) = self.count_term() {
                    return out;
                }
                let target = match self.expand(target, &domain, false).await {
                    Ok(t) => t,
                    Err(out) => return out,
                };
                let out = self.check(target.clone(), explain).await;
                if out.result == SpfResult::None {
                    return Outcome::new(
                        SpfResult::PermError,
                        format!(
                            "{domain}: redirect={target}: {} (RFC 7208 §6.1)",
                            out.reason
                        ),
                    );
                }
                return out;
            }
            Outcome::new(
                SpfResult::Neutral,
                format!("{domain}: no mechanism matched {}", self.ip),
            )
        })
    }

    fn count_term(&mut self) -> Result<(), Outcome> {
        self.dns_terms += 1;
        over(self.dns_terms, self.limits.dns_terms, "DNS-querying terms")
    }

    /// Counts a lookup that found nothing (§4.6.4).
    fn void(&mut self) -> Result<(), Outcome> {
        self.voids += 1;
        over(
            self.voids,
            self.limits.void_lookups,
            "DNS lookups found nothing",
        )
    }

    async fn matches(&mut self, m: &Mechanism, domain: &str) -> Eval {
        match m {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => Ok(match self.ip {
                IpAddr::V4(ip) => in_v4(ip, *net, *len),
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6(net, len) => Ok(match self.ip {
                IpAddr::V6(ip) => in_v6(ip, *net, *len),
                IpAddr::V4(_) => false,
            }),
            Mechanism::Include(spec) => {
                self.count_term()?;
                let target = self.expand(spec, domain, false).await?;
                let out = self.check(target.clone(), false).await;
                match out.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(out),
                    SpfResult::PermError => Err(out),
                    SpfResult::None => Err(Outcome::new(
                        SpfResult::PermError,
                        format!("include:{target}: {} (RFC 7208 §5.2)", out.reason),
                    )),
                }
            }
            Mechanism::A {
                domain: spec,
                v4,
                v6,
            } => {
                self.count_term()?;
                let target = self.target(spec.as_ref(), domain).await?;
                let found = self.addresses(&target, true).await?;
                Ok(found.iter().any(|a| self.in_net(*a, *v4, *v6)))
            }
            Mechanism::Mx {
                domain: spec,
                v4,
                v6,
            } => {
                self.count_term()?;
                let target = self.target(spec.as_ref(), domain).await?;
                let mxs = match self.dns.mx(&target).await {
                    Ok(m) => m,
                    Err(DnsError::NxDomain) => {
                        self.void()?;
                        return Ok(false);
                    }
                    Err(DnsError::Temporary) => return Err(temp(&target, "MX")),
                };
                if mxs.is_empty() {
                    self.void()?;
                    return Ok(false);
                }
                if mxs.len() > self.limits.names {
                    return Err(Outcome::new(
                        SpfResult::PermError,
                        format!(
                            "{target} has more than {} MX records (RFC 7208 §4.6.4)",
                            self.limits.names
                        ),
                    ));
                }
                for (_, exchange) in mxs {
                    let exchange = exchange.trim_end_matches('.');
                    if exchange.is_empty() {
                        continue;
                    }
                    let found = self.addresses(exchange, false).await?;
                    if found.iter().any(|a| self.in_net(*a, *v4, *v6)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_term()?;
                let target = self.target(spec.as_ref(), domain).await?;
                let names = self.validated_names().await;
                Ok(names.iter().any(|n| is_within(n, &target)))
            }
            Mechanism::Exists(spec) => {
                self.count_term()?;
                let target = self.expand(spec, domain, false).await?;
                match self.dns.a(&target).await {
                    Ok(a) if !a.is_empty() => Ok(true),
                    Ok(_) | Err(DnsError::NxDomain) => {
                        self.void()?;
                        Ok(false)
                    }
                    Err(DnsError::Temporary) => Err(temp(&target, "A")),
                }
            }
        }
    }

    /// The A (IPv4 client) or AAAA (IPv6 client) records of `name`;
    /// `counts_void`: an empty answer counts toward the void limit.
    async fn addresses(&mut self, name: &str, counts_void: bool) -> Result<Vec<IpAddr>, Outcome> {
        if !valid_domain(name) {
            if counts_void {
                self.void()?;
            }
            return Ok(Vec::new());
        }
        match self.forward(name).await {
            Ok(a) if !a.is_empty() => Ok(a),
            Ok(_) | Err(DnsError::NxDomain) => {
                if counts_void {
                    self.void()?;
                }
                Ok(Vec::new())
            }
            Err(DnsError::Temporary) => Err(temp(name, "address")),
        }
    }

    /// The A records of `name` for an IPv4 client, AAAA for an IPv6 one
    /// (RFC 7208 §5.3: the address family of the client decides).
    async fn forward(&self, name: &str) -> crate::dns::Answer<IpAddr> {
        match self.ip {
            IpAddr::V4(_) => self
                .dns
                .a(name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V4).collect()),
            IpAddr::V6(_) => self
                .dns
                .aaaa(name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V6).collect()),
        }
    }

    fn in_net(&self, a: IpAddr, v4: u8, v6: u8) -> bool {
        match (self.ip, a) {
            (IpAddr::V4(ip), IpAddr::V4(net)) => in_v4(ip, net, v4),
            (IpAddr::V6(ip), IpAddr::V6(net)) => in_v6(ip, net, v6),
            _ => false,
        }
    }

    async fn target(
        &mut self,
        spec: Option<&MacroString>,
        domain: &str,
    ) -> Result<String, Outcome> {
        match spec {
            Some(s) => self.expand(s, domain, false).await,
            None => Ok(domain.to_string()),
        }
    }

    /// The client's validated host names (§5.5): PTR names whose A/AAAA
    /// records include the client, at most `limits.names` of them tried.
    /// DNS errors leave a name out.
    async fn validated_names(&mut self) -> Vec<String> {
        let Ok(names) = self.dns.ptr(self.ip).await else {
            return Vec::new();
        };
        let mut valid = Vec::new();
        for name in names.into_iter().take(self.limits.names) {
            let name = name.trim_end_matches('.').to_string();
            if self
                .forward(&name)
                .await
                .is_ok_and(|f| f.contains(&self.ip))
            {
                valid.push(name);
            }
        }
        valid
    }

    /// The explanation of a "fail" (§6.2): the one TXT record at the
    /// expanded `exp=` name, itself expanded. Any failure: none.
    async fn explanation(&mut self, exp: &MacroString, domain: &str) -> Option<String> {
        let name = self.expand(exp, domain, false).await.ok()?;
        let txts = self.dns.txt(&name).await.ok()?;
        let [txt] = txts.as_slice() else {
            return None;
        };
        let m = record::macro_string(txt, true).ok()?;
        self.expand(&m, domain, true).await.ok()
    }

    /// Expands a macro-string (§7.3). Names longer than 253 characters lose
    /// labels on the left; `explain`: the result is text, not a name.
    async fn expand(
        &mut self,
        m: &MacroString,
        domain: &str,
        explain: bool,
    ) -> Result<String, Outcome> {
        let mut out = String::new();
        for piece in &m.0 {
            match piece {
                Piece::Literal(l) => out.push_str(l),
                Piece::Macro {
                    letter,
                    escape,
                    keep,
                    reverse,
                    delimiters,
                } => {
                    let value = self.macro_value(*letter, domain).await;
                    let delims: &str = if delimiters.is_empty() {
                        "."
                    } else {
                        delimiters
                    };
                    let mut parts: Vec<&str> = value.split(|c| delims.contains(c)).collect();
                    if *reverse {
                        parts.reverse();
                    }
                    if let Some(n) = keep
                        && parts.len() > *n
                    {
                        parts.drain(..parts.len() - n);
                    }
                    let joined = parts.join(".");
                    if *escape {
                        out.push_str(&url_escape(&joined));
                    } else {
                        out.push_str(&joined);
                    }
                }
            }
        }
        if !explain {
            let out = out.trim_end_matches('.');
            let mut name = out;
            while name.len() > 253 {
                match name.split_once('.') {
                    Some((_, rest)) => name = rest,
                    None => break,
                }
            }
            return Ok(name.to_string());
        }
        Ok(out)
    }

    async fn macro_value(&mut self, letter: char, domain: &str) -> String {
        match letter {
            's' => format!("{}@{}", self.local, self.sender_domain),
            'l' => self.local.clone(),
            'o' => self.sender_domain.clone(),
            'd' => domain.to_string(),
            'i' => match self.ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => nibbles(v6),
            },
            'p' => {
                let names = self.validated_names().await;
                names
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(domain))
                    .or_else(|| names.iter().find(|n| is_within(n, domain)))
                    .or(names.first())
                    .cloned()
                    .unwrap_or_else(|| "unknown".into())
            }
            'v' => match self.ip {
                IpAddr::V4(_) => "in-addr".into(),
                IpAddr::V6(_) => "ip6".into(),
            },
            'h' => self.helo.clone(),
            'c' => self.ip.to_string(),
            'r' => self.receiver.clone(),
            't' => self.now.to_string(),
            _ => String::new(),
        }
    }
}

/// A permerror once `count` passes a limit of §4.6.4.
fn over(count: u32, max: u32, what: &str) -> Result<(), Outcome> {
    if count > max {
        return Err(Outcome::new(
            SpfResult::PermError,
            format!("more than {max} {what} (RFC 7208 §4.6.4)"),
        ));
    }
    Ok(())
}

fn temp(name: &str, what: &str) -> Outcome {
    Outcome::new(
        SpfResult::TempError,
        format!("DNS failed for the {what} records of {name}"),
    )
}

/// §4.3: a multi-label name, no empty label, no label over 63 octets.
fn valid_domain(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    d.contains('.') && d.len() <= 253 && d.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// `name` is `domain` or a name below it (case-insensitive).
fn is_within(name: &str, domain: &str) -> bool {
    let (n, d) = (name.to_ascii_lowercase(), domain.to_ascii_lowercase());
    let d = d.trim_end_matches('.');
    n == d || n.ends_with(&format!(".{d}"))
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// `%{i}` of an IPv6 address: 32 nibbles separated by dots (§7.3).
fn nibbles(v6: Ipv6Addr) -> String {
    let mut s = String::with_capacity(63);
    for (i, byte) in v6.octets().iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(&format!("{:x}.{:x}", byte >> 4, byte & 0xf));
    }
    s
}

/// URL-escaping of an upper-case macro (§7.3): all but the unreserved
/// characters of RFC 3986.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
