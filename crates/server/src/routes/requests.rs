//! Rights requests over HTTP, for people (no API key: a one-time code proves who they
//! are) and for processors confirming an erasure:
//! - `POST /v1/requests`: files a request; 202 `{request_id, status}`, the same whether
//!   or not charter knows the person.
//! - `POST /v1/requests/{id}/verify` `{"code"}`: 200 `{request_id, status, token}`, or 400
//!   `invalid_code` for any code that does not verify it.
//! - `GET /v1/requests/{id}?token=T`: where it stands (the token from verifying).
//! - `GET {requests page}/{id}/download?t=T`: the answer's archive, while the link works.
//! - `GET {requests page}/{id}/certificate?t=T`: a completed erasure's signed certificate.
//! - `POST /v1/processors/{recipient}/callback`: a processor's signed progress report.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use charter_core::audit::AuditEvent;
use charter_core::requests::Status;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::pages;
use crate::rights::{self, intake};
use crate::state::AppState;

/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// How far a callback's signature time may be from ours.
const CALLBACK_TOLERANCE_S: i64 = 300;

/// The routes, with the downloads under the policy's requests page.
pub fn routes(state: &AppState) -> Router<AppState> {
    let page = pages::path_of(state, "requests", "/requests");
    let page = page.trim_end_matches('/');
    Router::new()
        .route("/v1/requests", post(file))
        .route("/v1/requests/{id}/verify", post(verify))
        .route("/v1/requests/{id}", get(status))
        .route(&format!("{page}/{{id}}/download"), get(download))
        .route(&format!("{page}/{{id}}/certificate"), get(certificate))
        .route("/v1/processors/{recipient}/callback", post(callback))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

pub(crate) fn client_of(parts: &Parts) -> Option<String> {
    parts.extensions.get::<crate::listen::Peer>().and_then(|p| p.0).map(charter_core::consent::ip_prefix)
}

async fn file(State(state): State<AppState>, parts: Parts, body: Json<intake::Filing>) -> Result<Response, ApiError> {
    let Json(filing) = body;
    let filed = intake::file(&state, filing, client_of(&parts), "api").await?;
    let body = json!({ "request_id": filed.id, "status": filed.status.as_str() });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

pub(crate) fn invalid_code() -> ApiError {
    ApiError::BadRequest {
        code: "invalid_code",
        message: "the code does not verify this request: it may be mistyped, used, or older than 10 minutes".into(),
    }
}

async fn verify(State(state): State<AppState>, Path(id): Path<String>, body: Json<Code>) -> Result<Response, ApiError> {
    let Json(Code { code }) = body;
    let verified = intake::verify(&state, &id, code.trim()).await?.ok_or_else(invalid_code)?;
    let body = json!({ "request_id": id, "status": verified.status.as_str(), "token": verified.token });
    Ok(axum::Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    #[serde(alias = "t")]
    token: String,
}

fn no_such_request() -> ApiError {
    ApiError::Missing { code: "unknown_request", message: "no such request, or the link is not valid".into() }
}

/// The request a token names, when it is `id`.
pub(crate) async fn by_token(
    state: &AppState,
    id: &str,
    token: &str,
) -> Result<charter_store::requests::Request, ApiError> {
    if rights::token_request(state, token).as_deref() != Some(id) {
        return Err(no_such_request());
    }
    state.store.request(id).await?.ok_or_else(no_such_request)
}

/// Where a request stands, as the person sees it.
pub(crate) async fn status_json(
    state: &AppState,
    r: &charter_store::requests::Request,
    token: &str,
) -> Result<Value, ApiError> {
    let events = state.store.request_events(&r.id).await?;
    let page = pages::path_of(state, "requests", "/requests");
    let now = charter_store::now_us();
    let download = (r.downloads_left.unwrap_or(0) > 0 && r.download_until_us.is_some_and(|u| u > now))
        .then(|| format!("{}/{}/download?t={token}", page.trim_end_matches('/'), r.id));
    Ok(json!({
        "request_id": r.id,
        "type": r.kind,
        "jurisdiction": r.jurisdiction,
        "status": r.status,
        "received": charter_core::time::rfc3339_from_us(r.received_at_us),
        "due": r.deadline_us().map(charter_core::time::rfc3339_from_us),
        "extended": r.extension_reason.as_ref().map(|why| json!({ "reason": why })),
        "reason": r.reason,
        "download": download,
        "downloads_left": r.downloads_left,
        "timeline": events.iter().map(|e| json!({ "at": charter_core::time::rfc3339_from_us(e.at_us), "action": e.action, "status": e.status, "note": e.note })).collect::<Vec<_>>(),
    }))
}

async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Token>, ApiError>,
) -> Result<Response, ApiError> {
    let Query(Token { token }) = q.map_err(|_| no_such_request())?;
    let r = by_token(&state, &id, &token).await?;
    Ok(axum::Json(status_json(&state, &r, &token).await?).into_response())
}

/// A page saying the download link no longer works.
fn expired(state: &AppState) -> Response {
    pages::message(
        state,
        StatusCode::GONE,
        "This link has expired",
        "This download link has expired or was used three times already. Ask for a new copy of your data from the privacy center.",
    )
}

async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Token>, ApiError>,
) -> Response {
    let Ok(Query(Token { token })) = q else { return expired(&state) };
    let Ok(mut r) = by_token(&state, &id, &token).await else { return expired(&state) };
    let now = charter_store::now_us();
    let live = r.status == Status::Completed.as_str()
        && r.downloads_left.unwrap_or(0) > 0
        && r.download_until_us.is_some_and(|u| u > now);
    if !live {
        return expired(&state);
    }
    let was = r.status.clone();
    r.downloads_left = r.downloads_left.map(|n| n - 1);
    let event = charter_store::requests::RequestEvent {
        at_us: now,
        actor: "person".into(),
        action: "downloaded".into(),
        status: r.status.clone(),
        note: r.downloads_left.map(|n| format!("{n} download(s) left")),
    };
    match state.store.save_request(&was, &r, &event).await {
        Ok(true) => {}
        _ => return expired(&state),
    }
    let _ = rights::audit_step(&state, &r, "person", "downloaded", None).await;
    let name = format!("attachment; filename=\"{}-{}.zip\"", r.kind, &r.id[..8]);
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        rights::export::stream(state.clone(), r),
    )
        .into_response()
}

