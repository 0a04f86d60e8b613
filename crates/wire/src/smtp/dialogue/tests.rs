//! Known-answer tests: a scripted server answers, and what the dialogue
//! wrote is compared octet for octet.

use std::collections::VecDeque;

use super::*;

/// Drives `d` like a driver would, answering each read with the next of
/// `replies` (fed whole) and doing every TLS handshake at once. Returns
/// what was written, one string per write (`<TLS>` for a handshake), and
/// the step the dialogue stopped at (a read when the script is over).
fn run(d: &mut Dialogue, replies: &[&str]) -> (Vec<String>, Result<Step, Error>) {
    let mut replies: VecDeque<&str> = replies.iter().copied().collect();
    let mut wrote = Vec::new();
    loop {
        match d.next_step() {
            Ok(Step::Send(commands)) => {
                let mut bytes = Vec::new();
                for c in &commands {
                    c.write_to(&mut bytes);
                }
                wrote.push(String::from_utf8(bytes).unwrap());
            }
            Ok(Step::SendContent(c)) => wrote.push(String::from_utf8_lossy(c.bytes()).into()),
            Ok(Step::Read(wait)) => {
                let Some(r) = replies.pop_front() else {
                    return (wrote, Ok(Step::Read(wait)));
                };
                assert!(d.feed(r.as_bytes()), "incomplete reply {r:?}");
            }
            Ok(Step::StartTls) => {
                wrote.push("<TLS>".into());
                d.tls_established();
            }
            other => {
                assert!(replies.is_empty(), "replies left over: {replies:?}");
                return (wrote, other);
            }
        }
    }
}

fn reply(code: u16, text: &str) -> ServerReply {
    ServerReply {
        code,
        lines: vec![text.into()],
    }
}

/// An EHLO reply with these keywords.
fn ehlo(keywords: &[&str]) -> String {
    let mut lines = vec!["mx.example.org"];
    lines.extend(keywords);
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("250{sep}{l}\r\n"));
    }
    out
}

/// A dialogue that got a greeting, an EHLO reply with `keywords`, and then
/// the replies `then`; with what it wrote and where it stopped.
fn greeted(
    options: Options,
    keywords: &[&str],
    then: &[&str],
) -> (Dialogue, Vec<String>, Result<Step, Error>) {
    let mut d = Dialogue::new(options);
    let ehlo = ehlo(keywords);
    let mut replies = vec!["220 mx.example.org ESMTP\r\n", &ehlo];
    replies.extend(then);
    let (wrote, step) = run(&mut d, &replies);
    (d, wrote, step)
}

/// A dialogue greeted with these EHLO keywords, ready for a transaction.
fn ready(options: Options, keywords: &[&str]) -> Dialogue {
    let mut d = Dialogue::new(options);
    let (wrote, step) = run(&mut d, &["220 mx.example.org ESMTP\r\n", &ehlo(keywords)]);
    assert_eq!(wrote, ["EHLO mail.test\r\n"]);
    assert_eq!(step, Ok(Step::Ready));
    d
}

fn relay() -> Options {
    Options {
        starttls: TlsPolicy::Off,
        ..Options::relay("mail.test")
    }
}

fn submission() -> Options {
    Options {
        starttls: TlsPolicy::Off,
        ..Options::submission("mail.test")
    }
}

/// Relay options with this STARTTLS policy.
fn starttls(policy: TlsPolicy) -> Options {
    Options {
        starttls: policy,
        ..relay()
    }
}

/// `base` with this AUTH policy.
fn with_auth(base: Options, auth: impl FnOnce(Login) -> Auth) -> Options {
    Options {
        auth: auth(login()),
        ..base
    }
}

fn login() -> Login {
    Login {
        user: "user".into(),
        password: Secret::new("secret".into()),
    }
}

fn to(address: &str) -> Recipient<'_> {
    Recipient {
        address,
        ..Recipient::default()
    }
}

fn from(sender: &str) -> Envelope<'_> {
    Envelope {
        sender,
        ..Envelope::default()
    }
}

