//! The preference center, at the policy's `preferences` page path (P12, P15, P16, P22,
//! P25): a person proves who they are with a one-time code ([`crate::codes`]), then
//! sees every purpose that needs their consent in the policy's words, every
//! legitimate-interest purpose they may object to, direct marketing, and the opt-out of
//! sale and sharing. Each change takes effect at once, goes to the ledger, and is logged
//! as a completed request.
//!
//! - `GET {path}`: the choices with a session, else the email form.
//! - `POST {path}/code`: sends a code; `GET {path}/code?challenge&code`: the code form,
//!   filled in from the email's link (a GET never spends a code: link scanners fetch links).
//! - `POST {path}/verify`: spends the code and starts a 30-minute session (a signed,
//!   `HttpOnly; Secure; SameSite=Strict` cookie).
//! - `POST {path}`: saves the choices; the form carries a token bound to the session.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use charter_core::audit::AuditEvent;
use charter_core::consent::{self, Source, SALE_OR_SHARING};
use charter_policy::model::{LawfulBasis, Policy};
use charter_store::consents::NewConsent;
use charter_store::requests::{Choices, Request};
use charter_vault::Personal;
use serde_json::json;

use crate::codes::{self, BadAddress, Issued};
use crate::error::ApiError;
use crate::pages::{self, Chrome};
use crate::routes::consents::{answer, with_evidence};
use crate::state::AppState;

/// How long a session lasts once a code is spent.
const SESSION_US: i64 = 30 * 60 * 1_000_000;
/// The signed uses of the session cookie and of the form token bound to it.
const SESSION: &str = "preferences.session";
const FORM: &str = "preferences.form";
const COOKIE: &str = "charter_preferences";
/// Largest form read.
const MAX_FORM: usize = 16 * 1024;

#[derive(Template)]
#[template(path = "preferences_email.html")]
struct EmailPage {
    chrome: Chrome,
    action: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "preferences_code.html")]
struct CodePage {
    chrome: Chrome,
    action: String,
    start: String,
    challenge: String,
    code: String,
    sent: bool,
    error: Option<String>,
}

/// One purpose on the choices page.
struct Item {
    key: String,
    description: String,
    on: bool,
}

#[derive(Template)]
#[template(path = "preferences.html")]
struct ChoicesPage {
    chrome: Chrome,
    action: String,
    form: String,
    saved: bool,
    consents: Vec<Item>,
    interests: Vec<Item>,
    marketing: bool,
    no_marketing: bool,
    sells: bool,
    opted_out: bool,
}

/// The preference center's routes, under the path the policy gives the page.
pub fn routes(state: &AppState) -> Router<AppState> {
    let base = base(state);
    Router::new()
        .route(&base, get(show).post(save))
        .route(&format!("{base}/code"), get(code_form).post(send_code))
        .route(&format!("{base}/verify"), post(verify))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
}

fn base(state: &AppState) -> String {
    let path = pages::path_of(state, "preferences", "/preferences");
    path.trim_end_matches('/').to_owned()
}

fn title(state: &AppState) -> String {
    let policy = state.policy();
    policy.policy.pages.get("preferences").map_or_else(|| "Your privacy choices".to_owned(), |p| p.title.clone())
}

fn email_page(state: &AppState, status: StatusCode, error: Option<String>) -> Response {
    let chrome = Chrome::new(state, &title(state));
    pages::render(status, &EmailPage { chrome, action: format!("{}/code", base(state)), error })
}

fn code_page(
    state: &AppState,
    status: StatusCode,
    challenge: &str,
    code: &str,
    sent: bool,
    error: Option<&str>,
) -> Response {
    let base = base(state);
    let page = CodePage {
        chrome: Chrome::new(state, &title(state)),
        action: format!("{base}/verify"),
        start: base.clone(),
        challenge: challenge.to_owned(),
        code: code.to_owned(),
        sent,
        error: error.map(str::to_owned),
    };
    pages::render(status, &page)
}

