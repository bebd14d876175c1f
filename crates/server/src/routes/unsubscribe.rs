//! One-click unsubscribe (RFC 8058): `POST {unsubscribe page}/TOKEN` with the body
//! `List-Unsubscribe=One-Click` withdraws exactly the purpose the token names for exactly
//! its subject, with no cookie or login, and answers 200 without a redirect. `GET` shows
//! a page with a button that posts the same; a GET alone never unsubscribes (link
//! scanners fetch links). The token is signed ([`charter_vault::LinkSigner`]); a forged,
//! altered or foreign one is 404.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use charter_core::audit::AuditEvent;
use charter_core::consent::{self, Source, UNSUBSCRIBE_LINK};
use charter_store::consents::NewConsent;
use serde_json::json;

use crate::error::ApiError;
use crate::pages::{self, Chrome};
use crate::routes::consents::{answer, with_evidence};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct Page {
    chrome: Chrome,
    purpose: String,
    action: String,
    preferences: String,
    done: bool,
}

/// `{unsubscribe page}/{token}`, at the path the policy gives the page.
pub fn routes(state: &AppState) -> Router<AppState> {
    let base = pages::path_of(state, "unsubscribe", "/unsubscribe");
    Router::new().route(&format!("{}/{{token}}", base.trim_end_matches('/')), get(confirm).post(unsubscribe))
}

/// The subject and purpose a token names, when it is genuine and the page may withdraw
/// that purpose.
fn named(state: &AppState, token: &str) -> Option<(String, String)> {
    let payload = state.keys.link_signer().verify(UNSUBSCRIBE_LINK, token)?;
    let (subject, purpose) = consent::parse_unsubscribe_payload(&payload)?;
    let in_force = state.policy();
    let page = in_force.policy.pages.get("unsubscribe");
    let allowed =
        page.map_or(consent::rests_on_consent(&in_force.policy, purpose), |p| p.withdraws.iter().any(|w| w == purpose));
    allowed.then(|| (subject.to_owned(), purpose.to_owned()))
}

fn not_a_link(state: &AppState) -> Response {
    pages::message(state, StatusCode::NOT_FOUND, "Unsubscribe", "This unsubscribe link is not valid. Use the link in the message as it was sent, or visit your privacy choices.")
}

fn page(state: &AppState, token: &str, purpose: &str, done: bool) -> Response {
    let base = pages::path_of(state, "unsubscribe", "/unsubscribe");
    let in_force = state.policy();
    let described = in_force.policy.purposes.get(purpose).map_or(purpose, |p| p.description.as_str());
    let title = in_force.policy.pages.get("unsubscribe").map_or("Unsubscribe", |p| p.title.as_str());
    pages::render(
        StatusCode::OK,
        &Page {
            chrome: Chrome::new(state, title),
            purpose: described.to_owned(),
            action: format!("{}/{token}", base.trim_end_matches('/')),
            preferences: pages::path_of(state, "preferences", "/preferences"),
            done,
        },
    )
}

async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match named(&state, &token) {
        Some((_, purpose)) => page(&state, &token, &purpose, false),
        None => not_a_link(&state),
    }
}

async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some((subject, purpose)) = named(&state, &token) else {
        return Ok(not_a_link(&state));
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if !form.iter().any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click") {
        return Ok(pages::message(
            &state,
            StatusCode::BAD_REQUEST,
            "Unsubscribe",
            "An unsubscribe request must send List-Unsubscribe=One-Click.",
        ));
    }
    withdraw(&state, &subject, &purpose, &parts).await?;
    Ok(page(&state, &token, &purpose, true))
}

/// Withdraws `purpose` for `subject` unless it is withdrawn already (a second click
/// changes nothing), and records it. An erased subject has nothing left to withdraw.
async fn withdraw(state: &AppState, subject: &str, purpose: &str, parts: &Parts) -> Result<(), ApiError> {
    let history = state.store.subject_consents(subject).await?;
    let now = consent::fold(history.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)));
    if now.get(purpose) == Some(&false) {
        return Ok(());
    }
    let row = NewConsent {
        subject_id: Some(subject.to_owned()),
        ..with_evidence(answer(state, purpose, false, Source::Unsubscribe), parts)
    };
    if !state.store.append_consents(&[row]).await? {
        return Ok(());
    }
    let mut e = AuditEvent::new("subject", "consent.recorded", "ok")
        .with_detail(&json!({ "source": "unsubscribe", "answers": { purpose: false } }));
    e.subject = Some(subject.to_owned());
    e.purpose = Some(purpose.to_owned());
    state.audit.append(e).await?;
    Ok(())
}