fn done(step: Result<Step, Error>) -> Vec<Outcome> {
    match step {
        Ok(Step::Done(outcomes)) => outcomes,
        other => panic!("not done: {other:?}"),
    }
}

#[test]
fn rfc2920_3_1_mail_rcpts_and_data_in_one_group_with_rfc3461_parameters() {
    let mut d = ready(
        relay(),
        &[
            "PIPELINING",
            "SIZE 1000",
            "8BITMIME",
            "DSN",
            "ENHANCEDSTATUSCODES",
        ],
    );
    let env = Envelope {
        sender: "a@x.org",
        ret: Some("HDRS"),
        envid: Some("e+2B1"),
        body: Some("8bitmime"),
        smtputf8: false,
    };
    let rcpts = [
        Recipient {
            address: "b@y.org",
            notify: Some("SUCCESS,FAILURE"),
            orcpt: Some("rfc822;b@y.org"),
        },
        to("c@y.org"),
    ];
    d.transaction(&env, &rcpts, b"Subject: \xc3\xa4\r\n\r\n.dot\nend");
    // All replies in one read: the dialogue takes them one by one.
    let (wrote, step) = run(
        &mut d,
        &[
            "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n",
            "250 2.0.0 queued as 1\r\n",
        ],
    );
    assert_eq!(
        wrote,
        [
            "MAIL FROM:<a@x.org> SIZE=23 BODY=8BITMIME RET=HDRS ENVID=e+2B1\r\n\
             RCPT TO:<b@y.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.org\r\n\
             RCPT TO:<c@y.org>\r\n\
             DATA\r\n",
            "Subject: \u{e4}\r\n\r\n..dot\r\nend\r\n.\r\n",
        ]
    );
    let outcomes = done(step);
    assert_eq!(
        outcomes,
        [
            Outcome::Delivered(reply(250, "2.0.0 queued as 1")),
            Outcome::Refused(Stage::Rcpt, reply(550, "5.1.1 no such user")),
        ]
    );
    assert_eq!(outcomes[1].status(), "5.1.1");
    assert!(outcomes[1].is_permanent() && !outcomes[0].is_permanent());
    // Delivered: no RSET, the next transaction may start.
    assert_eq!(run(&mut d, &[]), (vec![], Ok(Step::Ready)));
    assert!(d.is_ready());
}

#[test]
fn rfc5321_3_2_helo_fallback_one_command_at_a_time() {
    let mut d = Dialogue::new(relay());
    let (wrote, step) = run(
        &mut d,
        &[
            "220 old.example.org\r\n",
            "502 5.5.1 EHLO not implemented\r\n",
            "250 old.example.org\r\n",
        ],
    );
    assert_eq!(wrote, ["EHLO mail.test\r\n", "HELO mail.test\r\n"]);
    assert_eq!(step, Ok(Step::Ready));
    assert!(!d.capabilities().esmtp);
    // No extensions: no parameters, no pipelining; an 8-bit body is not
    // refused (the server never said what it takes).
    let env = Envelope {
        body: Some("8BITMIME"),
        ..from("a@x.org")
    };
    d.transaction(&env, &[to("b@y.org"), to("c@y.org")], b"x\r\n");
    let (wrote, step) = run(
        &mut d,
        &[
            "250 ok\r\n",
            "451 4.3.0 later\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 ok\r\n",
        ],
    );
    assert_eq!(
        wrote,
        [
            "MAIL FROM:<a@x.org>\r\n",
            "RCPT TO:<b@y.org>\r\n",
            "RCPT TO:<c@y.org>\r\n",
            "DATA\r\n",
            "x\r\n.\r\n"
        ]
    );
    let outcomes = done(step);
    assert_eq!(
        outcomes[0],
        Outcome::Refused(Stage::Rcpt, reply(451, "4.3.0 later"))
    );
    assert_eq!(outcomes[1], Outcome::Delivered(reply(250, "ok")));
    assert!(!outcomes[0].is_permanent());
}

