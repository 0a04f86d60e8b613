//! The pages (server-rendered HTML) and the files. The JSON API is in
//! [`crate::api`]; both build on the same view functions.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use postamt_wire::explain::Lang;
use serde::Deserialize;

use crate::admin::{self, AliasForm, DkimForm, NameForm, UserForm};
use crate::compose::ComposeForm;
use crate::mail::{self, FlagForm, ListQuery, MoveForm};
use crate::security::{self, Admin, User, WebError, WebResult};
use crate::{Conn, Web, autoconfig, transcripts};

pub fn router(web: Arc<Web>) -> Router {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/mail") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/mail", get(inbox))
        .route("/mail/{mb}", get(list_page))
        .route("/mail/{mb}/{uid}", get(message_page))
        .route("/mail/{mb}/{uid}/body", get(message_body))
        .route("/mail/{mb}/{uid}/raw", get(message_raw))
        .route("/mail/{mb}/{uid}/part/{n}", get(message_part))
        .route("/mail/{mb}/{uid}/path", get(path_page))
        .route("/mail/{mb}/{uid}/flags", post(flags))
        .route("/mail/{mb}/{uid}/move", post(move_message))
        .route("/mail/{mb}/{uid}/delete", post(delete_message))
        .route("/sessions", get(sessions_page))
        .route("/sessions/{id}", get(session_page))
        .route("/compose", get(compose_page).post(compose_send))
        .route("/admin", get(|| async { Redirect::to("/admin/users") }))
        .route("/admin/users", get(users_page).post(user_add))
        .route("/admin/users/{address}/password", post(user_password))
        .route("/admin/users/{address}/quota", post(user_quota))
        .route("/admin/users/{address}/delete", post(user_delete))
        .route("/admin/domains", get(domains_page).post(domain_add))
        .route("/admin/domains/{name}/delete", post(domain_delete))
        .route("/admin/domains/{name}/check", get(domain_check_page))
        .route("/admin/aliases", get(aliases_page).post(alias_add))
        .route("/admin/aliases/{alias}/delete", post(alias_delete))
        .route("/admin/queue", get(queue_page))
        .route("/admin/queue/{id}/{action}", post(queue_action))
        .route("/admin/dkim", get(dkim_page).post(dkim_generate))
        .route("/admin/status", get(status_page))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(thunderbird),
        )
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route(
            "/autodiscover/autodiscover.xml",
            get(autodiscover)
                .post(autodiscover)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_AUTODISCOVER)),
        )
        .route(
            "/Autodiscover/Autodiscover.xml",
            get(autodiscover)
                .post(autodiscover)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_AUTODISCOVER)),
        )
        .route("/static/app.js", get(app_js))
        .route("/static/style.css", get(style_css));
    pages
        .merge(crate::api::router())
        .fallback(|| async { WebError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&web),
            security::csrf,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&web),
            security::deadline,
        ))
        // Outside the CSRF check: its refusals become pages too.
        .layer(axum::middleware::from_fn(security::html_errors))
        .layer(axum::extract::DefaultBodyLimit::max(web.config.max_body))
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(web)
}

/// The language of the explanations: German when the browser prefers it.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim_start().to_ascii_lowercase().starts_with("de") {
        Lang::De
    } else {
        Lang::En
    }
}

pub fn conn(ext: Option<Extension<Conn>>) -> Conn {
    ext.map(|Extension(c)| c).unwrap_or(Conn {
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: false,
    })
}

/// What the layout shows of the login.
pub struct Nav {
    pub address: String,
    pub admin: bool,
    pub csrf: String,
}

impl Nav {
    fn of(u: &User) -> Nav {
        Nav {
            address: u.login.address.clone(),
            admin: u.login.admin,
            csrf: u.login.csrf.clone(),
        }
    }
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => WebError::Internal(e.to_string()).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    text: &'a str,
}

pub fn error_page(status: StatusCode, text: &str) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        text,
    };
    let mut resp = render(&page);
    *resp.status_mut() = status;
    resp
}

// --- login -------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: String,
}

