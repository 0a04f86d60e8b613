//! The web interface in a real browser (issue 17): Debian's Chromium,
//! headless, driven through chromedriver (W3C WebDriver) with fantoccini.
//! The test logs in, reads a message, opens its path picture, watches a
//! transcript grow while it types an SMTP session over TCP, sends from the
//! compose page and performs the administration's actions; hostile
//! messages must not run a line of script (an alert would stay open and
//! fail the next command). Screenshots of every page go to
//! `target/tmp/web-screens/` to be looked at.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};

const WEB: &str = "[transcripts]\nenabled = true\n[web]\nadmins = [\"alice@example.test\"]\n";

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000",
                     "--no-first-run", "--disable-extensions"]
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

fn screens() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screens");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screens().join(format!("{name}.png")), png).unwrap();
}

/// No script of a message ran: no dialog is open, the title is ours.
async fn no_script_ran(c: &Client) {
    if let Ok(text) = c.get_alert_text().await {
        panic!("a dialog opened: {text}");
    }
    let title = c.title().await.unwrap();
    assert!(
        title.ends_with("· postamt"),
        "the title was changed: {title}"
    );
}

async fn wait_for_text(c: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
            && t.contains(needle)
        {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never showed {needle:?}: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login(c: &Client, base: &str, user: &str, pass: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "input[name=user]", user).await;
    fill(c, "input[name=password]", pass).await;
    click(c, "#login button").await;
    if c.wait()
        .for_element(Locator::Css("#messages"))
        .await
        .is_err()
    {
        shot(c, "login-failed").await;
        panic!(
            "no mailbox after login at {}: {}",
            c.current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default(),
            c.source().await.unwrap_or_default()
        );
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Submits the form `css` and accepts its confirmation dialog if it asks.
async fn submit_confirmed(c: &Client, css: &str) {
    click(c, css).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if c.accept_alert().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hostile() -> Vec<u8> {
    concat!(
        "Received: from laptop (laptop [198.51.100.7])\r\n",
        "\tby mx.example.test with ESMTP id def; Sat, 5 Dec 2026 10:00:00 +0000\r\n",
        "From: \"<img src=x onerror=alert('name')>\" <mallory@example.test>\r\n",
        "To: alice@example.test\r\n",
        "Subject: <script>alert('subject')</script>Quarterly report\r\n",
        "Date: Sat, 5 Dec 2026 10:00:00 +0000\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: text/html; charset=utf-8\r\n",
        "\r\n",
        "<p id=greeting>Dear Alice</p><script>alert('body')</script>",
        "<img src=x onerror=\"alert('img')\"><svg onload=\"alert('svg')\"></svg>",
        "<a id=jslink href=\"javascript:alert('link')\">click me</a>",
        "<form action=\"https://evil.test/\"><input name=p></form>\r\n",
    )
    .as_bytes()
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_interface_in_chromium() {
    if !require("chromedriver") {
        return;
    }
    let s = Server::start(WEB);
    s.deliver("mallory@example.test", &["alice@example.test"], &hostile())
        .success();
    let base = format!("http://{}", s.addr("http"));
    let driver = start_driver();
    let c = browser(&driver).await;

    // Log in; the list shows the hostile subject as text.
    login(&c, &base, "alice@example.test", "alice-pw").await;
    no_script_ran(&c).await;
    let list = wait_for_text(&c, "#messages", "Quarterly report").await;
    assert!(list.contains("<script>alert('subject')</script>"), "{list}");
    shot(&c, "01-mailbox").await;

    // Read it: the sender's name as text, the HTML body without scripts.
    click(&c, "#messages tbody a").await;
    c.wait()
        .for_element(Locator::Css("#subject"))
        .await
        .unwrap();
    no_script_ran(&c).await;
    let from = c
        .find(Locator::Css("#from"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(from.contains("<img src=x onerror=alert('name')>"), "{from}");
    let frame = c.find(Locator::Css("#html-body")).await.unwrap();
    shot(&c, "02-message").await;
    frame.enter_frame().await.unwrap();
    let greeting = c
        .wait()
        .for_element(Locator::Css("body p"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(greeting, "Dear Alice");
    assert!(
        c.find(Locator::Css("script")).await.is_err(),
        "a script element survived"
    );
    assert!(
        c.find(Locator::Css("form")).await.is_err(),
        "a form survived"
    );
    // The link that was javascript: leads nowhere now; clicking it runs nothing.
    if let Ok(a) = c.find(Locator::LinkText("click me")).await {
        let href = a.attr("href").await.unwrap();
        assert!(
            href.as_deref()
                .is_none_or(|h| !h.to_lowercase().contains("javascript")),
            "{href:?}"
        );
    }
    c.enter_parent_frame().await.unwrap();
    no_script_ran(&c).await;

    // The path picture.
    click(&c, "#path-link").await;
    c.wait()
        .for_element(Locator::Css("#path-picture svg"))
        .await
        .unwrap();
    let hops = c
        .find_all(Locator::Css("#path-picture svg g.hop"))
        .await
        .unwrap();
    assert_eq!(hops.len(), 2, "origin and one hop");
    shot(&c, "03-path").await;

    // A live transcript: type an SMTP session, watch the page follow.
    let mut smtp_client = smtp(&s, "smtp");
    smtp_client.smtp("EHLO typed.by.hand", "250");
    c.goto(&format!("{base}/sessions")).await.unwrap();
    wait_for_text(&c, "#sessions", "smtp").await;
    shot(&c, "04-sessions").await;
    let link = c
        .find(Locator::XPath(
            "//table[@id='sessions']//tr[td[2][text()='smtp']][.//span[@class='live']]//a",
        ))
        .await
        .unwrap();
    link.click().await.unwrap();
    wait_for_text(&c, "#transcript", "EHLO typed.by.hand").await;
    smtp_client.smtp("MAIL FROM:<someone@elsewhere.test>", "250");
    let t = wait_for_text(&c, "#transcript", "MAIL FROM:<someone@elsewhere.test>").await;
    assert!(
        t.contains("waiting for RCPT"),
        "the state is explained: {t}"
    );
    smtp_client.smtp("QUIT", "221");
    wait_for_text(&c, "#transcript", "session ended").await;
    shot(&c, "05-live-transcript").await;

    // Compose and send; the dialogue is shown.
    c.goto(&format!("{base}/compose")).await.unwrap();
    for (name, value) in [("to", "bob@example.test"), ("subject", "From the browser")] {
        fill(&c, &format!("#compose input[name={name}]"), value).await;
    }
    fill(&c, "#compose textarea", "Hello Bob, typed in Chromium.").await;
    shot(&c, "06-compose").await;
    click(&c, "#compose button").await;
    let headline = wait_for_text(&c, "#headline", "Sent").await;
    assert!(headline.contains("250"), "{headline}");
    wait_for_text(&c, "#transcript", "RCPT TO:<bob@example.test>").await;
    shot(&c, "07-sent").await;
    let bob = maildrop(&s, "bob@example.test", "bob-pw");
    assert!(bob[0].contains("typed in Chromium"), "{bob:?}");

    // The administration: every action through its form.
    c.goto(&format!("{base}/admin/users")).await.unwrap();
    for (name, value) in [
        ("address", "carol@example.test"),
        ("password", "carol-password"),
    ] {
        fill(&c, &format!("#user-add input[name={name}]"), value).await;
    }
    click(&c, "#user-add button").await;
    wait_for_text(&c, "#users", "carol@example.test").await;
    shot(&c, "08-users").await;
    fill(
        &c,
        "tr[data-address='carol@example.test'] form[action$='/quota'] input[name=quota]",
        "5000000",
    )
    .await;
    click(
        &c,
        "tr[data-address='carol@example.test'] form[action$='/quota'] button",
    )
    .await;
    wait_for_text(&c, "#users", "5000000").await;
    fill(
        &c,
        "tr[data-address='carol@example.test'] form[action$='/password'] input[name=password]",
        "another-password",
    )
    .await;
    click(
        &c,
        "tr[data-address='carol@example.test'] form[action$='/password'] button",
    )
    .await;
    c.wait().for_element(Locator::Css("#users")).await.unwrap();
    submit_confirmed(
        &c,
        "tr[data-address='carol@example.test'] form[action$='/delete'] button",
    )
    .await;
    c.wait().for_element(Locator::Css("#users")).await.unwrap();
    let users = c
        .find(Locator::Css("#users"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!users.contains("carol@example.test"), "{users}");

    c.goto(&format!("{base}/admin/domains")).await.unwrap();
    fill(&c, "#domain-add input[name=name]", "browser.test").await;
    click(&c, "#domain-add button").await;
    wait_for_text(&c, "#domains", "browser.test").await;
    shot(&c, "09-domains").await;
    submit_confirmed(&c, "tr[data-domain='browser.test'] button").await;
    c.wait()
        .for_element(Locator::Css("#domains"))
        .await
        .unwrap();
    let domains = c
        .find(Locator::Css("#domains"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!domains.contains("browser.test"), "{domains}");

    c.goto(&format!("{base}/admin/aliases")).await.unwrap();
    for (name, value) in [
        ("alias", "team@example.test"),
        ("targets", "alice@example.test, bob@example.test"),
    ] {
        fill(&c, &format!("#alias-add input[name={name}]"), value).await;
    }
    click(&c, "#alias-add button").await;
    wait_for_text(&c, "#aliases", "team@example.test").await;
    shot(&c, "10-aliases").await;
    click(&c, "tr[data-alias='team@example.test'] button").await;
    c.wait()
        .for_element(Locator::Css("#aliases"))
        .await
        .unwrap();

    // A message for elsewhere waits in the queue (the relay is off).
    let mut sub = smtp(&s, "submission");
    sub.smtp("EHLO x", "250");
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0alice@example.test\0alice-pw");
    sub.smtp(&format!("AUTH PLAIN {plain}"), "235");
    sub.smtp("MAIL FROM:<alice@example.test>", "250");
    sub.smtp("RCPT TO:<someone@remote.test>", "250");
    sub.smtp("DATA", "354");
    sub.smtp("Subject: waits\r\n\r\nx\r\n.", "250");
    sub.smtp("QUIT", "221");
    c.goto(&format!("{base}/admin/queue")).await.unwrap();
    wait_for_text(&c, "#queue", "someone@remote.test").await;
    click(&c, "#queue form[action$='/hold'] button").await;
    wait_for_text(&c, "#queue", "held").await;
    shot(&c, "11-queue").await;
    click(&c, "#queue form[action$='/release'] button").await;
    wait_for_text(&c, "#queue", "waiting").await;
    click(&c, "#queue form[action$='/retry'] button").await;
    c.wait().for_element(Locator::Css("#queue")).await.unwrap();
    submit_confirmed(&c, "#queue form[action$='/delete'] button").await;
    c.wait()
        .for_element(Locator::Css("#queue-empty"))
        .await
        .unwrap();

    c.goto(&format!("{base}/admin/dkim")).await.unwrap();
    fill(&c, "#dkim-add input[name=domain]", "example.test").await;
    click(&c, "#dkim-add button").await;
    wait_for_text(&c, "#dkim", "v=DKIM1").await;
    shot(&c, "12-dkim").await;

    c.goto(&format!("{base}/admin/status")).await.unwrap();
    wait_for_text(&c, "#listeners", "imaps").await;
    wait_for_text(&c, "#counters", "web logins").await;
    shot(&c, "13-status").await;

    // Bob, no administrator, finds no administration and none of alice's mail.
    click(&c, ".logout button").await;
    c.wait().for_element(Locator::Css("#login")).await.unwrap();
    login(&c, &base, "bob@example.test", "bob-pw").await;
    let nav = c
        .find(Locator::Css("header nav"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!nav.contains("Administration"), "{nav}");
    c.goto(&format!("{base}/admin/users")).await.unwrap();
    wait_for_text(&c, "#error", "not found").await;
    no_script_ran(&c).await;
    c.close().await.unwrap();
}
