//! Rights requests end to end: filing and verifying them ([`intake`]), moving them
//! through their states with every step in the timeline and the audit chain (here),
//! fulfilling them as durable work any server resumes ([`worker`], [`fulfil`]), and
//! telling the person at each step.

pub mod export;
pub mod fulfil;
pub mod intake;
pub mod worker;
mod zip;

use charter_core::audit::AuditEvent;
use charter_core::requests::{self, Move, Status};
use charter_delivery::{Enqueue, Mail, Message, Seal};
use charter_store::requests::{Request, RequestEvent};
use charter_vault::{DataKey, KeyWrapper as _};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// The category of the address a person is written to.
const EMAIL_CATEGORY: &str = "user.contact.email";

/// Moves `r` by `mv`, recording the step (by `actor`, with `note`) in its timeline and the
/// audit chain. False when another server moved it first (nothing written); an error
/// when the move is not allowed from where it stands.
pub async fn move_request(
    state: &AppState,
    r: &mut Request,
    mv: Move,
    actor: &str,
    note: Option<String>,
) -> Result<bool, ApiError> {
    let from = Status::parse(&r.status).ok_or_else(|| internal("a request has an unknown status"))?;
    let to = requests::next(from, mv).map_err(|e| ApiError::Conflict { code: "bad_move", message: e.to_string() })?;
    let was = std::mem::replace(&mut r.status, to.as_str().to_owned());
    let now = charter_store::now_us();
    if to.is_final() && to != Status::Duplicate {
        r.completed_at_us = Some(now);
    }
    let action = action_of(mv);
    let event =
        RequestEvent { at_us: now, actor: actor.to_owned(), action: action.into(), status: r.status.clone(), note };
    audit_step(state, r, actor, action, event.note.as_deref()).await?;
    let saved = state.store.save_request(&was, r, &event).await?;
    if !saved {
        r.status = was;
    }
    Ok(saved)
}

fn action_of(mv: Move) -> &'static str {
    match mv {
        Move::AgentApproved => "agent_approved",
        Move::Verify => "verified",
        Move::Route { needs_approval: true } => "awaiting_approval",
        Move::Route { needs_approval: false } => "started",
        Move::Approve => "approved",
        Move::Complete => "completed",
        Move::Deny => "denied",
        Move::Expire => "expired",
        Move::MarkDuplicate => "duplicate",
    }
}

/// The name rectifications are collected under, in the audit chain too.
pub const ACTOR: &str = "privacy-requests";

/// Records a step of `r` in the audit chain: its type and status, and the policy purpose
/// it names (what an objection or a withdrawal is about, which a restore replays); never
/// its other details.
pub async fn audit_step(
    state: &AppState,
    r: &Request,
    actor: &str,
    action: &str,
    note: Option<&str>,
) -> Result<(), ApiError> {
    let purpose = serde_json::from_str::<serde_json::Value>(&r.details)
        .ok()
        .and_then(|d| d.get("purpose")?.as_str().map(str::to_owned))
        .filter(|p| state.policy().policy.purposes.contains_key(p));
    let detail = json!({ "request": r.id, "type": r.kind, "status": r.status, "note": note, "purpose": purpose });
    let mut e = AuditEvent::new(actor, format!("request.{action}"), "ok").with_detail(&detail);
    e.subject = r.subject_id.clone();
    state.audit.append(e).await?;
    Ok(())
}

pub(crate) fn internal(what: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{what}"))
}

/// A subject's email address on file and their data key, when they have both.
pub async fn address_of(state: &AppState, subject: &str) -> Result<Option<(String, DataKey)>, ApiError> {
    let Some(view) = state.store.subject_for_read(subject, "").await? else { return Ok(None) };
    let (Some(wrapped), Some(field)) =
        (&view.subject.wrapped, view.fields.iter().find(|f| f.category == EMAIL_CATEGORY))
    else {
        return Ok(None);
    };
    let key = state.keys.unwrap(subject, wrapped).map_err(|e| internal(&format!("a data key does not open: {e}")))?;
    let plain = crate::subject::open_value(&key, subject, field)?;
    Ok(String::from_utf8(plain).ok().map(|a| (a, key)))
}

/// Writes to the person a request is about (when charter knows them and has their
/// address), through the delivery jobs; `step` names the message so it is sent once.
pub async fn tell(state: &AppState, r: &Request, step: &str, subject_line: &str, text: String) -> Result<(), ApiError> {
    let Some(subject) = &r.subject_id else { return Ok(()) };
    let Some((address, key)) = address_of(state, subject).await? else { return Ok(()) };
    send(state, r, step, subject_line, text, address, Seal::Subject { id: subject, key: &key }).await
}

/// Writes to `address`, taken before the person's data was erased, under the key file
/// (their own key is gone): the one message that outlives an erasure, its confirmation.
pub async fn tell_erased(
    state: &AppState,
    r: &Request,
    subject_line: &str,
    text: String,
    address: String,
) -> Result<(), ApiError> {
    send(state, r, "completed", subject_line, text, address, Seal::KeyFile).await
}

async fn send(
    state: &AppState,
    r: &Request,
    step: &str,
    subject_line: &str,
    text: String,
    address: String,
    seal: Seal<'_>,
) -> Result<(), ApiError> {
    let controller = state.policy().policy.controller.name.clone();
    let text = format!("{text}\n\nYour request's reference: {}\n{controller}\n", r.id);
    let message =
        Message::Mail(Mail { to: address, subject: subject_line.to_owned(), text, html: None, unsubscribe: None });
    let job = Enqueue {
        kind: "mail.request",
        idempotency_key: format!("request:{}:{step}", r.id),
        message: &message,
        seal,
        max_attempts: None,
    };
    charter_delivery::enqueue(&state.store, &*state.keys, job, charter_store::now_us())
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("cannot queue a message about a request")))?;
    Ok(())
}

/// A date as people read it: `2026-12-05`.
pub fn day(us: i64) -> String {
    charter_core::time::rfc3339_from_us(us)[..10].to_owned()
}

/// The signed token that lets the person who verified a request follow it.
pub fn status_token(state: &AppState, id: &str) -> String {
    state.keys.link_signer().sign(STATUS_LINK, id)
}

/// The request a status token names, when it is genuine.
pub fn token_request(state: &AppState, token: &str) -> Option<String> {
    state.keys.link_signer().verify(STATUS_LINK, token)
}

const STATUS_LINK: &str = "request.status";
