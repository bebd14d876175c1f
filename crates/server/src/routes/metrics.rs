//! Prometheus metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// `/metrics`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render(&state);
    text.push_str(&jobs(&state).await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// The queue as every server on the database sees it, and this process's attempts.
async fn jobs(state: &AppState) -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::from("# HELP charter_jobs Jobs in the queue, by state.\n# TYPE charter_jobs gauge\n");
    let counts = state.store.job_counts().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot count jobs");
        Vec::new()
    });
    for state_name in ["queued", "running", "done", "dead", "void"] {
        let n = counts.iter().find(|(s, _)| s == state_name).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "charter_jobs{{state=\"{state_name}\"}} {n}");
    }
    out.push_str(
        "# HELP charter_job_attempts_total Job attempts made by this process, by outcome.\n# TYPE charter_job_attempts_total counter\n",
    );
    let c = &state.delivery;
    for (outcome, n) in [("sent", &c.sent), ("retried", &c.retried), ("dead", &c.dead), ("void", &c.voided)] {
        let _ = writeln!(out, "charter_job_attempts_total{{outcome=\"{outcome}\"}} {}", n.load(Relaxed));
    }
    out
}
