//! `postamt domain check DOMAIN`: the DNS records a local domain should
//! publish for mail to reach it and for its own mail to pass SPF, DKIM and
//! DMARC elsewhere — and what DNS says now, each marked ok or wrong.

use postamt_auth::dns::{Dns, DnsError};
use postamt_auth::{dmarc, spf};

/// One record: what to publish, what DNS has, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: &'static str,
    pub ok: bool,
    /// The record to publish, in zone-file form.
    pub publish: String,
    /// What DNS answered (one line per record), or why nothing.
    pub found: Vec<String>,
    pub note: String,
}

fn found_or<T>(answer: &Result<Vec<T>, DnsError>, show: impl Fn(&T) -> String) -> Vec<String> {
    match answer {
        Ok(v) if v.is_empty() => vec!["(no record)".into()],
        Ok(v) => v.iter().map(show).collect(),
        Err(DnsError::NxDomain) => vec!["(the name does not exist)".into()],
        Err(DnsError::Temporary) => vec!["(DNS failed; try again)".into()],
    }
}

/// Checks `domain` against what this server needs: MX to `hostname`, one
/// SPF record, the DKIM record of the active key (`dkim`: selector and
/// record), a DMARC record.
pub async fn check<D: Dns>(
    dns: &D,
    domain: &str,
    hostname: &str,
    dkim: Option<(String, String)>,
) -> Vec<Finding> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut out = Vec::new();

    let mx = dns.mx(&domain).await;
    let ok = mx.as_ref().is_ok_and(|v| {
        v.iter()
            .any(|(_, x)| x.trim_end_matches('.').eq_ignore_ascii_case(&host))
    });
    out.push(Finding {
        what: "MX",
        ok,
        publish: format!("{domain}. MX 10 {host}."),
        found: found_or(&mx, |(p, x)| format!("{domain}. MX {p} {x}")),
        note: if ok {
            String::new()
        } else {
            format!("mail for {domain} must be sent to {host} (RFC 5321 §5.1)")
        },
    });

    let txt = dns.txt(&domain).await;
    let spf_records: Vec<String> = txt
        .as_ref()
        .map(|v| v.iter().filter(|t| spf::is_spf1(t)).cloned().collect())
        .unwrap_or_default();
    let (ok, note) = match spf_records.as_slice() {
        [] => (
            false,
            "no SPF record: receivers cannot tell your servers from forgers".to_string(),
        ),
        [one] => match spf::parse(one) {
            Err(e) => (false, format!("the record is invalid: {e}")),
            Ok(_)
                if one
                    .split(' ')
                    .any(|t| t.eq_ignore_ascii_case("+all") || t.eq_ignore_ascii_case("all")) =>
            {
                (
                    false,
                    "\"+all\" lets every host on the internet send as you".into(),
                )
            }
            Ok(_) => (true, String::new()),
        },
        _ => (
            false,
            "more than one SPF record is a permerror everywhere (RFC 7208 §4.5)".into(),
        ),
    };
    out.push(Finding {
        what: "SPF",
        ok,
        publish: format!("{domain}. TXT \"v=spf1 mx -all\""),
        found: if spf_records.is_empty() {
            found_or(&txt.map(|_| Vec::<String>::new()), |s| s.clone())
        } else {
            spf_records
                .iter()
                .map(|r| format!("{domain}. TXT \"{r}\""))
                .collect()
        },
        note,
    });

    match dkim {
        None => out.push(Finding {
            what: "DKIM",
            ok: false,
            publish: String::new(),
            found: vec![],
            note: format!("no signing key: make one with `postamt dkim keygen {domain}`"),
        }),
        Some((selector, record)) => {
            let name = format!("{selector}._domainkey.{domain}");
            let answer = dns.txt(&name).await;
            let squeeze = |s: &str| s.split_whitespace().collect::<String>();
            let ok = answer
                .as_ref()
                .is_ok_and(|v| v.iter().any(|t| squeeze(t) == squeeze(&record)));
            out.push(Finding {
                what: "DKIM",
                ok,
                publish: format!("{name}. TXT \"{record}\""),
                found: found_or(&answer, |t| format!("{name}. TXT \"{t}\"")),
                note: if ok {
                    String::new()
                } else {
                    "the active key's record is not published: mail signed with it fails DKIM"
                        .into()
                },
            });
        }
    }

    let name = format!("_dmarc.{domain}");
    let answer = dns.txt(&name).await;
    let records: Vec<dmarc::Record> = answer
        .as_ref()
        .map(|v| v.iter().filter_map(|t| dmarc::parse(t)).collect())
        .unwrap_or_default();
    let (ok, note) = match records.as_slice() {
        [] => (
            false,
            "no DMARC record: a forged From: of your domain is not refused anywhere".to_string(),
        ),
        [r] => (
            true,
            format!(
                "policy {}{}",
                r.p.as_str(),
                if r.testing { " (testing)" } else { "" }
            ),
        ),
        _ => (
            false,
            "several DMARC records: receivers ignore them all (RFC 9989 §4.10)".into(),
        ),
    };
    out.push(Finding {
        what: "DMARC",
        ok,
        publish: format!("{name}. TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}\""),
        found: found_or(&answer, |t| format!("{name}. TXT \"{t}\"")),
        note,
    });
    out
}

/// The findings as the command prints them.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let mark = if f.ok { "ok" } else { "wrong" };
        s.push_str(&format!("{:<6} {mark}\n", f.what));
        if !f.publish.is_empty() {
            s.push_str(&format!("       publish: {}\n", f.publish));
        }
        for line in &f.found {
            s.push_str(&format!("       found:   {line}\n"));
        }
        if !f.note.is_empty() {
            s.push_str(&format!("       {}\n", f.note));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use postamt_auth::dns::{Record, Zone};

    fn run(zone: &Zone, dkim: Option<(String, String)>) -> Vec<Finding> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(check(zone, "example.org", "mail.example.org", dkim))
    }

    #[test]
    fn a_domain_set_up_right_is_ok_everywhere() {
        let mut z = Zone::new();
        z.add(
            "example.org",
            Some(Record::Mx(10, "mail.example.org.".into())),
        );
        z.add("example.org", Some(Record::Txt("v=spf1 mx -all".into())));
        z.add(
            "s1._domainkey.example.org",
            Some(Record::Txt("v=DKIM1; k=ed25519; p=abc".into())),
        );
        z.add(
            "_dmarc.example.org",
            Some(Record::Txt("v=DMARC1; p=reject".into())),
        );
        let f = run(&z, Some(("s1".into(), "v=DKIM1; k=ed25519; p=abc".into())));
        assert!(f.iter().all(|f| f.ok), "{}", render(&f));
        assert!(render(&f).contains("DMARC  ok\n"));
    }

    #[test]
    fn missing_or_wrong_records_are_named() {
        let mut z = Zone::new();
        z.add("example.org", Some(Record::Mx(10, "other.example.".into())));
        z.add("example.org", Some(Record::Txt("v=spf1 +all".into())));
        z.add("example.org", Some(Record::Txt("v=spf1 mx -all".into())));
        let f = run(&z, None);
        assert_eq!(f.iter().filter(|f| f.ok).count(), 0, "{}", render(&f));
        let text = render(&f);
        assert!(text.contains("more than one SPF record"), "{text}");
        assert!(text.contains("postamt dkim keygen example.org"), "{text}");
        assert!(
            text.contains("found:   (the name does not exist)"),
            "{text}"
        );
        assert!(text.contains("publish: _dmarc.example.org. TXT"), "{text}");
    }
}