#[test]
fn ehlo_refused_without_fallback_and_421_to_ehlo() {
    let mut d = Dialogue::new(submission());
    let (_, step) = run(&mut d, &["220 x\r\n", "502 5.5.1 what\r\n"]);
    assert_eq!(
        step,
        Err(Error::Refused(Stage::Ehlo, reply(502, "5.5.1 what")))
    );
    // The error stays.
    assert_eq!(d.next_step(), step);
    let mut d = Dialogue::new(relay());
    let (wrote, step) = run(&mut d, &["220 x\r\n", "421 4.3.2 bye\r\n"]);
    assert_eq!(wrote, ["EHLO mail.test\r\n"]);
    assert_eq!(
        step,
        Err(Error::Refused(Stage::Ehlo, reply(421, "4.3.2 bye")))
    );
    let mut d = Dialogue::new(relay());
    let (wrote, step) = run(&mut d, &["554 5.3.2 go away\r\n"]);
    assert!(wrote.is_empty());
    assert_eq!(
        step,
        Err(Error::Refused(Stage::Greeting, reply(554, "5.3.2 go away")))
    );
}

#[test]
fn refused_mail_refuses_every_recipient_then_rset() {
    let mut d = ready(relay(), &[]);
    d.transaction(&from("a@x.org"), &[to("b@y.org"), to("c@y.org")], b"x");
    let (wrote, step) = run(&mut d, &["553 5.7.1 sender refused\r\n"]);
    assert_eq!(wrote, ["MAIL FROM:<a@x.org>\r\n"]);
    let refused = Outcome::Refused(Stage::Mail, reply(553, "5.7.1 sender refused"));
    assert_eq!(done(step), [refused.clone(), refused]);
    assert!(!d.is_ready());
    let (wrote, step) = run(&mut d, &["250 2.0.0 ok\r\n"]);
    assert_eq!((wrote, step), (vec!["RSET\r\n".into()], Ok(Step::Ready)));
    // Pipelined: every reply of the group is read first.
    let mut d = ready(relay(), &["PIPELINING"]);
    d.transaction(&from("a@x.org"), &[to("b@y.org")], b"x");
    let (wrote, step) = run(&mut d, &["553 no\r\n503 no\r\n503 no\r\n"]);
    assert_eq!(
        wrote,
        ["MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n"]
    );
    assert_eq!(
        done(step),
        [Outcome::Refused(Stage::Mail, reply(553, "no"))]
    );
    let (wrote, _) = run(&mut d, &["250 ok\r\n"]);
    assert_eq!(wrote, ["RSET\r\n"]);
}

#[test]
fn rfc2920_3_1_no_recipient_accepted_and_data_answered_354() {
    let mut d = ready(relay(), &["PIPELINING"]);
    d.transaction(&from("a@x.org"), &[to("b@y.org"), to("c@y.org")], b"secret");
    let (_, step) = run(
        &mut d,
        &["250 ok\r\n550 5.1.1 no\r\n450 4.2.1 busy\r\n354 go ahead\r\n"],
    );
    let outcomes = done(step);
    assert_eq!(
        outcomes,
        [
            Outcome::Refused(Stage::Rcpt, reply(550, "5.1.1 no")),
            Outcome::Refused(Stage::Rcpt, reply(450, "4.2.1 busy")),
        ]
    );
    // The content is not sent: an empty message ends the DATA the server
    // accepted all the same, then RSET.
    let (wrote, step) = run(
        &mut d,
        &["554 5.5.1 no valid recipients\r\n", "250 2.0.0 ok\r\n"],
    );
    assert_eq!(wrote, [".\r\n", "RSET\r\n"]);
    assert_eq!(step, Ok(Step::Ready));
}

#[test]
fn data_refused_and_content_refused() {
    let mut d = ready(relay(), &[]);
    d.transaction(&from("a@x.org"), &[to("b@y.org")], b"x");
    let (wrote, step) = run(
        &mut d,
        &["250 ok\r\n", "250 ok\r\n", "451 4.3.0 not now\r\n"],
    );
    assert_eq!(wrote.last().unwrap(), "DATA\r\n");
    assert_eq!(
        done(step),
        [Outcome::Refused(Stage::Data, reply(451, "4.3.0 not now"))]
    );
    assert_eq!(run(&mut d, &["250 ok\r\n"]).0, ["RSET\r\n"]);
    // Refused after the content: the transaction is over, no RSET.
    d.transaction(&from("a@x.org"), &[to("b@y.org")], b"x");
    let (_, step) = run(
        &mut d,
        &[
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "554 5.7.1 spam\r\n",
        ],
    );
    assert_eq!(
        done(step),
        [Outcome::Refused(Stage::Content, reply(554, "5.7.1 spam"))]
    );
    assert_eq!(run(&mut d, &[]), (vec![], Ok(Step::Ready)));
}

