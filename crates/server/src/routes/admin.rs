//! The privacy team's console, `/admin`: the queue of requests with their deadlines and
//! overdue flags, one request's timeline with approve, deny and extend, requests entered
//! by hand, processors to confirm, and a child's data erased.
//!
//! Accounts come from `charter admin add` (a one-time setup link); sign-in takes the
//! email, the password (argon2id, throttled per account like every password check) and a
//! TOTP code (RFC 6238). A session is a random token in a `Secure; HttpOnly;
//! SameSite=Strict` cookie, kept as its MAC; every form carries a CSRF token bound to the
//! session. An auditor sees everything and acts on nothing. Every action is in the audit
//! chain.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use charter_core::audit::AuditEvent;
use charter_core::requests::{may_extend, Clock, Jurisdiction, Move, RequestType, Status};
use charter_store::admins::Admin;
use charter_store::requests::{Request, RequestEvent};
use charter_vault::{IdentifierKind, Personal};
use serde_json::json;

use crate::error::ApiError;
use crate::pages::{self, Chrome};
use crate::rights::{self, intake};
use crate::state::AppState;

const COOKIE: &str = "charter_admin";
const SESSION_US: i64 = 8 * 3600 * 1_000_000;
const SESSION_MAC: &str = "admin.session";
const CSRF_MAC: &str = "admin.csrf";
const SETUP_MAC: &str = "admin.setup";
const TOTP_KEY: &str = "admin.totp";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(queue))
        .route("/admin/setup", get(setup_form).post(setup))
        .route("/admin/login", get(login_form).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/requests/new", get(new_form).post(new_request))
        .route("/admin/requests/{id}", get(request_page))
        .route("/admin/requests/{id}/act", post(act))
        .route("/admin/requests/{id}/processors/{recipient}", post(confirm_processor))
        .route("/admin/subjects/child", post(child))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
}

/// The MAC of a token for `use_`, as stored.
pub fn mac(state: &AppState, use_: &str, token: &str) -> String {
    hex::encode(state.keys.link_signer().tag(use_, token))
}

/// An account's TOTP secret: derived from the key file and the account's salt.
pub fn totp_secret(state: &AppState, admin: &Admin) -> Vec<u8> {
    state.keys.link_signer().tag(TOTP_KEY, &format!("{}:{}", admin.id, admin.totp_salt))[..20].to_vec()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    pages::field(form, name).unwrap_or_default()
}

fn page(state: &AppState, status: StatusCode, text: &str) -> Response {
    pages::message(state, status, "Privacy console", text)
}

fn to_login() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/admin/login")]).into_response()
}

/// The signed-in account and its session token.
struct Signed {
    admin: Admin,
    token: String,
}

impl Signed {
    fn csrf(&self, state: &AppState) -> String {
        mac(state, CSRF_MAC, &self.token)
    }

    fn can_act(&self) -> bool {
        self.admin.role == "privacy"
    }
}

async fn signed(state: &AppState, parts: &Parts) -> Result<Option<Signed>, ApiError> {
    let Some(token) = pages::cookie(parts, COOKIE) else {
        return Ok(None);
    };
    let admin = state.store.admin_by_session(&mac(state, SESSION_MAC, token), charter_store::now_us()).await?;
    Ok(admin.map(|admin| Signed { admin, token: token.to_owned() }))
}

/// The signed-in account allowed to act, after the form's CSRF token checks; or the
/// answer to give instead.
async fn acting(
    state: &AppState,
    parts: &Parts,
    form: &[(String, String)],
) -> Result<Result<Signed, Response>, ApiError> {
    let Some(s) = signed(state, parts).await? else { return Ok(Err(to_login())) };
    if field(form, "csrf") != s.csrf(state) {
        return Ok(Err(page(
            state,
            StatusCode::FORBIDDEN,
            "This form did not come from the console. Reload the page and try again.",
        )));
    }
    if !s.can_act() {
        return Ok(Err(page(state, StatusCode::FORBIDDEN, "An auditor reads and does not act.")));
    }
    Ok(Ok(s))
}