async fn login_page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if security::cookie_token(&headers).is_some_and(|t| web.sessions.get(&t).is_some()) {
        return Redirect::to("/mail").into_response();
    }
    render(&LoginPage {
        error: String::new(),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    pub user: String,
    pub password: String,
}

/// How a login ended, for the page and the API.
pub enum LoginOutcome {
    Ok(String, crate::sessions::Login),
    Failed,
    Throttled,
    TempFail,
}

/// The password check of IMAP (same throttle, same failure delay), then
/// a new session token.
pub async fn check_login(web: &Arc<Web>, conn: Conn, user: &str, password: &str) -> LoginOutcome {
    use postamt_server::Login;
    let store = Arc::clone(&web.store);
    let (u, p) = (user.trim().to_string(), password.to_string());
    let check = move || store.verify_password(&u, &p);
    match web
        .throttle
        .login("web", conn.peer.ip(), user.trim(), check)
        .await
    {
        Login::Ok(account) => {
            let admin = web.is_admin(&account.address);
            tracing::info!(protocol = "web", peer = %conn.peer.ip(), user = %account.address, tls = conn.tls, "login");
            let (token, login) = web.sessions.create(account.id, &account.address, admin);
            LoginOutcome::Ok(token, login)
        }
        Login::Failed => LoginOutcome::Failed,
        Login::Throttled => LoginOutcome::Throttled,
        Login::TempFail => LoginOutcome::TempFail,
    }
}

async fn login(
    State(web): State<Arc<Web>>,
    ext: Option<Extension<Conn>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let conn = conn(ext);
    // A login replaces the session the browser had (never adopts it).
    if let Some(old) = security::cookie_token(&headers) {
        web.sessions.remove(&old);
    }
    match check_login(&web, conn, &f.user, &f.password).await {
        LoginOutcome::Ok(token, _) => {
            let mut resp = Redirect::to("/mail").into_response();
            // 303: the browser follows with GET.
            *resp.status_mut() = StatusCode::SEE_OTHER;
            set_cookie(&mut resp, &security::session_cookie(Some(&token), conn.tls));
            resp
        }
        LoginOutcome::Failed => {
            let mut r = render(&LoginPage {
                error: "wrong address or password".into(),
            });
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        LoginOutcome::Throttled => {
            let mut r = render(&LoginPage {
                error: "too many failed logins from your address, try later".into(),
            });
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r
        }
        LoginOutcome::TempFail => {
            let mut r = render(&LoginPage {
                error: "the login cannot be checked now, try again".into(),
            });
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

pub fn set_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn logout(State(web): State<Arc<Web>>, ext: Option<Extension<Conn>>, user: User) -> Response {
    web.sessions.remove(&user.token);
    let mut resp = Redirect::to("/login").into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    set_cookie(&mut resp, &security::session_cookie(None, conn(ext).tls));
    resp
}

/// Runs an action on the blocking pool, then sends the browser to `to`
/// (303: it follows with GET, and a reload does not repeat the action).
async fn then_go<T: Send + 'static>(
    to: &str,
    action: impl FnOnce() -> WebResult<T> + Send + 'static,
) -> WebResult<Response> {
    postamt_store::blocking(action).await?;
    Ok(see_other(to))
}

fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

// --- mailbox -----------------------------------------------------------

async fn inbox(State(web): State<Arc<Web>>, user: User) -> WebResult<Response> {
    let account = user.login.account;
    let inbox = postamt_store::blocking(move || {
        web.store
            .mailbox(account, "INBOX")?
            .ok_or(WebError::NotFound)
    })
    .await?;
    Ok(Redirect::to(&format!("/mail/{}", inbox.id.0)).into_response())
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    nav: Nav,
    view: mail::ListView,
    sorts: [&'static str; 6],
}

impl ListPage {
    fn page_link(&self, page: usize) -> String {
        format!(
            "/mail/{}?page={page}&sort={}&q={}",
            self.view.mailbox.id,
            self.view.sort,
            pct(&self.view.q)
        )
    }
}

/// Percent-encodes a query value.
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn list_page(
    State(web): State<Arc<Web>>,
    user: User,
    Path(mb): Path<i64>,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let account = user.login.account;
    let view = postamt_store::blocking(move || mail::list(&w, account, mb, &q)).await?;
    Ok(render(&ListPage {
        nav: Nav::of(&user),
        view,
        sorts: mail::SORTS,
    }))
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    nav: Nav,
    m: mail::MessageView,
    remote: bool,
    as_text: bool,
}

#[derive(Deserialize, Default)]
struct RemoteQuery {
    #[serde(default)]
    remote: Option<String>,
    /// `text`: an HTML message shown as its text.
    #[serde(default)]
    view: Option<String>,
}

async fn message_page(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
    Query(rq): Query<RemoteQuery>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let account = user.login.account;
    let m = postamt_store::blocking(move || mail::message(&w, account, mb, uid)).await?;
    Ok(render(&MessagePage {
        nav: Nav::of(&user),
        m,
        remote: rq.remote.as_deref() == Some("1"),
        as_text: rq.view.as_deref() == Some("text"),
    }))
}

async fn message_body(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
    Query(rq): Query<RemoteQuery>,
) -> WebResult<Response> {
    let remote = rq.remote.as_deref() == Some("1");
    let w = Arc::clone(&web);
    let account = user.login.account;
    let html = postamt_store::blocking(move || mail::html_body(&w, account, mb, uid, remote))
        .await?
        .ok_or(WebError::NotFound)?;
    let mut resp = Html(html).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&crate::html::frame_csp(remote)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    Ok(resp)
}

async fn message_raw(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let account = user.login.account;
    let raw = postamt_store::blocking(move || mail::raw(&w, account, mb, uid)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            // Shown as text, never as a document of this origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ),
        ],
        raw,
    )
        .into_response())
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266 §4.3): an
/// ASCII fallback without quotes or controls, and the real name encoded.
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_+,()[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        pct(name)
    )
}

async fn message_part(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid, n)): Path<(i64, u32, u32)>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let account = user.login.account;
    let (name, bytes) =
        postamt_store::blocking(move || mail::attachment(&w, account, mb, uid, n)).await?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    // Always a download, never rendered here (an HTML or SVG attachment
    // would otherwise run in this origin).
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(resp)
}