#[test]
fn rfc3030_bdat_last_when_chunking_is_offered() {
    let mut d = ready(
        relay(),
        &["PIPELINING", "CHUNKING", "BINARYMIME", "8BITMIME"],
    );
    let env = Envelope {
        body: Some("BINARYMIME"),
        ..from("a@x.org")
    };
    d.transaction(&env, &[to("b@y.org")], b"a\n.dot\nx");
    let (wrote, step) = run(&mut d, &["250 ok\r\n250 ok\r\n", "250 2.0.0 ok\r\n"]);
    assert_eq!(
        wrote,
        [
            // No DATA in the group: BDAT follows the replies.
            "MAIL FROM:<a@x.org> BODY=BINARYMIME\r\nRCPT TO:<b@y.org>\r\n",
            "BDAT 12 LAST\r\n",
            // CRLF line ends, no dot-stuffing, no end line.
            "a\r\n.dot\r\nx\r\n",
        ]
    );
    assert_eq!(done(step), [Outcome::Delivered(reply(250, "2.0.0 ok"))]);
    // A client without chunking uses DATA even when it is offered.
    let mut d = ready(submission(), &["CHUNKING"]);
    d.transaction(&from("a@x.org"), &[to("b@y.org")], b"x");
    let (wrote, _) = run(
        &mut d,
        &["250 ok\r\n", "250 ok\r\n", "354 go\r\n", "250 ok\r\n"],
    );
    assert_eq!(wrote[2], "DATA\r\n");
}