async fn send_code(State(state): State<AppState>, parts: Parts, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let Some(email) = pages::field(&form, "email").filter(|e| !e.trim().is_empty()) else {
        return Ok(email_page(&state, StatusCode::BAD_REQUEST, Some("Give your email address.".into())));
    };
    let client = parts.extensions.get::<crate::listen::Peer>().and_then(|p| p.0).map(consent::ip_prefix);
    let link = format!("{}/code", base(&state));
    let email = Personal::new(email.to_owned());
    let contact = codes::Contact { kind: charter_vault::IdentifierKind::Email, value: &email };
    match codes::issue(&state, "preferences", contact, client, &link).await? {
        Err(BadAddress(why)) => Ok(email_page(&state, StatusCode::BAD_REQUEST, Some(why))),
        Ok(Issued::Limited) => Ok(pages::message(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &title(&state),
            "Too many codes were asked for lately. Wait an hour, then try again.",
        )),
        Ok(Issued::Challenge(id)) => Ok(code_page(&state, StatusCode::OK, &id, "", true, None)),
    }
}

async fn code_form(State(state): State<AppState>, parts: Parts) -> Response {
    let query = pages::form(parts.uri.query().unwrap_or("").as_bytes());
    let challenge = pages::field(&query, "challenge").unwrap_or("");
    let code = pages::field(&query, "code").filter(|c| c.len() <= 6).unwrap_or("");
    if challenge.len() != 32 {
        return email_page(&state, StatusCode::OK, None);
    }
    code_page(&state, StatusCode::OK, challenge, code, false, None)
}

async fn verify(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let (challenge, code) =
        (pages::field(&form, "challenge").unwrap_or(""), pages::field(&form, "code").unwrap_or("").trim());
    let Some(subject) = codes::verify(&state, "preferences", challenge, code).await? else {
        let why = "That code is not valid: it may be mistyped, used already, or older than 10 minutes. \
                   After three wrong tries, ask for a new one.";
        let shown = if challenge.len() == 32 { challenge } else { "" };
        return Ok(code_page(&state, StatusCode::BAD_REQUEST, shown, "", false, Some(why)));
    };
    let mut e = AuditEvent::new("subject", "preferences.signed_in", "ok");
    e.subject = Some(subject.clone());
    state.audit.append(e).await?;
    let until = charter_store::now_us() + SESSION_US;
    let token = state.keys.link_signer().sign(SESSION, &format!("{subject} {until}"));
    let cookie = format!(
        "{COOKIE}={token}; Path={}; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        base(&state),
        SESSION_US / 1_000_000
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, base(&state))]).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("the cookie is ASCII"));
    Ok(response)
}

/// The session's token and subject, when the request carries a live one.
fn session(state: &AppState, parts: &Parts) -> Option<(String, String)> {
    let token = pages::cookie(parts, COOKIE)?;
    let payload = state.keys.link_signer().verify(SESSION, token)?;
    let (subject, until) = payload.split_once(' ')?;
    let live = until.parse::<i64>().ok()? > charter_store::now_us();
    live.then(|| (token.to_owned(), subject.to_owned()))
}

fn form_token(state: &AppState, session: &str) -> String {
    hex::encode(state.keys.link_signer().tag(FORM, session))
}

async fn show(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    match session(&state, &parts) {
        Some((token, subject)) => choices_page(&state, &token, &subject, false).await,
        None => Ok(email_page(&state, StatusCode::OK, None)),
    }
}

/// What a person may choose here, from the policy.
struct Menu {
    /// Purposes that rest on consent.
    consents: Vec<String>,
    /// Legitimate-interest purposes that may be objected to.
    interests: Vec<String>,
    /// Direct-marketing purposes.
    marketing: Vec<String>,
    /// Whether any purpose sells or shares.
    sells: bool,
}

