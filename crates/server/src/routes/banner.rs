//! The cookie banner and what stands around it: `GET /consent.js` (the banner, with the
//! policy's cookies by category), `POST /v1/consent` (a visitor's choice, public: CORS
//! for the policy's origins only, rate-limited, 8 KiB at most), Global Privacy Control
//! (`Sec-GPC: 1` or the banner's `gpc` flag records an opt-out of sale and sharing;
//! `/.well-known/gpc.json`), and the cookie policy page `/cookies`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;
use charter_core::access::sells_or_shares;
use charter_core::audit::AuditEvent;
use charter_core::consent::{self, Source, VisitorId, SALE_OR_SHARING};
use charter_policy::model::{CookieCategory, Policy};
use charter_policy::units::PolicyDuration;
use charter_store::consents::NewConsent;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::pages::{self, Chrome};
use crate::routes::consents::{answer, choice_refused, with_evidence};
use crate::state::AppState;

/// Largest body `POST /v1/consent` reads.
const MAX_BODY: usize = 8 * 1024;

/// The banner's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/consent.js", get(script))
        .route("/v1/consent", post(choose).options(preflight))
        .route("/.well-known/gpc.json", get(gpc_json))
        .route("/cookies", get(cookies))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// What a category is, in words.
fn describe(c: CookieCategory) -> (&'static str, &'static str) {
    match c {
        CookieCategory::StrictlyNecessary => ("Strictly necessary", "needed for the site to work; always on"),
        CookieCategory::Functional => ("Functional", "remember your preferences"),
        CookieCategory::Analytics => ("Analytics", "measure how the site is used"),
        CookieCategory::Marketing => ("Marketing", "third-party content that may track you across sites"),
    }
}

/// Who sets a cookie, by name.
fn provider(policy: &Policy, key: &str) -> String {
    match policy.recipients.get(key) {
        Some(r) => r.name.clone(),
        None => policy.controller.name.clone(),
    }
}

const BANNER_CSS: &str = "#charter-banner{position:fixed;left:1rem;right:1rem;bottom:1rem;max-width:42rem;margin:auto;\
background:#fff;color:#1d2330;border:2px solid #1d2330;border-radius:.5rem;padding:1rem 1.25rem;\
font:15px/1.5 system-ui,sans-serif;z-index:2147483647;box-shadow:0 4px 24px rgba(0,0,0,.25)}\
#charter-banner h2{font-size:1.1rem;margin:0 0 .5rem}#charter-banner fieldset{border:0;padding:0;margin:.5rem 0}\
#charter-banner .charter-row{margin:.4rem 0}#charter-banner .charter-buttons{display:flex;flex-wrap:wrap;gap:.5rem}\
#charter-banner button{font:inherit;padding:.5rem 1rem;border:2px solid #1d2330;border-radius:.3rem;\
background:#1d2330;color:#fff;cursor:pointer}#charter-banner button:focus{outline:3px solid #f5a623}\
#charter-banner .charter-gpc{font-weight:600}.charter-placeholder{border:1px dashed #888;padding:1rem}";

/// The banner's settings, from the policy: the categories it asks about with their
/// cookies, whether each sells or shares, and the notice's hash.
pub fn config(state: &AppState) -> Value {
    let policy = &state.policy().policy;
    let asked = consent::banner_categories(policy);
    let categories: Vec<Value> = asked
        .iter()
        .map(|(id, purposes)| {
            let category = policy.cookies.values().map(|c| c.category).find(|c| consent::category_name(*c) == *id);
            let (label, description) = category.map_or((*id, ""), describe);
            let cookies: Vec<Value> = policy
                .cookies
                .iter()
                .filter(|(_, c)| consent::category_name(c.category) == *id)
                .map(|(name, c)| {
                    json!({ "name": name, "provider": provider(policy, &c.provider), "purpose": c.purpose, "lifetime": c.lifetime })
                })
                .collect();
            let sells = purposes.iter().any(|p| sells_or_shares(policy, p));
            json!({ "id": id, "label": label, "description": description, "sells": sells, "cookies": cookies })
        })
        .collect();
    json!({
        "notice": &*state.policy().notice_hash,
        "keep": consent_cookie_seconds(policy),
        "title": format!("Cookies on {}", policy.controller.website.trim_end_matches('/')),
        "text": "We use cookies that are strictly necessary for this site to work. With your permission we would also use the cookies below; the site works just as well if you reject them.",
        "cookies": "/cookies",
        "css": BANNER_CSS,
        "categories": categories,
    })
}

