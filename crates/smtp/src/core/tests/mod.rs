//! The core without sockets, store or tokio: lines in, steps out, every
//! lookup answered by a small directory. Test names carry the RFC section
//! of the rule they check.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use postamt_auth::spf::{SpfResult, Verdict};
use postamt_server::Login;
use postamt_store::{Account, AccountId, QueueId};

use super::*;

const NOW: u64 = 1_796_461_377;
const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);

fn config(mode: Mode) -> CoreConfig {
    CoreConfig {
        mode,
        hostname: "mx.test".into(),
        peer: "192.0.2.7".parse().unwrap(),
        tls: None,
        plaintext_ok: true,
        max_message_size: 1000,
        max_header_size: 200,
        max_recipients: 3,
        max_errors: 10,
        spoof_policy: SpoofPolicy::Reject,
        max_received: 5,
        spf: SpfPolicy::Off,
        dkim: false,
        dmarc: DmarcPolicy::Off,
        trusted_arc_sealers: Vec::new(),
        dmarc_reports: false,
    }
}

/// A core past its greeting.
fn started(config: CoreConfig) -> SmtpCore {
    let mut core = SmtpCore::new(config);
    let greeting = wire(&core.greeting());
    assert!(greeting.starts_with("220 mx.test "), "{greeting}");
    core
}

fn core(mode: Mode) -> SmtpCore {
    started(config(mode))
}

fn account(address: &str, id: AccountId) -> Account {
    Account {
        id,
        address: address.into(),
        quota_bytes: None,
        used_bytes: 0,
    }
}

/// The directory: `example.test` is local, with alice and bob, the alias
/// `sales@` → alice, `fwd@` → carol@remote.test, `both@` → alice, bob and
/// carol@remote.test, and `full@`, an account over quota; `broken@` makes
/// the store fail.
fn directory(lookup: &Lookup) -> Answer {
    match lookup {
        // DMARC: bank.test says reject, shop.test quarantine; both fail.
        Lookup::Dmarc(q) => {
            use postamt_auth::dmarc::{Alignment, DmarcResult, Policy, Verdict};
            let policy = match q.from_domain.as_str() {
                "bank.test" => Some(Policy::Reject),
                "shop.test" => Some(Policy::Quarantine),
                _ => None,
            };
            Answer::Dmarc(Verdict {
                result: if policy.is_some() {
                    DmarcResult::Fail
                } else {
                    DmarcResult::None
                },
                policy,
                testing: false,
                policy_domain: q.from_domain.clone(),
                discovery: "treewalk",
                // Both ask for aggregate reports (RFC 9990).
                record: policy.map(|p| {
                    postamt_auth::dmarc::parse(&format!(
                        "v=DMARC1; p={}; rua=mailto:dmarc@{}",
                        p.as_str(),
                        q.from_domain
                    ))
                    .unwrap()
                }),
                dkim: Alignment::None,
                spf: Alignment::NotAligned,
                reason: format!("nothing aligned with {}", q.from_domain),
            })
        }
        // ARC: a passing chain sealed by lists.test for mail via the list.
        Lookup::Arc => Answer::Arc(postamt_auth::arc::Verdict {
            result: "pass",
            sealers: vec!["lists.test".into()],
            detail: String::new(),
        }),
        // DKIM: one passing signature by remote.test.
        Lookup::Dkim => Answer::Dkim(vec![postamt_auth::dkim::Verdict {
            domain: "remote.test".into(),
            selector: "s1".into(),
            algorithm: "ed25519-sha256",
            result: "pass".into(),
            detail: String::new(),
            signs_from: true,
        }]),
        // SPF as a test DNS would answer it: by the sender's domain.
        Lookup::Spf(q) if q.helo_identity => Answer::Spf(Verdict {
            result: SpfResult::None,
            domain: q.helo.clone(),
            explanation: None,
            reason: format!("{} publishes no SPF record", q.helo),
        }),
        Lookup::Spf(q) => {
            let domain = q.mail_from.rsplit_once('@').map_or("", |(_, d)| d);
            let result = match domain {
                "forged.test" => SpfResult::Fail,
                "slow.test" => SpfResult::TempError,
                _ => SpfResult::Pass,
            };
            Answer::Spf(Verdict {
                result,
                domain: domain.to_string(),
                explanation: None,
                reason: format!("{domain}: decided for {}", q.ip),
            })
        }
        Lookup::LocalDomains => Answer::LocalDomains(Ok(vec!["example.test".into()])),
        Lookup::Resolve(a) => {
            let a = a.to_ascii_lowercase();
            let Some((local, domain)) = a.rsplit_once('@') else {
                return Answer::Resolved(Resolution::Unknown);
            };
            if domain != "example.test" {
                return Answer::Resolved(Resolution::NotLocal);
            }
            let alice = ("alice@example.test".to_string(), ALICE);
            let bob = ("bob@example.test".to_string(), BOB);
            let local_to =
                |accounts: Vec<(String, AccountId)>, forward: &[&str]| Resolution::Local {
                    accounts,
                    forward: forward.iter().map(|f| f.to_string()).collect(),
                    full: false,
                };
            Answer::Resolved(match local {
                "alice" | "sales" | "postmaster" => local_to(vec![alice], &[]),
                "bob" => local_to(vec![bob], &[]),
                "fwd" => local_to(vec![], &["carol@remote.test"]),
                "both" => local_to(vec![alice, bob], &["carol@remote.test"]),
                "full" => Resolution::Local {
                    accounts: vec![("full@example.test".into(), AccountId(3))],
                    forward: vec![],
                    full: true,
                },
                "broken" => Resolution::Failed,
                _ => Resolution::Unknown,
            })
        }
    }
}

