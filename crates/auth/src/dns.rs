//! The DNS questions mail authentication asks, as a trait, and an
//! in-memory zone that answers them (for tests, the conformance suites and
//! the playground's lab domains).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a question got no records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist (RCODE 3, NXDOMAIN).
    NxDomain,
    /// No usable answer: a timeout, SERVFAIL or any other RCODE (RFC 7208
    /// §5: the check ends in "temperror").
    Temporary,
}

/// An answer: the records (empty when the name exists but has none of
/// that type, "NODATA"), or why there are none.
pub type Answer<T> = Result<Vec<T>, DnsError>;

/// The DNS as mail authentication sees it. Names are given without the
/// trailing dot; implementations compare them case-insensitively.
pub trait Dns: Sync {
    /// TXT records, each one's strings joined (RFC 7208 §3.3).
    fn txt(&self, name: &str) -> impl Future<Output = Answer<String>> + Send;
    fn a(&self, name: &str) -> impl Future<Output = Answer<Ipv4Addr>> + Send;
    fn aaaa(&self, name: &str) -> impl Future<Output = Answer<Ipv6Addr>> + Send;
    /// MX records as (preference, exchange).
    fn mx(&self, name: &str) -> impl Future<Output = Answer<(u16, String)>> + Send;
    /// The PTR records of an address's reverse name.
    fn ptr(&self, ip: IpAddr) -> impl Future<Output = Answer<String>> + Send;
}

/// One record of a [`Zone`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Txt(String),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(u16, String),
    Ptr(String),
    /// An alias: every question is answered for the target (followed up
    /// to 8 times; a longer chain or a loop is a failure).
    Cname(String),
    /// Every question for this name that has no records of its type times
    /// out (a broken server; the OpenSPF suite's `TIMEOUT`).
    Timeout,
}

/// An in-memory DNS: names (case-insensitive) and their records. A name
/// that is present with no record of the asked type answers NODATA; an
/// absent name NXDOMAIN.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    names: HashMap<String, Vec<Record>>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Adds a record; `None` makes the name exist without adding one.
    pub fn add(&mut self, name: &str, record: Option<Record>) {
        let entry = self.names.entry(normalize(name)).or_default();
        entry.extend(record);
    }

    fn answer<T>(&self, name: &str, pick: impl Fn(&Record) -> Option<T>) -> Answer<T> {
        let mut name = normalize(name);
        let mut records = self.names.get(&name).ok_or(DnsError::NxDomain)?;
        for _ in 0..8 {
            match records.iter().find_map(|r| match r {
                Record::Cname(t) => Some(t),
                _ => None,
            }) {
                Some(target) => {
                    name = normalize(target);
                    records = self.names.get(&name).ok_or(DnsError::NxDomain)?;
                }
                None => break,
            }
        }
        if records.iter().any(|r| matches!(r, Record::Cname(_))) {
            return Err(DnsError::Temporary);
        }
        let found: Vec<T> = records.iter().filter_map(pick).collect();
        if found.is_empty() && records.contains(&Record::Timeout) {
            return Err(DnsError::Temporary);
        }
        Ok(found)
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The reverse name of an address: `4.3.2.1.in-addr.arpa`, or the 32
/// nibbles of an IPv6 address under `ip6.arpa` (RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

impl Dns for Zone {
    async fn txt(&self, name: &str) -> Answer<String> {
        self.answer(name, |r| match r {
            Record::Txt(t) => Some(t.clone()),
            _ => None,
        })
    }
    async fn a(&self, name: &str) -> Answer<Ipv4Addr> {
        self.answer(name, |r| match r {
            Record::A(a) => Some(*a),
            _ => None,
        })
    }
    async fn aaaa(&self, name: &str) -> Answer<Ipv6Addr> {
        self.answer(name, |r| match r {
            Record::Aaaa(a) => Some(*a),
            _ => None,
        })
    }
    async fn mx(&self, name: &str) -> Answer<(u16, String)> {
        self.answer(name, |r| match r {
            Record::Mx(p, x) => Some((*p, x.clone())),
            _ => None,
        })
    }
    async fn ptr(&self, ip: IpAddr) -> Answer<String> {
        self.answer(&reverse_name(ip), |r| match r {
            Record::Ptr(p) => Some(p.clone()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_rfc3596() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }
}
