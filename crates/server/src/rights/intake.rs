//! Filing a request and verifying it. Filing answers the same, in the same time, whether
//! or not charter knows the person: a request is kept either way, and only a known
//! person gets a code (by email or text message). Verifying with that code moves the
//! request on: a duplicate of an earlier one, to the team for approval, or to work.

use charter_core::requests::{Clock, Jurisdiction, Move, RequestType, Status};
use charter_store::requests::{Request, RequestEvent};
use charter_vault::{IdentifierKind, Personal};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{move_request, status_token, tell};
use crate::codes::{self, BadAddress, Contact};
use crate::error::ApiError;
use crate::state::AppState;

/// A request as a person (or their agent) files it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filing {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub email: Option<Personal<String>>,
    #[serde(default)]
    pub phone: Option<Personal<String>>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
    #[serde(default)]
    pub details: Map<String, Value>,
    /// An authorised agent's authorisation (CCPA): the team approves it first.
    #[serde(default)]
    pub agent: Option<Agent>,
}

/// Who files for the person, and their signed authorisation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: Personal<String>,
    pub authorisation: Personal<String>,
}

/// What filing answers.
pub struct Filed {
    pub id: String,
    pub status: Status,
}

fn refuse(code: &'static str, message: String) -> ApiError {
    ApiError::Unprocessable { code, message, details: Value::Null }
}

/// The type, checked against the rights the policy offers.
fn kind_of(state: &AppState, f: &Filing) -> Result<RequestType, ApiError> {
    let kind = RequestType::parse(&f.kind).ok_or_else(|| {
        refuse(
            "unknown_type",
            format!(
                "`{}` is not a request type; use one of {}",
                f.kind,
                charter_policy::model::REQUEST_TYPES.join(", ")
            ),
        )
    })?;
    if !kind.offered(&state.policy().policy) {
        return Err(refuse("right_not_offered", format!("the policy does not offer `{}`", kind.as_str())));
    }
    Ok(kind)
}

/// The jurisdiction: the person's choice when given, else the type's own.
fn jurisdiction_of(state: &AppState, f: &Filing, kind: RequestType) -> Result<(Jurisdiction, Clock), ApiError> {
    let j = match f.jurisdiction.as_deref() {
        None => kind.jurisdiction(),
        Some(name) => Jurisdiction::parse(name)
            .ok_or_else(|| refuse("unknown_jurisdiction", "jurisdiction is `gdpr` or `ccpa`".into()))?,
    };
    let clock = Clock::of(&state.policy().policy, j).ok_or_else(|| {
        refuse("right_not_offered", format!("the policy states no {} rights", j.as_str().to_uppercase()))
    })?;
    Ok((j, clock))
}

/// What the request names (a purpose, the fields to correct), checked; the names go in
/// `details`, the new values (personal data) are returned to be sealed.
fn details_of(
    state: &AppState,
    f: &Filing,
    kind: RequestType,
) -> Result<(Value, Option<Map<String, Value>>), ApiError> {
    let policy = state.policy();
    let purpose = f.details.get("purpose").and_then(Value::as_str);
    match kind {
        RequestType::Objection | RequestType::ConsentWithdrawal => {
            let p = purpose
                .filter(|p| policy.policy.purposes.contains_key(*p))
                .ok_or_else(|| refuse("unknown_purpose", "details.purpose must name a purpose of the policy".into()))?;
            if kind == RequestType::ConsentWithdrawal && !charter_core::consent::rests_on_consent(&policy.policy, p) {
                return Err(refuse("not_consent_based", format!("purpose `{p}` does not rest on consent")));
            }
            Ok((json!({ "purpose": p }), None))
        }
        RequestType::Rectification | RequestType::CcpaCorrect => {
            let fields = f.details.get("fields").and_then(Value::as_object).filter(|m| !m.is_empty() && m.len() <= 20);
            let fields = fields.ok_or_else(|| {
                refuse("no_fields", "details.fields must map up to 20 field names to their corrected values".into())
            })?;
            for (name, value) in fields {
                let declared = policy.policy.collection_points.values().any(|p| p.fields.contains_key(name));
                if !declared || !value.is_string() || value.as_str().is_some_and(|v| v.len() > 4096) {
                    return Err(refuse(
                        "bad_field",
                        "each corrected field must be a declared field with a text value of at most 4 KiB".into(),
                    ));
                }
            }
            Ok((json!({ "fields": fields.keys().collect::<Vec<_>>() }), Some(fields.clone())))
        }
        _ => Ok((json!({}), None)),
    }
}