/// The replies a step sends, as on the wire.
fn wire(step: &Step) -> String {
    let mut out = Vec::new();
    match step {
        Step::Reply(rs) | Step::Close(rs) => rs.iter().for_each(|r| r.render(&mut out)),
        Step::ReadData(r) | Step::StartTls(r) => r.render(&mut out),
        _ => {}
    }
    String::from_utf8(out).unwrap()
}

/// Answers lookups until the core wants something else.
fn answered(core: &mut SmtpCore, mut step: Step) -> Step {
    while let Step::Lookup(l) = &step {
        step = core.answer(directory(l));
    }
    step
}

fn send(core: &mut SmtpCore, line: &str) -> Step {
    let step = core.line(format!("{line}\r\n").as_bytes());
    answered(core, step)
}

/// Sends a line; its replies must start with `expect`.
#[track_caller]
fn cmd(core: &mut SmtpCore, line: &str, expect: &str) -> String {
    let w = wire(&send(core, line));
    assert!(
        w.starts_with(expect),
        "{line}: expected {expect:?}, got {w:?}"
    );
    w
}

/// DATA with `content` (dot-stuffed, without the final dot line): the
/// step after the end of the message, lookups answered.
fn data(core: &mut SmtpCore, content: &str) -> Step {
    let step = send(core, "DATA");
    assert!(matches!(step, Step::ReadData(_)), "{step:?}");
    let input = format!("{content}.\r\n");
    assert_eq!(core.content(input.as_bytes()), input.len());
    assert!(core.content_done());
    let step = core.content_end(NOW, "ID1");
    answered(core, step)
}

/// A BDAT chunk: the step after it.
fn bdat(core: &mut SmtpCore, chunk: &str, last: bool) -> Step {
    let command = format!("BDAT {}{}", chunk.len(), if last { " LAST" } else { "" });
    let step = send(core, &command);
    assert!(matches!(step, Step::ReadChunk { size } if size == chunk.len() as u64));
    assert_eq!(
        core.content(format!("{chunk}NOOP\r\n").as_bytes()),
        chunk.len()
    );
    assert!(core.content_done());
    let step = core.content_end(NOW, "ID1");
    answered(core, step)
}

#[track_caller]
fn delivery(step: Step) -> Delivery {
    match step {
        Step::Deliver(d) => d,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

fn transaction(core: &mut SmtpCore, rcpts: &[&str]) {
    cmd(
        core,
        "EHLO client.test",
        "250-mx.test greets client.test [192.0.2.7]",
    );
    cmd(core, "MAIL FROM:<carol@remote.test>", "250 2.1.0");
    for r in rcpts {
        cmd(core, &format!("RCPT TO:<{r}>"), "250 2.1.5");
    }
}

/// A submission core with alice logged in.
fn logged_in() -> SmtpCore {
    let mut c = core(Mode::Submission);
    cmd(&mut c, "EHLO laptop.test", "250");
    let step = send(
        &mut c,
        &format!("AUTH PLAIN {}", B64.encode("\0alice@example.test\0pw")),
    );
    let Step::Authenticate { user, password } = step else {
        panic!("{step:?}")
    };
    assert_eq!(
        (user.as_str(), password.expose().as_str()),
        ("alice@example.test", "pw")
    );
    let ok = core_login(&mut c, Login::Ok(account("alice@example.test", ALICE)));
    assert_eq!(ok, "235 2.7.0 Authentication successful\r\n");
    c
}

fn core_login(core: &mut SmtpCore, result: Login<Account>) -> String {
    wire(&core.login_result(result))
}

#[test]
fn rfc5321_4_3_1_greeting() {
    let mut c = SmtpCore::new(config(Mode::Inbound));
    assert_eq!(wire(&c.greeting()), "220 mx.test ESMTP postamt ready\r\n");
    let mut c = SmtpCore::new(config(Mode::Lmtp));
    assert_eq!(wire(&c.greeting()), "220 mx.test LMTP postamt ready\r\n");
}

#[test]
fn rfc5321_4_1_1_1_ehlo_advertises_extensions_in_order() {
    let mut c = core(Mode::Inbound);
    assert_eq!(
        cmd(&mut c, "EHLO client.test", "250"),
        "250-mx.test greets client.test [192.0.2.7]\r\n250-PIPELINING\r\n250-SIZE 1000\r\n\
         250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n\
         250-DSN\r\n250 STARTTLS\r\n"
    );
    assert_eq!(cmd(&mut c, "HELO client.test", "250"), "250 mx.test\r\n");
    // Submission offers AUTH where passwords may be sent, until login.
    let mut c = core(Mode::Submission);
    let w = cmd(&mut c, "EHLO laptop.test", "250");
    assert!(
        w.ends_with("250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"),
        "{w}"
    );
    let mut c = logged_in();
    let w = cmd(&mut c, "EHLO laptop.test", "250");
    assert!(w.ends_with("250 STARTTLS\r\n"), "{w}");
    let mut c = started(CoreConfig {
        plaintext_ok: false,
        ..config(Mode::Submission)
    });
    let w = cmd(&mut c, "EHLO laptop.test", "250");
    assert!(w.ends_with("250 STARTTLS\r\n"), "{w}");
    // Under TLS from the start (port 465): no STARTTLS.
    let mut c = started(CoreConfig {
        tls: Some(("TLSv1_3".into(), "TLS13_AES_128_GCM_SHA256".into())),
        ..config(Mode::Submission)
    });
    let w = cmd(&mut c, "EHLO laptop.test", "250");
    assert!(w.ends_with("250-DSN\r\n250 AUTH PLAIN LOGIN\r\n"), "{w}");
}

#[test]
fn rfc5321_4_1_4_mail_before_helo_is_503() {
    let mut c = core(Mode::Inbound);
    cmd(
        &mut c,
        "MAIL FROM:<a@remote.test>",
        "503 5.5.1 Send HELO/EHLO first",
    );
    let mut c = core(Mode::Lmtp);
    cmd(
        &mut c,
        "MAIL FROM:<a@remote.test>",
        "503 5.5.1 Send LHLO first",
    );
}

#[test]
fn rfc5321_4_1_4_nested_mail_is_503() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &[]);
    cmd(
        &mut c,
        "MAIL FROM:<a@remote.test>",
        "503 5.5.1 Nested MAIL command",
    );
}

