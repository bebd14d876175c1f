//! The sweep as a job of the queue. Every server, once a minute, adds the sweep of the
//! current period (`retention.sweep_every`) under an idempotency key naming the period,
//! so the database holds one job per period however many servers run; whichever server
//! claims it sweeps. A server killed mid-sweep leaves a lease that runs out; another
//! server (or this one, restarted) claims the job again and finishes what is still due.

use std::time::Duration;

use charter_core::audit::AuditEvent;
use charter_store::jobs::{Finish, NewJob, SWEEP_CHANNEL};

use super::Sweep;
use crate::state::AppState;

/// How often a server adds the period's sweep and looks for one to run.
const TICK: Duration = Duration::from_secs(60);
/// How long a claim holds a sweep before another server may take it up.
const LEASE_US: i64 = 3_600_000_000;
/// The job kind.
pub const KIND: &str = "retention.sweep";

/// The sweep period in µs: the policy's `retention.sweep_every`, one day by default.
pub fn period_us(every: Option<&str>) -> i64 {
    every.map_or(24 * 3_600_000_000, |t| crate::rights::worker::duration_us(t, 24)).max(3_600_000_000)
}

/// The job that stands for the sweep of the period holding `now_us`.
pub fn job_for(now_us: i64, period_us: i64) -> NewJob {
    let start = now_us - now_us.rem_euclid(period_us);
    NewJob {
        id: uuid::Uuid::new_v4().to_string(),
        kind: KIND.to_owned(),
        channel: SWEEP_CHANNEL.to_owned(),
        idempotency_key: format!("{KIND}:{start}"),
        subject_id: None,
        kek_version: None,
        wrapped_key: Vec::new(),
        sealed: Vec::new(),
        max_attempts: 10,
        due_at_us: start,
    }
}

/// Works until `stop` resolves.
pub async fn run(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let owner = format!("sweeper-{}", uuid::Uuid::new_v4());
    loop {
        if let Err(e) = tick(&state, &owner).await {
            tracing::warn!(error = %e, "the retention sweep failed; it is tried again");
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Adds this period's sweep, then runs any sweep due; whether one ran.
pub async fn tick(state: &AppState, owner: &str) -> anyhow::Result<bool> {
    let now = charter_store::now_us();
    let policy = state.policy();
    state
        .store
        .enqueue_job(&job_for(now, period_us(policy.loaded.policy.retention.sweep_every.as_deref())), now)
        .await?;
    let Some(job) = state.store.claim_sweeps(owner, now, now + LEASE_US, 1).await?.pop() else { return Ok(false) };
    let sweep = Sweep {
        store: &state.store,
        keys: state.keys.as_ref(),
        objects: state.objects.as_ref(),
        policy: &policy.loaded.policy,
        now_us: now,
    };
    let finish = match sweep.run(&job.id, &mut |_, _| {}).await {
        Ok(tally) => {
            // A sweep that found nothing due changed nothing, and leaves the chain alone.
            if !tally.is_empty() {
                let detail = serde_json::json!({ "sweep": job.id, "outcomes": super::tally_json(&tally) });
                state.audit.append(AuditEvent::new("system", "retention.sweep", "ok").with_detail(&detail)).await?;
            }
            Finish::Done
        }
        Err(e) => {
            tracing::warn!(error = %e, "the retention sweep stopped; it is tried again in five minutes");
            Finish::Retry { at_us: now + 300_000_000, error: e.to_string() }
        }
    };
    state.store.finish_jobs(owner, &[(job.id, finish)], charter_store::now_us()).await?;
    Ok(true)
}