#[test]
fn rfc1870_rfc6531_rfc6152_refusals_before_anything_is_sent() {
    let cases: [(&[&str], Envelope<'_>, &[u8], NotSent); 5] = [
        (
            &["SIZE 10", "SMTPUTF8"],
            from("a@x.org"),
            b"0123456789abc",
            NotSent::TooBig {
                size: 13,
                limit: 10,
            },
        ),
        (
            &["8BITMIME"],
            from("j\u{f6}rg@x.org"),
            b"x",
            NotSent::NeedsSmtpUtf8,
        ),
        (
            &["8BITMIME"],
            Envelope {
                smtputf8: true,
                ..from("a@x.org")
            },
            b"x",
            NotSent::NeedsSmtpUtf8,
        ),
        (
            &["SMTPUTF8"],
            Envelope {
                body: Some("8BITMIME"),
                ..from("a@x.org")
            },
            b"\xc3\xa4",
            NotSent::Needs8BitMime,
        ),
        (
            &["BINARYMIME"],
            Envelope {
                body: Some("BINARYMIME"),
                ..from("a@x.org")
            },
            b"x",
            NotSent::NeedsBinaryMime,
        ),
    ];
    for (keywords, env, content, reason) in cases {
        let mut d = ready(relay(), keywords);
        d.transaction(&env, &[to("b@y.org"), to("c@y.org")], content);
        let (wrote, step) = run(&mut d, &[]);
        assert!(wrote.is_empty(), "{reason:?}: {wrote:?}");
        assert_eq!(done(step), vec![Outcome::NotSent(reason); 2]);
        // Nothing was said: the connection is ready for the next message.
        assert_eq!(run(&mut d, &[]), (vec![], Ok(Step::Ready)));
    }
    let big = NotSent::TooBig {
        size: 13,
        limit: 10,
    };
    assert_eq!(big.status(), "5.3.4");
    assert_eq!(
        big.describe("mx[192.0.2.1]:25"),
        "message of 13 octets exceeds mx[192.0.2.1]:25's limit of 10 (RFC 1870)"
    );
    assert!(Outcome::NotSent(NotSent::NeedsSmtpUtf8).is_permanent());
    assert_eq!(Outcome::NotSent(NotSent::NeedsSmtpUtf8).status(), "5.6.7");
    // With SMTPUTF8 offered, it is declared.
    let mut d = ready(relay(), &["SMTPUTF8"]);
    d.transaction(&from("j\u{f6}rg@x.org"), &[to("b@y.org")], b"x");
    let (wrote, _) = run(&mut d, &["451 later\r\n"]);
    assert_eq!(wrote[0], "MAIL FROM:<j\u{f6}rg@x.org> SMTPUTF8\r\n");
}

#[test]
fn rfc3207_starttls_then_ehlo_again() {
    let mut d = Dialogue::new(starttls(TlsPolicy::Opportunistic));
    let (wrote, step) = run(
        &mut d,
        &[
            "220 mx\r\n",
            &ehlo(&["STARTTLS", "PIPELINING"]),
            "220 2.0.0 go ahead\r\n",
            &ehlo(&["PIPELINING", "AUTH PLAIN"]),
        ],
    );
    assert_eq!(
        wrote,
        [
            "EHLO mail.test\r\n",
            "STARTTLS\r\n",
            "<TLS>",
            "EHLO mail.test\r\n"
        ]
    );
    assert_eq!(step, Ok(Step::Ready));
    assert!(d.is_tls());
    assert_eq!(d.capabilities().auth, ["PLAIN"]);
    // Opportunistic: a refusal means plaintext.
    let options = starttls(TlsPolicy::Opportunistic);
    let (d, wrote, step) = greeted(options, &["STARTTLS"], &["454 4.7.0 no TLS now\r\n"]);
    assert_eq!(wrote.len(), 2);
    assert_eq!(step, Ok(Step::Ready));
    assert!(!d.is_tls());
}

#[test]
fn rfc3207_required_starttls_not_offered_refused_or_with_data_before_the_handshake() {
    let required = starttls(TlsPolicy::Required);
    let mut d = Dialogue::new(required.clone());
    let (wrote, step) = run(&mut d, &["220 mx\r\n", &ehlo(&["PIPELINING"])]);
    assert_eq!(wrote, ["EHLO mail.test\r\n"]);
    assert_eq!(step, Err(Error::StartTlsNotOffered));
    let (_, _, step) = greeted(required.clone(), &["STARTTLS"], &["454 4.7.0 no\r\n"]);
    assert_eq!(
        step,
        Err(Error::Refused(Stage::StartTls, reply(454, "4.7.0 no")))
    );
    // CVE-2011-0411 shape: a reply (or part of one) after the 220.
    for injected in ["220 go\r\n250 injected\r\n", "220 go\r\n2"] {
        let mut d = Dialogue::new(required.clone());
        let (wrote, step) = run(&mut d, &["220 mx\r\n", &ehlo(&["STARTTLS"])]);
        assert_eq!(wrote.last().unwrap(), "STARTTLS\r\n");
        assert_eq!(step, Ok(Step::Read(Wait::Command)));
        d.feed(injected.as_bytes());
        assert_eq!(d.next_step(), Err(Error::DataBeforeTls), "{injected:?}");
    }
    // Off: STARTTLS is not even tried.
    let mut d = Dialogue::new(relay());
    let (wrote, step) = run(&mut d, &["220 mx\r\n", &ehlo(&["STARTTLS"])]);
    assert_eq!((wrote.len(), step), (1, Ok(Step::Ready)));
}

#[test]
fn rfc4954_auth_plain_masked_and_refused() {
    let mut d = Dialogue::new(with_auth(relay(), Auth::Required));
    d.feed(b"220 mx\r\n");
    assert_eq!(
        d.next_step(),
        Ok(Step::Send(vec![Command::new("EHLO mail.test")]))
    );
    d.feed(ehlo(&["AUTH LOGIN PLAIN"]).as_bytes());
    let Ok(Step::Send(commands)) = d.next_step() else {
        panic!("no AUTH");
    };
    // base64("\0user\0secret")
    assert_eq!(commands[0].expose(), "AUTH PLAIN AHVzZXIAc2VjcmV0");
    assert_eq!(commands[0].shown(), "AUTH PLAIN ********");
    assert_eq!(format!("{commands:?}"), "[\"AUTH PLAIN ********\"]");
    assert!(!format!("{d:?}").contains("secret"));
    let (_, step) = run(&mut d, &["535 5.7.8 authentication failed\r\n"]);
    assert_eq!(
        step,
        Err(Error::Refused(
            Stage::Auth,
            reply(535, "5.7.8 authentication failed")
        ))
    );
}

#[test]
fn rfc4954_auth_login_when_plain_is_not_offered() {
    let mut d = Dialogue::new(with_auth(submission(), Auth::IfOffered));
    let mut shown = Vec::new();
    let mut replies: VecDeque<&str> = VecDeque::from([
        "220 mx\r\n",
        "250-mx\r\n250 AUTH LOGIN\r\n",
        "334 VXNlcm5hbWU6\r\n",
        "334 UGFzc3dvcmQ6\r\n",
        "235 2.7.0 ok\r\n",
    ]);
    let step = loop {
        match d.next_step().unwrap() {
            Step::Send(c) => shown.push((c[0].expose().to_string(), c[0].shown().to_string())),
            Step::Read(_) => {
                d.feed(replies.pop_front().unwrap().as_bytes());
            }
            other => break other,
        }
    };
    assert_eq!(step, Step::Ready);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        shown,
        [
            pair("EHLO mail.test", "EHLO mail.test"),
            pair("AUTH LOGIN", "AUTH LOGIN"),
            pair("dXNlcg==", "******** (user name, base64)"),
            pair("c2VjcmV0", "******** (password, base64)"),
        ]
    );
    // A refused challenge.
    let options = with_auth(relay(), Auth::Required);
    let (_, _, step) = greeted(options, &["AUTH LOGIN"], &["504 5.5.4 no\r\n"]);
    assert_eq!(
        step,
        Err(Error::Refused(Stage::AuthLogin, reply(504, "5.5.4 no")))
    );
}