/// How long the essential `consent` cookie lives: the policy's `consent` cookie
/// lifetime, a year when it declares none.
pub fn consent_cookie_seconds(policy: &Policy) -> u64 {
    let hours = policy.cookies.get("consent").and_then(|c| PolicyDuration::parse(&c.lifetime).ok());
    hours.map_or(365 * 24, PolicyDuration::approx_hours) * 3600
}

static SCRIPT: &str = include_str!("../../assets/consent.js");

/// The banner with its settings filled in: made once per process, on the first request,
/// then served as it is on every page view of the sites that include it.
fn script_text(state: &AppState) -> String {
    SCRIPT.replace("__CHARTER_CONFIG__", &config(state).to_string())
}

async fn script(State(state): State<AppState>) -> Response {
    let body = state.policy().consent_js.get_or_init(|| script_text(&state).into()).clone();
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

async fn gpc_json(State(state): State<AppState>) -> Response {
    axum::Json(json!({ "gpc": true, "lastUpdate": state.policy().policy.last_updated })).into_response()
}

/// The request's `Origin` when the policy lists it; `Ok(None)` without one (not a browser's
/// cross-site request); 403 for any other.
fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(None) };
    let listed = origin.to_str().is_ok_and(|o| state.policy().policy.consent.origins.iter().any(|l| l == o));
    if listed {
        return Ok(Some(origin.clone()));
    }
    Err(ApiError::Forbidden {
        code: "origin_not_allowed",
        message: "this site is not one the policy lists under [consent] origins".into(),
    })
}

fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let origin = allowed_origin(&state, &headers)?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    Ok(with_cors(response, origin))
}

/// Counts per client network in the current minute.
static RECENT: LazyLock<Mutex<HashMap<String, (Instant, u32)>>> = LazyLock::new(Mutex::default);

/// Whether a client network may record one more of `per_minute` choices this minute.
fn within_rate(network: &str, per_minute: u32) -> bool {
    let now = Instant::now();
    let mut recent = RECENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if recent.len() > 100_000 {
        recent.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
    }
    let slot = recent.entry(network.to_owned()).or_insert((now, 0));
    if now.duration_since(slot.0) >= Duration::from_secs(60) {
        *slot = (now, 0);
    }
    slot.1 += 1;
    slot.1 <= per_minute
}

/// A visitor's choice as the banner sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Choice {
    visitor: String,
    #[serde(default)]
    choices: Map<String, Value>,
    notice: String,
    /// `navigator.globalPrivacyControl` was on.
    #[serde(default)]
    gpc: bool,
    /// The visitor confirmed a choice that conflicts with their GPC signal.
    #[serde(default)]
    confirm_over_gpc: bool,
}

fn bad(code: &'static str, message: &str) -> ApiError {
    ApiError::BadRequest { code, message: message.to_owned() }
}

async fn choose(State(state): State<AppState>, parts: Parts, body: Bytes) -> Result<Response, ApiError> {
    let origin = allowed_origin(&state, &parts.headers)?;
    let answer = record_choice(&state, &parts, &body).await;
    let response = match answer {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => axum::response::IntoResponse::into_response(e),
    };
    Ok(with_cors(response, origin))
}

