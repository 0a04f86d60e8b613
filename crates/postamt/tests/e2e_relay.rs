//! The outbound relay end to end, on loopback only: a DNS server started
//! by the test (tests/clients/dns_server.py, dnslib) answers MX, A, AAAA,
//! TXT and null-MX queries for test domains; the receiving MTAs are a
//! second postamt, a scripted SMTP server (tests/clients/scripted_smtp.py)
//! that answers 4xx, 5xx, drops the connection in DATA, stalls, or lacks
//! SMTPUTF8/DSN, and (in e2e_postfix.rs) a Debian Postfix. DKIM is checked
//! against dkimpy in both directions.
//!
//! No test sends to a non-loopback address: every name the relay can look
//! up comes from the test's own DNS server, which only knows 127.0.0.x.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

/// How long a delivery (with its retries) may take.
const DEADLINE: Duration = Duration::from_secs(45);

/// A scripted SMTP server on `ip` (port chosen by the kernel, or given).
struct Sink(Helper);

#[derive(Debug)]
struct Txn {
    mail: String,
    rcpts: Vec<String>,
    tls: bool,
    raw: Vec<u8>,
    message: Vec<u8>,
}

impl Sink {
    fn start(script: Value, bind: &str) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script.json");
        std::fs::write(&file, script.to_string()).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let args = [file.to_str().unwrap(), out.to_str().unwrap(), bind];
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Sink(Helper::start("scripted_smtp.py", &args, dir))
    }
    fn port(&self) -> u16 {
        self.0.port
    }
    fn out(&self) -> PathBuf {
        self.0.dir.path().join("out")
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.out().join("log")).unwrap_or_default()
    }
    fn connections(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.starts_with("connection "))
            .count()
    }
    fn txns(&self) -> Vec<Txn> {
        let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(self.out())
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name
                    .strip_prefix("txn-")?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((n, e.path()))
            })
            .collect();
        files.sort();
        let b64 = |v: &Value| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        };
        files
            .into_iter()
            .map(|(_, p)| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                Txn {
                    mail: v["mail"].as_str().unwrap().to_string(),
                    rcpts: v["rcpts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_string())
                        .collect(),
                    tls: v["tls"].as_bool().unwrap(),
                    raw: b64(&v["raw"]),
                    message: b64(&v["message"]),
                }
            })
            .collect()
    }
    /// Waits until `n` transactions arrived.
    fn wait_txns(&self, n: usize, sender: &Server) -> Vec<Txn> {
        wait_for(&format!("{n} transactions at the sink"), sender, || {
            let t = self.txns();
            (t.len() >= n).then_some(t)
        })
    }
}

/// Polls `f` every 50 ms until it returns `Some`, at most [`DEADLINE`].
fn wait_for<T>(what: &str, server: &Server, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\nserver log:\n{}",
                server.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sending postamt (example.test, users alice and bob): its resolver is
/// the test's DNS server, its relay talks to `port`, retries come fast.
fn sender(dns: &Dns, port: u16, extra: &str) -> Server {
    let relay = if extra.contains("[relay]") {
        String::new()
    } else {
        "[relay]\n".to_string()
    };
    let text = format!(
        "[dns]\nnameservers = [\"127.0.0.1:{dns}\"]\ntimeout = 2\n{relay}{extra}\n",
        dns = dns.port()
    );
    // Fast retries and short timeouts, unless the test sets its own.
    let port = port.to_string();
    let defaults = [
        ("port", port.as_str()),
        ("retry_initial", "1"),
        ("retry_max", "1"),
        ("connect_timeout", "2"),
        ("greeting_timeout", "3"),
        ("command_timeout", "3"),
        ("data_block_timeout", "3"),
        ("data_end_timeout", "5"),
    ];
    let mut set = String::from("[relay]\n");
    for (k, v) in defaults {
        if !extra.contains(&format!("{k} =")) {
            set.push_str(&format!("{k} = {v}\n"));
        }
    }
    Server::start(&text.replacen("[relay]\n", &set, 1))
}

/// A relay test's world: a scripted remote server (`script`, see
/// `Sink`) on 127.0.0.1, a DNS server with `zone`, and the sending postamt
/// (`extra` config) that finds the remote through it.
fn relay_to_sink(script: Value, zone: Value, extra: &str) -> (Sink, Dns, Server) {
    let sink = Sink::start(script, "127.0.0.1");
    let dns = Dns::start(zone);
    let s = sender(&dns, sink.port(), extra);
    (sink, dns, s)
}

/// Submits the message `mail(subject, body)` from alice to carol@remote.test.
fn send(server: &Server, subject: &str, body: &str) {
    submit(server, &["carol@remote.test"], "", "", &mail(subject, body));
}

/// kill -9, then reap.
fn kill9(s: &mut Server) {
    s.signal(9);
    let mut child = s.child.take().unwrap();
    let _ = child.wait();
    if let Some(h) = s.stdout_rest.take() {
        let _ = h.join();
    }
}

/// Submits a message as alice over the submission port (AUTH PLAIN is
/// allowed without TLS on loopback). `params` are added to MAIL FROM, and
/// `rcpt_params` to every RCPT TO.
fn submit(server: &Server, to: &[&str], params: &str, rcpt_params: &str, message: &[u8]) {
    let mut c = smtp(server, "submission");
    c.smtp("EHLO client.test", "250");
    // \0alice@example.test\0alice-pw
    c.smtp("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==", "235");
    c.smtp(&format!("MAIL FROM:<alice@example.test>{params}"), "250");
    for t in to {
        c.smtp(&format!("RCPT TO:<{t}>{rcpt_params}"), "250");
    }
    c.smtp("DATA", "354");
    let mut data = Vec::new();
    postamt_wire::dot::stuff(message, &mut data);
    c.send(&data);
    let r = c.reply();
    assert!(r.last().unwrap().starts_with("250"), "{r:?}");
    c.smtp("QUIT", "221");
}

fn mail(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.test>\r\nTo: Carol <carol@remote.test>\r\nSubject: {subject}\r\n\
         Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\n{body}"
    )
    .into_bytes()
}