fn contact_of(f: &Filing) -> Result<Contact<'_>, ApiError> {
    match (&f.email, &f.phone) {
        (Some(v), None) => Ok(Contact { kind: IdentifierKind::Email, value: v }),
        (None, Some(v)) => Ok(Contact { kind: IdentifierKind::Phone, value: v }),
        _ => Err(refuse("bad_contact", "give exactly one of email or phone".into())),
    }
}

/// Files a request from `client` (the network); see the module.
pub async fn file(state: &AppState, f: Filing, client: Option<String>, source: &str) -> Result<Filed, ApiError> {
    let kind = kind_of(state, &f)?;
    let (jurisdiction, clock) = jurisdiction_of(state, &f, kind)?;
    let (details, secret) = details_of(state, &f, kind)?;
    let contact = contact_of(&f)?;
    let contact_kind = contact.kind.as_str().to_owned();
    if kind == RequestType::CcpaOptOut && f.agent.is_none() {
        // CCPA regulations §7026(d): an opt-out needs no verification; it is acted on at once.
        return opt_out_at_once(state, &f, kind, jurisdiction, clock, details, source).await;
    }
    let link = format!("{}/verify", super::super::pages::path_of(state, "requests", "/requests").trim_end_matches('/'));
    let challenge = match codes::issue_challenge(state, "request", contact, client, &link).await? {
        Err(BadAddress(why)) => return Err(refuse("bad_contact", why)),
        Ok(None) => {
            return Err(ApiError::TooManyAttempts {
                message: "too many requests for this address or network lately; try again in an hour".into(),
                retry_after_s: 3600,
            })
        }
        Ok(Some(c)) => c,
    };
    let now = charter_store::now_us();
    let status = if f.agent.is_some() { Status::AgentPending } else { Status::AwaitingVerification };
    let mut r = Request {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: challenge.subject.clone(),
        kind: kind.as_str().into(),
        jurisdiction: jurisdiction.as_str().into(),
        status: status.as_str().into(),
        source: source.into(),
        details: details.to_string(),
        contact_kind: Some(contact_kind),
        contact_blind: Some(challenge.contact_blind),
        challenge_id: Some(challenge.id),
        agent: f.agent.is_some(),
        received_at_us: now,
        due_at_us: Some(clock.due(now)),
        ..Request::default()
    };
    r.sealed_details = seal_details(state, &r, secret, f.agent.as_ref()).await?;
    let first = RequestEvent {
        at_us: now,
        actor: "person".into(),
        action: "received".into(),
        status: r.status.clone(),
        note: None,
    };
    super::audit_step(state, &r, "person", "received", None).await?;
    state.store.insert_request(&r, &first).await?;
    Ok(Filed { id: r.id, status })
}

/// The corrected values and an agent's authorisation, sealed under the subject's key
/// (nothing is kept for a person charter does not know).
async fn seal_details(
    state: &AppState,
    r: &Request,
    values: Option<Map<String, Value>>,
    agent: Option<&Agent>,
) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(subject) = &r.subject_id else { return Ok(None) };
    if values.is_none() && agent.is_none() {
        return Ok(None);
    }
    let Some(s) = state.store.subject(subject).await? else { return Ok(None) };
    let key = crate::subject::unwrap_key(state, &s)?;
    let plain = json!({
        "fields": values,
        "agent": agent.map(|a| json!({ "name": a.name.expose(), "authorisation": a.authorisation.expose() })),
    });
    Ok(Some(key.seal_message(&sealed_label(&r.id), plain.to_string().as_bytes())))
}

