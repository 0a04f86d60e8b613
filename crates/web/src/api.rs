//! The JSON API under `/api/`: everything the pages show, from the same
//! view functions. Log in with `POST /api/login` (`{"user", "password"}`):
//! the answer sets the session cookie and carries the CSRF token, which
//! every `POST` sends back as the `X-CSRF-Token` header.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::admin::{self, AliasForm, DkimForm, NameForm, UserForm};
use crate::compose::ComposeForm;
use crate::mail::{self, FlagForm, ListQuery, MoveForm};
use crate::routes::{
    self, LoginForm, LoginOutcome, PasswordForm, QuotaForm, check_login, conn, lang_of, set_cookie,
};
use crate::security::{self, Admin, User, WebError, WebResult};
use crate::{Conn, Web, transcripts};

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/mailboxes", get(mailboxes))
        .route("/api/mailboxes/{mb}/messages", get(messages))
        .route("/api/messages/{mb}/{uid}", get(message))
        .route("/api/messages/{mb}/{uid}/path", get(path))
        .route("/api/messages/{mb}/{uid}/flags", post(flags))
        .route("/api/messages/{mb}/{uid}/move", post(move_message))
        .route("/api/messages/{mb}/{uid}/delete", post(delete_message))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", get(session))
        .route("/api/compose", post(compose))
        .route("/api/admin/users", get(users).post(user_add))
        .route("/api/admin/users/{address}/password", post(user_password))
        .route("/api/admin/users/{address}/quota", post(user_quota))
        .route("/api/admin/users/{address}/delete", post(user_delete))
        .route("/api/admin/domains", get(domains).post(domain_add))
        .route("/api/admin/domains/{name}/delete", post(domain_delete))
        .route("/api/admin/domains/{name}/check", get(domain_check))
        .route("/api/admin/aliases", get(aliases).post(alias_add))
        .route("/api/admin/aliases/{alias}/delete", post(alias_delete))
        .route("/api/admin/queue", get(queue))
        .route("/api/admin/queue/{id}/{action}", post(queue_action))
        .route("/api/admin/dkim", get(dkim).post(dkim_generate))
        .route("/api/admin/status", get(status))
}

/// Runs a view function on the blocking pool and answers its JSON.
async fn json_of<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> WebResult<T> + Send + 'static,
) -> WebResult<Json<T>> {
    postamt_store::blocking(f).await.map(Json)
}

/// Runs an action on the blocking pool and answers `{"ok": true}`.
async fn done(
    f: impl FnOnce() -> WebResult<()> + Send + 'static,
) -> WebResult<Json<serde_json::Value>> {
    postamt_store::blocking(f).await.map(|()| ok())
}

fn ok() -> Json<serde_json::Value> {
    Json(json!({ "ok": true }))
}

async fn login(
    State(web): State<Arc<Web>>,
    ext: Option<Extension<Conn>>,
    headers: HeaderMap,
    Json(f): Json<LoginForm>,
) -> Response {
    let conn = conn(ext);
    if let Some(old) = security::cookie_token(&headers) {
        web.sessions.remove(&old);
    }
    match check_login(&web, conn, &f.user, &f.password).await {
        LoginOutcome::Ok(token, login) => {
            let mut resp = Json(json!({
                "address": login.address,
                "admin": login.admin,
                "csrf": login.csrf,
            }))
            .into_response();
            set_cookie(&mut resp, &security::session_cookie(Some(&token), conn.tls));
            resp
        }
        LoginOutcome::Failed => WebError::Unauthorized.into_response(),
        LoginOutcome::Throttled => WebError::TooMany.into_response(),
        LoginOutcome::TempFail => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the login cannot be checked now", "status": 503 })),
        )
            .into_response(),
    }
}

async fn logout(State(web): State<Arc<Web>>, ext: Option<Extension<Conn>>, user: User) -> Response {
    web.sessions.remove(&user.token);
    let mut resp = ok().into_response();
    set_cookie(&mut resp, &security::session_cookie(None, conn(ext).tls));
    resp
}

async fn me(user: User) -> Json<serde_json::Value> {
    Json(
        json!({ "address": user.login.address, "admin": user.login.admin, "csrf": user.login.csrf }),
    )
}

async fn mailboxes(State(web): State<Arc<Web>>, user: User) -> WebResult<impl IntoResponse> {
    json_of(move || mail::mailboxes(&web, user.login.account)).await
}

async fn messages(
    State(web): State<Arc<Web>>,
    user: User,
    Path(mb): Path<i64>,
    Query(q): Query<ListQuery>,
) -> WebResult<impl IntoResponse> {
    json_of(move || mail::list(&web, user.login.account, mb, &q)).await
}

async fn message(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
) -> WebResult<impl IntoResponse> {
    json_of(move || mail::message(&web, user.login.account, mb, uid)).await
}

async fn path(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
) -> WebResult<impl IntoResponse> {
    let (a, _) = routes::analysis(&web, user.login.account, mb, uid).await?;
    Ok(Json(a))
}