#[test]
fn rfc5321_3_3_rcpt_and_data_need_mail() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "EHLO client.test", "250");
    cmd(
        &mut c,
        "RCPT TO:<alice@example.test>",
        "503 5.5.1 Need MAIL before RCPT",
    );
    cmd(
        &mut c,
        "DATA",
        "503 5.5.1 Need MAIL and RCPT before DATA or BDAT",
    );
}

#[test]
fn rfc2920_3_1_data_after_only_failed_rcpts_is_554() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &[]);
    cmd(&mut c, "RCPT TO:<nobody@example.test>", "550 5.1.1");
    cmd(&mut c, "DATA", "554 5.5.1 No valid recipients");
    // The transaction stays: a good recipient can still be added.
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250 2.1.5");
    cmd(&mut c, "DATA", "354 End data with <CR><LF>.<CR><LF>");
}

#[test]
fn rfc5321_4_1_1_5_rset_and_a_new_greeting_end_the_transaction() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &["alice@example.test"]);
    cmd(&mut c, "RSET", "250 2.0.0 Ok");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "503");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "EHLO again.test", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "503");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "HELO again.test", "250 mx.test");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "503");
}

#[test]
fn rfc5321_4_1_1_2_esmtp_parameters_need_ehlo() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "HELO client.test", "250");
    for p in ["SMTPUTF8", "BODY=8BITMIME", "RET=HDRS", "ENVID=x"] {
        cmd(
            &mut c,
            &format!("MAIL FROM:<a@remote.test> {p}"),
            "555 5.5.4 MAIL parameters need EHLO",
        );
    }
    // SIZE alone is let through after HELO, as before.
    cmd(&mut c, "MAIL FROM:<a@remote.test> SIZE=10", "250");
    cmd(
        &mut c,
        "RCPT TO:<alice@example.test> NOTIFY=SUCCESS",
        "555 5.5.4 RCPT parameters need EHLO",
    );
}

#[test]
fn rfc1870_declared_size_over_the_limit_is_552() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<a@remote.test> SIZE=1001", "552 5.3.4");
    cmd(&mut c, "MAIL FROM:<a@remote.test> SIZE=1000", "250");
}

#[test]
fn rfc6531_utf8_addresses_need_smtputf8() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "EHLO client.test", "250");
    cmd(&mut c, "MAIL FROM:<jörg@remote.test>", "553 5.6.7");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<jörg@example.test>", "553 5.6.7");
    cmd(&mut c, "RSET", "250");
    cmd(&mut c, "MAIL FROM:<jörg@remote.test> SMTPUTF8", "250");
    cmd(&mut c, "RCPT TO:<jörg@example.test>", "550 5.1.1");
}

#[test]
fn rfc5321_4_5_3_1_10_recipient_limit_is_452() {
    let mut c = core(Mode::Inbound);
    transaction(
        &mut c,
        &[
            "alice@example.test",
            "bob@example.test",
            "sales@example.test",
        ],
    );
    cmd(
        &mut c,
        "RCPT TO:<alice@example.test>",
        "452 4.5.3 Too many recipients",
    );
}

#[test]
fn rfc5321_4_5_1_postmaster_without_a_domain() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &["Postmaster"]);
    let d = delivery(data(&mut c, "Subject: x\r\n\r\nhi\r\n"));
    assert_eq!(
        d.batches[0].local,
        [("alice@example.test".to_string(), ALICE)]
    );
    let text = String::from_utf8(d.content).unwrap();
    assert!(text.contains("\tfor <postmaster@example.test>;"), "{text}");
    // Without local domains there is no postmaster here.
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "EHLO x.test", "250");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    let step = c.line(b"RCPT TO:<postmaster>\r\n");
    assert!(matches!(step, Step::Lookup(Lookup::LocalDomains)));
    assert_eq!(
        wire(&c.answer(Answer::LocalDomains(Err(LookupFailed)))),
        "550 5.1.1 No such user here\r\n"
    );
}

#[test]
fn unknown_users_full_mailboxes_and_store_failures_at_rcpt_time() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &[]);
    cmd(
        &mut c,
        "RCPT TO:<nobody@example.test>",
        "550 5.1.1 No such user here",
    );
    cmd(
        &mut c,
        "RCPT TO:<full@example.test>",
        "452 4.2.2 Mailbox full",
    );
    cmd(&mut c, "RCPT TO:<broken@example.test>", "451 4.3.0");
    // The quoted local part is unquoted for the lookup.
    cmd(&mut c, "RCPT TO:<\"alice\"@example.test>", "250 2.1.5");
}