/// The standard zone: remote.test's MX is mx.remote.test at 127.0.0.1.
fn zone() -> Value {
    json!({
        "remote.test": {"MX": [[10, "mx.remote.test"]]},
        "mx.remote.test": {"A": ["127.0.0.1"]},
    })
}

/// The server's log without terminal colours.
fn log_of(server: &Server) -> String {
    let raw = server.log();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn queue_is_empty(server: &Server) -> bool {
    server
        .admin(&["queue", "list"])
        .success()
        .stdout
        .contains("queue is empty")
}

fn wait_queue_empty(server: &Server) {
    wait_for("an empty queue", server, || {
        queue_is_empty(server).then_some(())
    });
}

/// alice's maildrop once it holds `n` messages.
fn wait_maildrop(server: &Server, user: &str, pass: &str, n: usize) -> Vec<String> {
    wait_for(&format!("{n} messages for {user}"), server, || {
        let m = maildrop(server, user, pass);
        (m.len() >= n).then_some(m)
    })
}

// --- delivery ---------------------------------------------------------------

#[test]
fn rfc5321_5_1_delivers_through_the_mx_to_a_second_postamt() {
    if !python_ready() {
        return;
    }
    // The receiving side: a second postamt that hosts remote.test.
    // (Both test servers host example.test; the peer must not take our
    // mail for a spoof of its own domain.)
    let peer = Server::remote_peer("[relay]\nenabled = false\n[smtp]\nspoof_policy = \"off\"\n");
    let dns = Dns::start(zone());
    let s = sender(&dns, peer.addr("smtp").port(), "");
    let body = "Hello Carol,\r\n.a line that starts with a dot\r\n..two\r\n.\r\nend\r\n";
    submit(
        &s,
        &["carol@remote.test"],
        "",
        "",
        &mail("mx-delivery", body),
    );
    let got = wait_maildrop(&peer, "carol@remote.test", "carol-pw", 1);
    let m = &got[0];
    assert!(m.ends_with(body), "body changed on the way:\n{m}");
    assert!(m.contains("Subject: mx-delivery\r\n"), "{m}");
    // The peer's Received names our hostname, over STARTTLS (ESMTPS).
    assert!(m.contains("from mail.test"), "{m}");
    assert!(
        m.contains("with ESMTPS"),
        "opportunistic STARTTLS not used:\n{m}"
    );
    assert!(m.contains("Return-Path: <alice@example.test>"), "{m}");
    wait_queue_empty(&s);
    let log = log_of(&s);
    assert!(log.contains("status=\"sent\""), "{log}");
}

#[test]
fn rfc5321_4_5_2_dot_stuffing_and_bare_line_ends_on_the_wire() {
    if !python_ready() {
        return;
    }
    // No CHUNKING: the relay must use DATA with dot-stuffing.
    let (sink, _dns, s) = relay_to_sink(json!([{}]), zone(), "");
    let body = ".\r\n..\r\n.x\r\nplain\r\n";
    submit(&s, &["carol@remote.test"], "", "", &mail("stuffing", body));
    let t = &sink.wait_txns(1, &s)[0];
    let raw = String::from_utf8_lossy(&t.raw);
    assert!(
        raw.ends_with("\r\n..\r\n...\r\n..x\r\nplain\r\n"),
        "{raw:?}"
    );
    assert!(String::from_utf8_lossy(&t.message).ends_with(body));
    // Nothing but CRLF line ends went out.
    assert!(!t.raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    assert!(
        t.mail.starts_with("MAIL FROM:<alice@example.test> SIZE="),
        "{}",
        t.mail
    );
    assert!(t.rcpts == ["RCPT TO:<carol@remote.test>"], "{:?}", t.rcpts);
}

#[test]
fn rfc3207_opportunistic_starttls_and_verified_tls() {
    if !python_ready() || !require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=mx.remote.test",
        ])
        .args(["-addext", "subjectAltName=DNS:mx.remote.test"])
        // An end-entity certificate (webpki refuses a CA one as a server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let tls = json!([cert.to_str().unwrap(), key.to_str().unwrap()]);
    let sink = Sink::start(json!([{ "tls": tls }]), "127.0.0.1");
    let dns = Dns::start(zone());
    // Verifying against the sink's own certificate as the CA: it matches
    // the MX name, so the message goes.
    let s = sender(
        &dns,
        sink.port(),
        &format!(
            "[relay]\ntls_verify = true\ntls_ca_file = \"{}\"\n",
            cert.display()
        ),
    );
    send(&s, "tls", "x\r\n");
    let t = sink.wait_txns(1, &s);
    assert!(t[0].tls, "the message went in plaintext");
    drop(s);
    // A certificate for another name fails verification: with opportunistic
    // TLS the relay falls back to plaintext, as Postfix's "may" does;
    // with tls = "required" it defers instead.
    let other = dir.path().join("other.pem");
    let okey = dir.path().join("other.key");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=elsewhere.test",
            "-keyout",
        ])
        .arg(&okey)
        .arg("-out")
        .arg(&other)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let s = sender(
        &dns,
        sink.port(),
        &format!(
            "[relay]\ntls = \"required\"\ntls_verify = true\ntls_ca_file = \"{}\"\n",
            other.display()
        ),
    );
    send(&s, "tls2", "x\r\n");
    wait_for("a TLS failure", &s, || {
        log_of(&s).contains("TLS handshake").then_some(())
    });
    assert_eq!(
        sink.txns().len(),
        1,
        "sent despite a certificate that does not verify"
    );
}