#[test]
fn rfc4954_no_usable_mechanism() {
    // Submission: no AUTH offered at all means no login ...
    let if_offered = with_auth(submission(), Auth::IfOffered);
    let mut d = Dialogue::new(if_offered.clone());
    let (wrote, step) = run(&mut d, &["220 mx\r\n", &ehlo(&["8BITMIME"])]);
    assert_eq!((wrote.len(), step), (1, Ok(Step::Ready)));
    // ... but AUTH without PLAIN or LOGIN is an error.
    let mut d = Dialogue::new(if_offered);
    let (_, step) = run(&mut d, &["220 mx\r\n", &ehlo(&["AUTH CRAM-MD5"])]);
    assert_eq!(step, Err(Error::NoAuthMechanism(vec!["CRAM-MD5".into()])));
    // A relay that must log in: no AUTH at all is an error too.
    let mut d = Dialogue::new(with_auth(relay(), Auth::Required));
    let (_, step) = run(&mut d, &["220 mx\r\n", &ehlo(&[])]);
    assert_eq!(step, Err(Error::NoAuthMechanism(vec![])));
}

#[test]
fn all_or_nothing_stops_at_the_first_refused_recipient() {
    let mut d = ready(submission(), &["PIPELINING", "8BITMIME"]);
    let rcpts = [to("a@y.org"), to("b@y.org"), to("c@y.org")];
    d.transaction(&from("me@x.org"), &rcpts, b"x");
    let (wrote, step) = run(
        &mut d,
        &["250 ok\r\n", "250 ok\r\n", "550 5.1.1 no such user\r\n"],
    );
    // One command at a time; no third RCPT, no DATA.
    assert_eq!(
        wrote,
        [
            "MAIL FROM:<me@x.org>\r\n",
            "RCPT TO:<a@y.org>\r\n",
            "RCPT TO:<b@y.org>\r\n"
        ]
    );
    assert_eq!(
        done(step),
        [
            Outcome::NotSent(NotSent::Withheld),
            Outcome::Refused(Stage::Rcpt, reply(550, "5.1.1 no such user")),
            Outcome::NotSent(NotSent::Withheld),
        ]
    );
    assert_eq!(run(&mut d, &["250 ok\r\n"]).0, ["RSET\r\n"]);
    // Pipelined, all or nothing: the group has no DATA.
    let options = Options {
        pipelining: true,
        ..submission()
    };
    let mut d = ready(options, &["PIPELINING"]);
    d.transaction(&from("me@x.org"), &rcpts[..2], b"x");
    let (wrote, step) = run(&mut d, &["250 ok\r\n250 ok\r\n452 4.5.3 too many\r\n"]);
    assert_eq!(
        wrote,
        ["MAIL FROM:<me@x.org>\r\nRCPT TO:<a@y.org>\r\nRCPT TO:<b@y.org>\r\n"]
    );
    assert_eq!(done(step)[0], Outcome::NotSent(NotSent::Withheld));
}