/// No open relay: without authentication only local recipients.
#[test]
fn no_open_relay_without_authentication() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &[]);
    cmd(
        &mut c,
        "RCPT TO:<victim@remote.test>",
        "554 5.7.1 Relay access denied",
    );
    cmd(
        &mut c,
        "RCPT TO:<victim%remote.test@example.test>",
        "550 5.1.1",
    );
    // Submission relays only for a logged-in user (and MAIL needs that).
    let mut c = logged_in();
    cmd(&mut c, "MAIL FROM:<alice@example.test>", "250");
    cmd(
        &mut c,
        "RCPT TO:<\"carol.x\"@remote.test> NOTIFY=FAILURE",
        "250 2.1.5",
    );
    let d = delivery(data(&mut c, "From: alice@example.test\r\n\r\nx\r\n"));
    let remote = &d.batches[0].remote;
    assert_eq!(
        remote[0].address, "\"carol.x\"@remote.test",
        "relayed as written"
    );
    assert_eq!(remote[0].notify.as_deref(), Some("FAILURE"));
}

#[test]
fn rfc6409_submission_without_auth_is_530() {
    let mut c = core(Mode::Submission);
    cmd(&mut c, "EHLO laptop.test", "250");
    cmd(
        &mut c,
        "MAIL FROM:<alice@example.test>",
        "530 5.7.0 Authentication required",
    );
}

/// RFC 6409 §8: the sender must be the user's: their own address (no
/// lookup), or an address that leads to them; never the null sender.
#[test]
fn rfc6409_8_sender_must_be_owned() {
    let mut c = logged_in();
    assert!(matches!(
        c.line(b"MAIL FROM:<ALICE@example.test>\r\n"),
        Step::Reply(_)
    ));
    cmd(&mut c, "RSET", "250");
    let step = c.line(b"MAIL FROM:<sales@example.test>\r\n");
    assert_eq!(
        format!("{step:?}"),
        format!(
            "{:?}",
            Step::Lookup(Lookup::Resolve("sales@example.test".into()))
        )
    );
    assert_eq!(wire(&answered(&mut c, step)), "250 2.1.0 Sender ok\r\n");
    cmd(&mut c, "RSET", "250");
    cmd(
        &mut c,
        "MAIL FROM:<bob@example.test>",
        "553 5.7.1 Sender address not owned",
    );
    cmd(
        &mut c,
        "MAIL FROM:<>",
        "553 5.7.1 The null sender is not for submission",
    );
    cmd(&mut c, "MAIL FROM:<x@remote.test>", "553 5.7.1");
}

#[test]
fn rfc6409_8_from_header_must_be_owned_and_id_and_date_are_added() {
    let mut c = logged_in();
    cmd(&mut c, "MAIL FROM:<alice@example.test>", "250");
    cmd(&mut c, "RCPT TO:<bob@example.test>", "250");
    let step = data(&mut c, "From: Bob <bob@example.test>\r\n\r\nforged\r\n");
    assert_eq!(
        wire(&step),
        "553 5.7.1 From: <bob@example.test> is not an address of yours\r\n"
    );
    cmd(&mut c, "MAIL FROM:<alice@example.test>", "250");
    cmd(&mut c, "RCPT TO:<bob@example.test>", "250");
    let d = delivery(data(
        &mut c,
        "From: sales@example.test\r\nSubject: s\r\n\r\nok\r\n",
    ));
    let text = String::from_utf8(d.content).unwrap();
    assert_eq!(
        text,
        "Received: from laptop.test ([192.0.2.7])\r\n\tby mx.test (postamt) with ESMTPA id ID1\r\n\
         \tfor <bob@example.test>;\r\n\tSat, 05 Dec 2026 09:02:57 +0000\r\n\
         Message-ID: <ID1@mx.test>\r\nDate: Sat, 05 Dec 2026 09:02:57 +0000\r\n\
         From: sales@example.test\r\nSubject: s\r\n\r\nok\r\n"
    );
    assert_eq!(
        d.envelope.authenticated_as.as_deref(),
        Some("alice@example.test")
    );
}

#[test]
fn spoofed_local_sender_on_port_25() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "EHLO x.test", "250");
    cmd(
        &mut c,
        "MAIL FROM:<alice@EXAMPLE.test>",
        "550 5.7.1 Unauthenticated sender claims the local domain EXAMPLE.test; use the submission port",
    );
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<bob@example.test>", "250");
    let step = data(&mut c, "From: alice@example.test\r\n\r\nx\r\n");
    assert!(wire(&step).starts_with("550 5.7.1 From: <alice@example.test> is in a local domain"));
    // Mark: delivered with a warning that names what was seen first.
    let mut c = started(CoreConfig {
        spoof_policy: SpoofPolicy::Mark,
        ..config(Mode::Inbound)
    });
    cmd(&mut c, "EHLO x.test", "250");
    cmd(&mut c, "MAIL FROM:<alice@example.test>", "250");
    cmd(&mut c, "RCPT TO:<bob@example.test>", "250");
    let d = delivery(data(&mut c, "From: alice@example.test\r\n\r\nx\r\n"));
    let text = String::from_utf8(d.content).unwrap();
    assert!(
        text.contains("\r\nX-Postamt-Warning: possibly forged: envelope sender <alice@example.test> claims a local domain, but the client did not authenticate\r\nFrom:"),
        "{text}"
    );
    // Off: nothing is looked up.
    let mut c = started(CoreConfig {
        spoof_policy: SpoofPolicy::Off,
        ..config(Mode::Inbound)
    });
    cmd(&mut c, "EHLO x.test", "250");
    assert!(matches!(
        c.line(b"MAIL FROM:<alice@example.test>\r\n"),
        Step::Reply(_)
    ));
}