#[test]
fn rfc3030_chunking_used_when_offered() {
    if !python_ready() {
        return;
    }
    let ehlo = json!(["PIPELINING", "CHUNKING", "8BITMIME", "SIZE 1000000"]);
    let (sink, _dns, s) = relay_to_sink(json!([{ "ehlo": ehlo }]), zone(), "");
    send(&s, "bdat", ".dot\r\nx\r\n");
    let t = &sink.wait_txns(1, &s)[0];
    assert!(sink.log().contains("C: BDAT "), "{}", sink.log());
    // BDAT content is not dot-stuffed.
    assert!(String::from_utf8_lossy(&t.raw).ends_with("\r\n.dot\r\nx\r\n"));
}

#[test]
fn retry_after_4xx_then_success_and_one_connection_for_many_messages() {
    if !python_ready() {
        return;
    }
    // The first RCPT gets 451; then all is well.
    let (sink, _dns, s) = relay_to_sink(
        json!([{ "rcpt_first": [1, "451 4.3.0 try again later"] }]),
        zone(),
        "[relay]\ndestination_concurrency = 1\n",
    );
    send(&s, "retry", "x\r\n");
    let t = sink.wait_txns(1, &s);
    assert_eq!(t.len(), 1);
    wait_queue_empty(&s);
    let log = log_of(&s);
    assert!(
        log.contains("deferred") && log.contains("451 4.3.0 try again later"),
        "{log}"
    );
    // Five more messages at once: one destination, concurrency 1, so they
    // go over one connection one after another.
    let before = sink.connections();
    for i in 0..5 {
        submit(
            &s,
            &["carol@remote.test"],
            "",
            "",
            &mail(&format!("batch{i}"), "x\r\n"),
        );
    }
    sink.wait_txns(6, &s);
    wait_queue_empty(&s);
    assert!(
        sink.connections() - before <= 1,
        "no connection reuse: {} connections for 5 messages",
        sink.connections() - before
    );
}

#[test]
fn rfc3464_bounce_after_5xx_with_a_delivery_status_report() {
    if !python_ready() {
        return;
    }
    let (sink, _dns, s) = relay_to_sink(
        json!([{ "rcpt_map": {"nobody@remote.test": "550 5.1.1 <nobody@remote.test>: no such user here"} }]),
        zone(),
        "",
    );
    submit(
        &s,
        &["nobody@remote.test", "carol@remote.test"],
        " RET=HDRS ENVID=env+2B1",
        "",
        &mail("bounce", "secret body\r\n"),
    );
    // carol got it; nobody bounced back to alice.
    let t = sink.wait_txns(1, &s);
    assert_eq!(t[0].rcpts, ["RCPT TO:<carol@remote.test>"]);
    // The DSN extension was passed on (RFC 3461 §4.3, §4.4).
    assert!(
        t[0].mail.contains("RET=HDRS") && t[0].mail.contains("ENVID=env+2B1"),
        "{}",
        t[0].mail
    );
    let box_ = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    let bounce = &box_[0];
    for needle in [
        "Return-Path: <>",
        "From: Mail Delivery System <MAILER-DAEMON@mail.test>",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Content-Type: message/delivery-status",
        "Reporting-MTA: dns; mail.test",
        "Original-Envelope-Id: env+2B1",
        "Final-Recipient: rfc822; nobody@remote.test",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.remote.test",
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: no such user here",
        "Content-Type: text/rfc822-headers",
        "Subject: bounce",
    ] {
        assert!(bounce.contains(needle), "{needle:?} missing in\n{bounce}");
    }
    // RET=HDRS: the body is not returned.
    assert!(!bounce.contains("secret body"), "{bounce}");
    // carol is not mentioned as failed.
    assert!(!bounce.contains("Final-Recipient: rfc822; carol@remote.test"));
    wait_queue_empty(&s);
}