impl Menu {
    fn of(policy: &Policy) -> Self {
        let with = |basis: LawfulBasis| -> Vec<String> {
            policy
                .purposes
                .iter()
                .filter(|(_, p)| p.basis.as_slice().contains(&basis))
                .map(|(k, _)| k.clone())
                .collect()
        };
        let marketing = policy.purposes.iter().filter(|(_, p)| p.direct_marketing).map(|(k, _)| k.clone()).collect();
        Self {
            consents: with(LawfulBasis::Consent),
            interests: with(LawfulBasis::LegitimateInterests),
            marketing,
            sells: policy.purposes.values().any(|p| p.sale_or_sharing),
        }
    }
}

/// The person's answers now, and the purposes they object to.
async fn current(state: &AppState, subject: &str) -> Result<(BTreeMap<String, bool>, BTreeSet<String>), ApiError> {
    let history = state.store.subject_consents(subject).await?;
    let answers = consent::fold(history.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)));
    let objections = state.store.objections(subject).await?.into_iter().collect();
    Ok((answers, objections))
}

async fn choices_page(state: &AppState, token: &str, subject: &str, saved: bool) -> Result<Response, ApiError> {
    let in_force = state.policy();
    let policy = &in_force.policy;
    let menu = Menu::of(policy);
    let (answers, objections) = current(state, subject).await?;
    let item =
        |key: &String, on: bool| Item { key: key.clone(), description: policy.purposes[key].description.clone(), on };
    let page = ChoicesPage {
        chrome: Chrome::new(state, &title(state)),
        action: base(state),
        form: form_token(state, token),
        saved,
        consents: menu.consents.iter().map(|k| item(k, answers.get(k) == Some(&true))).collect(),
        interests: menu.interests.iter().map(|k| item(k, objections.contains(k))).collect(),
        marketing: !menu.marketing.is_empty(),
        no_marketing: !menu.marketing.is_empty() && menu.marketing.iter().all(|k| objections.contains(k)),
        sells: menu.sells,
        opted_out: answers.get(SALE_OR_SHARING) == Some(&false),
    };
    Ok(pages::render(StatusCode::OK, &page))
}

/// The choices a saved form asks for, checked against what the page offers.
struct Asked {
    consents: BTreeSet<String>,
    objections: BTreeSet<String>,
    no_marketing: bool,
    opt_out: bool,
}

fn asked(menu: &Menu, form: &[(String, String)]) -> Result<Asked, String> {
    let mut a = Asked { consents: BTreeSet::new(), objections: BTreeSet::new(), no_marketing: false, opt_out: false };
    for (name, value) in form {
        match name.as_str() {
            "consent" if menu.consents.contains(value) => a.consents.insert(value.clone()),
            "object" if menu.interests.contains(value) => a.objections.insert(value.clone()),
            "no_marketing" if value == "on" && !menu.marketing.is_empty() => {
                std::mem::replace(&mut a.no_marketing, true)
            }
            "opt_out" if value == "on" && menu.sells => std::mem::replace(&mut a.opt_out, true),
            "form" => false,
            _ => return Err(format!("The form asks for something this page does not offer: `{name}`.")),
        };
    }
    Ok(a)
}

async fn save(State(state): State<AppState>, parts: Parts, body: Bytes) -> Result<Response, ApiError> {
    let Some((token, subject)) = session(&state, &parts) else {
        return Ok(email_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Your session ended: ask for a new code.".into()),
        ));
    };
    let form = pages::form(&body);
    let genuine = pages::field(&form, "form").is_some_and(|f| f == form_token(&state, &token));
    if !genuine {
        return Ok(pages::message(
            &state,
            StatusCode::FORBIDDEN,
            &title(&state),
            "This form did not come from this page. Reload the page and try again.",
        ));
    }
    let menu = Menu::of(&state.policy().policy);
    let wanted = match asked(&menu, &form) {
        Ok(a) => a,
        Err(why) => return Ok(pages::message(&state, StatusCode::BAD_REQUEST, &title(&state), &why)),
    };
    let (answers, objections) = current(&state, &subject).await?;
    let choices = plan(&state, &parts, &subject, &menu, &wanted, &answers, &objections);
    if !choices.answers.is_empty() || !choices.object.is_empty() || !choices.lift.is_empty() {
        if !state.store.apply_choices(&subject, &choices, charter_store::now_us()).await? {
            return Ok(email_page(
                &state,
                StatusCode::NOT_FOUND,
                Some("There is nothing of yours left to change.".into()),
            ));
        }
        audit(&state, &subject, &choices).await?;
    }
    choices_page(&state, &token, &subject, true).await
}

