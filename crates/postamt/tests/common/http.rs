//! A small HTTP/1.1 client for the web interface's tests: one request per
//! connection (`Connection: close`), a cookie, the CSRF token. Bounded:
//! every read has a timeout, every response a size limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Largest response the tests read.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to the web listener");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE as u64).read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..i])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[i + 2 + size + 2..];
    }
    out
}

/// A browser-like client: keeps the session cookie and the CSRF token.
pub struct Browser {
    pub addr: SocketAddr,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            cookie: None,
            csrf: None,
        }
    }

    fn cookie_header(&self) -> Option<String> {
        self.cookie.as_ref().map(|c| format!("postamt_session={c}"))
    }

    pub fn get(&self, path: &str) -> Response {
        let c = self.cookie_header();
        let mut h: Vec<(&str, &str)> = Vec::new();
        if let Some(c) = &c {
            h.push(("Cookie", c));
        }
        request(self.addr, "GET", path, &h, b"")
    }

    /// A form POST with the CSRF token added, as the pages send it.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if let Some(t) = &self.csrf {
            all.push(("csrf", t));
        }
        self.post_raw(path, &all, &[])
    }

    /// A form POST exactly as given (no token added) with extra headers.
    pub fn post_raw(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Response {
        let body = form(fields);
        let c = self.cookie_header();
        let mut h: Vec<(&str, &str)> = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(c) = &c {
            h.push(("Cookie", c));
        }
        h.extend_from_slice(extra);
        request(self.addr, "POST", path, &h, body.as_bytes())
    }

    /// A JSON POST to the API with the CSRF header.
    pub fn api_post(&self, path: &str, body: serde_json::Value) -> Response {
        let c = self.cookie_header();
        let mut h: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
        if let Some(c) = &c {
            h.push(("Cookie", c));
        }
        if let Some(t) = &self.csrf {
            h.push(("X-CSRF-Token", t));
        }
        request(self.addr, "POST", path, &h, body.to_string().as_bytes())
    }

    /// Logs in through the form; takes the cookie and the token.
    pub fn login(&mut self, user: &str, password: &str) -> Response {
        let r = self.post_raw("/login", &[("user", user), ("password", password)], &[]);
        if let Some(c) = r.header("set-cookie") {
            let v = c.split(';').next().unwrap().split_once('=').unwrap().1;
            if !v.is_empty() {
                self.cookie = Some(v.to_string());
                let me = self.get("/api/me");
                assert_eq!(me.status, 200, "{}", me.text());
                self.csrf = Some(me.json()["csrf"].as_str().unwrap().to_string());
            }
        }
        r
    }

    pub fn logged_in(addr: SocketAddr, user: &str, password: &str) -> Browser {
        let mut b = Browser::new(addr);
        let r = b.login(user, password);
        assert_eq!(r.status, 303, "login of {user}: {}", r.text());
        b
    }
}

pub use postamt_web::pct;

pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}