/// What a request's sealed details are bound to.
pub fn sealed_label(id: &str) -> String {
    format!("request:{id}")
}

/// An opt-out filed as a request: no code is sent; it is fulfilled now for a person
/// charter knows (for anyone else there is nothing to do), and answered the same either way.
async fn opt_out_at_once(
    state: &AppState,
    f: &Filing,
    kind: RequestType,
    jurisdiction: Jurisdiction,
    clock: Clock,
    details: Value,
    source: &str,
) -> Result<Filed, ApiError> {
    let now = charter_store::now_us();
    let mut r = unverified(state, f, kind, jurisdiction, clock, details, source, now).await?;
    r.due_at_us = Some(charter_core::requests::opt_out_by(now).min(clock.due(now)));
    let first = RequestEvent {
        at_us: now,
        actor: "person".into(),
        action: "received".into(),
        status: r.status.clone(),
        note: None,
    };
    super::audit_step(state, &r, "person", "received", None).await?;
    state.store.insert_request(&r, &first).await?;
    move_request(state, &mut r, Move::Verify, "system", Some("an opt-out needs no verification".into())).await?;
    move_request(state, &mut r, Move::Route { needs_approval: false }, "system", None).await?;
    super::fulfil::fulfil(state, &mut r).await?;
    Ok(Filed { id: r.id, status: Status::Completed })
}

/// A new request, not yet verified, for the person `f` names, found without a code (the
/// team checked who they are, or the request needs no proof), received at `received_at_us`.
#[allow(clippy::too_many_arguments)]
async fn unverified(
    state: &AppState,
    f: &Filing,
    kind: RequestType,
    jurisdiction: Jurisdiction,
    clock: Clock,
    details: Value,
    source: &str,
    received_at_us: i64,
) -> Result<Request, ApiError> {
    let contact = contact_of(f)?;
    let normal = state
        .identifiers
        .normalise(contact.kind, contact.value.expose())
        .map_err(|why| refuse("bad_contact", format!("the contact {why}")))?;
    let blind = state.keys.blind_indexer().index(&normal);
    let identifier = crate::subject::Identifier::Named { normal, blind, given: contact.value.clone() };
    let subject = crate::subject::find(state, &identifier).await?.filter(|s| s.wrapped.is_some());
    Ok(Request {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: subject.map(|s| s.id),
        kind: kind.as_str().into(),
        jurisdiction: jurisdiction.as_str().into(),
        status: Status::AwaitingVerification.as_str().into(),
        source: source.into(),
        details: details.to_string(),
        contact_kind: Some(contact.kind.as_str().into()),
        contact_blind: Some(hex::encode(blind)),
        received_at_us,
        due_at_us: Some(clock.due(received_at_us)),
        ..Request::default()
    })
}

/// What verifying answers: where the request now stands, and the token to follow it.
pub struct Verified {
    pub status: Status,
    pub token: String,
}

/// Verifies request `id` with `code`. `None` for a wrong, spent or expired code, an
/// unknown request, or one not awaiting verification: all look the same.
pub async fn verify(state: &AppState, id: &str, code: &str) -> Result<Option<Verified>, ApiError> {
    let Some(mut r) = state.store.request(id).await? else { return Ok(None) };
    let (Some(challenge), Some(subject)) = (r.challenge_id.clone(), r.subject_id.clone()) else { return Ok(None) };
    if r.status != Status::AwaitingVerification.as_str() {
        return Ok(None);
    }
    if codes::verify(state, "request", &challenge, code).await?.as_deref() != Some(subject.as_str()) {
        return Ok(None);
    }
    r.verified_at_us = Some(charter_store::now_us());
    if !move_request(state, &mut r, Move::Verify, "person", None).await? {
        return Ok(None);
    }
    route(state, &mut r).await?;
    let status = Status::parse(&r.status).unwrap_or(Status::Verified);
    Ok(Some(Verified { status, token: status_token(state, &r.id) }))
}