async fn audit(state: &AppState, admin: &Admin, action: &str, detail: serde_json::Value) -> Result<(), ApiError> {
    state.audit.append(AuditEvent::new(format!("admin:{}", admin.id), action, "ok").with_detail(&detail)).await?;
    Ok(())
}

#[derive(Template)]
#[template(path = "admin_setup.html")]
struct SetupPage {
    chrome: Chrome,
    token: String,
    secret: String,
    uri: String,
    error: Option<String>,
}

async fn setup_page(state: &AppState, token: &str, error: Option<&str>) -> Result<Response, ApiError> {
    let Some(admin) = state.store.admin_by_setup(&mac(state, SETUP_MAC, token), charter_store::now_us()).await? else {
        return Ok(page(
            state,
            StatusCode::GONE,
            "This setup link has expired or was used. Ask for a new one (charter admin add).",
        ));
    };
    let secret = charter_vault::totp::base32(&totp_secret(state, &admin));
    let issuer = state.policy().policy.controller.name.replace(' ', "%20");
    let p = SetupPage {
        chrome: Chrome::new(state, "Set up your console account"),
        token: token.to_owned(),
        uri: format!("otpauth://totp/{issuer}:{}?secret={secret}&issuer={issuer}", &admin.id[..8]),
        secret,
        error: error.map(str::to_owned),
    };
    Ok(pages::render(if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, &p))
}

async fn setup_form(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let query = pages::form(parts.uri.query().unwrap_or("").as_bytes());
    setup_page(&state, field(&query, "t"), None).await
}

async fn setup(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let (token, password, code) = (field(&form, "t"), field(&form, "password"), field(&form, "code"));
    let setup_mac = mac(&state, SETUP_MAC, token);
    let Some(admin) = state.store.admin_by_setup(&setup_mac, charter_store::now_us()).await? else {
        return Ok(page(&state, StatusCode::GONE, "This setup link has expired or was used."));
    };
    if password.chars().count() < 12 {
        return setup_page(&state, token, Some("Choose a password of at least 12 characters.")).await;
    }
    let now_s = u64::try_from(charter_store::now_us() / 1_000_000).unwrap_or(0);
    if !charter_vault::totp::check(&totp_secret(&state, &admin), code, now_s) {
        return setup_page(
            &state,
            token,
            Some("That code is not the one your app shows now; check the key and try again."),
        )
        .await;
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || charter_vault::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if !state.store.finish_admin_setup(&admin.id, &setup_mac, &hash).await? {
        return Ok(page(&state, StatusCode::GONE, "This setup link was used meanwhile."));
    }
    audit(&state, &admin, "admin.setup", json!({ "role": admin.role })).await?;
    Ok(page(&state, StatusCode::OK, "Your account is set up. Sign in at /admin/login."))
}

#[derive(Template)]
#[template(path = "admin_login.html")]
struct LoginPage {
    chrome: Chrome,
    error: Option<String>,
}

fn login_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    pages::render(status, &LoginPage { chrome: Chrome::new(state, "Privacy console"), error: error.map(str::to_owned) })
}

async fn login_form(State(state): State<AppState>) -> Response {
    login_page(&state, StatusCode::OK, None)
}

/// A hash checked when no account matches, so that both take the time of one check.
static DECOY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| charter_vault::hash_password("decoy password"));