#[test]
fn expiry_bounces_with_a_delay_warning_first() {
    if !python_ready() {
        return;
    }
    let (sink, _dns, s) = relay_to_sink(
        json!([{ "mail": "421 4.3.2 busy, come back later" }]),
        zone(),
        "[relay]\nmax_lifetime = 4\ndelay_warning = 1\n",
    );
    send(&s, "expire", "x\r\n");
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 2);
    let (warning, bounce) = (&got[0], &got[1]);
    assert!(
        warning.contains("Action: delayed") && warning.contains("Will-Retry-Until: "),
        "{warning}"
    );
    assert!(warning.contains("Subject: Delayed Mail"), "{warning}");
    assert!(bounce.contains("Action: failed"), "{bounce}");
    assert!(bounce.contains("Status: 4.4.7"), "{bounce}");
    assert!(
        bounce.contains("421 4.3.2 busy, come back later"),
        "{bounce}"
    );
    // RET absent: the whole message comes back.
    assert!(bounce.contains("Content-Type: message/rfc822"), "{bounce}");
    wait_queue_empty(&s);
    assert!(sink.txns().is_empty());
}

#[test]
fn rfc5321_5_1_mx_fallback_in_preference_order() {
    if !python_ready() {
        return;
    }
    // Preference 5: nothing listens at 127.0.0.4 (refused); 10: greets
    // with 421; 20: accepts. All on the same port.
    let good = Sink::start(json!([{}]), "127.0.0.3");
    let port = good.port();
    let busy = Sink::start(
        json!([{ "greeting": "421 4.3.2 too busy" }]),
        &format!("127.0.0.2:{port}"),
    );
    let dns = Dns::start(json!({
        "remote.test": {"MX": [[20, "mx3.remote.test"], [5, "mx1.remote.test"], [10, "mx2.remote.test"]]},
        "mx1.remote.test": {"A": ["127.0.0.4"]},
        "mx2.remote.test": {"A": ["127.0.0.2"]},
        "mx3.remote.test": {"A": ["127.0.0.3"]},
    }));
    let s = sender(&dns, port, "");
    send(&s, "fallback", "x\r\n");
    good.wait_txns(1, &s);
    assert_eq!(
        busy.connections(),
        1,
        "the preference-10 host was not tried first"
    );
    wait_queue_empty(&s);
}

#[test]
fn implicit_mx_aaaa_and_a_when_there_is_no_mx() {
    if !python_ready() {
        return;
    }
    let sink = Sink::start(json!([{}]), "127.0.0.5");
    // No MX at all: the domain's own address (RFC 5321 §5.1). Its AAAA
    // (::1, where nothing listens on that port) is tried, then its A.
    let dns = Dns::start(json!({
        "remote.test": {"A": ["127.0.0.5"], "AAAA": ["::1"]},
    }));
    let s = sender(&dns, sink.port(), "");
    send(&s, "implicit", "x\r\n");
    sink.wait_txns(1, &s);
    wait_queue_empty(&s);
}

#[test]
fn rfc7505_null_mx_and_nxdomain_bounce_at_once() {
    if !python_ready() {
        return;
    }
    let (sink, _dns, s) = relay_to_sink(
        json!([{}]),
        json!({
            "nullmx.test": {"MX": [[0, "."]], "A": ["127.0.0.1"]},
        }),
        "",
    );
    submit(
        &s,
        &["a@nullmx.test", "b@nosuchdomain.test"],
        "",
        "",
        &mail("nullmx", "x\r\n"),
    );
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    let b = &got[0];
    assert!(b.contains("Final-Recipient: rfc822; a@nullmx.test"), "{b}");
    assert!(b.contains("Status: 5.1.10"), "{b}");
    assert!(b.contains("null MX"), "{b}");
    assert!(
        b.contains("Final-Recipient: rfc822; b@nosuchdomain.test"),
        "{b}"
    );
    assert!(b.contains("Status: 5.1.2"), "{b}");
    assert_eq!(sink.connections(), 0, "a null MX domain was connected to");
    wait_queue_empty(&s);
}

#[test]
fn mx_without_address_bounces_and_dns_outage_defers() {
    if !python_ready() {
        return;
    }
    // MX points at a name without addresses: "no address" — then the
    // zone is fixed and the retry delivers.
    let (_sink, dns, s) = relay_to_sink(
        json!([{}]),
        json!({
            "remote.test": {"MX": [[10, "mx.remote.test"]]},
            "mx.remote.test": {"TXT": ["no address yet"]},
        }),
        "",
    );
    send(&s, "dnsfix", "x\r\n");
    // Every MX without an address: that bounces (5.4.4), as in Postfix.
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    assert!(got[0].contains("Status: 5.4.4"), "{}", got[0]);
    drop(dns);
    // With the DNS server gone, lookups (of a name not cached) time out:
    // deferred, not bounced.
    submit(&s, &["carol@other.test"], "", "", &mail("dnsdown", "x\r\n"));
    wait_for("a DNS deferral in the log", &s, || {
        log_of(&s).contains("4.4.3").then_some(())
    });
    assert!(!queue_is_empty(&s));
    assert_eq!(maildrop(&s, "alice@example.test", "alice-pw").len(), 1);
}

