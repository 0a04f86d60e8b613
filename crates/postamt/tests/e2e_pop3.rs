//! POP3 over TCP against the real binary: typed sessions (RFC 1939), bad
//! input, locking, shutdown, limits, transcripts.

mod common;

use std::time::Duration;

use common::*;

fn deliver_n(s: &Server, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let m = message(
                &format!("m{i}"),
                &format!("body {i}\r\n.dot line\r\nbare\nlf\r\n"),
            );
            s.deliver("sender@remote.test", &["alice@example.test"], &m)
                .success();
            m
        })
        .collect()
}

#[test]
fn rfc1939_typed_session_sizes_match_retr_octets() {
    let s = Server::start("");
    let sent = deliver_n(&s, 2);
    let mut c = pop3(&s);
    c.cmd("CAPA", "+OK");
    let caps = String::from_utf8(c.multiline()).unwrap();
    assert!(
        caps.contains("UIDL\r\n") && caps.contains("RESP-CODES\r\n") && caps.contains("STLS\r\n"),
        "{caps}"
    );
    c.login("alice@example.test", "alice-pw");
    let stat = c.cmd("STAT", "+OK 2 ");
    let total: usize = stat.split_whitespace().nth(2).unwrap().parse().unwrap();
    c.cmd("LIST", "+OK");
    let list = String::from_utf8(c.multiline()).unwrap();
    let sizes: Vec<usize> = list
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), total);
    for (i, size) in sizes.iter().enumerate() {
        let l = c.cmd(&format!("RETR {}", i + 1), "+OK");
        assert!(l.contains(&format!("{size} octets")), "{l}");
        let body = c.multiline();
        assert_eq!(
            body.len(),
            *size,
            "LIST size equals RETR octets (RFC 1939 §11)"
        );
        // What was delivered, CRLF-normalised, behind Return-Path and Delivered-To.
        let expected = String::from_utf8(sent[i].clone())
            .unwrap()
            .replace("bare\nlf", "bare\r\nlf");
        let got = String::from_utf8(body).unwrap();
        assert!(
            got.starts_with(
                "Return-Path: <sender@remote.test>\r\nDelivered-To: alice@example.test\r\n"
            ),
            "{got}"
        );
        assert!(got.ends_with(&expected), "{got}");
    }
    c.cmd("TOP 1 0", "+OK");
    let top = String::from_utf8(c.multiline()).unwrap();
    assert!(
        top.ends_with("Message-ID: <m0@remote.test>\r\n\r\n"),
        "{top}"
    );
    c.cmd("UIDL", "+OK");
    let uidl = String::from_utf8(c.multiline()).unwrap();
    assert_eq!(uidl.lines().count(), 2);
    c.cmd("DELE 1", "+OK");
    c.cmd("STAT", "+OK 1 ");
    c.cmd("RSET", "+OK");
    c.cmd("STAT", "+OK 2 ");
    c.cmd("DELE 2", "+OK");
    c.cmd("QUIT", "+OK");
    assert!(c.closed());
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("STAT", "+OK 1 ");
    c.cmd(
        "UIDL 1",
        &format!(
            "+OK 1 {}",
            uidl.lines().next().unwrap().split(' ').nth(1).unwrap()
        ),
    );
}