async fn certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Token>, ApiError>,
) -> Result<Response, ApiError> {
    let Query(Token { token }) = q.map_err(|_| no_such_request())?;
    let r = by_token(&state, &id, &token).await?;
    let c = state.store.certificate(&r.id).await?.ok_or_else(no_such_request)?;
    Ok(axum::Json(rights::fulfil::certificate_file(&state, &c)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Callback {
    delivery: String,
    status: String,
}

async fn callback(
    State(state): State<AppState>,
    Path(recipient): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let unsigned = || ApiError::Unauthorised {
        code: "bad_signature",
        message: "the Charter-Signature header does not sign this body with the recipient's secret".into(),
    };
    if !state.policy().policy.recipients.contains_key(&recipient) {
        return Err(unsigned());
    }
    let secret = charter_delivery::webhook::recipient_secret(&state.store, &state.keys, &recipient)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?
        .ok_or_else(unsigned)?;
    let header = headers.get("charter-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let now_s = charter_store::now_us() / 1_000_000;
    if !charter_delivery::webhook::check_signature(&secret, header, &body, now_s, CALLBACK_TOLERANCE_S) {
        return Err(unsigned());
    }
    let cb: Callback = serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest {
        code: "malformed_json",
        message: "the body is {\"delivery\", \"status\"}".into(),
    })?;
    if !["pending", "in_progress", "completed", "cancelled"].contains(&cb.status.as_str()) {
        return Err(ApiError::Unprocessable {
            code: "bad_status",
            message: "status is pending, in_progress, completed or cancelled".into(),
            details: Value::Null,
        });
    }
    let task = state
        .store
        .processor_callback(&recipient, &cb.delivery, &cb.status, charter_store::now_us())
        .await?
        .ok_or_else(|| ApiError::Missing {
            code: "unknown_delivery",
            message: "no erasure was sent to this recipient as this delivery".into(),
        })?;
    let detail = json!({ "request": task.request_id, "recipient": recipient, "status": cb.status });
    state.audit.append(AuditEvent::new(&recipient, "processor.callback", "ok").with_detail(&detail)).await?;
    Ok(axum::Json(json!({ "request_id": task.request_id, "status": task.status })).into_response())
}
