//! The spoofing lab of `serve --dev`: a small authoritative DNS on
//! loopback (port 2053, UDP and TCP) that publishes SPF, DKIM and DMARC
//! records for a few demo domains, so that the playground can show a
//! forged sender being caught without the internet.
//!
//! | domain | what it publishes |
//! | --- | --- |
//! | `bank.test` | SPF `-all` for 192.0.2.25 only, a DKIM key (`lab`), DMARC `p=reject` |
//! | `shop.test` | SPF `~all` for 192.0.2.26, DMARC `p=none` (report only) |
//! | `friend.test` | SPF for 127.0.0.1 (this machine), DMARC `p=reject` |
//! | `lists.test` | a mailing list on this machine: SPF for 127.0.0.1, a DKIM key (`lab`) it seals with (ARC, RFC 8617), DMARC `p=none`; the playground trusts it as a sealer |
//!
//! The playground's server asks this DNS (`[dns] nameservers`), so mail on
//! port 2025 claiming `bank.test` fails SPF (it comes from 127.0.0.1) and
//! DMARC rejects it; signed with the lab key (`postamt dkim sign --domain
//! bank.test --selector lab FILE`), the same message passes. Passed on by
//! the list, which tags the subject (`postamt arc seal --domain lists.test
//! --subject-prefix "[staff] " FILE`), the bank's signature breaks, DMARC
//! fails, and the trusted seal of lists.test excuses it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record as Rr, RecordType};
use postamt_auth::dns::{Dns, DnsError, Record, Zone};
use postamt_relay::dkim;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Where the lab DNS listens.
pub const PORT: u16 = 2053;

/// The lab domains with a DKIM key (the bank signs, the list seals), and
/// their selector.
pub const SIGNED_DOMAINS: &[&str] = &["bank.test", "lists.test"];
pub const SELECTOR: &str = "lab";

/// The lab's mailing list, trusted as an ARC sealer by the playground.
pub const LIST_DOMAIN: &str = "lists.test";

/// Makes the lab's DKIM keys on first start (Ed25519, RFC 8463: quick to
/// make, short to read in a transcript).
pub fn ensure_key(dkim_dir: &Path) -> Result<()> {
    let have = dkim::list(dkim_dir);
    for domain in SIGNED_DOMAINS {
        if have.iter().any(|(d, s, _)| d == domain && s == SELECTOR) {
            continue;
        }
        dkim::generate(dkim_dir, domain, SELECTOR, dkim::Algorithm::Ed25519)
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("making the lab's DKIM key for {domain}"))?;
    }
    Ok(())
}

/// The lab's zone: the table in the module documentation, with the DKIM
/// record of the key in `dkim_dir`.
pub fn zone(dkim_dir: &Path) -> Zone {
    let mut z = Zone::new();
    let mut txt = |name: &str, value: &str| z.add(name, Some(Record::Txt(value.into())));
    txt("bank.test", "v=spf1 ip4:192.0.2.25 -all");
    txt(
        "_dmarc.bank.test",
        "v=DMARC1; p=reject; rua=mailto:dmarc@bank.test",
    );
    txt("shop.test", "v=spf1 ip4:192.0.2.26 ~all");
    txt("_dmarc.shop.test", "v=DMARC1; p=none");
    txt("friend.test", "v=spf1 ip4:127.0.0.1 -all");
    txt("_dmarc.friend.test", "v=DMARC1; p=reject");
    txt(LIST_DOMAIN, "v=spf1 ip4:127.0.0.1 -all");
    txt(&format!("_dmarc.{LIST_DOMAIN}"), "v=DMARC1; p=none");
    for (domain, selector, record) in dkim::list(dkim_dir) {
        if SIGNED_DOMAINS.contains(&domain.as_str()) {
            txt(&format!("{selector}._domainkey.{domain}"), &record);
        }
    }
    let a = |z: &mut Zone, name: &str, ip: &str| z.add(name, Some(Record::A(ip.parse().unwrap())));
    a(&mut z, "bank.test", "192.0.2.25");
    a(&mut z, "mail.bank.test", "192.0.2.25");
    a(&mut z, "shop.test", "192.0.2.26");
    a(&mut z, "friend.test", "127.0.0.1");
    a(&mut z, LIST_DOMAIN, "127.0.0.1");
    z.add("bank.test", Some(Record::Mx(10, "mail.bank.test".into())));
    z
}

/// Serves `zone` on `addr` over UDP and TCP until the runtime ends.
pub async fn serve(zone: Zone, addr: SocketAddr) -> Result<()> {
    let zone = Arc::new(zone);
    let udp = UdpSocket::bind(addr)
        .await
        .with_context(|| format!("lab DNS on udp {addr}"))?;
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("lab DNS on tcp {addr}"))?;
    let z = Arc::clone(&zone);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            if let Some(reply) = answer(&z, &buf[..n], 1232).await {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                continue;
            };
            let z = Arc::clone(&zone);
            tokio::spawn(async move {
                // RFC 1035 §4.2.2: a two-octet length, then the message.
                for _ in 0..16 {
                    let Ok(len) = s.read_u16().await else { return };
                    let mut q = vec![0u8; len as usize];
                    if s.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    let Some(reply) = answer(&z, &q, 65535).await else {
                        return;
                    };
                    let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&reply);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(())
}

/// The reply to one query, or `None` for what is not a query.
async fn answer(zone: &Zone, query: &[u8], max: usize) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    if q.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(q.metadata.id, q.metadata.op_code);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = q.metadata.recursion_desired;
    let Some(question) = q.queries.first().cloned() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply.to_vec().ok();
    };
    let name = question.name().to_ascii();
    let name = name.trim_end_matches('.');
    let owner = question.name().clone();
    let records: Result<Vec<RData>, DnsError> = match question.query_type() {
        RecordType::TXT => zone.txt(name).await.map(|v| {
            v.into_iter()
                .map(|t| {
                    // One TXT string holds at most 255 octets (RFC 1035 §3.3).
                    let chunks = t
                        .as_bytes()
                        .chunks(255)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    RData::TXT(TXT::new(chunks))
                })
                .collect()
        }),
        RecordType::A => zone
            .a(name)
            .await
            .map(|v| v.into_iter().map(|a| RData::A(A(a))).collect()),
        RecordType::AAAA => zone
            .aaaa(name)
            .await
            .map(|v| v.into_iter().map(|a| RData::AAAA(AAAA(a))).collect()),
        RecordType::MX => zone.mx(name).await.map(|v| {
            v.into_iter()
                .filter_map(|(p, x)| {
                    Some(RData::MX(MX::new(
                        p,
                        Name::from_ascii(format!("{x}.")).ok()?,
                    )))
                })
                .collect()
        }),
        // Other types: the name's existence decides NOERROR or NXDOMAIN.
        _ => zone.txt(name).await.map(|_| Vec::new()),
    };
    reply.add_query(question);
    match records {
        Ok(rdata) => {
            for r in rdata {
                reply.add_answer(Rr::from_rdata(owner.clone(), 300, r));
            }
        }
        Err(DnsError::NxDomain) => reply.metadata.response_code = ResponseCode::NXDomain,
        Err(DnsError::Temporary) => reply.metadata.response_code = ResponseCode::ServFail,
    }
    let bytes = reply.to_vec().ok()?;
    if bytes.len() > max {
        let mut t = reply.truncate();
        t.answers.clear();
        return t.to_vec().ok();
    }
    Some(bytes)
}
