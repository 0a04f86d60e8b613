//! Arbitrary bytes as SMTP command lines: through the parser, and through
//! the session core, with every step performed as a willing world would
//! (lookups answered from a tiny directory, logins accepted, TLS started,
//! messages stored) and content read from the same bytes. Nothing may
//! panic, and every reply is one or more CRLF-terminated lines with a
//! 3-digit code (`-` after the code on all but the last line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postamt_server::Login;
use postamt_smtp::command::parse;
use postamt_smtp::core::{
    Answer, CoreConfig, DmarcPolicy, Lookup, Mode, Outcome, Resolution, SmtpCore, SpfPolicy,
    SpoofPolicy, Step,
};
use postamt_smtp::reply::Reply;
use postamt_store::{Account, AccountId};

fn directory(lookup: &Lookup) -> Answer {
    match lookup {
        Lookup::LocalDomains => Answer::LocalDomains(Ok(vec!["example.test".into()])),
        Lookup::Resolve(a) => Answer::Resolved(match a.rsplit_once('@') {
            Some((l, d)) if d.eq_ignore_ascii_case("example.test") => match l.bytes().next() {
                Some(b'n') => Resolution::Unknown,
                Some(b'x') => Resolution::Failed,
                first => Resolution::Local {
                    accounts: vec![(a.to_ascii_lowercase(), AccountId(1))],
                    forward: if first == Some(b'f') {
                        vec!["carol@remote.test".into()]
                    } else {
                        vec![]
                    },
                    full: first == Some(b'q'),
                },
            },
            _ => Resolution::NotLocal,
        }),
        // Verification: verdicts that depend on the names asked about, so
        // every disposition (mark, refuse, defer, quarantine) is reached.
        Lookup::Spf(q) => Answer::Spf(postamt_auth::spf::Verdict {
            result: match q.mail_from.len() % 4 {
                0 => postamt_auth::spf::SpfResult::Pass,
                1 => postamt_auth::spf::SpfResult::Fail,
                2 => postamt_auth::spf::SpfResult::TempError,
                _ => postamt_auth::spf::SpfResult::None,
            },
            domain: q.mail_from.clone(),
            explanation: Some("see (http://x)\r\n".into()),
            reason: format!("reason with (parens) and \\ {}", q.helo),
        }),
        Lookup::Dkim => Answer::Dkim(vec![postamt_auth::dkim::Verdict {
            domain: "d(\"x".into(),
            selector: "s 1".into(),
            algorithm: "rsa-sha256",
            result: "pass".into(),
            detail: String::new(),
            signs_from: true,
        }]),
        Lookup::Arc => Answer::Arc(postamt_auth::arc::Verdict {
            result: "pass",
            sealers: vec!["lists.test".into()],
            detail: String::new(),
        }),
        Lookup::Dmarc(q) => Answer::Dmarc(postamt_auth::dmarc::Verdict {
            result: if q.from_domain.len() % 2 == 0 {
                postamt_auth::dmarc::DmarcResult::Fail
            } else {
                postamt_auth::dmarc::DmarcResult::TempError
            },
            policy: [
                None,
                Some(postamt_auth::dmarc::Policy::Reject),
                Some(postamt_auth::dmarc::Policy::Quarantine),
            ][q.from_domain.len() % 3],
            testing: false,
            policy_domain: q.from_domain.clone(),
            discovery: "treewalk",
            record: None,
            dkim: postamt_auth::dmarc::Alignment::None,
            spf: postamt_auth::dmarc::Alignment::NotAligned,
            reason: "not aligned".into(),
        }),
    }
}

fn check(replies: &[Reply]) {
    for r in replies {
        let mut out = Vec::new();
        r.render(&mut out);
        let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
        assert!(!lines.is_empty());
        for (i, line) in lines.iter().enumerate() {
            assert!(line.len() >= 5 && line.ends_with(b"\r\n"), "{line:?}");
            assert!(!line[..line.len() - 2].contains(&b'\r'), "{line:?}");
            assert!(line[..3].iter().all(u8::is_ascii_digit), "{line:?}");
            assert_eq!(
                line[3],
                if i + 1 == lines.len() { b' ' } else { b'-' },
                "{line:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for line in data.split_inclusive(|&b| b == b'\n') {
        let _ = parse(line);
    }
    let Some((&knobs, mut rest)) = data.split_first() else {
        return;
    };
    let mode = [Mode::Inbound, Mode::Submission, Mode::Lmtp][knobs as usize % 3];
    let mut core = SmtpCore::new(CoreConfig {
        mode,
        hostname: "mx.test".into(),
        peer: "192.0.2.7".parse().unwrap(),
        tls: (knobs & 4 != 0).then(|| ("TLSv1_3".into(), "TLS13_AES_128_GCM_SHA256".into())),
        plaintext_ok: knobs & 8 != 0,
        max_message_size: 4096,
        max_header_size: 512,
        max_recipients: 5,
        max_errors: 50,
        spoof_policy: [SpoofPolicy::Reject, SpoofPolicy::Mark, SpoofPolicy::Off]
            [(knobs >> 4) as usize % 3],
        max_received: 3,
        spf: [SpfPolicy::Off, SpfPolicy::Mark, SpfPolicy::Reject][(knobs >> 6) as usize % 3],
        dkim: knobs & 2 != 0,
        dmarc: [DmarcPolicy::Off, DmarcPolicy::Mark, DmarcPolicy::Enforce][knobs as usize % 3],
        trusted_arc_sealers: if knobs & 1 != 0 {
            vec!["lists.test".into()]
        } else {
            vec![]
        },
        dmarc_reports: knobs & 2 != 0,
    });
    let mut step = core.greeting();
    loop {
        step = match step {
            Step::Reply(replies) => {
                check(&replies);
                let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                    return;
                };
                let (line, after) = rest.split_at(end + 1);
                rest = after;
                if line.len() > 512 {
                    core.too_long()
                } else {
                    core.line(line)
                }
            }
            Step::Close(replies) => return check(&replies),
            Step::StartTls(reply) => {
                check(&[reply]);
                core.tls_started(("TLSv1_3".into(), "TLS13_AES_128_GCM_SHA256".into()), true);
                Step::Reply(vec![])
            }
            Step::ReadData(reply) => {
                check(&[reply]);
                Step::ReadChunk { size: 0 }
            }
            Step::ReadChunk { .. } => {
                let n = core.content(rest);
                rest = &rest[n..];
                if core.content_done() {
                    core.content_end(1_796_461_377, "ID")
                } else {
                    core.timeout()
                }
            }
            Step::Authenticate { user, .. } => core.login_result(Login::Ok(Account {
                id: AccountId(1),
                address: user,
                quota_bytes: None,
                used_bytes: 0,
            })),
            Step::Lookup(lookup) => core.answer(directory(&lookup)),
            Step::Deliver(d) => {
                assert!(d.content.starts_with(b"Received: from "));
                let outcomes: Vec<Outcome> = (0..d.batches.len())
                    .map(|i| match (i + knobs as usize) % 3 {
                        0 => Outcome::Stored { queue_id: None },
                        1 => Outcome::OverQuota,
                        _ => Outcome::Failed,
                    })
                    .collect();
                core.delivered(&outcomes)
            }
        };
    }
});