#[test]
fn rfc4954_4_auth_plain_and_login() {
    let mut c = core(Mode::Submission);
    cmd(&mut c, "EHLO laptop.test", "250");
    assert!(matches!(send(&mut c, "AUTH PLAIN"), Step::Reply(ref r) if r[0].code == 334));
    assert!(c.in_sasl(), "the response is masked in transcripts");
    let step = send(&mut c, &B64.encode("\0alice@example.test\0pw"));
    assert!(matches!(step, Step::Authenticate { .. }));
    assert!(!c.in_sasl());
    assert_eq!(
        core_login(&mut c, Login::Failed),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    assert_eq!(cmd(&mut c, "AUTH LOGIN", "334"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        cmd(&mut c, &B64.encode("alice@example.test"), "334"),
        "334 UGFzc3dvcmQ6\r\n"
    );
    let step = send(&mut c, &B64.encode("pw"));
    assert!(matches!(step, Step::Authenticate { ref user, .. } if user == "alice@example.test"));
    assert_eq!(
        core_login(&mut c, Login::TempFail),
        "451 4.3.0 Temporary failure, try again later\r\n"
    );
    let step = send(
        &mut c,
        &format!("AUTH LOGIN {}", B64.encode("alice@example.test")),
    );
    assert_eq!(wire(&step), "334 UGFzc3dvcmQ6\r\n");
    assert!(matches!(
        send(&mut c, &B64.encode("pw")),
        Step::Authenticate { .. }
    ));
    assert_eq!(
        core_login(&mut c, Login::Ok(account("alice@example.test", ALICE))),
        "235 2.7.0 Authentication successful\r\n"
    );
    cmd(&mut c, "AUTH PLAIN x", "503 5.5.1 Already authenticated");
}

#[test]
fn rfc4954_4_auth_cancel_bad_base64_and_unknown_mechanisms() {
    let mut c = core(Mode::Submission);
    cmd(&mut c, "EHLO laptop.test", "250");
    cmd(&mut c, "AUTH LOGIN", "334");
    cmd(&mut c, "*", "501 5.0.0 Authentication cancelled");
    cmd(&mut c, "AUTH PLAIN not-base64!", "501 5.5.4 invalid base64");
    cmd(
        &mut c,
        "AUTH CRAM-MD5",
        "504 5.5.4 Unrecognized authentication mechanism",
    );
    // An overlong line ends the exchange; the next line is a command.
    cmd(&mut c, "AUTH PLAIN", "334");
    assert_eq!(wire(&c.too_long()), "500 5.5.2 Line too long\r\n");
    assert!(!c.in_sasl());
    cmd(&mut c, "NOOP", "250");
}

#[test]
fn rfc4954_auth_sequence_and_policy() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "EHLO x.test", "250");
    cmd(&mut c, "AUTH PLAIN x", "503 5.5.1 AUTH is not offered here");
    let mut c = core(Mode::Submission);
    cmd(&mut c, "AUTH PLAIN x", "503 5.5.1 Send HELO/EHLO first");
    cmd(&mut c, "HELO laptop.test", "250");
    cmd(&mut c, "AUTH PLAIN x", "503 5.5.1 Send HELO/EHLO first");
    // RFC 8314 §4: no passwords in the clear from afar.
    let mut c = started(CoreConfig {
        plaintext_ok: false,
        ..config(Mode::Submission)
    });
    cmd(&mut c, "EHLO laptop.test", "250");
    cmd(&mut c, "AUTH PLAIN x", "538 5.7.11");
}

#[test]
fn throttled_login_closes_with_421() {
    let mut c = core(Mode::Submission);
    cmd(&mut c, "EHLO laptop.test", "250");
    let step = send(
        &mut c,
        &format!("AUTH PLAIN {}", B64.encode("\0a@example.test\0x")),
    );
    assert!(matches!(step, Step::Authenticate { .. }));
    let step = c.login_result(Login::Throttled);
    assert!(matches!(step, Step::Close(_)));
    assert_eq!(
        wire(&step),
        "421 4.7.0 Too many failed logins from your address, try later\r\n"
    );
}

/// RFC 3207 §4.2: after the handshake the server forgets the greeting,
/// the transaction and the login; STARTTLS is not offered again.
#[test]
fn rfc3207_4_2_starttls_forgets_helo_and_login() {
    let mut c = logged_in();
    cmd(&mut c, "MAIL FROM:<alice@example.test>", "250");
    let step = send(&mut c, "STARTTLS");
    assert!(matches!(step, Step::StartTls(_)));
    assert_eq!(wire(&step), "220 2.0.0 Ready to start TLS\r\n");
    c.tls_started(("TLSv1_3".into(), "TLS13_AES_256_GCM_SHA384".into()), true);
    assert!(c.user().is_none());
    cmd(
        &mut c,
        "MAIL FROM:<alice@example.test>",
        "503 5.5.1 Send HELO/EHLO first",
    );
    let w = cmd(&mut c, "EHLO laptop.test", "250");
    assert!(w.ends_with("250-DSN\r\n250 AUTH PLAIN LOGIN\r\n"), "{w}");
    cmd(&mut c, "MAIL FROM:<alice@example.test>", "530");
    cmd(&mut c, "STARTTLS", "503 5.5.1 TLS already active");
}