/// What saving `wanted` changes: answers for the ledger, objections made and lifted, and
/// a completed request for each withdrawal, objection and opt-out.
fn plan(
    state: &AppState,
    parts: &Parts,
    subject: &str,
    menu: &Menu,
    wanted: &Asked,
    answers: &BTreeMap<String, bool>,
    objections: &BTreeSet<String>,
) -> Choices {
    let mut c = Choices::default();
    let request = |kind: &str, details: serde_json::Value| {
        let now = charter_store::now_us();
        let jurisdiction = if kind == "ccpa_opt_out" { "ccpa" } else { "gdpr" };
        Request {
            id: uuid::Uuid::new_v4().to_string(),
            subject_id: Some(subject.to_owned()),
            kind: kind.to_owned(),
            jurisdiction: jurisdiction.into(),
            status: "completed".into(),
            source: "preference_center".into(),
            details: details.to_string(),
            received_at_us: now,
            verified_at_us: Some(now),
            completed_at_us: Some(now),
            ..Request::default()
        }
    };
    let give = |purpose: &str, given: bool| NewConsent {
        subject_id: Some(subject.to_owned()),
        ..with_evidence(answer(state, purpose, given, Source::PreferenceCenter), parts)
    };
    for purpose in &menu.consents {
        let (now, want) = (answers.get(purpose) == Some(&true), wanted.consents.contains(purpose));
        if now != want {
            c.answers.push(give(purpose, want));
            if !want {
                c.requests.push(request("consent_withdrawal", json!({ "purpose": purpose })));
            }
        }
    }
    let mut objected: BTreeSet<String> = wanted.objections.clone();
    if wanted.no_marketing {
        objected.extend(menu.marketing.iter().cloned());
    }
    let offered: BTreeSet<&String> = menu.interests.iter().chain(&menu.marketing).collect();
    for purpose in objected.iter().filter(|p| !objections.contains(*p)) {
        c.object.push(purpose.clone());
        if !menu.marketing.contains(purpose) {
            c.requests.push(request("objection", json!({ "purpose": purpose })));
        }
    }
    if wanted.no_marketing && !menu.marketing.iter().all(|p| objections.contains(p)) {
        c.requests.push(request("marketing_objection", json!({ "purposes": menu.marketing })));
    }
    c.lift = objections.iter().filter(|p| offered.contains(p) && !objected.contains(*p)).cloned().collect();
    let opted_out = answers.get(SALE_OR_SHARING) == Some(&false);
    if menu.sells && wanted.opt_out != opted_out {
        c.answers.push(give(SALE_OR_SHARING, !wanted.opt_out));
        if wanted.opt_out {
            c.requests.push(request("ccpa_opt_out", json!({})));
        }
    }
    c
}

async fn audit(state: &AppState, subject: &str, c: &Choices) -> Result<(), ApiError> {
    let answers: serde_json::Map<String, serde_json::Value> =
        c.answers.iter().map(|a| (a.purpose.clone(), a.given.into())).collect();
    let requests: Vec<&str> = c.requests.iter().map(|r| r.kind.as_str()).collect();
    let detail = json!({ "answers": answers, "objected": c.object, "lifted": c.lift, "requests": requests });
    let mut e = AuditEvent::new("subject", "preferences.changed", "ok").with_detail(&detail);
    e.subject = Some(subject.to_owned());
    state.audit.append(e).await?;
    Ok(())
}