#[test]
fn connection_dropped_in_data_and_stalled_server_are_retried() {
    if !python_ready() {
        return;
    }
    // 1st connection stalls after the greeting (command timeout 3 s),
    // 2nd drops in DATA, 3rd takes the message.
    let (sink, _dns, s) = relay_to_sink(
        json!([{ "stall": "ehlo" }, { "drop_in_data": true }, {}]),
        zone(),
        "",
    );
    send(&s, "flaky", "x\r\n");
    let t = sink.wait_txns(1, &s);
    assert_eq!(t.len(), 1);
    wait_queue_empty(&s);
    assert!(sink.connections() >= 3, "{}", sink.log());
    let log = log_of(&s);
    assert!(log.contains("no reply from"), "{log}");
    assert!(log.contains("closed the connection"), "{log}");
}

#[test]
fn rfc6531_smtputf8_to_a_server_without_it_bounces_5_6_7() {
    if !python_ready() {
        return;
    }
    let (sink, _dns, s) = relay_to_sink(
        json!([{ "ehlo": ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"] }]),
        json!({
            "remote.test": {"MX": [[10, "mx.remote.test"]]},
            "mx.remote.test": {"A": ["127.0.0.1"]},
        }),
        "",
    );
    let m = "From: alice@example.test\r\nTo: jörg@remote.test\r\nSubject: Grüße\r\n\r\nHallo\r\n";
    submit(&s, &["jörg@remote.test"], " SMTPUTF8", "", m.as_bytes());
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    let b = &got[0];
    assert!(b.contains("Status: 5.6.7"), "{b}");
    assert!(b.contains("SMTPUTF8"), "{b}");
    assert!(b.contains("message/global-delivery-status"), "{b}");
    assert!(
        sink.txns().is_empty(),
        "a UTF-8 message went to a server without SMTPUTF8"
    );
    wait_queue_empty(&s);
}

#[test]
fn rfc3461_dsn_parameters_passed_on_and_relayed_notice_without_dsn() {
    if !python_ready() {
        return;
    }
    // With DSN: NOTIFY/ORCPT go along, no report from us.
    let with = Sink::start(json!([{}]), "127.0.0.1");
    let dns = Dns::start(zone());
    let s = sender(&dns, with.port(), "");
    submit(
        &s,
        &["carol@remote.test"],
        "",
        " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@remote.test",
        &mail("dsn1", "x\r\n"),
    );
    let t = with.wait_txns(1, &s);
    assert!(
        t[0].rcpts[0].contains("NOTIFY=SUCCESS,FAILURE")
            && t[0].rcpts[0].contains("ORCPT=rfc822;carol@remote.test"),
        "{:?}",
        t[0].rcpts
    );
    wait_queue_empty(&s);
    assert_eq!(maildrop(&s, "alice@example.test", "alice-pw").len(), 0);
    drop(s);
    // Without DSN: the parameters are dropped and alice hears "relayed".
    let without = Sink::start(json!([{ "ehlo": ["PIPELINING", "8BITMIME"] }]), "127.0.0.1");
    let s = sender(&dns, without.port(), "");
    submit(
        &s,
        &["carol@remote.test"],
        "",
        " NOTIFY=SUCCESS",
        &mail("dsn2", "x\r\n"),
    );
    let t = without.wait_txns(1, &s);
    assert_eq!(t[0].rcpts, ["RCPT TO:<carol@remote.test>"]);
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    assert!(got[0].contains("Action: relayed"), "{}", got[0]);
    assert!(got[0].contains("Status: 2.0.0"), "{}", got[0]);
}

#[test]
fn smarthost_with_auth_and_required_tls() {
    if !python_ready() {
        return;
    }
    // The smarthost is a second postamt's submission port (STARTTLS, AUTH);
    // it hosts remote.test, so the mail ends in carol's mailbox there.
    let hub = Server::remote_peer("[relay]\nenabled = false\n");
    let dns = Dns::start(json!({}));
    let hub_addr = hub.addr("submission");
    // The MX port is unused: nothing is looked up or sent there.
    let s = sender(
        &dns,
        9,
        &format!(
            "[relay]\nsmarthost = \"127.0.0.1:{}\"\nsmarthost_user = \"alice@example.test\"\n\
             smarthost_password = \"alice-pw\"\ntls = \"required\"\n",
            hub_addr.port()
        ),
    );
    send(&s, "smarthost", "via the hub\r\n");
    let got = wait_maildrop(&hub, "carol@remote.test", "carol-pw", 1);
    assert!(
        got[0].contains("with ESMTPSA"),
        "not TLS + AUTH:\n{}",
        got[0]
    );
    assert!(got[0].ends_with("via the hub\r\n"));
    wait_queue_empty(&s);
}

#[test]
fn smarthost_with_wrong_password_defers_without_sending() {
    if !python_ready() {
        return;
    }
    let sink = Sink::start(json!([{ "auth": "user:right" }]), "127.0.0.1");
    let dns = Dns::start(json!({}));
    let s = sender(
        &dns,
        9,
        &format!(
            "[relay]\nsmarthost = \"127.0.0.1:{}\"\nsmarthost_user = \"user\"\nsmarthost_password = \"wrong\"\n",
            sink.port()
        ),
    );
    send(&s, "badauth", "x\r\n");
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    // 535 is permanent: the message bounces with the server's reply.
    assert!(got[0].contains("535 5.7.8"), "{}", got[0]);
    assert!(sink.txns().is_empty());
    // The password never shows in the log.
    assert!(!log_of(&s).contains("wrong"), "{}", log_of(&s));
}

#[test]
fn required_tls_refuses_a_server_without_starttls() {
    if !python_ready() {
        return;
    }
    let (sink, _dns, s) = relay_to_sink(json!([{}]), zone(), "[relay]\ntls = \"required\"\n");
    send(&s, "needtls", "x\r\n");
    wait_for("a TLS deferral", &s, || {
        log_of(&s).contains("4.7.4").then_some(())
    });
    assert!(
        sink.txns().is_empty(),
        "sent in plaintext despite tls = required"
    );
    assert!(!queue_is_empty(&s));
}

#[test]
fn loop_detection_bounces_a_message_with_too_many_received_fields() {
    if !python_ready() {
        return;
    }
    let (sink, _dns, s) = relay_to_sink(json!([{}]), zone(), "");
    // The alias forwards to remote.test; the message arrives through the
    // MDA (no SMTP hop check there) with 51 Received fields.
    s.admin(&["alias", "add", "fwd@example.test", "carol@remote.test"])
        .success();
    let mut m = String::new();
    for i in 0..51 {
        m.push_str(&format!(
            "Received: from hop{i}.test by hop{}.test; Thu, 26 Nov 2026 12:00:00 +0000\r\n",
            i + 1
        ));
    }
    m.push_str("From: alice@example.test\r\nSubject: loop\r\n\r\nround and round\r\n");
    s.deliver("alice@example.test", &["fwd@example.test"], m.as_bytes())
        .success();
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    assert!(got[0].contains("Status: 5.4.6"), "{}", got[0]);
    assert!(sink.txns().is_empty());
}

#[test]
fn queue_hold_release_retry_and_restart_after_kill_9() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(zone());
    // Nothing listens yet: every attempt is refused and deferred.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = sender(
        &dns,
        port,
        "[relay]\nretry_initial = 3600\nretry_max = 3600\n",
    );
    for i in 0..20 {
        submit(
            &s,
            &["carol@remote.test"],
            "",
            "",
            &mail(&format!("crash{i}"), "x\r\n"),
        );
    }
    wait_for("20 deferred entries", &s, || {
        let out = s.admin(&["queue", "list"]).success().stdout;
        (out.matches("next attempt").count() == 20 && out.matches("4.4.1").count() == 20)
            .then_some(())
    });
    // Hold one; kill -9 the sender; start the receiver; start again.
    let list = s.admin(&["queue", "list"]).success().stdout;
    let first: i64 = list.split_whitespace().next().unwrap().parse().unwrap();
    s.admin(&["queue", "hold", &first.to_string()]).success();
    assert!(
        s.admin(&["queue", "list"])
            .success()
            .stdout
            .contains("(held)")
    );
    kill9(&mut s);
    let sink = Sink::start(json!([{}]), &format!("127.0.0.1:{port}"));
    s.spawn();
    // Deferred for an hour: `queue retry` makes them due now.
    let ids: Vec<String> = s
        .admin(&["queue", "list"])
        .success()
        .stdout
        .lines()
        .filter(|l| !l.starts_with('\t'))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    assert_eq!(ids.len(), 20);
    for id in &ids {
        s.admin(&["queue", "retry", id]).success();
    }
    let t = sink.wait_txns(19, &s);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.txns().len(), 19, "the held message was sent");
    s.admin(&["queue", "release", &first.to_string()]).success();
    let t2 = sink.wait_txns(20, &s);
    wait_queue_empty(&s);
    // Each message exactly once.
    let mut ids: Vec<String> = t2
        .iter()
        .map(|t| {
            let m = String::from_utf8_lossy(&t.message);
            m.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "duplicates or losses: {}", t.len());
}

#[test]
fn kill_9_during_transfers_loses_nothing() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(zone());
    // The sink is slow to confirm: the server is killed with transfers in
    // flight. After a restart every message arrives; a message whose
    // confirmation the kill cut off may arrive twice (at-least-once).
    let sink = Sink::start(json!([{ "final_delay": 0.3 }]), "127.0.0.1");
    let mut s = sender(&dns, sink.port(), "[relay]\ndestination_concurrency = 4\n");
    for i in 0..12 {
        submit(
            &s,
            &["carol@remote.test"],
            "",
            "",
            &mail(&format!("inflight{i}"), "x\r\n"),
        );
    }
    sink.wait_txns(2, &s);
    kill9(&mut s);
    s.spawn();
    wait_queue_empty(&s);
    let t = sink.txns();
    let mut ids: Vec<String> = t
        .iter()
        .map(|t| {
            let m = String::from_utf8_lossy(&t.message);
            m.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), 12, "a message was lost");
    // Duplicates only for transfers in flight at the kill.
    assert!(total - 12 <= 4, "{} duplicates", total - 12);
}