#[derive(Template)]
#[template(path = "path.html")]
struct PathPage {
    nav: Nav,
    mailbox: i64,
    uid: u32,
    subject: String,
    svg: String,
    report: String,
}

/// The analysis of a message the user owns.
pub async fn analysis(
    web: &Arc<Web>,
    account: postamt_store::AccountId,
    mb: i64,
    uid: u32,
) -> WebResult<(postamt_analyze::Analysis, Vec<u8>)> {
    let w = Arc::clone(web);
    let raw = postamt_store::blocking(move || mail::raw(&w, account, mb, uid)).await?;
    let a = web.host.analyze(raw.clone()).await;
    Ok((a, raw))
}

async fn path_page(
    State(web): State<Arc<Web>>,
    user: User,
    headers: HeaderMap,
    Path((mb, uid)): Path<(i64, u32)>,
) -> WebResult<Response> {
    let (a, raw) = analysis(&web, user.login.account, mb, uid).await?;
    let subject = mail_parser::MessageParser::default()
        .parse_headers(&raw)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default();
    let lang = match lang_of(&headers) {
        Lang::De => postamt_analyze::text::Lang::De,
        _ => postamt_analyze::text::Lang::En,
    };
    Ok(render(&PathPage {
        nav: Nav::of(&user),
        mailbox: mb,
        uid,
        subject,
        svg: crate::picture::path_svg(&a),
        report: postamt_analyze::report::text(&a, lang),
    }))
}

async fn flags(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
    Form(f): Form<FlagForm>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let account = user.login.account;
    then_go(&format!("/mail/{mb}/{uid}"), move || {
        mail::set_flag(&w, account, mb, uid, &f.action)
    })
    .await
}

async fn move_message(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
    Form(f): Form<MoveForm>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let account = user.login.account;
    then_go(&format!("/mail/{mb}"), move || {
        mail::move_to(&w, account, mb, uid, f.to)
    })
    .await
}

async fn delete_message(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let account = user.login.account;
    then_go(&format!("/mail/{mb}"), move || {
        mail::delete(&w, account, mb, uid)
    })
    .await
}

// --- what happened -----------------------------------------------------

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    nav: Nav,
    sessions: Vec<transcripts::SessionItem>,
    enabled: bool,
}

