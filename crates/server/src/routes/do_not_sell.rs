//! "Do Not Sell or Share My Personal Information" (CCPA regulations §7026): one step, no
//! verification of identity. `GET` shows the page; with `Sec-GPC: 1` it records the
//! opt-out at once and says "Opt-out request honored" (§7025). `POST` records it from the
//! page's button. The visitor is known by the banner's `consent` cookie, or gets one.

use askama::Template;
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use charter_core::audit::AuditEvent;
use charter_core::consent::{self, Source, VisitorId, SALE_OR_SHARING};
use charter_store::consents::NewConsent;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::pages::{self, Chrome};
use crate::routes::consents::{answer, with_evidence};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "do_not_sell.html")]
struct Page {
    chrome: Chrome,
    honored: bool,
    gpc: bool,
    action: String,
    preferences: String,
}

/// The page, at the path the policy gives it.
pub fn routes(state: &AppState) -> Router<AppState> {
    let path = pages::path_of(state, "do_not_sell", "/do-not-sell");
    Router::new().route(&path, get(show).post(opt_out))
}

/// The visitor the request's `consent` cookie names, if any.
fn visitor_of(parts: &Parts) -> Option<VisitorId> {
    let value = pages::cookie(parts, "consent")?;
    let decoded: String = percent_decode(value)?;
    let parsed: Value = serde_json::from_str(&decoded).ok()?;
    VisitorId::parse(parsed.get("v")?.as_str()?)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn gpc_on(parts: &Parts) -> bool {
    parts.headers.get("sec-gpc").is_some_and(|v| v.as_bytes() == b"1")
}

async fn show(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    if gpc_on(&parts) {
        return opt_out(State(state), parts).await;
    }
    Ok(page(&state, false, false, None))
}

async fn opt_out(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let gpc = gpc_on(&parts);
    let known = visitor_of(&parts);
    let visitor = known.clone().unwrap_or_else(new_visitor);
    record(&state, &visitor, gpc, &parts).await?;
    let cookie = known.is_none().then(|| cookie_for(&state, &visitor));
    Ok(page(&state, true, gpc, cookie))
}

fn new_visitor() -> VisitorId {
    VisitorId::parse(&uuid::Uuid::new_v4().simple().to_string()).expect("a simple UUID is 32 lowercase hex digits")
}

/// The essential `consent` cookie naming a new visitor, as the banner writes it.
fn cookie_for(state: &AppState, visitor: &VisitorId) -> HeaderValue {
    let value = json!({ "v": visitor.as_str(), "c": {}, "h": "", "g": false }).to_string();
    let encoded: String = value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let keep = crate::routes::banner::consent_cookie_seconds(&state.policy().policy);
    HeaderValue::from_str(&format!("consent={encoded}; Path=/; Max-Age={keep}; SameSite=Lax"))
        .expect("the cookie is plain ASCII")
}

/// Records the opt-out and the withdrawal of the purposes the page names, unless the
/// visitor's latest word on sale and sharing is an opt-out already.
async fn record(state: &AppState, visitor: &VisitorId, gpc: bool, parts: &Parts) -> Result<(), ApiError> {
    let history = state.store.visitor_consents(visitor.as_str()).await?;
    let now = consent::fold(history.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)));
    if now.get(SALE_OR_SHARING) == Some(&false) {
        return Ok(());
    }
    let subject = history.iter().find_map(|r| r.answer.subject_id.clone());
    let source = if gpc { Source::Gpc } else { Source::PreferenceCenter };
    let withdraws = state.policy().policy.pages.get("do_not_sell").map(|p| p.withdraws.clone()).unwrap_or_default();
    let rows: Vec<NewConsent> = std::iter::once(SALE_OR_SHARING.to_owned())
        .chain(withdraws)
        .map(|purpose| NewConsent {
            subject_id: subject.clone(),
            visitor_id: Some(visitor.as_str().to_owned()),
            ..with_evidence(answer(state, &purpose, false, source), parts)
        })
        .collect();
    state.store.append_consents(&rows).await?;
    let answers: Map<String, Value> = rows.iter().map(|r| (r.purpose.clone(), Value::Bool(false))).collect();
    let mut e = AuditEvent::new("visitor", "consent.recorded", "ok")
        .with_detail(&json!({ "source": source.as_str(), "answers": answers }));
    e.subject = subject;
    state.audit.append(e).await?;
    Ok(())
}

fn page(state: &AppState, honored: bool, gpc: bool, cookie: Option<HeaderValue>) -> Response {
    let in_force = state.policy();
    let title = in_force
        .policy
        .pages
        .get("do_not_sell")
        .map_or("Do not sell or share my personal information", |p| p.title.as_str());
    let mut response = pages::render(
        StatusCode::OK,
        &Page {
            chrome: Chrome::new(state, title),
            honored,
            gpc,
            action: pages::path_of(state, "do_not_sell", "/do-not-sell"),
            preferences: pages::path_of(state, "preferences", "/preferences"),
        },
    );
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