#[test]
fn dropped_connection_deletes_nothing_and_lock_is_released() {
    let s = Server::start("");
    deliver_n(&s, 3);
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("DELE 1", "+OK");
    c.cmd("DELE 2", "+OK");
    // A second session while the first holds the maildrop (RFC 2449 [IN-USE]).
    let mut d = pop3(&s);
    d.cmd("USER alice@example.test", "+OK");
    d.cmd("PASS alice-pw", "-ERR [IN-USE]");
    drop(c); // disconnect in TRANSACTION state: no UPDATE
    // The lock goes with the session; retry until the server noticed.
    let mut ok = false;
    for _ in 0..500 {
        let mut e = pop3(&s);
        e.cmd("USER alice@example.test", "+OK");
        e.send(b"PASS alice-pw\r\n");
        let l = e.line();
        if l.starts_with("+OK") {
            e.cmd("STAT", "+OK 3 ");
            ok = true;
            break;
        }
        assert!(l.starts_with("-ERR [IN-USE]"), "{l}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "lock never released");
}

#[test]
fn bad_input_gets_err_and_the_session_goes_on() {
    let s = Server::start("[limits]\nmax_errors = 100\n");
    deliver_n(&s, 1);
    let mut c = pop3(&s);
    // Before authentication
    c.cmd("STAT", "-ERR");
    c.cmd("RETR 1", "-ERR");
    c.cmd("PASS x", "-ERR");
    c.cmd("HELLO", "-ERR unknown command");
    c.cmd(&"A".repeat(5000), "-ERR line too long");
    c.cmd("", "-ERR");
    c.login("alice@example.test", "alice-pw");
    for bad in [
        "RETR 0",
        "RETR -1",
        "RETR 4294967296",
        "RETR 99999999999999999999999",
        "DELE 0",
        "DELE 2",
        "TOP 1",
        "TOP 1 -1",
        "LIST 2",
        "UIDL 0",
        "RETR",
        "USER x",
    ] {
        c.cmd(bad, "-ERR");
    }
    c.cmd("DELE 1", "+OK");
    c.cmd("RETR 1", "-ERR");
    c.cmd("DELE 1", "-ERR");
    c.cmd("RSET", "+OK");
    c.cmd("RETR 1", "+OK");
    c.multiline();
    // Binary garbage and a NUL byte
    c.send(b"\x00\xff\xfe\r\n");
    assert!(c.line().starts_with("-ERR"));
    c.cmd("NOOP", "+OK");
    c.cmd("QUIT", "+OK");
}

#[test]
fn too_many_errors_close_the_connection() {
    let s = Server::start("[limits]\nmax_errors = 3\n");
    let mut c = pop3(&s);
    c.cmd("X", "-ERR");
    c.cmd("X", "-ERR");
    c.cmd("X", "-ERR too many errors");
    assert!(c.closed());
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let s = Server::start("");
    deliver_n(&s, 3);
    let mut c = pop3(&s);
    c.send(b"USER alice@example.test\r\nPASS alice-pw\r\nSTAT\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nLIST 2\r\nQUIT\r\n");
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK logged in"));
    assert!(c.line().starts_with("+OK 3 "));
    for _ in 0..3 {
        assert!(c.line().contains("octets"));
        c.multiline();
    }
    assert!(c.line().starts_with("+OK 2 "));
    assert!(c.line().starts_with("+OK"));
    assert!(c.closed());
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let s = Server::start("");
    let mut c = pop3(&s);
    c.cmd("USER alice@example.test", "+OK");
    let a = c.cmd("PASS wrong", "-ERR [AUTH]");
    c.cmd("USER nobody@example.test", "+OK");
    let b = c.cmd("PASS wrong", "-ERR [AUTH]");
    assert_eq!(a, b);
    c.login("alice@example.test", "alice-pw");
}

#[test]
fn repeated_failures_from_one_ip_are_throttled() {
    let s = Server::start("[auth]\nmax_failures = 3\n");
    let mut c = pop3(&s);
    for _ in 0..3 {
        c.cmd("USER alice@example.test", "+OK");
        c.cmd("PASS nope", "-ERR [AUTH] authentication failed");
    }
    c.cmd("USER alice@example.test", "+OK");
    c.cmd("PASS alice-pw", "-ERR [SYS/TEMP] too many failed logins");
    assert!(c.closed());
}

#[test]
fn per_ip_connection_limit() {
    let s = Server::start("[limits]\nmax_connections_per_ip = 2\n");
    let _a = pop3(&s);
    let _b = pop3(&s);
    let mut c = Client::connect(s.addr("pop3"));
    assert!(c.line().starts_with("-ERR [SYS/TEMP] too many connections"));
    drop(_a);
    // The slot comes back once the server saw the close.
    let mut ok = false;
    for _ in 0..500 {
        let mut d = Client::connect(s.addr("pop3"));
        if d.line().starts_with("+OK") {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok);
}

#[test]
fn idle_clients_are_logged_out() {
    let s = Server::start("[limits]\nidle_timeout = 1\n");
    let mut c = pop3(&s);
    // RFC 1939 §3: the connection is closed without a response.
    assert_eq!(c.line(), "");
}

#[test]
fn sigterm_says_goodbye_and_keeps_undeleted_mail() {
    let mut s = Server::start("");
    deliver_n(&s, 2);
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("DELE 1", "+OK");
    let mut idle = pop3(&s);
    let rest = {
        s.signal(15);
        let l = c.line();
        assert!(l.starts_with("-ERR [SYS/TEMP] server shutting down"), "{l}");
        assert!(
            idle.line()
                .starts_with("-ERR [SYS/TEMP] server shutting down")
        );
        s.stop_wait()
    };
    assert!(rest.contains("postamt: stopped"), "{rest}");
    // No QUIT, no UPDATE: both messages are still there.
    s.spawn();
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("STAT", "+OK 2 ");
}

#[test]
fn uidl_is_stable_across_restarts() {
    let mut s = Server::start("");
    deliver_n(&s, 3);
    let uidl = |s: &Server| {
        let mut c = pop3(s);
        c.login("alice@example.test", "alice-pw");
        c.cmd("UIDL", "+OK");
        let u = c.multiline();
        c.cmd("QUIT", "+OK");
        u
    };
    let before = uidl(&s);
    s.stop();
    s.spawn();
    assert_eq!(uidl(&s), before);
}

#[test]
fn transcripts_mask_credentials() {
    let s = Server::start("[transcripts]\nenabled = true\nbody_limit = 64\n");
    deliver_n(&s, 1);
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("RETR 1", "+OK");
    c.multiline();
    c.cmd("QUIT", "+OK");
    let mut c = pop3(&s);
    // AUTH PLAIN with initial response: \0bob@example.test\0bob-pw
    c.cmd("AUTH PLAIN AGJvYkBleGFtcGxlLnRlc3QAYm9iLXB3", "+OK");
    c.cmd("QUIT", "+OK");
    let list = s.admin(&["trace", "list"]).success().stdout;
    let ids: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(ids.len() >= 2, "{list}");
    let mut all = String::new();
    for id in &ids {
        all.push_str(&s.admin(&["trace", "show", id]).success().stdout);
    }
    assert!(all.contains("C: USER alice@example.test"), "{all}");
    assert!(all.contains("C: PASS ****"), "{all}");
    assert!(all.contains("C: AUTH PLAIN ****"), "{all}");
    assert!(all.contains("S: +OK logged in"));
    assert!(all.contains("more bytes not recorded"), "body cut: {all}");
    assert!(
        !all.contains("alice-pw") && !all.contains("AGJvYkBleGFtcGxlLnRlc3QAYm9iLXB3"),
        "{all}"
    );
    assert!(!s.log().contains("alice-pw"));
}

#[test]
fn passwords_never_reach_the_log_even_at_trace_level() {
    // SAFETY of the test: only this test sets the variable for its child.
    let mut s = Server::prepare("");
    unsafe_env_for_child(&mut s);
    let mut c = pop3(&s);
    c.login("alice@example.test", "alice-pw");
    c.cmd("QUIT", "+OK");
    let mut c = pop3(&s);
    c.cmd("AUTH PLAIN AGJvYkBleGFtcGxlLnRlc3QAYm9iLXB3", "+OK");
    c.cmd("AUTH LOGIN", "-ERR");
    drop(c);
    s.stop();
    let log = s.log();
    assert!(!log.is_empty());
    for secret in ["alice-pw", "bob-pw", "AGJvYkBleGFtcGxlLnRlc3QAYm9iLXB3"] {
        assert!(!log.contains(secret), "{secret} in log:\n{log}");
    }
}

/// Starts the prepared server with the most verbose logging.
fn unsafe_env_for_child(s: &mut Server) {
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, text).unwrap();
    s.spawn_with_log("trace");
}

/// Replies are written before any read that may wait: a reply must not be
/// held back behind a partial next line (else a client that never reads
/// makes the server pile up replies in memory).
#[test]
fn reply_is_not_held_behind_a_partial_line() {
    let s = Server::start("");
    let mut c = pop3(&s);
    c.send(b"NOOP\r\nST");
    assert!(c.line().starts_with("-ERR not allowed before login"));
    c.send(b"AT\r\n");
    assert!(c.line().starts_with("-ERR"));
}

/// RFC 1939 §6: the maildrop lock is released when the UPDATE is done,
/// before the QUIT reply, so a client that logs in again as soon as it
/// reads `+OK` never finds the maildrop locked (with the login cache a
/// login takes microseconds: the race was real).
#[test]
fn rfc1939_6_lock_released_before_the_quit_reply() {
    let s = Server::start("");
    let mut c = pop3(&s);
    for i in 0..300 {
        // USER and PASS in one write: the login is as fast as it gets.
        c.send(b"USER alice@example.test\r\nPASS alice-pw\r\n");
        assert!(c.line().starts_with("+OK"), "round {i}");
        let r = c.line();
        assert!(r.starts_with("+OK"), "round {i}: {r}");
        c.cmd("QUIT", "+OK");
        // Connect again right after the +OK.
        c = pop3(&s);
    }
}