/// Checks, records and answers one choice; nothing is recorded unless all of it holds.
async fn record_choice(state: &AppState, parts: &Parts, body: &[u8]) -> Result<Value, ApiError> {
    let evidence = with_evidence(answer(state, SALE_OR_SHARING, false, Source::Banner), parts);
    let network = evidence.ip_prefix.clone().unwrap_or_default();
    if !within_rate(&network, state.policy().policy.consent.choices_per_minute()) {
        return Err(ApiError::TooManyAttempts {
            message: "too many choices from this network; try again in a minute".into(),
            retry_after_s: 60,
        });
    }
    let choice: Choice = serde_json::from_slice(body).map_err(|e| {
        bad("malformed_json", &format!("the body is not a consent choice: line {} column {}", e.line(), e.column()))
    })?;
    let visitor = VisitorId::parse(&choice.visitor)
        .ok_or_else(|| bad("malformed_visitor", "`visitor` must be 32 lowercase hex digits"))?;
    if choice.notice.len() != 64 || !choice.notice.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("malformed_notice", "`notice` must be the SHA-256 of the notice shown, in hex"));
    }
    let signal = choice.gpc || parts.headers.get("sec-gpc").is_some_and(|v| v.as_bytes() == b"1");
    let policy = &state.policy().policy;
    let answers = match (choice.choices.is_empty(), signal) {
        (true, true) => Vec::new(),
        _ => consent::parse_choices(policy, &choice.choices).map_err(|e| choice_refused(&e))?,
    };
    let conflict = signal && answers.iter().any(|(p, given)| *given && sells_or_shares(policy, p));
    if conflict && !choice.confirm_over_gpc {
        return Err(ApiError::Conflict {
            code: "conflicts_with_gpc",
            message: "the choice allows sale or sharing against a Global Privacy Control signal; confirm it with `confirm_over_gpc`".into(),
        });
    }
    let history = state.store.visitor_consents(visitor.as_str()).await?;
    let subject = history.iter().find_map(|r| r.answer.subject_id.clone());
    let row = |purpose: &str, given: bool, source: Source, over: bool| NewConsent {
        subject_id: subject.clone(),
        visitor_id: Some(visitor.as_str().to_owned()),
        purpose: purpose.to_owned(),
        given,
        source: source.as_str(),
        notice_hash: Some(choice.notice.clone()),
        conflicts_with_gpc: over,
        ..evidence.clone()
    };
    let mut rows: Vec<NewConsent> = answers
        .iter()
        .map(|(p, given)| row(p, *given, Source::Banner, conflict && *given && sells_or_shares(policy, p)))
        .collect();
    let now = consent::fold(history.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)));
    if conflict {
        rows.push(row(SALE_OR_SHARING, true, Source::Banner, true));
    } else if signal && now.get(SALE_OR_SHARING) != Some(&false) && !confirmed_over_gpc(&history) {
        rows.push(row(SALE_OR_SHARING, false, Source::Gpc, false));
    }
    if !rows.is_empty() && !state.store.append_consents(&rows).await? {
        return Err(crate::subject::unknown_subject());
    }
    audit_choice(state, &rows, subject.as_deref()).await?;
    let after = consent::fold(
        history
            .iter()
            .map(|r| (r.answer.purpose.as_str(), r.answer.given))
            .chain(rows.iter().map(|r| (r.purpose.as_str(), r.given))),
    );
    let opted_out = after.get(SALE_OR_SHARING) == Some(&false);
    let consents: Map<String, Value> =
        after.into_iter().filter(|(p, _)| p != SALE_OR_SHARING).map(|(p, g)| (p, Value::Bool(g))).collect();
    Ok(json!({ "visitor": visitor.as_str(), "consents": consents, "opted_out": opted_out }))
}

/// Whether the visitor's latest word on sale and sharing is a grant they confirmed over
/// their GPC signal: the signal is not recorded again over it.
fn confirmed_over_gpc(history: &[charter_store::consents::ConsentRow]) -> bool {
    history
        .iter()
        .rev()
        .find(|r| r.answer.purpose == SALE_OR_SHARING)
        .is_some_and(|r| r.answer.given && r.answer.conflicts_with_gpc)
}

/// One audit entry per choice: the purposes and answers, never the visitor's id.
async fn audit_choice(state: &AppState, rows: &[NewConsent], subject: Option<&str>) -> Result<(), ApiError> {
    if rows.is_empty() {
        return Ok(());
    }
    let answers: Map<String, Value> = rows.iter().map(|r| (r.purpose.clone(), Value::Bool(r.given))).collect();
    let sources: Vec<&str> = rows.iter().map(|r| r.source).collect();
    let mut e = AuditEvent::new("visitor", "consent.recorded", "ok")
        .with_detail(&json!({ "source": sources[0], "sources": sources, "answers": answers }));
    e.subject = subject.map(str::to_owned);
    state.audit.append(e).await?;
    Ok(())
}

#[derive(Template)]
#[template(path = "cookies.html")]
struct CookiesPage {
    chrome: Chrome,
    groups: Vec<(String, String, Vec<[String; 4]>)>,
}

async fn cookies(State(state): State<AppState>) -> Response {
    let policy = &state.policy().policy;
    let order = [
        CookieCategory::StrictlyNecessary,
        CookieCategory::Functional,
        CookieCategory::Analytics,
        CookieCategory::Marketing,
    ];
    let groups = order
        .into_iter()
        .filter_map(|cat| {
            let rows: Vec<[String; 4]> = policy
                .cookies
                .iter()
                .filter(|(_, c)| c.category == cat)
                .map(|(name, c)| [name.clone(), provider(policy, &c.provider), c.purpose.clone(), c.lifetime.clone()])
                .collect();
            let (label, description) = describe(cat);
            (!rows.is_empty()).then(|| (label.to_owned(), description.to_owned(), rows))
        })
        .collect();
    pages::render(StatusCode::OK, &CookiesPage { chrome: Chrome::new(&state, "Cookie policy"), groups })
}