async fn sessions_page(State(web): State<Arc<Web>>, user: User) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let login = user.login.clone();
    let sessions = postamt_store::blocking(move || transcripts::list(&w, &login)).await?;
    Ok(render(&SessionsPage {
        nav: Nav::of(&user),
        sessions,
        enabled: web.transcripts.is_some(),
    }))
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    nav: Nav,
    s: transcripts::SessionView,
    headline: String,
    lang: &'static str,
}

async fn session_page(
    State(web): State<Arc<Web>>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let lang = lang_of(&headers);
    let w = Arc::clone(&web);
    let login = user.login.clone();
    let s = postamt_store::blocking(move || transcripts::show(&w, &login, &id, lang, 0)).await?;
    Ok(render(&SessionPage {
        nav: Nav::of(&user),
        headline: String::new(),
        lang: if lang == Lang::De { "de" } else { "en" },
        s,
    }))
}

// --- compose -----------------------------------------------------------

#[derive(Template)]
#[template(path = "compose.html")]
struct ComposePage {
    nav: Nav,
    form: ComposeForm,
    error: String,
}

#[derive(Deserialize, Default)]
struct ComposeQuery {
    /// Reply to message `uid` of mailbox `mailbox`.
    mailbox: Option<i64>,
    uid: Option<u32>,
}

async fn compose_page(
    State(web): State<Arc<Web>>,
    user: User,
    Query(q): Query<ComposeQuery>,
) -> WebResult<Response> {
    let form = match (q.mailbox, q.uid) {
        (Some(mb), Some(uid)) => {
            let (w, login) = (Arc::clone(&web), user.login.clone());
            postamt_store::blocking(move || crate::compose::reply_to(&w, &login, mb, uid)).await?
        }
        _ => ComposeForm::default(),
    };
    Ok(render(&ComposePage {
        nav: Nav::of(&user),
        form,
        error: String::new(),
    }))
}

async fn compose_send(
    State(web): State<Arc<Web>>,
    user: User,
    ext: Option<Extension<Conn>>,
    headers: HeaderMap,
    Form(f): Form<ComposeForm>,
) -> Response {
    let lang = lang_of(&headers);
    match crate::compose::send(&web, &user.login, conn(ext).peer, &f).await {
        Ok(sent) => {
            let headline = if sent.accepted {
                format!("Sent: the server answered {}", sent.reply)
            } else {
                format!("Not sent: the server answered {}", sent.reply)
            };
            // The dialogue as the server recorded it, or as the web side
            // saw it when transcripts are off.
            let login = user.login.clone();
            let s = match &sent.transcript {
                Some(id) => transcripts::show(&web, &login, id, lang, 0).ok(),
                None => None,
            };
            let s = s.unwrap_or_else(|| transcripts::SessionView {
                id: String::new(),
                head: Vec::new(),
                rows: sent
                    .dialogue
                    .iter()
                    .map(|l| {
                        let (c, s) = match l.split_once(' ') {
                            Some(("C:", rest)) => (rest.to_string(), String::new()),
                            Some(("S:", rest)) => (String::new(), rest.to_string()),
                            _ => (String::new(), l.clone()),
                        };
                        postamt_server::transcript::TableRow {
                            time: String::new(),
                            client: c,
                            server: s,
                            meaning: String::new(),
                        }
                    })
                    .collect(),
                live: false,
            });
            let mut r = render(&SessionPage {
                nav: Nav::of(&user),
                s,
                headline,
                lang: if lang == Lang::De { "de" } else { "en" },
            });
            if !sent.accepted {
                *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            }
            r
        }
        Err(WebError::BadRequest(e)) => {
            let mut r = render(&ComposePage {
                nav: Nav::of(&user),
                form: f,
                error: e,
            });
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
        Err(e) => e.into_response(),
    }
}

// --- administration ----------------------------------------------------

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<admin::UserView>,
}

async fn users_page(State(web): State<Arc<Web>>, Admin(user): Admin) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let users = postamt_store::blocking(move || admin::users(&w)).await?;
    Ok(render(&UsersPage {
        nav: Nav::of(&user),
        users,
    }))
}

async fn user_add(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Form(f): Form<UserForm>,
) -> WebResult<Response> {
    then_go("/admin/users", move || admin::add_user(&web, &f)).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    pub password: String,
}