#[test]
fn rfc5321_4_2_replies_split_across_reads() {
    let mut d = Dialogue::new(relay());
    assert_eq!(d.next_step(), Ok(Step::Read(Wait::Greeting)));
    let greeting = "220 mx ESMTP\r\n";
    for (i, b) in greeting.bytes().enumerate() {
        let complete = d.feed(&[b]);
        assert_eq!(complete, i + 1 == greeting.len(), "at {i}");
    }
    assert_eq!(
        d.next_step(),
        Ok(Step::Send(vec![Command::new("EHLO mail.test")]))
    );
    let reply = ehlo(&["PIPELINING", "SIZE 100"]);
    let (a, b) = reply.split_at(20);
    assert_eq!(d.next_step(), Ok(Step::Read(Wait::Command)));
    assert!(!d.feed(a.as_bytes()));
    assert_eq!(d.next_step(), Ok(Step::Read(Wait::Command)));
    assert!(d.feed(b.as_bytes()));
    assert_eq!(d.next_step(), Ok(Step::Ready));
    assert_eq!(d.capabilities().size, Some(100));
}

#[test]
fn unreadable_replies_end_the_dialogue() {
    let mut d = Dialogue::new(relay());
    assert!(d.feed(b"hello\r\n"));
    assert_eq!(
        d.next_step(),
        Err(Error::Reply(ReplyError::Malformed("hello".into())))
    );
    // A transaction out of turn is an error, not a panic.
    let mut d = Dialogue::new(relay());
    d.transaction(&from("a@x.org"), &[to("b@y.org")], b"x");
    assert_eq!(d.next_step(), Err(Error::OutOfTurn));
}

#[test]
fn rset_refused_leaves_only_quit() {
    let mut d = ready(relay(), &[]);
    d.transaction(&from("a@x.org"), &[to("b@y.org")], b"x");
    let (_, step) = run(&mut d, &["550 no\r\n"]);
    done(step);
    let (wrote, step) = run(&mut d, &["500 what?\r\n"]);
    assert_eq!((wrote, step), (vec!["RSET\r\n".into()], Ok(Step::Spent)));
    assert!(!d.is_ready());
    d.quit();
    let (wrote, step) = run(&mut d, &["221 bye\r\n"]);
    assert_eq!((wrote, step), (vec!["QUIT\r\n".into()], Ok(Step::Closed)));
    // Mid-transaction there is nothing to say: just close.
    let mut d = ready(relay(), &[]);
    d.transaction(&from("a@x.org"), &[to("b@y.org")], b"x");
    d.quit();
    assert_eq!(d.next_step(), Ok(Step::Closed));
}

#[test]
fn content_parts_for_a_trace() {
    let data = Content::Data(b"a\r\n..b\r\n.\r\n".to_vec());
    assert_eq!(data.parts(), (&b"a\r\n..b\r\n"[..], &b".\r\n"[..]));
    let chunk = Content::Chunk(b"a\r\n".to_vec());
    assert_eq!(chunk.parts(), (&b"a\r\n"[..], &b""[..]));
    assert_eq!(chunk.bytes(), b"a\r\n");
}
