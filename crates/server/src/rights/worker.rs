//! The work of rights requests, in every server: fulfilling requests in progress (each
//! claimed under a lease, so a crashed server's work is taken up by another once its
//! lease runs out), expiring requests never verified, reminding the team of deadlines
//! and escalating processors that did not confirm.

use std::time::Duration;

use charter_core::requests::{Move, Status};
use charter_delivery::{Enqueue, Mail, Message, Seal};
use charter_policy::units::PolicyDuration;

use super::{day, move_request};
use crate::error::ApiError;
use crate::state::AppState;

/// How often the worker looks for work when it found none.
const IDLE: Duration = Duration::from_millis(500);
/// How long a claim holds a request.
const LEASE_US: i64 = 120_000_000;
/// How often the expiry, reminder and escalation sweeps run.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Works until `stop` resolves.
pub async fn run(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut last_sweep: Option<tokio::time::Instant> = None;
    loop {
        if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            if let Err(e) = sweep(&state).await {
                tracing::warn!(error = %e, "the rights requests sweep failed");
            }
            last_sweep = Some(tokio::time::Instant::now());
        }
        let worked = match work_one(&state).await {
            Ok(worked) => worked,
            Err(e) => {
                tracing::warn!(error = %e, "a rights request could not be fulfilled; it is retried once its lease ends");
                false
            }
        };
        if worked {
            continue;
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// Claims and fulfils one request in progress; whether there was one.
pub async fn work_one(state: &AppState) -> Result<bool, ApiError> {
    let now = charter_store::now_us();
    let Some(mut r) = state.store.claim_request(now, now + LEASE_US).await? else { return Ok(false) };
    super::fulfil::fulfil(state, &mut r).await?;
    Ok(true)
}

/// A policy duration in µs (30-day months), or `default_hours` when it does not parse.
pub(crate) fn duration_us(text: &str, default_hours: u64) -> i64 {
    PolicyDuration::parse(text).map_or(default_hours, PolicyDuration::approx_hours) as i64 * 3_600_000_000
}

/// Expires requests never verified in time, reminds the team of deadlines coming up, and
/// escalates processors that did not confirm an erasure in time.
pub async fn sweep(state: &AppState) -> Result<(), ApiError> {
    let policy = state.policy();
    let settings = &policy.policy.requests;
    let now = charter_store::now_us();
    let verify_within = duration_us(&settings.verify_within, 7 * 24);
    let waiting = [Status::AwaitingVerification.as_str(), Status::AgentPending.as_str()];
    for mut r in state.store.requests_in(&waiting, 1000).await? {
        if r.received_at_us + verify_within < now {
            move_request(state, &mut r, Move::Expire, "system", Some("not verified in time".into())).await?;
        }
    }
    let remind_before = duration_us(&settings.remind_before, 7 * 24);
    let open = [Status::Verified.as_str(), Status::AwaitingApproval.as_str(), Status::InProgress.as_str()];
    for mut r in state.store.requests_in(&open, 1000).await? {
        let Some(deadline) = r.deadline_us() else { continue };
        if r.reminded_at_us.is_none() && deadline - remind_before <= now {
            remind(state, &r.id, &r.kind, deadline).await?;
            r.reminded_at_us = Some(now);
            let was = r.status.clone();
            let event = charter_store::requests::RequestEvent {
                at_us: now,
                actor: "system".into(),
                action: "reminded".into(),
                status: r.status.clone(),
                note: Some(format!("due {}", day(deadline))),
            };
            state.store.save_request(&was, &r, &event).await?;
        }
    }
    for t in state.store.open_processor_tasks().await? {
        if t.escalated_at_us.is_none() && t.due_at_us < now {
            state.store.escalate_processor_task(&t.request_id, &t.recipient, now).await?;
            remind(state, &t.request_id, &format!("erasure not confirmed by {}", t.recipient), t.due_at_us).await?;
        }
    }
    Ok(())
}

/// Writes to the privacy team (the policy's privacy address) about request `id`.
async fn remind(state: &AppState, id: &str, what: &str, due_us: i64) -> Result<(), ApiError> {
    let to = state.policy().policy.controller.privacy_email.clone();
    let text = format!(
        "Request {id} ({what}) is due {}. Open it in the console: /admin/requests/{id}\n",
        charter_core::time::rfc3339_from_us(due_us)
    );
    let message = Message::Mail(Mail {
        to,
        subject: format!("Due {}: request {id}", day(due_us)),
        text,
        html: None,
        unsubscribe: None,
    });
    let job = Enqueue {
        kind: "mail.reminder",
        idempotency_key: format!("reminder:{id}:{what}"),
        message: &message,
        seal: Seal::KeyFile,
        max_attempts: None,
    };
    charter_delivery::enqueue(&state.store, &*state.keys, job, charter_store::now_us())
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("cannot queue a reminder")))?;
    Ok(())
}