// --- DKIM -------------------------------------------------------------------

#[test]
fn rfc6376_postamt_signs_and_dkimpy_verifies_rsa_and_ed25519() {
    if !python_ready() {
        return;
    }
    let (sink, dns, s) = relay_to_sink(json!([{}]), zone(), "");
    let mut records = String::new();
    for (n, algo) in [(0, "rsa"), (1, "ed25519")] {
        // The newer key (another selector) becomes the active one.
        let out = s
            .admin(&[
                "dkim",
                "keygen",
                "example.test",
                "--selector",
                &format!("sel{n}"),
                "--algorithm",
                algo,
            ])
            .success()
            .stdout;
        let line = out.lines().find(|l| l.contains("._domainkey.")).unwrap();
        let (name, rest) = line.split_once(" IN TXT ").unwrap();
        // Zone-file strings joined again.
        let value: String = rest.split('"').skip(1).step_by(2).collect();
        records.push_str(&format!("{name} {value}\n"));
        // A body ending in whitespace-only lines: the mail-auth 0.13.3
        // relaxed-canonicalization trap.
        let body = "Hello\r\n  \r\n\t\r\n\r\n";
        submit(
            &s,
            &["carol@remote.test"],
            "",
            "",
            &mail(&format!("dkim{n}"), body),
        );
        let t = sink.wait_txns(n + 1, &s);
        let m = &t[n].message;
        assert!(
            String::from_utf8_lossy(m).starts_with("DKIM-Signature: "),
            "{}",
            String::from_utf8_lossy(m)
        );
        let file = s.dir.path().join(format!("signed{n}.eml"));
        std::fs::write(&file, m).unwrap();
        let rec = s.dir.path().join("records");
        std::fs::write(&rec, &records).unwrap();
        let v = dkim_check(&["verify", file.to_str().unwrap(), rec.to_str().unwrap()]);
        assert_eq!(
            v.code, 0,
            "dkimpy rejects postamt's {algo} signature: {} {}",
            v.stdout, v.stderr
        );
        // And postamt's own verifier, with the key in the test's DNS.
        let (rname, rvalue) = records.lines().last().unwrap().split_once(' ').unwrap();
        let mut z = zone();
        z[rname.trim_end_matches('.')] = json!({"TXT": [rvalue]});
        dns.set(z);
        let own = s.admin(&["dkim", "verify", file.to_str().unwrap()]);
        assert_eq!(own.code, 0, "{} {}", own.stdout, own.stderr);
        assert!(
            own.stdout.contains("dkim=pass header.d=example.test"),
            "{}",
            own.stdout
        );
    }
    // A tampered message fails in both.
    let file = s.dir.path().join("signed0.eml");
    let tampered = String::from_utf8(std::fs::read(&file).unwrap())
        .unwrap()
        .replace("Hello", "Hallo");
    std::fs::write(&file, tampered).unwrap();
    let rec = s.dir.path().join("records");
    assert_ne!(
        dkim_check(&["verify", file.to_str().unwrap(), rec.to_str().unwrap()]).code,
        0
    );
}