async fn login(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let refused = || login_page(&state, StatusCode::UNAUTHORIZED, Some("The email, password or code is wrong."));
    let Ok(normal) = state.identifiers.normalise(IdentifierKind::Email, field(&form, "email")) else {
        return Ok(refused());
    };
    let blind = state.keys.blind_indexer().index(&normal);
    let attempt = match state.sign_ins.begin(&crate::sign_in::Named::Blind("admin", blind)).await {
        Ok(a) => a,
        Err(crate::sign_in::NotStarted::Refused(wait)) => {
            return Err(ApiError::TooManyAttempts {
                message: "too many failed sign-ins; try again later".into(),
                retry_after_s: wait.as_secs().max(1),
            })
        }
        Err(crate::sign_in::NotStarted::Db(e)) => return Err(ApiError::Internal(e)),
    };
    let admin = state.store.admin_by_email(&hex::encode(blind)).await?.filter(|a| a.disabled_at_us.is_none());
    let hash = admin.as_ref().and_then(|a| a.password_hash.clone()).unwrap_or_else(|| DECOY.clone());
    let password = field(&form, "password").to_owned();
    let matched = tokio::task::spawn_blocking(move || charter_vault::check_password(&password, &hash).unwrap_or(false))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let now_s = u64::try_from(charter_store::now_us() / 1_000_000).unwrap_or(0);
    let admin = admin.filter(|a| {
        matched
            && a.password_hash.is_some()
            && charter_vault::totp::check(&totp_secret(&state, a), field(&form, "code"), now_s)
    });
    let Some(admin) = admin else {
        attempt.failed().await.map_err(ApiError::Internal)?;
        return Ok(refused());
    };
    attempt.matched().await.map_err(ApiError::Internal)?;
    let token = hex::encode(rand::random::<[u8; 32]>());
    state
        .store
        .add_admin_session(&mac(&state, SESSION_MAC, &token), &admin.id, charter_store::now_us() + SESSION_US)
        .await?;
    audit(&state, &admin, "admin.signed_in", json!({})).await?;
    let cookie =
        format!("{COOKIE}={token}; Path=/admin; Max-Age={}; HttpOnly; Secure; SameSite=Strict", SESSION_US / 1_000_000);
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/admin")]).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII"));
    Ok(response)
}

async fn logout(State(state): State<AppState>, parts: Parts, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    if let Some(s) = signed(&state, &parts).await? {
        if field(&form, "csrf") == s.csrf(&state) {
            state.store.end_admin_session(&mac(&state, SESSION_MAC, &s.token)).await?;
        }
    }
    let mut response = to_login();
    let gone = format!("{COOKIE}=; Path=/admin; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&gone).expect("ASCII"));
    Ok(response)
}

/// One row of the queue.
struct Row {
    id: String,
    short: String,
    kind: String,
    jurisdiction: String,
    status: String,
    extended: bool,
    received: String,
    due: String,
    left: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "admin_queue.html")]
struct QueuePage {
    chrome: Chrome,
    role: String,
    can_act: bool,
    csrf: String,
    rows: Vec<Row>,
    overdue: usize,
    tasks: Vec<(String, String, String, String, String)>,
}

/// Statuses the team sees in the queue: everything not finished.
pub const OPEN: [&str; 5] = ["agent_pending", "awaiting_verification", "verified", "awaiting_approval", "in_progress"];

/// Time left until `deadline_us`, in words.
fn left(deadline_us: i64, now_us: i64) -> String {
    let hours = (deadline_us - now_us).abs() / 3_600_000_000;
    let words = if hours >= 48 { format!("{} days", hours / 24) } else { format!("{hours} hours") };
    if deadline_us < now_us {
        format!("{words} late")
    } else {
        words
    }
}

fn row(r: &Request, now: i64) -> Row {
    let deadline = r.deadline_us();
    Row {
        id: r.id.clone(),
        short: r.id[..8].to_owned(),
        kind: r.kind.clone(),
        jurisdiction: r.jurisdiction.clone(),
        status: r.status.clone(),
        extended: r.extended_due_at_us.is_some(),
        received: rights::day(r.received_at_us),
        due: deadline.map(rights::day).unwrap_or_default(),
        left: deadline.map(|d| left(d, now)).unwrap_or_default(),
        overdue: deadline.is_some_and(|d| d < now),
    }
}

async fn queue(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let Some(s) = signed(&state, &parts).await? else { return Ok(to_login()) };
    let now = charter_store::now_us();
    let rows: Vec<Row> = state.store.requests_in(&OPEN, 500).await?.iter().map(|r| row(r, now)).collect();
    let tasks = state
        .store
        .open_processor_tasks()
        .await?
        .into_iter()
        .map(|t| (t.request_id, t.recipient, t.channel, t.status, rights::day(t.due_at_us)))
        .collect();
    let p = QueuePage {
        chrome: Chrome::new(&state, "Privacy console"),
        role: s.admin.role.clone(),
        can_act: s.can_act(),
        csrf: s.csrf(&state),
        overdue: rows.iter().filter(|r| r.overdue).count(),
        rows,
        tasks,
    };
    Ok(pages::render(StatusCode::OK, &p))
}

