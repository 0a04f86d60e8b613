//! The real DNS: `[dns]` as a hickory resolver configuration, and
//! [`Resolver`], which answers the [`Dns`] questions through hickory (its
//! cache keeps positive and negative answers for their TTL). Answers are
//! bounded: at most [`MAX_RECORDS`] records of a type are used.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::dns::{Answer, Dns, DnsError};

/// More records of one type than any check needs (SPF looks at 10 MX or
/// PTR names; a TXT RRset of hundreds is an attack).
pub const MAX_RECORDS: usize = 64;

/// `[dns]`: which servers to ask.
#[derive(Debug, Clone, Default)]
pub struct DnsSettings {
    /// `ip` or `ip:port`; empty: the system's resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Option<Duration>,
}

/// The resolver's configuration from `[dns]`.
pub fn resolver_config(dns: &DnsSettings) -> Result<(ResolverConfig, ResolverOpts), String> {
    let (config, mut opts) = if dns.nameservers.is_empty() {
        match hickory_resolver::system_conf::read_system_conf() {
            Ok(c) => c,
            Err(e) => {
                // A machine without resolv.conf: the local resolver, as
                // the C library would assume.
                tracing::warn!(error = %e, "no system resolver configuration; asking 127.0.0.1:53");
                let local = NameServerConfig::udp_and_tcp(Ipv4Addr::LOCALHOST.into());
                (
                    ResolverConfig::from_name_servers(vec![local]),
                    ResolverOpts::default(),
                )
            }
        }
    } else {
        let servers = dns
            .nameservers
            .iter()
            .map(|a| {
                let conn = |mut c: ConnectionConfig| {
                    c.port = a.port();
                    c
                };
                NameServerConfig::new(
                    a.ip(),
                    true,
                    vec![conn(ConnectionConfig::udp()), conn(ConnectionConfig::tcp())],
                )
            })
            .collect();
        (
            ResolverConfig::from_name_servers(servers),
            ResolverOpts::default(),
        )
    };
    if let Some(t) = dns.timeout {
        opts.timeout = t;
    }
    opts.attempts = 2;
    // The names asked are absolute; never append a search domain.
    opts.ndots = 0;
    Ok((config, opts))
}

/// A hickory resolver built from `[dns]`.
pub fn build(dns: &DnsSettings) -> Result<TokioResolver, String> {
    let (config, opts) = resolver_config(dns)?;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| format!("resolver: {e}"))
}

/// The [`Dns`] of mail authentication, answered by hickory. Positive
/// answers are cached by hickory for their TTL; negative ones (NXDOMAIN,
/// NODATA) here too, for [`NEGATIVE_TTL`] — hickory caches them only when
/// the server sends an SOA, and a resolver that does not would otherwise
/// be asked about every unknown sender domain for every message.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    negative: Arc<NegativeCache>,
}

/// Negative answers by (record type, lower-case name), until when.
type NegativeCache = Mutex<HashMap<(u8, String), (Negative, Instant)>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Negative {
    NoData,
    NxDomain,
}

/// How long a negative answer is kept (RFC 2308 §5 caps it at hours; the
/// SOA's minimum is not seen through hickory's lookup API).
pub const NEGATIVE_TTL: Duration = Duration::from_secs(300);

/// Most negative answers kept; beyond, the oldest half is dropped.
const NEGATIVE_MAX: usize = 10_000;

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    pub fn new(inner: TokioResolver) -> Resolver {
        Resolver {
            inner,
            negative: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A cached negative answer for (kind, name), if fresh.
    fn cached<T>(&self, kind: u8, name: &str) -> Option<Answer<T>> {
        let map = self.negative.lock().ok()?;
        let (e, until) = map.get(&(kind, name.to_ascii_lowercase()))?;
        if *until < Instant::now() {
            return None;
        }
        Some(match e {
            Negative::NoData => Ok(Vec::new()),
            Negative::NxDomain => Err(DnsError::NxDomain),
        })
    }

    fn remember<T>(&self, kind: u8, name: &str, answer: &Answer<T>) {
        let e = match answer {
            Ok(v) if v.is_empty() => Negative::NoData,
            Err(DnsError::NxDomain) => Negative::NxDomain,
            _ => return,
        };
        let Ok(mut map) = self.negative.lock() else {
            return;
        };
        let now = Instant::now();
        if map.len() >= NEGATIVE_MAX {
            map.retain(|_, (_, until)| *until > now + NEGATIVE_TTL / 2);
        }
        map.insert((kind, name.to_ascii_lowercase()), (e, now + NEGATIVE_TTL));
    }

    async fn records<T>(
        &self,
        name: &str,
        kind: Kind,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Answer<T> {
        let key = kind as u8;
        if let Some(a) = self.cached(key, name) {
            return a;
        }
        let answer = self.lookup(name, kind, pick).await;
        self.remember(key, name, &answer);
        answer
    }

    async fn lookup<T>(
        &self,
        name: &str,
        kind: Kind,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Answer<T> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = match kind {
            Kind::Txt => self
                .inner
                .txt_lookup(fqdn.as_str())
                .await
                .map(|l| l.answers().to_vec()),
            Kind::A => self
                .inner
                .ipv4_lookup(fqdn.as_str())
                .await
                .map(|l| l.answers().to_vec()),
            Kind::Aaaa => self
                .inner
                .ipv6_lookup(fqdn.as_str())
                .await
                .map(|l| l.answers().to_vec()),
            Kind::Mx => self
                .inner
                .mx_lookup(fqdn.as_str())
                .await
                .map(|l| l.answers().to_vec()),
        };
        match lookup {
            Ok(records) => Ok(records
                .iter()
                .filter_map(|r| pick(&r.data))
                .take(MAX_RECORDS)
                .collect()),
            Err(e) if e.is_nx_domain() => Err(DnsError::NxDomain),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(_) => Err(DnsError::Temporary),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Txt,
    A,
    Aaaa,
    Mx,
}

impl Dns for Resolver {
    async fn txt(&self, name: &str) -> Answer<String> {
        self.records(name, Kind::Txt, |d| match d {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .await
    }
    async fn a(&self, name: &str) -> Answer<Ipv4Addr> {
        self.records(name, Kind::A, |d| match d {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .await
    }
    async fn aaaa(&self, name: &str) -> Answer<Ipv6Addr> {
        self.records(name, Kind::Aaaa, |d| match d {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .await
    }
    async fn mx(&self, name: &str) -> Answer<(u16, String)> {
        self.records(name, Kind::Mx, |d| match d {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None,
        })
        .await
    }
    async fn ptr(&self, ip: IpAddr) -> Answer<String> {
        match self.inner.reverse_lookup(ip).await {
            Ok(l) => Ok(l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::PTR(p) => Some(p.0.to_ascii()),
                    _ => None,
                })
                .take(MAX_RECORDS)
                .collect()),
            Err(e) if e.is_nx_domain() => Err(DnsError::NxDomain),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(_) => Err(DnsError::Temporary),
        }
    }
}