#[test]
fn rfc2033_4_1_lmtp_greets_with_lhlo_only() {
    let mut c = core(Mode::Lmtp);
    cmd(
        &mut c,
        "HELO x.test",
        "503 5.5.1 This is LMTP: send LHLO (RFC 2033)",
    );
    cmd(
        &mut c,
        "EHLO x.test",
        "503 5.5.1 This is LMTP: send LHLO (RFC 2033)",
    );
    cmd(&mut c, "LHLO mta.test", "250-mx.test greets mta.test");
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "LHLO mta.test", "500 5.5.1 Command unrecognized");
}

#[test]
fn rfc2033_4_2_one_reply_per_recipient() {
    let mut c = core(Mode::Lmtp);
    cmd(&mut c, "LHLO mta.test", "250");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    cmd(&mut c, "RCPT TO:<remote@remote.test>", "550 5.1.1");
    cmd(&mut c, "RCPT TO:<bob@example.test> NOTIFY=SUCCESS", "250");
    cmd(&mut c, "RCPT TO:<fwd@example.test>", "250");
    let d = delivery(data(&mut c, "Subject: lmtp\r\n\r\nx\r\n"));
    assert!(String::from_utf8_lossy(&d.content).contains(" with LMTP id ID1;"));
    let given: Vec<_> = d
        .batches
        .iter()
        .map(|b| b.recipient.clone().unwrap())
        .collect();
    assert_eq!(
        given,
        ["alice@example.test", "bob@example.test", "fwd@example.test"]
    );
    assert_eq!(d.batches[1].reports.len(), 1, "bob asked for a report");
    assert_eq!(d.batches[2].remote[0].address, "carol@remote.test");
    let step = c.delivered(&[
        Outcome::Stored { queue_id: None },
        Outcome::OverQuota,
        Outcome::Failed,
    ]);
    assert_eq!(
        wire(&step),
        "250 2.0.0 <alice@example.test> delivered\r\n\
         452 4.2.2 <bob@example.test> mailbox full\r\n\
         451 4.3.0 <fwd@example.test> temporary failure\r\n"
    );
    // A refused message is refused once per recipient, too.
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    cmd(&mut c, "RCPT TO:<bob@example.test>", "250");
    let step = data(&mut c, "Subject: bare\nLF\r\n");
    assert_eq!(
        wire(&step),
        "550 5.6.11 Bare CR or LF in message content (RFC 5321 §2.3.8)\r\n".repeat(2)
    );
}

/// RFC 5321 §4.1.1.4: the transaction ends with the message, whatever the
/// outcome.
#[test]
fn rfc5321_4_1_1_4_the_message_ends_the_transaction() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &["alice@example.test"]);
    assert_eq!(
        wire(&data(&mut c, &format!("{}\r\n", "x".repeat(1001)))),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    cmd(&mut c, "RCPT TO:<alice@example.test>", "503");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let header = format!("X: {}\r\n\r\n", "h".repeat(200));
    assert!(wire(&data(&mut c, &header)).starts_with("552 5.3.4 Message header size"));
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    let d = delivery(data(&mut c, "Subject: ok\r\n\r\n..dot\r\n"));
    assert!(d.content.ends_with(b"Subject: ok\r\n\r\n.dot\r\n"));
    assert_eq!(
        wire(&c.delivered(&[Outcome::Stored {
            queue_id: Some(QueueId(7))
        }])),
        "250 2.0.0 Ok: queued as ID1, queue id 7\r\n"
    );
    cmd(&mut c, "RCPT TO:<alice@example.test>", "503");
}

/// RFC 5321 §6.3: a message with too many Received headers is a loop.
#[test]
fn rfc5321_6_3_mail_loop_is_554() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &["alice@example.test"]);
    let step = data(&mut c, &"Received: x\r\n".repeat(6));
    assert_eq!(
        wire(&step),
        "554 5.4.6 Too many Received headers: mail loop\r\n"
    );
}

#[test]
fn smtp_delivery_is_one_batch_with_the_reports_that_were_asked_for() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &[]);
    cmd(
        &mut c,
        "RCPT TO:<both@example.test> NOTIFY=SUCCESS ORCPT=rfc822;Both@example.test",
        "250",
    );
    cmd(&mut c, "RCPT TO:<fwd@example.test> NOTIFY=SUCCESS", "250");
    cmd(&mut c, "RCPT TO:<bob@example.test>", "250");
    let d = delivery(data(&mut c, "Subject: x\r\n\r\n"));
    assert_eq!(d.from, "carol@remote.test");
    let [b] = d.batches.as_slice() else { panic!() };
    assert_eq!(b.recipient, None);
    let local: Vec<_> = b.local.iter().map(|(_, id)| *id).collect();
    assert_eq!(local, [ALICE, BOB, BOB]);
    let remote: Vec<_> = b.remote.iter().map(|q| q.address.as_str()).collect();
    assert_eq!(remote, ["carol@remote.test"], "forwarded once");
    // RFC 3461 §4.1: a report for local recipients that asked; a
    // forward-only alias has no mailbox to report.
    let [r] = b.reports.as_slice() else {
        panic!("{:?}", b.reports)
    };
    assert_eq!(r.recipient.address, "both@example.test");
    assert_eq!(
        r.recipient.orcpt.as_deref(),
        Some("rfc822;Both@example.test")
    );
    c.delivered(&[Outcome::Stored { queue_id: None }]);
    // Never for the null sender.
    cmd(&mut c, "MAIL FROM:<>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test> NOTIFY=SUCCESS", "250");
    let d = delivery(data(&mut c, "Subject: x\r\n\r\n"));
    assert!(d.batches[0].reports.is_empty());
    assert_eq!(
        wire(&c.delivered(&[Outcome::OverQuota])),
        "452 4.2.2 Mailbox full\r\n"
    );
}