async fn user_password(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(address): Path<String>,
    Form(f): Form<PasswordForm>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    then_go("/admin/users", move || {
        admin::set_password(&w, &address, &f.password)
    })
    .await
}

#[derive(Deserialize)]
pub struct QuotaForm {
    #[serde(default)]
    pub quota: String,
}

async fn user_quota(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(address): Path<String>,
    Form(f): Form<QuotaForm>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    then_go("/admin/users", move || {
        admin::set_quota(&w, &address, &f.quota)
    })
    .await
}

async fn user_delete(
    State(web): State<Arc<Web>>,
    Admin(user): Admin,
    Path(address): Path<String>,
) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let me = user.login.address.clone();
    then_go("/admin/users", move || {
        admin::delete_user(&w, &me, &address)
    })
    .await
}

#[derive(Template)]
#[template(path = "admin_domains.html")]
struct DomainsPage {
    nav: Nav,
    domains: Vec<admin::DomainView>,
}

async fn domains_page(State(web): State<Arc<Web>>, Admin(user): Admin) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let domains = postamt_store::blocking(move || admin::domains(&w)).await?;
    Ok(render(&DomainsPage {
        nav: Nav::of(&user),
        domains,
    }))
}

async fn domain_add(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Form(f): Form<NameForm>,
) -> WebResult<Response> {
    then_go("/admin/domains", move || admin::add_domain(&web, &f.name)).await
}

async fn domain_delete(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(name): Path<String>,
) -> WebResult<Response> {
    then_go("/admin/domains", move || admin::remove_domain(&web, &name)).await
}

#[derive(Template)]
#[template(path = "admin_domain_check.html")]
struct DomainCheckPage {
    nav: Nav,
    domain: String,
    records: Vec<crate::DomainRecord>,
}

async fn domain_check_page(
    State(web): State<Arc<Web>>,
    Admin(user): Admin,
    Path(name): Path<String>,
) -> WebResult<Response> {
    let records = domain_check(&web, &name).await?;
    Ok(render(&DomainCheckPage {
        nav: Nav::of(&user),
        domain: name,
        records,
    }))
}

pub async fn domain_check(web: &Arc<Web>, name: &str) -> WebResult<Vec<crate::DomainRecord>> {
    let w = Arc::clone(web);
    let known = postamt_store::blocking(move || Ok::<_, WebError>(w.store.domains()?)).await?;
    if !known.iter().any(|d| d == name) {
        return Err(WebError::NotFound);
    }
    Ok(web.host.domain_check(name.to_string()).await)
}

#[derive(Template)]
#[template(path = "admin_aliases.html")]
struct AliasesPage {
    nav: Nav,
    aliases: Vec<admin::AliasView>,
}

async fn aliases_page(State(web): State<Arc<Web>>, Admin(user): Admin) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let aliases = postamt_store::blocking(move || admin::aliases(&w)).await?;
    Ok(render(&AliasesPage {
        nav: Nav::of(&user),
        aliases,
    }))
}

async fn alias_add(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Form(f): Form<AliasForm>,
) -> WebResult<Response> {
    then_go("/admin/aliases", move || admin::add_alias(&web, &f)).await
}

async fn alias_delete(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(alias): Path<String>,
) -> WebResult<Response> {
    then_go("/admin/aliases", move || admin::remove_alias(&web, &alias)).await
}

#[derive(Template)]
#[template(path = "admin_queue.html")]
struct QueuePage {
    nav: Nav,
    queue: Vec<admin::QueueItem>,
}

async fn queue_page(State(web): State<Arc<Web>>, Admin(user): Admin) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let queue = postamt_store::blocking(move || admin::queue(&w)).await?;
    Ok(render(&QueuePage {
        nav: Nav::of(&user),
        queue,
    }))
}

async fn queue_action(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path((id, action)): Path<(i64, String)>,
) -> WebResult<Response> {
    then_go("/admin/queue", move || {
        admin::queue_action(&web, id, &action)
    })
    .await
}

#[derive(Template)]
#[template(path = "admin_dkim.html")]
struct DkimPage {
    nav: Nav,
    keys: Vec<crate::DkimKey>,
    error: String,
}

