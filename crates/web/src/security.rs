//! What every request passes through: the security headers, the check of
//! state-changing requests (same origin, CSRF token), the login extractor,
//! and the error responses.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::sessions::{COOKIE, Login, same_secret};
use crate::{Conn, Web};

/// The policy of every page: scripts, styles and images from this origin
/// only (no inline script at all), frames only of this origin, never
/// framed by others, forms only to this origin.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers every response carries (a handler that set
/// its own policy, the message frame, keeps it).
pub async fn headers(req: Request, next: Next) -> Response {
    let tls = req.extensions().get::<Conn>().is_some_and(|c| c.tls);
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, PAGE_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    // Links out of the interface carry no address of ours; requests
    // within it keep their real Origin (under `no-referrer` a browser
    // posts forms with `Origin: null`).
    set(header::REFERRER_POLICY, "same-origin");
    set(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    if is_static {
        set(header::CACHE_CONTROL, "public, max-age=3600");
    } else {
        // Mail is private: nothing of it in shared or disk caches.
        set(header::CACHE_CONTROL, "no-store");
    }
    if tls {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    resp
}

/// Every request is answered within `[web] request_timeout` (a body sent
/// slowly, a handler that hangs): 408 after it. Long polls wait at most
/// [`crate::transcripts::MAX_WAIT`], well within it.
pub async fn deadline(
    axum::extract::State(web): axum::extract::State<Arc<Web>>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(web.config.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({ "error": "request took too long", "status": 408 })),
        )
            .into_response(),
    }
}

/// The session token of the request's cookie.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(s) = value.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == COOKIE
                && !v.is_empty()
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// The `Set-Cookie` value of a new login (or of a logout, `None`).
pub fn session_cookie(token: Option<&str>, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    match token {
        Some(t) => format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether the request comes from a page of this origin (or from no page
/// at all, a client that sends neither header). Browsers set
/// `Sec-Fetch-Site` and `Origin`; a page cannot forge them. The fetch
/// metadata decides where it is sent (a form posted under a strict
/// referrer policy may carry `Origin: null`); otherwise the origin must be
/// this host.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let bare = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    bare.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Paths that change state without a login: there is no CSRF token yet
/// (the login itself, checked for its origin), or the caller is a mail
/// client, not a browser (Autodiscover posts its request).
fn without_token(path: &str) -> bool {
    matches!(
        path,
        "/login"
            | "/api/login"
            | "/autodiscover/autodiscover.xml"
            | "/Autodiscover/Autodiscover.xml"
    )
}

/// Every request that may change state (not GET/HEAD) must come from this
/// origin and carry the CSRF token of its login, as header `X-CSRF-Token`
/// or as form field `csrf`.
pub async fn csrf(
    axum::extract::State(web): axum::extract::State<Arc<Web>>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    if path.starts_with("/autodiscover") || path.starts_with("/Autodiscover") {
        return next.run(req).await;
    }
    if !same_origin(req.headers()) {
        return WebError::Forbidden("cross-origin request refused").into_response();
    }
    if without_token(&path) {
        return next.run(req).await;
    }
    let Some(login) = cookie_token(req.headers()).and_then(|t| web.sessions.get(&t)) else {
        // The handler answers: 401 or the login page.
        return next.run(req).await;
    };
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(t) = header_token {
        if same_secret(&t, &login.csrf) {
            return next.run(req).await;
        }
        return WebError::Forbidden("wrong CSRF token").into_response();
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return WebError::Forbidden("missing CSRF token").into_response();
    }
    let (parts, body) = req.into_parts();
    // Read at most what the handler would accept (`[web] max_body`).
    let Ok(bytes) = axum::body::to_bytes(body, web.config.max_body).await else {
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(serde_json::json!({ "error": "request too large", "status": 413 })),
        )
            .into_response();
    };
    let token = form_urlencoded_value(&bytes, "csrf");
    if !token.is_some_and(|t| same_secret(&t, &login.csrf)) {
        return WebError::Forbidden("wrong or missing CSRF token").into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// One field of an `application/x-www-form-urlencoded` body.
fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The logged-in user of a request. Pages without one redirect to the
/// login page; the API answers 401.
pub struct User {
    pub login: Login,
    pub token: String,
}

impl FromRequestParts<Arc<Web>> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<User, Response> {
        let found = cookie_token(&parts.headers)
            .and_then(|t| web.sessions.get(&t).map(|login| User { login, token: t }));
        match found {
            Some(u) => Ok(u),
            None if parts.uri.path().starts_with("/api/") => {
                Err(WebError::Unauthorized.into_response())
            }
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// An administrator (the `[web] admins` role); anyone else gets 404, as if
/// the administration did not exist.
pub struct Admin(pub User);

impl FromRequestParts<Arc<Web>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Admin, Response> {
        let user = User::from_request_parts(parts, web).await?;
        if user.login.admin && web.is_admin(&user.login.address) {
            Ok(Admin(user))
        } else {
            Err(WebError::NotFound.into_response())
        }
    }
}

/// Errors of handlers: the status, and a page or a JSON object.
#[derive(Debug)]
pub enum WebError {
    NotFound,
    Unauthorized,
    Forbidden(&'static str),
    BadRequest(String),
    TooMany,
    Internal(String),
}

impl From<postamt_store::StoreError> for WebError {
    fn from(e: postamt_store::StoreError) -> WebError {
        use postamt_store::StoreError as E;
        match e {
            E::NotFound(_) => WebError::NotFound,
            E::AlreadyExists(s) => WebError::BadRequest(format!("already exists: {s}")),
            other => {
                tracing::error!(error = %other, "web: store error");
                WebError::Internal(other.to_string())
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "not found".to_string()),
            WebError::Unauthorized => (StatusCode::UNAUTHORIZED, "log in first".to_string()),
            WebError::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_string()),
            WebError::BadRequest(why) => (StatusCode::BAD_REQUEST, why.clone()),
            WebError::TooMany => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins from your address, try later".to_string(),
            ),
            WebError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (see the server log)".to_string(),
            ),
        };
        if let WebError::Internal(why) = &self {
            tracing::error!(error = %why, "web: internal error");
        }
        let body = serde_json::json!({ "error": text, "status": status.as_u16() });
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(ErrorText(text));
        resp
    }
}

/// The text of an error response: pages show it as HTML
/// ([`html_errors`]), the API as JSON.
#[derive(Debug, Clone)]
pub struct ErrorText(pub String);

/// Error responses outside `/api/` become pages.
pub async fn html_errors(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if api {
        return resp;
    }
    match resp.extensions().get::<ErrorText>().cloned() {
        Some(ErrorText(text)) => {
            let status = resp.status();
            crate::routes::error_page(status, &text)
        }
        None => resp,
    }
}

pub type WebResult<T> = Result<T, WebError>;
