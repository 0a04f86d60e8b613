//! Where mail for a domain goes (RFC 5321 §5.1): MX records in preference
//! order, randomised among equals; the domain's own A/AAAA when it has no
//! MX (the implicit MX); nowhere when it publishes a null MX (RFC 7505);
//! or a configured smarthost instead of all of that.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
pub use postamt_auth::resolver::{DnsSettings, resolver_config};
use rand::seq::SliceRandom;

/// One host to try, with the addresses it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The MX exchange or smarthost name (for TLS server names and logs).
    pub name: String,
    pub addrs: Vec<SocketAddr>,
}

/// Why a domain cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// For good: the message bounces (status, text).
    Permanent(&'static str, String),
    /// For now: try again later.
    Transient(&'static str, String),
}

/// The DNS side of the relay.
pub struct Router {
    resolver: TokioResolver,
    port: u16,
    /// Most addresses tried per delivery (Postfix: smtp_mx_address_limit).
    max_addrs: usize,
}

impl Router {
    pub fn new(dns: &DnsSettings, port: u16) -> Result<Router, String> {
        Ok(Router::with_resolver(
            postamt_auth::resolver::build(dns)?,
            port,
        ))
    }

    /// A router that asks `resolver` (a clone shares its cache).
    pub fn with_resolver(resolver: TokioResolver, port: u16) -> Router {
        Router {
            resolver,
            port,
            max_addrs: 10,
        }
    }

    /// The hosts for `domain`, in the order to try them.
    pub async fn route(&self, domain: &str) -> Result<Vec<Host>, RouteError> {
        // An address literal (RFC 5321 §4.1.3) needs no DNS.
        if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let ip: IpAddr = literal
                .strip_prefix("IPv6:")
                .unwrap_or(literal)
                .parse()
                .map_err(|_| {
                    RouteError::Permanent("5.1.2", format!("bad address literal {domain}"))
                })?;
            return Ok(vec![Host {
                name: ip.to_string(),
                addrs: vec![SocketAddr::new(ip, self.port)],
            }]);
        }
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let exchanges = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut mx: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                // RFC 7505 §3: a single MX whose exchange is the root.
                let is_null = |e: &String| e == "." || e.is_empty();
                if mx.len() == 1 && is_null(&mx[0].1) {
                    return Err(RouteError::Permanent(
                        "5.1.10",
                        format!("{domain} does not accept mail (null MX, RFC 7505)"),
                    ));
                }
                mx.retain(|(_, e)| !is_null(e));
                if mx.is_empty() {
                    vec![domain.to_string()]
                } else {
                    order_by_preference(mx)
                }
            }
            Err(e) if e.is_nx_domain() => {
                return Err(RouteError::Permanent(
                    "5.1.2",
                    format!("domain {domain} does not exist (DNS NXDOMAIN)"),
                ));
            }
            // RFC 5321 §5.1: no MX at all: the domain is its own exchange.
            Err(e) if e.is_no_records_found() => vec![domain.to_string()],
            Err(e) => {
                return Err(RouteError::Transient(
                    "4.4.3",
                    format!("DNS lookup of MX {domain} failed: {e}"),
                ));
            }
        };
        let mut hosts = Vec::new();
        let mut total = 0;
        let mut last_error = None;
        for name in exchanges {
            if total >= self.max_addrs {
                break;
            }
            match self.addresses(&name, self.port).await {
                Ok(addrs) if !addrs.is_empty() => {
                    let addrs: Vec<SocketAddr> =
                        addrs.into_iter().take(self.max_addrs - total).collect();
                    total += addrs.len();
                    hosts.push(Host { name, addrs });
                }
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
        }
        if hosts.is_empty() {
            return Err(match last_error {
                Some(RouteError::Transient(c, t)) => RouteError::Transient(c, t),
                _ => RouteError::Permanent(
                    "5.4.4",
                    format!("no address for any mail exchanger of {domain}"),
                ),
            });
        }
        Ok(hosts)
    }

    /// A smarthost `name` (or IP) at `port`: its addresses, no MX lookup.
    pub async fn smarthost(&self, name: &str, port: u16) -> Result<Host, RouteError> {
        let addrs = self.addresses(name, port).await?;
        if addrs.is_empty() {
            return Err(RouteError::Transient(
                "4.4.4",
                format!("smarthost {name} has no address"),
            ));
        }
        Ok(Host {
            name: name.to_string(),
            addrs,
        })
    }

    async fn addresses(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, RouteError> {
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(ips) => {
                let mut v: Vec<IpAddr> = ips.iter().collect();
                // IPv6 first, then IPv4 (both are tried).
                v.sort_by_key(|ip| ip.is_ipv4());
                v.dedup();
                Ok(v.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
            }
            Err(e) if e.is_no_records_found() => Ok(vec![]),
            Err(e) => Err(RouteError::Transient(
                "4.4.3",
                format!("DNS lookup of {name} failed: {e}"),
            )),
        }
    }

    /// The resolver, for DKIM key lookups.
    pub fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }
}

pub use postamt_auth::dkim::authenticator;

/// Sorts exchanges by preference (lowest first) and shuffles those of equal
/// preference (RFC 5321 §5.1: "randomize them to spread the load").
pub fn order_by_preference(mut mx: Vec<(u16, String)>) -> Vec<String> {
    mx.sort_by_key(|(p, _)| *p);
    let mut out = Vec::with_capacity(mx.len());
    let mut rng = rand::rng();
    for group in mx.chunk_by_mut(|a, b| a.0 == b.0) {
        group.shuffle(&mut rng);
        for (_, e) in group.iter() {
            let e = e.trim_end_matches('.').to_ascii_lowercase();
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5321_5_1_preference_order_with_equal_ones_shuffled() {
        let mx = vec![
            (20, "c.example.".to_string()),
            (10, "a.example.".to_string()),
            (10, "b.example.".to_string()),
            (30, "d.example.".to_string()),
        ];
        let mut seen_first = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let order = order_by_preference(mx.clone());
            assert_eq!(&order[2..], ["c.example", "d.example"]);
            assert!(order[..2].contains(&"a.example".to_string()));
            assert!(order[..2].contains(&"b.example".to_string()));
            seen_first.insert(order[0].clone());
        }
        // Both equal-preference hosts come first sometimes (2^-199 odds
        // of a false failure).
        assert_eq!(seen_first.len(), 2);
    }
}