#[derive(Template)]
#[template(path = "admin_request.html")]
struct RequestPage {
    chrome: Chrome,
    id: String,
    kind: String,
    jurisdiction: String,
    status: String,
    received: String,
    due: String,
    extended: Option<String>,
    details: String,
    agent: Option<String>,
    reason: Option<String>,
    csrf: String,
    can_act: bool,
    can_approve: bool,
    can_approve_agent: bool,
    can_deny: bool,
    can_extend: bool,
    tasks: Vec<(String, String, String)>,
    timeline: Vec<(String, String, String, String, Option<String>)>,
}

/// An agent's name and authorisation, opened for the team.
fn agent_of(r: &Request, key: Option<&charter_vault::DataKey>) -> Option<String> {
    let plain = key?.open_message(&intake::sealed_label(&r.id), r.sealed_details.as_ref()?).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&plain).ok()?;
    let agent = v.get("agent")?;
    Some(format!("{}: {}", agent.get("name")?.as_str()?, agent.get("authorisation")?.as_str()?))
}

async fn request_page(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(s) = signed(&state, &parts).await? else { return Ok(to_login()) };
    let Some(r) = state.store.request(&id).await? else {
        return Ok(page(&state, StatusCode::NOT_FOUND, "No such request."));
    };
    let key = match &r.subject_id {
        Some(subject) if r.agent => match state.store.subject(subject).await? {
            Some(rec) => crate::subject::unwrap_key(&state, &rec).ok(),
            None => None,
        },
        _ => None,
    };
    audit(&state, &s.admin, "request.viewed", json!({ "request": r.id })).await?;
    let status = Status::parse(&r.status).unwrap_or(Status::Completed);
    let now = charter_store::now_us();
    let events = state.store.request_events(&r.id).await?;
    let p = RequestPage {
        chrome: Chrome::new(&state, &format!("Request {}", &r.id[..8])),
        id: r.id.clone(),
        kind: r.kind.clone(),
        jurisdiction: r.jurisdiction.clone(),
        status: r.status.clone(),
        received: charter_core::time::rfc3339_from_us(r.received_at_us),
        due: r.deadline_us().map(charter_core::time::rfc3339_from_us).unwrap_or_default(),
        extended: r.extension_reason.clone(),
        details: r.details.clone(),
        agent: agent_of(&r, key.as_ref()),
        reason: r.reason.clone(),
        csrf: s.csrf(&state),
        can_act: s.can_act(),
        can_approve: status == Status::AwaitingApproval,
        can_approve_agent: status == Status::AgentPending,
        can_deny: matches!(
            status,
            Status::AgentPending | Status::AwaitingVerification | Status::AwaitingApproval | Status::InProgress
        ),
        can_extend: status.is_open() && r.due_at_us.is_some_and(|d| may_extend(d, now, r.extended_due_at_us.is_some())),
        tasks: state
            .store
            .processor_tasks(&r.id)
            .await?
            .into_iter()
            .map(|t| (t.recipient, t.channel, t.status))
            .collect(),
        timeline: events
            .into_iter()
            .map(|e| (charter_core::time::rfc3339_from_us(e.at_us), e.action, e.actor, e.status, e.note))
            .collect(),
    };
    Ok(pages::render(StatusCode::OK, &p))
}

