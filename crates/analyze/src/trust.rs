//! Which `Received:` lines can be believed (SpamAssassin's trust path):
//! walking from the newest hop down, a hop is a fact while the client it
//! names lies in the operator's trusted networks — loopback always, a
//! submission server's (`msa_networks`) client too, since it logged in —
//! and everything below the first hop that is not is a claim. Without
//! configured networks, private and loopback addresses are trusted up to
//! the first public one.

use std::net::IpAddr;

/// A list of networks with exclusions, first match wins
/// (`1.2/16 !1.2.3.4 2001:db8::/32`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<(bool, IpAddr, u8)>);

impl Networks {
    /// Parses networks separated by spaces or commas: an address, a CIDR
    /// block, an IPv4 prefix of 1–3 octets (`10`, `192.168`, `1.2.8/24`),
    /// each optionally preceded by `!`.
    pub fn parse(spec: &str) -> Result<Networks, String> {
        let mut out = Vec::new();
        for item in spec.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
            let (include, net) = match item.strip_prefix('!') {
                Some(n) => (false, n),
                None => (true, item),
            };
            let (addr, len) = match net.split_once('/') {
                Some((a, l)) => (
                    a,
                    Some(
                        l.parse::<u8>()
                            .map_err(|_| format!("bad prefix in {item}"))?,
                    ),
                ),
                None => (net, None),
            };
            let (ip, implied) = match addr.parse::<IpAddr>() {
                Ok(ip) => (ip, if ip.is_ipv4() { 32 } else { 128 }),
                Err(_) => {
                    // An IPv4 prefix written short: `1.2` is 1.2.0.0/16.
                    let parts: Vec<&str> = addr.trim_end_matches('.').split('.').collect();
                    if parts.is_empty() || parts.len() > 3 {
                        return Err(format!("not a network: {item}"));
                    }
                    let mut octets = [0u8; 4];
                    for (i, p) in parts.iter().enumerate() {
                        octets[i] = p.parse().map_err(|_| format!("not a network: {item}"))?;
                    }
                    (IpAddr::from(octets), (parts.len() * 8) as u8)
                }
            };
            let len = len.unwrap_or(implied);
            if len > if ip.is_ipv4() { 32 } else { 128 } {
                return Err(format!("prefix too long in {item}"));
            }
            out.push((include, ip, len));
        }
        Ok(Networks(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Some(true)` when the first entry that matches `ip` includes it,
    /// `Some(false)` when it excludes it, `None` when none matches.
    pub fn first_match(&self, ip: IpAddr) -> Option<bool> {
        self.0
            .iter()
            .find(|(_, net, len)| within(ip, *net, *len))
            .map(|(include, _, _)| *include)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.first_match(ip) == Some(true)
    }
}

fn within(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Whether an address is private, loopback or link-local (not on the
/// public Internet: RFC 1918, RFC 4193, RFC 6598).
pub fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || within(ip, IpAddr::from([100, 64, 0, 0]), 10)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || within(ip, "fc00::".parse().unwrap_or(ip), 7)
                || within(ip, "fe80::".parse().unwrap_or(ip), 10)
        }
    }
}

/// The operator's networks.
#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// Relays whose `Received:` lines are believed.
    pub trusted: Networks,
    /// The organisation's own MX and relays (trusted when `trusted` is
    /// not set).
    pub internal: Networks,
    /// Submission servers: the client of a hop they wrote logged in, so
    /// the hop before it is believed too.
    pub msa: Networks,
}

/// How many hops, from the newest, are facts: `ips` are the clients of
/// the hops, newest first (`None`: a hop with no address, which ends the
/// trusted part).
pub fn trusted_count(ips: &[Option<IpAddr>], config: &TrustConfig) -> usize {
    let explicit = if !config.trusted.is_empty() {
        Some(&config.trusted)
    } else if !config.internal.is_empty() {
        Some(&config.internal)
    } else {
        None
    };
    let mut through_msa = false;
    for (i, ip) in ips.iter().enumerate() {
        let Some(ip) = *ip else { return i };
        let trusted = through_msa
            || ip.is_loopback()
            || match explicit {
                Some(nets) => nets.contains(ip),
                None => private(ip),
            };
        if !trusted {
            return i;
        }
        through_msa = config.msa.contains(ip);
    }
    ips.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_first_match_wins() {
        let n = Networks::parse("!1.1.1.2 1.1/16, 2001:db8::/32").unwrap();
        assert!(n.contains(ip("1.1.200.3")));
        assert!(!n.contains(ip("1.1.1.2")));
        assert_eq!(n.first_match(ip("1.1.1.2")), Some(false));
        assert_eq!(n.first_match(ip("9.9.9.9")), None);
        assert!(n.contains(ip("2001:db8::7")));
        assert!(Networks::parse("1.2.3.4/33").is_err());
        assert!(Networks::parse("example.org").is_err());
        assert!(Networks::parse("1/8").unwrap().contains(ip("1.200.0.1")));
    }

    #[test]
    fn without_configuration_private_hops_are_trusted_up_to_the_first_public() {
        let hops = [
            Some(ip("10.0.0.1")),
            Some(ip("192.0.2.1")),
            Some(ip("10.0.0.2")),
        ];
        assert_eq!(trusted_count(&hops, &TrustConfig::default()), 1);
        assert_eq!(
            trusted_count(&[None, Some(ip("10.0.0.1"))], &TrustConfig::default()),
            0
        );
    }
}