#[test]
fn rfc6376_dkimpy_signs_and_postamt_verifies() {
    if !python_ready() {
        return;
    }
    let dns = Dns::start(json!({}));
    let s = sender(&dns, 9, "");
    let value = s.dkim_keygen("signer.test", "py", &[]);
    dns.set(json!({"py._domainkey.signer.test": {"TXT": [value]}}));
    let key = s.dir.path().join("dkim/signer.test/py.pem");
    for (n, body) in ["plain body\r\n", "trailing blank lines\r\n \r\n\t\r\n"]
        .iter()
        .enumerate()
    {
        let msg = format!(
            "From: someone@signer.test\r\nTo: alice@example.test\r\nSubject: from dkimpy {n}\r\n\
             Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: <py{n}@signer.test>\r\n\r\n{body}"
        );
        let file = s.dir.path().join(format!("py{n}.eml"));
        std::fs::write(&file, msg).unwrap();
        let signed = dkim_check(&[
            "sign",
            file.to_str().unwrap(),
            key.to_str().unwrap(),
            "py",
            "signer.test",
        ]);
        assert_eq!(signed.code, 0, "{}", signed.stderr);
        let sfile = s.dir.path().join(format!("py{n}.signed.eml"));
        std::fs::write(&sfile, signed.stdout.as_bytes()).unwrap();
        let v = s.admin(&["dkim", "verify", sfile.to_str().unwrap()]);
        assert_eq!(
            v.code, 0,
            "postamt rejects dkimpy's signature: {} {}",
            v.stdout, v.stderr
        );
        assert!(
            v.stdout
                .contains("dkim=pass header.d=signer.test header.s=py"),
            "{}",
            v.stdout
        );
    }
    // Unsigned: a clear "none" and a failing exit code.
    let plain = s.dir.path().join("py0.eml");
    let v = s.admin(&["dkim", "verify", plain.to_str().unwrap()]);
    assert_ne!(v.code, 0);
    assert!(v.stdout.contains("dkim=none"), "{}", v.stdout);
}