async fn act(
    State(state): State<AppState>,
    parts: Parts,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let s = match acting(&state, &parts, &form).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let Some(mut r) = state.store.request(&id).await? else {
        return Ok(page(&state, StatusCode::NOT_FOUND, "No such request."));
    };
    let actor = format!("admin:{}", s.admin.id);
    let reason = field(&form, "reason").trim().to_owned();
    let done = match field(&form, "action") {
        "approve" => rights::move_request(&state, &mut r, Move::Approve, &actor, None).await?,
        "agent" => approve_agent(&state, &mut r, &actor).await?,
        "deny" if !reason.is_empty() => deny(&state, &mut r, &actor, reason).await?,
        "extend" if !reason.is_empty() => extend(&state, &mut r, &actor, reason).await?,
        "deny" | "extend" => {
            return Ok(page(&state, StatusCode::BAD_REQUEST, "Give the reason: the person is told it."))
        }
        _ => return Ok(page(&state, StatusCode::BAD_REQUEST, "No such action.")),
    };
    if !done {
        return Ok(page(
            &state,
            StatusCode::CONFLICT,
            "The request changed meanwhile, or may not be extended; reload it.",
        ));
    }
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, format!("/admin/requests/{id}"))]).into_response())
}

async fn deny(state: &AppState, r: &mut Request, actor: &str, reason: String) -> Result<bool, ApiError> {
    r.reason = Some(reason.clone());
    if !rights::move_request(state, r, Move::Deny, actor, Some(reason.clone())).await? {
        return Ok(false);
    }
    let text =
        format!("We cannot do what you asked, for this reason: {reason}\nYou may complain to a supervisory authority.");
    rights::tell(state, r, "denied", "About your request", text).await?;
    Ok(true)
}

/// Extends the deadline once, before it passes, telling the person why (GDPR Art. 12(3),
/// CCPA §1798.130(a)(2)).
async fn extend(state: &AppState, r: &mut Request, actor: &str, reason: String) -> Result<bool, ApiError> {
    let status = Status::parse(&r.status).unwrap_or(Status::Completed);
    let now = charter_store::now_us();
    let jurisdiction = Jurisdiction::parse(&r.jurisdiction).unwrap_or(Jurisdiction::Gdpr);
    let clock = Clock::of(&state.policy().policy, jurisdiction);
    let (Some(due), Some(clock)) = (r.due_at_us, clock) else { return Ok(false) };
    if !status.is_open() || !may_extend(due, now, r.extended_due_at_us.is_some()) {
        return Ok(false);
    }
    r.extended_due_at_us = Some(clock.extended_due(r.received_at_us));
    r.extension_reason = Some(reason.clone());
    let event = RequestEvent {
        at_us: now,
        actor: actor.into(),
        action: "extended".into(),
        status: r.status.clone(),
        note: Some(reason.clone()),
    };
    rights::audit_step(state, r, actor, "extended", Some(&reason)).await?;
    if !state.store.save_request(&r.status.clone(), r, &event).await? {
        return Ok(false);
    }
    let until = r.extended_due_at_us.map(rights::day).unwrap_or_default();
    let text = format!(
        "We need more time to answer your request, for this reason: {reason}\nWe will answer by {until} at the latest."
    );
    rights::tell(state, r, "extended", "We need more time for your request", text).await?;
    Ok(true)
}

/// Approves an agent's authorisation; the person then verifies with a code sent to the
/// address on file.
async fn approve_agent(state: &AppState, r: &mut Request, actor: &str) -> Result<bool, ApiError> {
    if !rights::move_request(state, r, Move::AgentApproved, actor, None).await? {
        return Ok(false);
    }
    let Some(subject) = r.subject_id.clone() else { return Ok(true) };
    let Some((address, _)) = rights::address_of(state, &subject).await? else { return Ok(true) };
    let address = Personal::new(address);
    let link = format!("{}/verify", pages::path_of(state, "requests", "/requests").trim_end_matches('/'));
    let contact = crate::codes::Contact { kind: IdentifierKind::Email, value: &address };
    if let Ok(Some(c)) = crate::codes::issue_challenge(state, "request", contact, None, &link).await? {
        let was = r.status.clone();
        r.challenge_id = Some(c.id);
        let event = RequestEvent {
            at_us: charter_store::now_us(),
            actor: actor.into(),
            action: "code_sent".into(),
            status: r.status.clone(),
            note: None,
        };
        state.store.save_request(&was, r, &event).await?;
    }
    Ok(true)
}

