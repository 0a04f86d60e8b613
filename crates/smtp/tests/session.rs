//! In-memory session tests: the real SMTP session over a `tokio::io::duplex`
//! pipe, a real SQLite store, and virtual time (`start_paused`), so the
//! RFC 5321 timeouts and the login delays take no wall-clock time.

mod common;

use std::time::Duration;

use common::{Client, harness, inbox, start};
use postamt_smtp::{Mode, SmtpConfig};
use tokio::time::Instant;

/// The next reply is the 421 of a timeout, after `secs` seconds of silence.
async fn times_out_after(c: &mut Client, secs: u64) {
    let before = Instant::now();
    assert_eq!(
        c.reply().await,
        "421 4.4.2 Timeout exceeded, closing connection\r\n"
    );
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_secs(secs) && waited < Duration::from_secs(secs + 1),
        "{waited:?}"
    );
}

fn submission() -> SmtpConfig {
    SmtpConfig {
        mode: Mode::Submission,
        ..SmtpConfig::default()
    }
}

/// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the
/// next command, then it may close with 421.
#[tokio::test(start_paused = true)]
async fn rfc5321_4_5_3_2_7_command_timeout_is_421_after_5_minutes() {
    let h = harness();
    let (mut c, task) = start(&h, SmtpConfig::default());
    assert_eq!(c.reply().await, "220 mail.test ESMTP postamt ready\r\n");
    c.cmd("EHLO client.test", "250-mail.test greets client.test")
        .await;
    times_out_after(&mut c, 300).await;
    assert_eq!(c.rest().await, "", "closed after the 421");
    task.await.unwrap();
}

/// RFC 5321 §4.5.3.2.5: 3 minutes for each block of DATA; a message cut
/// off by the timeout is not delivered.
#[tokio::test(start_paused = true)]
async fn rfc5321_4_5_3_2_5_data_block_timeout() {
    let h = harness();
    let (mut c, task) = start(&h, SmtpConfig::default());
    c.transaction("alice@example.test").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: half\r\n\r\nthe first block").await;
    times_out_after(&mut c, 180).await;
    task.await.unwrap();
    assert!(inbox(&h.store, "alice@example.test").is_empty());
}

/// The same budget for a BDAT chunk (RFC 3030 §2: the chunk is read
/// whatever happens).
#[tokio::test(start_paused = true)]
async fn rfc3030_bdat_chunk_timeout() {
    let h = harness();
    let (mut c, task) = start(&h, SmtpConfig::default());
    c.transaction("alice@example.test").await;
    c.send(b"BDAT 100 LAST\r\nSubject: short\r\n").await;
    times_out_after(&mut c, 180).await;
    task.await.unwrap();
    assert!(inbox(&h.store, "alice@example.test").is_empty());
}