async fn dkim_page(State(web): State<Arc<Web>>, Admin(user): Admin) -> Response {
    render(&DkimPage {
        nav: Nav::of(&user),
        keys: web.host.dkim_keys(),
        error: String::new(),
    })
}

async fn dkim_generate(
    State(web): State<Arc<Web>>,
    Admin(user): Admin,
    Form(f): Form<DkimForm>,
) -> Response {
    match dkim_generate_checked(&web, &f).await {
        Ok(_) => see_other("/admin/dkim"),
        Err(WebError::BadRequest(e)) => {
            let mut r = render(&DkimPage {
                nav: Nav::of(&user),
                keys: web.host.dkim_keys(),
                error: e,
            });
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
        Err(e) => e.into_response(),
    }
}

pub async fn dkim_generate_checked(web: &Arc<Web>, f: &DkimForm) -> WebResult<crate::DkimKey> {
    let domain = f.domain.trim().to_lowercase();
    let selector = f.selector.trim().to_lowercase();
    if !admin::valid_domain(&domain) {
        return Err(WebError::BadRequest(format!("not a domain name: {domain}")));
    }
    if !selector.is_empty() && !admin::valid_domain(&selector) {
        return Err(WebError::BadRequest(format!("not a selector: {selector}")));
    }
    let w = Arc::clone(web);
    let d2 = domain.clone();
    let known = postamt_store::blocking(move || Ok::<_, WebError>(w.store.domains()?)).await?;
    if !known.contains(&d2) {
        return Err(WebError::BadRequest(format!(
            "{domain} is not a local domain"
        )));
    }
    let host = Arc::clone(&web.host);
    postamt_store::blocking(move || {
        host.dkim_generate(&domain, &selector)
            .map_err(WebError::BadRequest)
    })
    .await
}

#[derive(Template)]
#[template(path = "admin_status.html")]
struct StatusPage {
    nav: Nav,
    status: admin::StatusView,
}

async fn status_page(State(web): State<Arc<Web>>, Admin(user): Admin) -> WebResult<Response> {
    let w = Arc::clone(&web);
    let status = postamt_store::blocking(move || admin::status(&w)).await?;
    Ok(render(&StatusPage {
        nav: Nav::of(&user),
        status,
    }))
}

// --- autoconfiguration -------------------------------------------------

#[derive(Deserialize)]
struct AutoconfigQuery {
    emailaddress: Option<String>,
}

fn xml(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn thunderbird(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<AutoconfigQuery>,
) -> WebResult<Response> {
    // The address, or the host the client asked (autoconfig.DOMAIN).
    let asked = q.emailaddress.unwrap_or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| {
                let h = h.split(':').next().unwrap_or(h);
                h.strip_prefix("autoconfig.").unwrap_or(h).to_string()
            })
            .unwrap_or_default()
    });
    let w = Arc::clone(&web);
    let domain = postamt_store::blocking(move || {
        autoconfig::our_domain(&w, &asked).ok_or(WebError::NotFound)
    })
    .await?;
    Ok(xml(autoconfig::thunderbird(&web.clients(), &domain)))
}

/// Largest Autodiscover request read.
const MAX_AUTODISCOVER: usize = 16 * 1024;

async fn autodiscover(State(web): State<Arc<Web>>, body: axum::body::Bytes) -> WebResult<Response> {
    if body.len() > MAX_AUTODISCOVER {
        return Err(WebError::BadRequest("request too large".into()));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let address = autoconfig::autodiscover_address(&text)
        .ok_or_else(|| WebError::BadRequest("no EMailAddress in the request".into()))?;
    let w = Arc::clone(&web);
    let a = address.clone();
    postamt_store::blocking(move || autoconfig::our_domain(&w, &a).ok_or(WebError::NotFound))
        .await?;
    Ok(xml(autoconfig::autodiscover(&web.clients(), &address)))
}

// --- files -------------------------------------------------------------

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/app.js"),
    )
        .into_response()
}

async fn style_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/style.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_cannot_break_the_header() {
        let d = content_disposition("a\"; filename=evil.html\r\nX: y.pdf");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(
            d.starts_with("attachment; filename=\"a__ filename_evil.html__X_ y.pdf\""),
            "{d}"
        );
        assert!(d.contains("filename*=UTF-8''a%22%3B%20"));
    }
}