#[test]
fn rfc3030_bdat_without_mail_is_read_and_refused() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "EHLO x.test", "250");
    let step = bdat(&mut c, "Subject", true);
    assert_eq!(
        wire(&step),
        "503 5.5.1 Need MAIL and RCPT before DATA or BDAT\r\n"
    );
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    assert_eq!(
        wire(&bdat(&mut c, "abc", false)),
        "554 5.5.1 No valid recipients\r\n"
    );
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    assert_eq!(
        wire(&bdat(&mut c, "x", false)),
        "250 2.0.0 1 bytes received (1 so far)\r\n"
    );
}

#[test]
fn rfc3030_chunks_then_last() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &["alice@example.test"]);
    assert_eq!(
        wire(&bdat(&mut c, "Subject: b\r\n\r\n.no", false)),
        "250 2.0.0 17 bytes received (17 so far)\r\n"
    );
    cmd(&mut c, "DATA", "503 5.5.1 DATA after BDAT");
    let d = delivery(bdat(&mut c, " stuffing\r\n", true));
    assert!(d.content.ends_with(b"Subject: b\r\n\r\n.no stuffing\r\n"));
    // An empty last chunk ends a message too.
    c.delivered(&[Outcome::Stored { queue_id: None }]);
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    bdat(&mut c, "S: x\r\n", false);
    assert!(matches!(bdat(&mut c, "", true), Step::Deliver(_)));
}

#[test]
fn rfc3030_chunks_over_the_size_limit() {
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &["alice@example.test"]);
    let chunk = "y".repeat(600);
    assert!(wire(&bdat(&mut c, &chunk, false)).ends_with("(600 so far)\r\n"));
    assert!(wire(&bdat(&mut c, &chunk, false)).ends_with("(0 so far)\r\n"));
    assert_eq!(
        wire(&bdat(&mut c, "\r\n", true)),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "RCPT TO:<alice@example.test>", "250");
    assert_eq!(
        wire(&bdat(&mut c, "a\nb", true)),
        "550 5.6.11 Bare CR or LF in message content (RFC 5321 §2.3.8)\r\n"
    );
}

#[test]
fn error_budget_closes_with_421() {
    let mut c = started(CoreConfig {
        max_errors: 3,
        ..config(Mode::Inbound)
    });
    cmd(&mut c, "BOGUS", "500 5.5.1");
    cmd(&mut c, "NOOP", "250");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "503");
    let step = send(&mut c, "EXPN x");
    assert!(matches!(step, Step::Close(_)));
    assert_eq!(
        wire(&step),
        "502 5.5.1 Command not implemented\r\n421 4.7.0 Too many errors, closing connection\r\n"
    );
    // Four-hundreds do not count.
    let mut c = started(CoreConfig {
        max_errors: 1,
        ..config(Mode::Inbound)
    });
    transaction(
        &mut c,
        &[
            "alice@example.test",
            "bob@example.test",
            "sales@example.test",
        ],
    );
    cmd(&mut c, "RCPT TO:<alice@example.test>", "452");
    assert!(matches!(send(&mut c, "NOOP"), Step::Reply(_)));
}

#[test]
fn simple_commands_and_syntax_errors() {
    let mut c = core(Mode::Inbound);
    cmd(&mut c, "NOOP", "250 2.0.0 Ok\r\n");
    cmd(&mut c, "HELP", "214 2.0.0 See RFC 5321");
    cmd(&mut c, "VRFY alice", "252 2.5.0");
    cmd(&mut c, "EXPN staff", "502 5.5.1");
    cmd(&mut c, "HELO", "501 5.5.4 a domain name is required");
    cmd(&mut c, "EHLO x.test", "250");
    cmd(&mut c, "MAIL FROM:<a@b@c>", "501 5.1.7");
    cmd(&mut c, "MAIL FROM:<a@remote.test> FOO=BAR", "555 5.5.4");
    cmd(&mut c, "MAIL FROM:<a@remote.test>", "250");
    cmd(&mut c, "rcpt to:<a@b@c>", "501 5.1.3");
    assert_eq!(
        wire(&c.line(b"NOOP\n")),
        "500 5.5.2 Bare CR or LF, or NUL, in command (RFC 5321 §2.3.8)\r\n"
    );
    let step = send(&mut c, "QUIT");
    assert!(matches!(step, Step::Close(_)));
    assert_eq!(wire(&step), "221 2.0.0 Bye\r\n");
}

/// RFC 5321 §4.5.3.2.7 and §4.5.3.2.5: silence ends the session with
/// 421 4.4.2, while waiting for a command or for content; in a SASL
/// exchange without a word.
#[test]
fn rfc5321_4_5_3_2_timeouts_and_shutdown() {
    let mut c = core(Mode::Inbound);
    let step = c.timeout();
    assert!(matches!(step, Step::Close(_)));
    assert_eq!(
        wire(&step),
        "421 4.4.2 Timeout exceeded, closing connection\r\n"
    );
    let mut c = core(Mode::Inbound);
    transaction(&mut c, &["alice@example.test"]);
    send(&mut c, "DATA");
    c.content(b"Subject: half");
    assert!(!c.content_done());
    assert_eq!(
        wire(&c.timeout()),
        "421 4.4.2 Timeout exceeded, closing connection\r\n"
    );
    let mut c = core(Mode::Submission);
    cmd(&mut c, "EHLO laptop.test", "250");
    cmd(&mut c, "AUTH LOGIN", "334");
    let step = c.timeout();
    assert!(matches!(&step, Step::Close(r) if r.is_empty()));
    let mut c = core(Mode::Inbound);
    assert_eq!(
        wire(&c.shutdown()),
        "421 4.3.2 Service shutting down, try again later\r\n"
    );
}

