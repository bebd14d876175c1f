//! The privacy center, at the policy's `requests` page path: a person picks a right in
//! plain words, gives their email or phone, confirms with the code sent there, and
//! follows the request (status, deadline, timeline, download, certificate) from a signed
//! link. The pages need no JavaScript.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use charter_core::requests::RequestType;
use charter_vault::Personal;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::Path;
use crate::pages::{self, Chrome};
use crate::rights::{self, intake};
use crate::routes::requests::{by_token, client_of};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "requests_form.html")]
struct FormPage {
    chrome: Chrome,
    action: String,
    deadlines: String,
    types: Vec<(&'static str, &'static str)>,
    purposes: Vec<(String, String)>,
    fields: Vec<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "requests_code.html")]
struct CodePage {
    chrome: Chrome,
    action: String,
    code: String,
    sent: bool,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "requests_status.html")]
struct StatusPage {
    chrome: Chrome,
    kind: String,
    status: String,
    received: String,
    due: String,
    extended: Option<String>,
    reason: Option<String>,
    download: Option<String>,
    left: i64,
    certificate: Option<String>,
    timeline: Vec<(String, String)>,
}

/// The pages, under the policy's path.
pub fn routes(state: &AppState) -> Router<AppState> {
    let base = base(state);
    Router::new()
        .route(&base, get(form).post(submit))
        .route(&format!("{base}/verify"), get(from_link))
        .route(&format!("{base}/{{id}}/verify"), post(confirm))
        .route(&format!("{base}/{{id}}"), get(status))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
}

fn base(state: &AppState) -> String {
    pages::path_of(state, "requests", "/requests").trim_end_matches('/').to_owned()
}

fn title(state: &AppState) -> String {
    let p = state.policy();
    p.policy.pages.get("requests").map_or_else(|| "Your data, your rights".to_owned(), |p| p.title.clone())
}

fn form_page(state: &AppState, status: StatusCode, error: Option<String>) -> Response {
    let in_force = state.policy();
    let policy = &in_force.policy;
    let mut fields: Vec<String> = policy.collection_points.values().flat_map(|p| p.updates.iter().cloned()).collect();
    fields.sort();
    fields.dedup();
    let deadlines = match (&policy.rights.gdpr, &policy.rights.ccpa) {
        (Some(g), Some(c)) => format!("within {} under the GDPR and {} under the CCPA", g.deadline, c.deadline),
        (Some(g), None) => format!("within {}", g.deadline),
        (None, Some(c)) => format!("within {}", c.deadline),
        (None, None) => "as soon as we can".into(),
    };
    let page = FormPage {
        chrome: Chrome::new(state, &title(state)),
        action: base(state),
        deadlines,
        types: RequestType::ALL.iter().filter(|t| t.offered(policy)).map(|t| (t.as_str(), t.describe())).collect(),
        purposes: policy.purposes.iter().map(|(k, p)| (k.clone(), p.description.clone())).collect(),
        fields,
        error,
    };
    pages::render(status, &page)
}

async fn form(State(state): State<AppState>) -> Response {
    form_page(&state, StatusCode::OK, None)
}

/// A field's value, trimmed; none when blank.
fn value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pages::field(form, name).map(str::trim).filter(|v| !v.is_empty())
}

/// The filing the form asks for.
fn filing(form: &[(String, String)]) -> intake::Filing {
    let personal = |name: &str| value(form, name).map(|v| Personal::new(v.to_owned()));
    let mut details = Map::new();
    if let Some(p) = value(form, "purpose") {
        details.insert("purpose".into(), Value::from(p));
    }
    if let (Some(f), Some(v)) = (value(form, "field"), value(form, "value")) {
        details.insert("fields".into(), json!({ f: v }));
    }
    let agent = match (personal("agent_name"), personal("agent_authorisation")) {
        (Some(name), Some(authorisation)) => Some(intake::Agent { name, authorisation }),
        _ => None,
    };
    intake::Filing {
        kind: value(form, "type").unwrap_or_default().to_owned(),
        email: personal("email"),
        phone: personal("phone"),
        jurisdiction: value(form, "jurisdiction").map(str::to_owned),
        details,
        agent,
    }
}