#[test]
fn rfc3461_notify_success_on_local_delivery_sends_a_delivered_report() {
    if !python_ready() {
        return;
    }
    let (sink, _dns, s) = relay_to_sink(json!([{}]), zone(), "");
    // From the outside (port 25 role): the report goes back out via the MX.
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO mx.remote.test", "250");
    c.smtp("MAIL FROM:<carol@remote.test> ENVID=abc", "250");
    c.smtp(
        "RCPT TO:<alice@example.test> NOTIFY=SUCCESS ORCPT=rfc822;alice@example.test",
        "250",
    );
    c.smtp("RCPT TO:<bob@example.test>", "250");
    c.smtp("DATA", "354");
    c.send(b"From: carol@remote.test\r\nSubject: tell me\r\n\r\nhi\r\n.\r\n");
    c.reply();
    c.smtp("QUIT", "221");
    let t = sink.wait_txns(1, &s);
    let report = String::from_utf8_lossy(&t[0].message);
    assert_eq!(
        t[0].mail.split_whitespace().nth(1),
        Some("FROM:<>"),
        "{}",
        t[0].mail
    );
    // A report asks for no report about itself (RFC 3461 §6.2).
    assert_eq!(t[0].rcpts, ["RCPT TO:<carol@remote.test> NOTIFY=NEVER"]);
    for needle in [
        "Action: delivered",
        "Final-Recipient: rfc822; alice@example.test",
        "Original-Recipient: rfc822; alice@example.test",
        "Original-Envelope-Id: abc",
        "Status: 2.0.0",
        "Subject: tell me",
    ] {
        assert!(report.contains(needle), "{needle:?} missing in\n{report}");
    }
    // bob did not ask.
    assert!(!report.contains("bob@example.test"), "{report}");
    // Submitted by alice to bob with NOTIFY=SUCCESS: alice's own mailbox
    // gets the report.
    submit(
        &s,
        &["bob@example.test"],
        "",
        " NOTIFY=SUCCESS",
        &mail("local", "x\r\n"),
    );
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 2);
    let r = got
        .iter()
        .find(|m| m.contains("Action: delivered"))
        .expect("no report for alice");
    assert!(
        r.contains("Final-Recipient: rfc822; bob@example.test"),
        "{r}"
    );
}

#[test]
fn rfc1870_size_and_rfc6152_8bitmime_checked_before_sending_and_helo_fallback() {
    if !python_ready() {
        return;
    }
    // A server that refuses EHLO: HELO works, no extensions at all — the
    // message (7-bit) still goes.
    let old = Sink::start(json!([{ "no_ehlo": true }]), "127.0.0.1");
    let dns = Dns::start(zone());
    let s = sender(&dns, old.port(), "");
    send(&s, "helo", "x\r\n");
    let t = old.wait_txns(1, &s);
    assert_eq!(
        t[0].mail, "MAIL FROM:<alice@example.test>",
        "ESMTP parameters sent after HELO"
    );
    assert!(old.log().contains("C: HELO mail.test"), "{}", old.log());
    drop(s);
    // SIZE 1000 and no 8BITMIME: a large message and an 8-bit one bounce
    // without being sent (5.3.4, 5.6.3).
    let small = Sink::start(
        json!([{ "ehlo": ["PIPELINING", "SIZE 1000", "ENHANCEDSTATUSCODES"] }]),
        "127.0.0.1",
    );
    let s = sender(&dns, small.port(), "");
    submit(
        &s,
        &["carol@remote.test"],
        "",
        "",
        &mail("big", &"x".repeat(2000)),
    );
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 1);
    assert!(got[0].contains("Status: 5.3.4"), "{}", got[0]);
    let m = "From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: 8\r\n\r\nGr\u{fc}\u{df}e\r\n";
    submit(
        &s,
        &["carol@remote.test"],
        " BODY=8BITMIME",
        "",
        m.as_bytes(),
    );
    let got = wait_maildrop(&s, "alice@example.test", "alice-pw", 2);
    let b = got
        .iter()
        .find(|m| m.contains("Status: 5.6.3"))
        .expect("no 5.6.3 bounce");
    assert!(b.contains("8BITMIME"), "{b}");
    assert!(small.txns().is_empty());
}