/// What the fuzz target `smtp_command` checks, on fixed and on random
/// inputs: lines through the core, every step answered, never a panic,
/// and every reply one or more CRLF-terminated lines with a 3-digit code.
#[test]
fn every_reply_is_well_formed_whatever_the_input() {
    let fixed: [&[u8]; 6] = [
        b"EHLO a\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        b"EHLO a\r\nAUTH LOGIN\r\nYQ==\r\ncHc=\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\nBDAT 3 LAST\r\nabc",
        b"LHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<both@example.test>\r\nRCPT TO:<full@example.test>\r\nBDAT 2\r\nS:BDAT 0 LAST\r\n",
        b"\r\n\n\r\0\xff BDAT 99999999999\r\nBDAT 5\r\nRCPT TO:<Postmaster>\r\n",
        b"EHLO a\r\nSTARTTLS\r\nEHLO b\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@example.test> SMTPUTF8\r\n",
        b"HELO a\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<sales@example.test>\r\nDATA\r\nFrom: alice@example.test\r\nReceived: x\r\n\r\n.\r\n",
    ];
    for mode in [Mode::Inbound, Mode::Submission, Mode::Lmtp] {
        for input in fixed {
            drive(mode, input);
        }
    }
    let pieces: [&[u8]; 16] = [
        b"EHLO a\r\n",
        b"HELO a\r\n",
        b"LHLO a\r\n",
        b"MAIL FROM:<a@remote.test>\r\n",
        b"MAIL FROM:<alice@example.test>\r\n",
        b"RCPT TO:<alice@example.test>\r\n",
        b"RCPT TO:<fwd@example.test> NOTIFY=SUCCESS\r\n",
        b"RCPT TO:<x@remote.test>\r\n",
        b"DATA\r\n",
        b"BDAT 4\r\n",
        b"BDAT 2 LAST\r\n",
        b"\r\n.\r\n",
        b"AUTH PLAIN AGEAYg==\r\n",
        b"STARTTLS\r\n",
        b"RSET\r\n",
        b"x\r\n",
    ];
    let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d_u64);
    for _ in 0..500 {
        let input = crate::pick(&mut next, &pieces, 30);
        for mode in [Mode::Inbound, Mode::Submission, Mode::Lmtp] {
            drive(mode, &input);
        }
    }
}

/// The fuzz target's harness: `input` as the client's bytes, every step
/// performed with the test directory and successful logins and deliveries.
fn drive(mode: Mode, input: &[u8]) {
    let mut core = SmtpCore::new(CoreConfig {
        max_errors: 1000,
        ..config(mode)
    });
    let mut rest = input;
    let mut step = core.greeting();
    loop {
        step = match step {
            Step::Reply(replies) => {
                check_replies(&replies);
                let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                    return;
                };
                let (line, after) = rest.split_at(end + 1);
                rest = after;
                core.line(line)
            }
            Step::Close(replies) => return check_replies(&replies),
            Step::StartTls(reply) => {
                check_replies(&[reply]);
                core.tls_started(("TLSv1_3".into(), "TLS13_AES_128_GCM_SHA256".into()), true);
                Step::Reply(vec![])
            }
            Step::ReadData(reply) => {
                check_replies(&[reply]);
                feed(&mut core, &mut rest)
            }
            Step::ReadChunk { .. } => feed(&mut core, &mut rest),
            Step::Authenticate { user, .. } => core.login_result(Login::Ok(account(&user, ALICE))),
            Step::Lookup(l) => core.answer(directory(&l)),
            Step::Deliver(d) => {
                assert!(d.content.starts_with(b"Received: from "));
                let outcomes = vec![Outcome::Stored { queue_id: None }; d.batches.len()];
                core.delivered(&outcomes)
            }
        };
    }
}

fn feed(core: &mut SmtpCore, rest: &mut &[u8]) -> Step {
    let n = core.content(rest);
    *rest = &rest[n..];
    if !core.content_done() {
        // The input ended in the middle: the timeout.
        return core.timeout();
    }
    core.content_end(NOW, "ID1")
}

#[track_caller]
fn check_replies(replies: &[Reply]) {
    for r in replies {
        let mut out = Vec::new();
        r.render(&mut out);
        assert!(out.ends_with(b"\r\n"), "{out:?}");
        let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
        for (i, line) in lines.iter().enumerate() {
            assert!(line.len() >= 5 && line.ends_with(b"\r\n"), "{line:?}");
            assert!(!line[..line.len() - 2].contains(&b'\r'), "{line:?}");
            assert_eq!(&line[..3], r.code.to_string().as_bytes(), "{line:?}");
            let sep = if i + 1 == lines.len() { b' ' } else { b'-' };
            assert_eq!(line[3], sep, "{line:?}");
        }
    }
}

// Mail authentication on port 25 (SPF, DKIM, ARC, DMARC): verify.rs.
mod verify;