/// A verified request: a duplicate of an earlier one, or to the team, or to work; the
/// person is told it was received and when it is due.
async fn route(state: &AppState, r: &mut Request) -> Result<(), ApiError> {
    let policy = state.policy();
    let window = charter_policy::units::PolicyDuration::parse(&policy.policy.requests.duplicate_window)
        .map_or(0, |d| d.approx_hours() as i64 * 3_600_000_000);
    let earlier = match &r.contact_blind {
        Some(blind) => state.store.earlier_request(blind, &r.kind, r.received_at_us - window, &r.id).await?,
        None => None,
    };
    if let Some(first) = earlier {
        r.duplicate_of = Some(first.clone());
        move_request(state, r, Move::MarkDuplicate, "system", Some(format!("the same as request {first}"))).await?;
        let text =
            format!("You asked for this already: your earlier request {first} stands, and we are working on it.");
        return tell(state, r, "duplicate", "Your request", text).await;
    }
    let needs_approval = policy.policy.requests.approval.contains(&r.kind);
    move_request(state, r, Move::Route { needs_approval }, "system", None).await?;
    let kind = RequestType::parse(&r.kind).map_or("your request", RequestType::describe);
    let due = r.due_at_us.map(super::day).unwrap_or_default();
    let text = format!("We received your request: {kind}.\nWe will answer by {due} at the latest.");
    tell(state, r, "received", "We received your request", text).await
}

/// A request the team enters by hand (received by post or phone, the person's identity
/// checked by the team): verified at once and routed, dated from when it was received.
pub async fn enter(state: &AppState, f: Filing, received_at_us: i64, admin: &str) -> Result<Filed, ApiError> {
    let kind = kind_of(state, &f)?;
    let (jurisdiction, clock) = jurisdiction_of(state, &f, kind)?;
    let (details, _) = details_of(state, &f, kind)?;
    let now = charter_store::now_us();
    let mut r = unverified(state, &f, kind, jurisdiction, clock, details, "admin", received_at_us).await?;
    let note = Some("entered by hand; identity checked by the team".to_owned());
    let first = RequestEvent {
        at_us: now,
        actor: admin.into(),
        action: "received".into(),
        status: r.status.clone(),
        note: note.clone(),
    };
    super::audit_step(state, &r, admin, "received", note.as_deref()).await?;
    state.store.insert_request(&r, &first).await?;
    r.verified_at_us = Some(now);
    move_request(state, &mut r, Move::Verify, admin, note).await?;
    route(state, &mut r).await?;
    Ok(Filed { id: r.id, status: Status::parse(&r.status).unwrap_or(Status::Verified) })
}

/// The team marked a subject a child whose data was collected without verified parental
/// consent (P29): an erasure opens at once and goes straight to work.
pub async fn child(state: &AppState, subject: &str, admin: &str) -> Result<String, ApiError> {
    let now = charter_store::now_us();
    let clock = Clock::of(&state.policy().policy, Jurisdiction::Gdpr);
    let mut r = Request {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: Some(subject.to_owned()),
        kind: RequestType::Erasure.as_str().into(),
        jurisdiction: Jurisdiction::Gdpr.as_str().into(),
        status: Status::AwaitingVerification.as_str().into(),
        source: "admin".into(),
        details: json!({ "child": true }).to_string(),
        received_at_us: now,
        verified_at_us: Some(now),
        due_at_us: clock.map(|c| c.due(now)),
        ..Request::default()
    };
    let note = Some("a child's data collected without verified parental consent".to_owned());
    let first = RequestEvent {
        at_us: now,
        actor: admin.into(),
        action: "received".into(),
        status: r.status.clone(),
        note: note.clone(),
    };
    super::audit_step(state, &r, admin, "marked_child", note.as_deref()).await?;
    state.store.insert_request(&r, &first).await?;
    move_request(state, &mut r, Move::Verify, admin, note).await?;
    move_request(state, &mut r, Move::Route { needs_approval: false }, admin, None).await?;
    Ok(r.id)
}