#[derive(Template)]
#[template(path = "admin_new.html")]
struct NewPage {
    chrome: Chrome,
    csrf: String,
    error: Option<String>,
    types: Vec<(&'static str, &'static str)>,
}

fn new_page(state: &AppState, s: &Signed, status: StatusCode, error: Option<String>) -> Response {
    let policy = state.policy();
    let types =
        RequestType::ALL.iter().filter(|t| t.offered(&policy.policy)).map(|t| (t.as_str(), t.describe())).collect();
    pages::render(status, &NewPage { chrome: Chrome::new(state, "Enter a request"), csrf: s.csrf(state), error, types })
}

async fn new_form(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let Some(s) = signed(&state, &parts).await? else { return Ok(to_login()) };
    Ok(new_page(&state, &s, StatusCode::OK, None))
}

/// A date `YYYY-MM-DD` as the µs its day starts at, when it is a real date not in the future.
fn received_on(text: &str, now_us: i64) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if parts.next().is_some() || !(1..=12).contains(&m) || d == 0 || d > charter_core::time::days_in_month(y, m) {
        return None;
    }
    let at = charter_core::time::days_from_civil(y, m, d) * charter_core::time::DAY_US;
    (at <= now_us).then_some(at)
}

async fn new_request(State(state): State<AppState>, parts: Parts, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let s = match acting(&state, &parts, &form).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let Some(received) = received_on(field(&form, "received"), charter_store::now_us()) else {
        return Ok(new_page(
            &state,
            &s,
            StatusCode::BAD_REQUEST,
            Some("The date received must be a real date, not in the future.".into()),
        ));
    };
    let text =
        |name: &str| Some(field(&form, name).trim()).filter(|v| !v.is_empty()).map(|v| Personal::new(v.to_owned()));
    let mut details = serde_json::Map::new();
    if let Some(p) = text("purpose") {
        details.insert("purpose".into(), p.expose().clone().into());
    }
    let filing = intake::Filing {
        kind: field(&form, "type").to_owned(),
        email: text("email"),
        phone: text("phone"),
        jurisdiction: None,
        details,
        agent: None,
    };
    let actor = format!("admin:{}", s.admin.id);
    match intake::enter(&state, filing, received, &actor).await {
        Ok(filed) => {
            Ok((StatusCode::SEE_OTHER, [(header::LOCATION, format!("/admin/requests/{}", filed.id))]).into_response())
        }
        Err(ApiError::Unprocessable { message, .. }) => {
            Ok(new_page(&state, &s, StatusCode::BAD_REQUEST, Some(message)))
        }
        Err(e) => Err(e),
    }
}

async fn confirm_processor(
    State(state): State<AppState>,
    parts: Parts,
    Path((id, recipient)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let s = match acting(&state, &parts, &form).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    if !state.store.set_processor_status(&id, &recipient, "completed", charter_store::now_us()).await? {
        return Ok(page(&state, StatusCode::NOT_FOUND, "No such processor task."));
    }
    audit(&state, &s.admin, "processor.confirmed", json!({ "request": id, "recipient": recipient })).await?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, format!("/admin/requests/{id}"))]).into_response())
}

async fn child(State(state): State<AppState>, parts: Parts, body: Bytes) -> Result<Response, ApiError> {
    let form = pages::form(&body);
    let s = match acting(&state, &parts, &form).await? {
        Ok(s) => s,
        Err(answer) => return Ok(answer),
    };
    let Ok(subject) = crate::subject::SubjectId::parse(field(&form, "subject").trim()) else {
        return Ok(new_page(&state, &s, StatusCode::BAD_REQUEST, Some("That is not a subject id.".into())));
    };
    if state.store.subject(subject.as_str()).await?.is_none() {
        return Ok(new_page(&state, &s, StatusCode::NOT_FOUND, Some("No such subject.".into())));
    }
    let id = intake::child(&state, subject.as_str(), &format!("admin:{}", s.admin.id)).await?;
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, format!("/admin/requests/{id}"))]).into_response())
}
