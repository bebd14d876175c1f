//! The policy in force once versions are published (`charter policy publish`): the
//! database holds it, a server starts on it, and every running server picks up a newer
//! version within [`WATCH_EVERY`] of its publication.

use std::time::Duration;

use anyhow::Context as _;
use charter_core::audit::AuditEvent;
use charter_policy::LoadedPolicy;
use charter_store::policies::PolicyVersion;
use charter_store::Store;
use serde_json::json;

use crate::state::{AppState, InForce, UPDATE_BANNER_US};

/// How often a server asks which version is in force.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The policy to serve at start: the published version when there is one, else `file`.
/// A `file` the operator named must be the published version: it is refused otherwise,
/// with the differences, so a server never runs a policy nobody published.
pub async fn at_start(store: &Store, file: LoadedPolicy, named: bool) -> anyhow::Result<InForce> {
    let Some(v) = store.policy_in_force().await.context("cannot read the published policy")? else {
        return Ok(InForce::new(file, None, None));
    };
    let published = load(&v)?;
    if named && file.sha256 != v.published.sha256 {
        let d = charter_policy::diff::diff(&published.policy, &file.policy);
        let lines: Vec<String> = d.changes.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "the --policy file is not the policy in force (version {}, published at {}); publish it with \
             `charter policy publish FILE`, or start without --policy to serve the published one. \
             What differs from the published version:\n{}",
            v.published.version,
            charter_core::time::rfc3339_from_us(v.published.published_at_us),
            lines.join("\n")
        );
    }
    in_force(store, published, v.seq).await
}

/// A published version, loaded.
fn load(v: &PolicyVersion) -> anyhow::Result<LoadedPolicy> {
    charter_policy::load("published policy", &v.published.text)
        .map_err(|e| anyhow::anyhow!("the published policy (version {}) does not load: {e}", v.published.version))
}

/// `loaded`, published as `seq`, with the update banner of the last material change
/// published within 30 days.
async fn in_force(store: &Store, loaded: LoadedPolicy, seq: i64) -> anyhow::Result<InForce> {
    let since = charter_store::now_us() - UPDATE_BANNER_US;
    let material = store.material_since(since).await.context("cannot read the published policies")?;
    let material = material.map(|(date, changes, at_us)| {
        let changes: Vec<String> = serde_json::from_str(&changes).unwrap_or_default();
        (date, changes, at_us)
    });
    Ok(InForce::new(loaded, Some(seq), material))
}

/// Puts each newly published version in force, until `stop` resolves.
pub async fn watch(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        if let Err(e) = refresh(&state).await {
            tracing::warn!(error = format!("{e:#}"), "cannot check which policy is in force");
        }
    }
}

/// Loads the version in force when it is not the one this server runs.
async fn refresh(state: &AppState) -> anyhow::Result<()> {
    let current = state.policy().seq;
    let seq = state.store.policy_seq().await?;
    if seq.is_none() || seq == current {
        return Ok(());
    }
    let Some(v) = state.store.policy_in_force().await? else { return Ok(()) };
    let next = in_force(&state.store, load(&v)?, v.seq).await?;
    state.replace_policy(next);
    let detail = json!({ "policy_version": v.published.version, "policy_sha256": v.published.sha256 });
    state.audit.append(AuditEvent::new("system", "policy.loaded", "ok").with_detail(&detail)).await?;
    tracing::info!(version = %v.published.version, "a newly published policy is in force");
    Ok(())
}