/// Failed logins wait the configured delay (2 s here) each; the third
/// failure uses up the address's budget, and the next attempt is refused
/// at once with 421 and the connection closed.
#[tokio::test(start_paused = true)]
async fn failed_auth_is_delayed_then_throttled() {
    let h = harness();
    let (mut c, task) = start(&h, submission());
    c.reply().await;
    c.cmd("EHLO laptop.test", "250").await;
    let before = Instant::now();
    for _ in 0..3 {
        // \0alice@example.test\0wrong
        c.cmd(
            "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==",
            "535 5.7.8",
        )
        .await;
    }
    assert!(
        before.elapsed() >= Duration::from_secs(6),
        "each failure waits the delay: {:?}",
        before.elapsed()
    );
    let before = Instant::now();
    c.cmd(
        "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==",
        "421 4.7.0 Too many failed logins",
    )
    .await;
    assert!(before.elapsed() < Duration::from_secs(1), "no delay");
    assert_eq!(c.rest().await, "");
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn message_is_delivered_and_readable_from_the_store() {
    let h = harness();
    let (mut c, task) = start(&h, submission());
    c.reply().await;
    c.cmd("EHLO laptop.test", "250").await;
    c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.cmd("YWxpY2VAZXhhbXBsZS50ZXN0", "334 UGFzc3dvcmQ6").await;
    c.cmd("YWxpY2UtcHc=", "235 2.7.0").await;
    c.cmd("MAIL FROM:<alice@example.test>", "250 2.1.0").await;
    c.cmd("RCPT TO:<bob@example.test>", "250 2.1.5").await;
    c.cmd("DATA", "354").await;
    c.send(b"From: alice@example.test\r\nSubject: hi\r\n\r\n..dot\r\n.\r\n")
        .await;
    assert!(c.reply().await.starts_with("250 2.0.0 Ok: queued as "));
    c.cmd("QUIT", "221 2.0.0 Bye").await;
    task.await.unwrap();
    let got = inbox(&h.store, "bob@example.test");
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(
        m.starts_with(
            "Return-Path: <alice@example.test>\r\nDelivered-To: bob@example.test\r\nReceived: from laptop.test ([127.0.0.1])\r\n\tby mail.test (postamt) with ESMTPA id "
        ),
        "{m}"
    );
    assert!(m.contains("\r\nMessage-ID: <"), "{m}");
    assert!(
        m.ends_with("From: alice@example.test\r\nSubject: hi\r\n\r\n.dot\r\n"),
        "{m}"
    );
}

/// RFC 2920 §3.1: a client may send a group of commands at once; every
/// reply comes back, in order, and DATA's 354 ends the group.
#[tokio::test(start_paused = true)]
async fn rfc2920_pipelined_commands_are_answered_in_order() {
    let h = harness();
    let (mut c, task) = start(&h, SmtpConfig::default());
    c.reply().await;
    c.send(
        b"EHLO p.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n\
          RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nNOOP\r\nDATA\r\n",
    )
    .await;
    assert!(c.reply().await.starts_with("250-mail.test greets p.test"));
    for expect in [
        "250 2.1.0",
        "250 2.1.5",
        "550 5.1.1",
        "250 2.1.5",
        "250 2.0.0 Ok",
        "354 ",
    ] {
        let r = c.reply().await;
        assert!(r.starts_with(expect), "{expect}: {r}");
    }
    c.send(b"Subject: pipelined\r\n\r\nx\r\n.\r\nRSET\r\nQUIT\r\n")
        .await;
    assert!(c.reply().await.starts_with("250 2.0.0 Ok: queued as "));
    assert_eq!(c.reply().await, "250 2.0.0 Ok\r\n");
    assert_eq!(c.reply().await, "221 2.0.0 Bye\r\n");
    task.await.unwrap();
    assert_eq!(inbox(&h.store, "alice@example.test").len(), 1);
    assert_eq!(inbox(&h.store, "bob@example.test").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_answers_421_on_the_next_read() {
    let h = harness();
    let (mut c, task) = start(&h, SmtpConfig::default());
    c.reply().await;
    c.cmd("EHLO client.test", "250").await;
    c.cmd("MAIL FROM:<a@remote.test>", "250").await;
    let common::Harness { shutdown, .. } = h;
    let done = tokio::spawn(shutdown.shutdown(Duration::from_secs(10)));
    assert_eq!(
        c.reply().await,
        "421 4.3.2 Service shutting down, try again later\r\n"
    );
    assert_eq!(c.rest().await, "");
    task.await.unwrap();
    assert!(done.await.unwrap(), "the session ended within the grace");
}

#[tokio::test(start_paused = true)]
async fn overlong_line_is_drained_and_answered() {
    let h = harness();
    let (mut c, _task) = start(
        &h,
        SmtpConfig {
            max_line: 512,
            ..SmtpConfig::default()
        },
    );
    c.reply().await;
    // 1 MB without a line end, then the end, then a command.
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..16 {
        c.send(&chunk).await;
    }
    c.send(b"\r\nNOOP\r\n").await;
    assert_eq!(c.reply().await, "500 5.5.2 Line too long\r\n");
    assert_eq!(c.reply().await, "250 2.0.0 Ok\r\n");
}

/// A client that stops in the middle of a SASL exchange is disconnected
/// after the command timeout, without a reply (as the session has always
/// done; RFC 4954 does not say).
#[tokio::test(start_paused = true)]
async fn silence_in_a_sasl_exchange_closes_after_the_command_timeout() {
    let h = harness();
    let (mut c, task) = start(&h, submission());
    c.reply().await;
    c.cmd("EHLO laptop.test", "250").await;
    c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    let before = Instant::now();
    assert_eq!(c.rest().await, "");
    assert!(before.elapsed() >= Duration::from_secs(300));
    task.await.unwrap();
}