async fn flags(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
    Json(f): Json<FlagForm>,
) -> WebResult<impl IntoResponse> {
    done(move || mail::set_flag(&web, user.login.account, mb, uid, &f.action)).await
}

async fn move_message(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
    Json(f): Json<MoveForm>,
) -> WebResult<impl IntoResponse> {
    let new = json_of(move || mail::move_to(&web, user.login.account, mb, uid, f.to)).await?;
    Ok(Json(json!({ "ok": true, "uid": new.0 })))
}

async fn delete_message(
    State(web): State<Arc<Web>>,
    user: User,
    Path((mb, uid)): Path<(i64, u32)>,
) -> WebResult<impl IntoResponse> {
    done(move || mail::delete(&web, user.login.account, mb, uid)).await
}

async fn sessions(State(web): State<Arc<Web>>, user: User) -> WebResult<impl IntoResponse> {
    json_of(move || transcripts::list(&web, &user.login)).await
}

#[derive(Deserialize)]
struct RowsQuery {
    #[serde(default)]
    from: usize,
    lang: Option<String>,
    /// Seconds to wait for a row after `from` while the session is live
    /// (long polling; at most 30).
    #[serde(default)]
    wait: u64,
}

async fn session(
    State(web): State<Arc<Web>>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RowsQuery>,
) -> WebResult<impl IntoResponse> {
    let lang = match q.lang.as_deref() {
        Some("de") => postamt_wire::explain::Lang::De,
        Some(_) => postamt_wire::explain::Lang::En,
        None => lang_of(&headers),
    };
    if q.wait > 0 {
        let wait = std::time::Duration::from_secs(q.wait);
        return transcripts::show_waiting(web, user.login, id, lang, q.from, wait)
            .await
            .map(Json);
    }
    json_of(move || transcripts::show(&web, &user.login, &id, lang, q.from)).await
}

async fn compose(
    State(web): State<Arc<Web>>,
    user: User,
    ext: Option<Extension<Conn>>,
    Json(f): Json<ComposeForm>,
) -> WebResult<Response> {
    let sent = crate::compose::send(&web, &user.login, conn(ext).peer, &f).await?;
    let status = if sent.accepted {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(sent)).into_response())
}

async fn users(State(web): State<Arc<Web>>, Admin(_): Admin) -> WebResult<impl IntoResponse> {
    json_of(move || admin::users(&web)).await
}

async fn user_add(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Json(f): Json<UserForm>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::add_user(&web, &f)).await
}

async fn user_password(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(address): Path<String>,
    Json(f): Json<PasswordForm>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::set_password(&web, &address, &f.password)).await
}

async fn user_quota(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(address): Path<String>,
    Json(f): Json<QuotaForm>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::set_quota(&web, &address, &f.quota)).await
}

async fn user_delete(
    State(web): State<Arc<Web>>,
    Admin(user): Admin,
    Path(address): Path<String>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::delete_user(&web, &user.login.address, &address)).await
}

async fn domains(State(web): State<Arc<Web>>, Admin(_): Admin) -> WebResult<impl IntoResponse> {
    json_of(move || admin::domains(&web)).await
}

async fn domain_add(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Json(f): Json<NameForm>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::add_domain(&web, &f.name)).await
}

async fn domain_delete(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(name): Path<String>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::remove_domain(&web, &name)).await
}

async fn domain_check(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(name): Path<String>,
) -> WebResult<impl IntoResponse> {
    Ok(Json(routes::domain_check(&web, &name).await?))
}

async fn aliases(State(web): State<Arc<Web>>, Admin(_): Admin) -> WebResult<impl IntoResponse> {
    json_of(move || admin::aliases(&web)).await
}

async fn alias_add(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Json(f): Json<AliasForm>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::add_alias(&web, &f)).await
}

async fn alias_delete(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path(alias): Path<String>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::remove_alias(&web, &alias)).await
}

async fn queue(State(web): State<Arc<Web>>, Admin(_): Admin) -> WebResult<impl IntoResponse> {
    json_of(move || admin::queue(&web)).await
}

async fn queue_action(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Path((id, action)): Path<(i64, String)>,
) -> WebResult<impl IntoResponse> {
    done(move || admin::queue_action(&web, id, &action)).await
}

async fn dkim(State(web): State<Arc<Web>>, Admin(_): Admin) -> Json<Vec<crate::DkimKey>> {
    Json(web.host.dkim_keys())
}

async fn dkim_generate(
    State(web): State<Arc<Web>>,
    Admin(_): Admin,
    Json(f): Json<DkimForm>,
) -> WebResult<impl IntoResponse> {
    Ok(Json(routes::dkim_generate_checked(&web, &f).await?))
}

async fn status(State(web): State<Arc<Web>>, Admin(_): Admin) -> WebResult<impl IntoResponse> {
    json_of(move || admin::status(&web)).await
}
