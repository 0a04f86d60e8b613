//! Whole SMTP dialogues on the wire, compared byte for byte with recorded
//! transcripts in `tests/dialogues/` (message ids and dates masked): the
//! replies, their order and texts, and what ends up in the mailboxes and
//! the queue. Each script is sent in one write (RFC 2920 pipelining), so
//! the replies must come back in order. Run with `UPDATE_DIALOGUES=1` to
//! record them again after an intended change, and read the diff.

mod common;

use std::time::Duration;

use common::{Harness, harness, inbox, normalize, queue, start_from};
use postamt_smtp::{Mode, SmtpConfig, SpoofPolicy};

/// Command lines (and message lines) joined with CRLF.
fn script(lines: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in lines {
        v.extend_from_slice(l.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn mode(mode: Mode) -> SmtpConfig {
    SmtpConfig {
        mode,
        ..SmtpConfig::default()
    }
}

const LOCAL: &str = "127.0.0.1:4000";
/// Not loopback: plaintext logins are not allowed from here.
const REMOTE: &str = "192.0.2.7:4000";

async fn run(name: &str, config: SmtpConfig, peer: &str, setup: fn(&Harness), input: Vec<u8>) {
    let h = harness();
    setup(&h);
    let (mut c, task) = start_from(&h, config, peer.parse().unwrap());
    c.send(&input).await;
    let replies = c.rest().await;
    task.await.unwrap();
    let mut got = format!("# replies\n{replies}");
    for a in ["alice@example.test", "bob@example.test"] {
        for (i, m) in inbox(&h.store, a).iter().enumerate() {
            got.push_str(&format!("# {a} {}\n{m}\n", i + 1));
        }
    }
    for (i, q) in queue(&h.store).iter().enumerate() {
        got.push_str(&format!("# queue {}\n{q}\n", i + 1));
    }
    let got = normalize(&got).replace('\r', "\\r");
    let path = format!("{}/tests/dialogues/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_DIALOGUES").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (UPDATE_DIALOGUES=1 records it)"));
    assert_eq!(got, want, "{name}: the dialogue changed");
}

fn nothing(_: &Harness) {}

/// A dialogue on port 25 with the default settings.
async fn inbound(name: &str, input: Vec<u8>) {
    run(name, mode(Mode::Inbound), LOCAL, nothing, input).await;
}

#[tokio::test(start_paused = true)]
async fn inbound_transaction() {
    let input = script(&[
        "EHLO client.test",
        "MAIL FROM:<carol@remote.test> BODY=8BITMIME SIZE=100",
        "RCPT TO:<alice@example.test>",
        "RCPT TO:<nobody@example.test>",
        "RCPT TO:<Bob@Example.TEST>",
        "RCPT TO:<sales@example.test>",
        "RCPT TO:<fwd@example.test>",
        "DATA",
        "Subject: hello",
        "From: Carol <carol@remote.test>",
        "",
        "..leading dot",
        "body",
        ".",
        "QUIT",
    ]);
    inbound("inbound_transaction", input).await;
}

#[tokio::test(start_paused = true)]
async fn helo_transactions() {
    let input = script(&[
        "HELO client.test",
        "MAIL FROM:<>",
        "RCPT TO:<alice@example.test>",
        "DATA",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "DATA",
        "no header at all",
        ".",
        "MAIL FROM:<a@remote.test> BODY=8BITMIME",
        "MAIL FROM:<a@remote.test> SMTPUTF8",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test> NOTIFY=SUCCESS",
        "RSET",
        "QUIT",
    ]);
    inbound("helo_transactions", input).await;
}

#[tokio::test(start_paused = true)]
async fn sequence_rules() {
    let input = script(&[
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "DATA",
        "BDAT 3",
        "xyz",
        "EHLO x.test",
        "RCPT TO:<alice@example.test>",
        "DATA",
        "MAIL FROM:<a@remote.test>",
        "MAIL FROM:<a@remote.test>",
        "AUTH PLAIN AGEAYg==",
        "DATA",
        "EHLO again.test",
        "RCPT TO:<alice@example.test>",
        "MAIL FROM:<a@remote.test> FOO=BAR",
        "MAIL FROM:<jörg@remote.test>",
        "MAIL FROM:<a@remote.test> SIZE=999999999999",
        "MAIL FROM:a@remote.test",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<jörg@example.test>",
        "RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS",
        "RCPT TO:<alice@example.test> ORCPT=rfc822;alice@example.test",
        "RCPT TO:<>",
        "RCPT TO:alice",
        "RSET",
        "VRFY alice",
        "EXPN staff",
        "HELP",
        "NOOP",
        "LHLO x.test",
        "BOGUS",
        "HELO",
        "DATA now",
        "MAIL FROM:<@a,@b:a@remote.test>",
        "QUIT",
    ]);
    let config = SmtpConfig {
        max_errors: 100,
        ..SmtpConfig::default()
    };
    run("sequence_rules", config, LOCAL, nothing, input).await;
}

#[tokio::test(start_paused = true)]
async fn bad_lines() {
    let mut input = script(&["EHLO x.test"]);
    input.extend_from_slice(b"NOOP\n");
    input.extend_from_slice(b"NO\rOP\r\n");
    input.extend_from_slice(b"NOOP\0\r\n");
    input.extend_from_slice(b"MAIL FROM:<\xff@remote.test>\r\n");
    input.extend_from_slice(&[b'X'; 3000]);
    input.extend_from_slice(b"\r\nNOOP\r\nQUIT\r\n");
    inbound("bad_lines", input).await;
}

#[tokio::test(start_paused = true)]
async fn no_open_relay() {
    let input = script(&[
        "EHLO x.test",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<victim@remote.test>",
        "RCPT TO:<victim%remote.test@example.test>",
        "RCPT TO:<remote.test!victim@example.test>",
        "RCPT TO:<@example.test:victim@remote.test>",
        "RCPT TO:<victim@remote.test@example.test>",
        "RCPT TO:<\"alice\"@example.test>",
        "RCPT TO:<Postmaster>",
        "DATA",
        "Subject: x",
        "",
        "y",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<victim@remote.test>",
        "DATA",
        "QUIT",
    ]);
    inbound("no_open_relay", input).await;
}

fn postmaster(h: &Harness) {
    h.store
        .add_alias("postmaster@example.test", &["bob@example.test".to_string()])
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn postmaster_without_domain() {
    let input = script(&[
        "EHLO x.test",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<Postmaster>",
        "DATA",
        "Subject: to the postmaster",
        "",
        "hi",
        ".",
        "QUIT",
    ]);
    run(
        "postmaster_without_domain",
        mode(Mode::Inbound),
        LOCAL,
        postmaster,
        input,
    )
    .await;
}

fn spoofing_script() -> Vec<u8> {
    script(&[
        "EHLO x.test",
        "MAIL FROM:<alice@EXAMPLE.test>",
        "RCPT TO:<bob@example.test>",
        "DATA",
        "From: Alice <alice@example.test>",
        "Subject: envelope and header spoofed",
        "",
        "x",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<bob@example.test>",
        "DATA",
        "From: Alice <alice@example.test>, Eve <eve@remote.test>",
        "Subject: header spoofed",
        "",
        "x",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<bob@example.test>",
        "DATA",
        "From: Eve <eve@remote.test>",
        "Subject: honest",
        "",
        "x",
        ".",
        "QUIT",
    ])
}

fn spoof(policy: SpoofPolicy) -> SmtpConfig {
    SmtpConfig {
        spoof_policy: policy,
        ..SmtpConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn spoof_policy_reject() {
    let c = spoof(SpoofPolicy::Reject);
    run("spoof_policy_reject", c, LOCAL, nothing, spoofing_script()).await;
}

#[tokio::test(start_paused = true)]
async fn spoof_policy_mark() {
    let c = spoof(SpoofPolicy::Mark);
    run("spoof_policy_mark", c, LOCAL, nothing, spoofing_script()).await;
}

#[tokio::test(start_paused = true)]
async fn spoof_policy_off() {
    let c = spoof(SpoofPolicy::Off);
    run("spoof_policy_off", c, LOCAL, nothing, spoofing_script()).await;
}

#[tokio::test(start_paused = true)]
async fn bdat() {
    let mut input = script(&[
        "EHLO x.test",
        "MAIL FROM:<a@remote.test> BODY=BINARYMIME",
        "RCPT TO:<alice@example.test>",
    ]);
    let part1 = "Subject: chunked\r\n\r\n.starts with a dot\r\n";
    input.extend_from_slice(format!("BDAT {}\r\n{part1}", part1.len()).as_bytes());
    input.extend_from_slice(b"DATA\r\n");
    let part2 = "second chunk\r\n";
    input.extend_from_slice(format!("bdat {} last\r\n{part2}", part2.len()).as_bytes());
    input.extend_from_slice(&script(&[
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
    ]));
    input.extend_from_slice(b"BDAT 9\r\nSubject: BDAT 0 LAST\r\n");
    // Without a transaction, and without recipients: read and refused.
    input.extend_from_slice(b"BDAT 6\r\nQUIT\r\n");
    input.extend_from_slice(&script(&[
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<nobody@example.test>",
    ]));
    input.extend_from_slice(b"BDAT 3 LAST\r\nx\r\n");
    input.extend_from_slice(&script(&["RSET", "MAIL FROM:<a@remote.test>"]));
    input.extend_from_slice(&script(&["RCPT TO:<alice@example.test>"]));
    input.extend_from_slice(b"BDAT 8\r\nA: b\nc\r\n");
    input.extend_from_slice(b"BDAT 0 LAST\r\n");
    input.extend_from_slice(&script(&[
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
    ]));
    input.extend_from_slice(b"BDAT 5 LAST\r\nA: b\r");
    input.extend_from_slice(b"BDAT x\r\nBDAT 1 FIRST\r\nQUIT\r\n");
    inbound("bdat", input).await;
}

#[tokio::test(start_paused = true)]
async fn smuggling() {
    let mut input = script(&[
        "EHLO x.test",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "DATA",
    ]);
    input.extend_from_slice(
        b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n",
    );
    inbound("smuggling", input).await;
}

#[tokio::test(start_paused = true)]
async fn limits() {
    let config = SmtpConfig {
        max_message_size: 300,
        max_header_size: 100,
        max_recipients: 2,
        max_line: 80,
        max_received: 3,
        ..SmtpConfig::default()
    };
    let long = "x".repeat(70);
    let mut lines = vec![
        "EHLO x.test",
        "MAIL FROM:<a@remote.test> SIZE=301",
        "MAIL FROM:<a@remote.test> SIZE=300",
        "RCPT TO:<alice@example.test>",
        "RCPT TO:<bob@example.test>",
        "RCPT TO:<sales@example.test>",
        "DATA",
        "Subject: too big",
        "",
    ];
    for _ in 0..5 {
        lines.push(&long);
    }
    lines.extend([
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "DATA",
    ]);
    for _ in 0..2 {
        lines.push(&long);
    }
    lines.extend([
        "",
        "body",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "DATA",
        "Received: from a",
        "Received: from b",
        "Received: from c",
        "Received: from d",
        "",
        "loop",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "DATA",
        "Received: from a",
        "Received: from b",
        "Received: from c",
        "",
        "three are fine",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
    ]);
    let mut input = script(&lines);
    let chunk = "y".repeat(200);
    input.extend_from_slice(format!("BDAT 200\r\n{chunk}BDAT 200\r\n{chunk}").as_bytes());
    input.extend_from_slice(format!("BDAT 200\r\n{chunk}BDAT 2 LAST\r\n\r\n").as_bytes());
    input.extend_from_slice(&script(&[
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
    ]));
    input.extend_from_slice(format!("BDAT 150 LAST\r\nX: {}\r\n\r\n", "h".repeat(143)).as_bytes());
    input.extend_from_slice(b"QUIT\r\n");
    run("limits", config, LOCAL, nothing, input).await;
}

#[tokio::test(start_paused = true)]
async fn error_budget() {
    let config = SmtpConfig {
        max_errors: 3,
        ..SmtpConfig::default()
    };
    let input = script(&[
        "BOGUS",
        "NOOP",
        "MAIL FROM:<a@b.test>",
        "EXPN x",
        "NOOP",
        "QUIT",
    ]);
    run("error_budget", config, LOCAL, nothing, input).await;
}

fn bob_full(h: &Harness) {
    let bob = h.store.account("bob@example.test").unwrap().unwrap();
    h.store.set_quota(bob.id, Some(10)).unwrap();
}

#[tokio::test(start_paused = true)]
async fn over_quota() {
    let input = script(&[
        "EHLO x.test",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<bob@example.test>",
        "DATA",
        "Subject: too much for bob",
        "",
        "x",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "RCPT TO:<bob@example.test>",
        "DATA",
        "Subject: too much for bob",
        "",
        "x",
        ".",
        "QUIT",
    ]);
    run("over_quota", mode(Mode::Inbound), LOCAL, bob_full, input).await;
}

#[tokio::test(start_paused = true)]
async fn dsn_success_report() {
    let input = script(&[
        "EHLO x.test",
        "MAIL FROM:<carol@remote.test> RET=HDRS ENVID=QQ314159",
        "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Alice@example.test",
        "RCPT TO:<bob@example.test> NOTIFY=FAILURE",
        "DATA",
        "Subject: tell me when it arrives",
        "",
        "x",
        ".",
        "MAIL FROM:<> ",
        "RCPT TO:<alice@example.test> NOTIFY=SUCCESS",
        "DATA",
        "Subject: no report to the null sender",
        "",
        "x",
        ".",
        "QUIT",
    ]);
    inbound("dsn_success_report", input).await;
}

#[tokio::test(start_paused = true)]
async fn smtputf8() {
    let input = script(&[
        "EHLO x.test",
        "MAIL FROM:<björn@bücher.test> SMTPUTF8",
        "RCPT TO:<alice@example.test>",
        "DATA",
        "From: Björn <björn@bücher.test>",
        "Subject: Grüße",
        "",
        "ÄÖÜ",
        ".",
        "QUIT",
    ]);
    inbound("smtputf8", input).await;
}

#[tokio::test(start_paused = true)]
async fn submission() {
    let input = script(&[
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "HELO laptop.test",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "EHLO laptop.test",
        "MAIL FROM:<alice@example.test>",
        "RCPT TO:<bob@example.test>",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "EHLO laptop.test",
        "MAIL FROM:<bob@example.test>",
        "MAIL FROM:<>",
        "MAIL FROM:<Sales@example.test>",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "RCPT TO:<bob@example.test>",
        "RCPT TO:<carol@remote.test> NOTIFY=SUCCESS,FAILURE",
        "DATA",
        "From: Bob <bob@example.test>",
        "Subject: forged From",
        "",
        "x",
        ".",
        "MAIL FROM:<alice@example.test>",
        "RCPT TO:<bob@example.test>",
        "RCPT TO:<\"carol x\"@remote.test>",
        "RCPT TO:<fwd@example.test>",
        "DATA",
        "From: Alice <ALICE@example.test>, Sales <sales@example.test>",
        "Subject: no date, no id",
        "",
        "hello",
        ".",
        "MAIL FROM:<alice@example.test>",
        "RCPT TO:<bob@example.test>",
        "DATA",
        "From: alice@example.test",
        "Date: Thu, 26 Nov 2026 12:00:00 +0000",
        "Message-ID: <given@example.test>",
        "Subject: complete",
        "",
        "hello",
        ".",
        "QUIT",
    ]);
    run("submission", mode(Mode::Submission), LOCAL, nothing, input).await;
}

#[tokio::test(start_paused = true)]
async fn submission_sasl() {
    let input = script(&[
        "EHLO laptop.test",
        "AUTH CRAM-MD5",
        "AUTH LOGIN",
        "YWxpY2VAZXhhbXBsZS50ZXN0",
        "*",
        "AUTH PLAIN",
        "*",
        "AUTH PLAIN not-base64!",
        "AUTH LOGIN not-base64!",
        "AUTH LOGIN",
        "not-base64!",
        "AUTH PLAIN",
        "AGJvYkBleGFtcGxlLnRlc3QAYm9iLXB3",
        "MAIL FROM:<bob@example.test>",
        "RCPT TO:<alice@example.test>",
        "DATA",
        "Subject: from bob",
        "",
        "hi",
        ".",
        "QUIT",
    ]);
    run(
        "submission_sasl",
        mode(Mode::Submission),
        LOCAL,
        nothing,
        input,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn submission_login_with_initial_response() {
    let input = script(&[
        "EHLO laptop.test",
        "AUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0",
        "YWxpY2UtcHc=",
        "MAIL FROM:<alice@example.test> AUTH=<alice@example.test>",
        "QUIT",
    ]);
    let c = mode(Mode::Submission);
    run(
        "submission_login_with_initial_response",
        c,
        LOCAL,
        nothing,
        input,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn submission_without_tls_from_afar() {
    let input = script(&[
        "EHLO laptop.test",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "AUTH LOGIN",
        "MAIL FROM:<alice@example.test>",
        "QUIT",
    ]);
    let c = mode(Mode::Submission);
    run(
        "submission_without_tls_from_afar",
        c,
        REMOTE,
        nothing,
        input,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn submission_throttled() {
    let input = script(&[
        "EHLO laptop.test",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "NOOP",
    ]);
    let c = mode(Mode::Submission);
    run("submission_throttled", c, LOCAL, nothing, input).await;
}

#[tokio::test(start_paused = true)]
async fn lmtp() {
    let mut input = script(&[
        "EHLO x.test",
        "HELO x.test",
        "MAIL FROM:<a@remote.test>",
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "LHLO mta.test",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "RCPT TO:<nobody@example.test>",
        "RCPT TO:<remote@remote.test>",
        "RCPT TO:<bob@example.test>",
        "RCPT TO:<fwd@example.test> NOTIFY=SUCCESS",
        "RCPT TO:<sales@example.test> NOTIFY=SUCCESS",
        "DATA",
        "Subject: lmtp",
        "",
        "x",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "RCPT TO:<bob@example.test>",
        "DATA",
        "Subject: bare\nLF",
        ".",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<alice@example.test>",
        "RCPT TO:<sales@example.test>",
    ]);
    input.extend_from_slice(b"BDAT 6\r\nS: x\r\nBDAT 7 LAST\r\n\r\nabc\r\n");
    input.extend_from_slice(&script(&[
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<nobody@example.test>",
        "DATA",
    ]));
    input.extend_from_slice(b"BDAT 0 LAST\r\n");
    input.extend_from_slice(&script(&["QUIT"]));
    run("lmtp", mode(Mode::Lmtp), LOCAL, bob_full, input).await;
}

/// A pipelined script that goes silent: the command timeout answers.
#[tokio::test(start_paused = true)]
async fn silence_after_pipelined_commands() {
    let input = script(&["EHLO x.test", "MAIL FROM:<a@remote.test>"]);
    let c = SmtpConfig {
        command_timeout: Duration::from_secs(300),
        ..SmtpConfig::default()
    };
    run("silence_after_pipelined_commands", c, LOCAL, nothing, input).await;
}