fn code_page(state: &AppState, status: StatusCode, id: &str, code: &str, sent: bool, error: Option<&str>) -> Response {
    let page = CodePage {
        chrome: Chrome::new(state, &title(state)),
        action: format!("{}/{id}/verify", base(state)),
        code: code.to_owned(),
        sent,
        error: error.map(str::to_owned),
    };
    pages::render(status, &page)
}

async fn submit(State(state): State<AppState>, parts: Parts, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    match intake::file(&state, filing(&form), client_of(&parts), "privacy_center").await {
        Ok(filed) if filed.status == charter_core::requests::Status::Completed => Ok(pages::message(
            &state,
            StatusCode::OK,
            &title(&state),
            "Opt-out request honored: we do not sell or share your personal information.",
        )),
        Ok(filed) => Ok(code_page(&state, StatusCode::OK, &filed.id, "", true, None)),
        Err(ApiError::Unprocessable { message, .. }) => Ok(form_page(&state, StatusCode::BAD_REQUEST, Some(message))),
        Err(ApiError::TooManyAttempts { message, .. }) => {
            Ok(form_page(&state, StatusCode::TOO_MANY_REQUESTS, Some(message)))
        }
        Err(e) => Err(e),
    }
}

/// The link in the code's message: the code form, filled in (a GET never spends a code).
async fn from_link(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let query = pages::form(parts.uri.query().unwrap_or("").as_bytes());
    let challenge = value(&query, "challenge").unwrap_or_default();
    let code = value(&query, "code").filter(|c| c.len() == 6).unwrap_or_default();
    match state.store.request_by_challenge(challenge).await? {
        Some(id) => Ok(code_page(&state, StatusCode::OK, &id, code, false, None)),
        None => Ok(pages::message(
            &state,
            StatusCode::NOT_FOUND,
            &title(&state),
            "This link is not valid. Ask again from the privacy center.",
        )),
    }
}

async fn confirm(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let code = value(&form, "code").unwrap_or_default();
    match intake::verify(&state, &id, code).await? {
        Some(v) => {
            let to = format!("{}/{id}?t={}", base(&state), v.token);
            Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
        }
        None => Ok(code_page(
            &state,
            StatusCode::BAD_REQUEST,
            &id,
            "",
            false,
            Some("That code is not valid: it may be mistyped, used already, or older than 10 minutes."),
        )),
    }
}

async fn status(State(state): State<AppState>, parts: Parts, Path(id): Path<String>) -> Result<Response, ApiError> {
    let query = pages::form(parts.uri.query().unwrap_or("").as_bytes());
    let token = value(&query, "t").unwrap_or_default();
    let Ok(r) = by_token(&state, &id, token).await else {
        return Ok(pages::message(
            &state,
            StatusCode::NOT_FOUND,
            &title(&state),
            "No such request, or the link is not valid.",
        ));
    };
    let json = crate::routes::requests::status_json(&state, &r, token).await?;
    let certificate =
        state.store.certificate(&r.id).await?.map(|_| format!("{}/{}/certificate?t={token}", base(&state), r.id));
    let kind = RequestType::parse(&r.kind).map_or(r.kind.clone(), |k| k.describe().to_owned());
    let page = StatusPage {
        chrome: Chrome::new(&state, &title(&state)),
        kind,
        status: r.status.replace('_', " "),
        received: rights::day(r.received_at_us),
        due: r.deadline_us().map(rights::day).unwrap_or_default(),
        extended: r.extension_reason.clone(),
        reason: r.reason.clone(),
        download: json["download"].as_str().map(str::to_owned),
        left: r.downloads_left.unwrap_or(0),
        certificate,
        timeline: r_timeline(&json),
    };
    Ok(pages::render(StatusCode::OK, &page))
}

fn r_timeline(json: &Value) -> Vec<(String, String)> {
    json["timeline"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    (
                        e["at"].as_str().unwrap_or("")[..10.min(e["at"].as_str().unwrap_or("").len())].to_owned(),
                        e["action"].as_str().unwrap_or("").replace('_', " "),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
