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
    text.push_str(&requests(&state).await);
    text.push_str(&retention(&state).await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// Open rights requests and those past their deadline, by type, with the least time
/// left of any (negative when one is overdue).
async fn requests(state: &AppState) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let open = state.store.requests_in(&crate::routes::admin::OPEN, 100_000).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot count requests");
        Vec::new()
    });
    let now = charter_store::now_us();
    let mut by_type: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in &open {
        let entry = by_type.entry(r.kind.as_str()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(r.deadline_us().is_some_and(|d| d < now));
    }
    let mut out = String::from(
        "# HELP charter_requests_open Rights requests not finished, by type.\n# TYPE charter_requests_open gauge\n",
    );
    for (kind, (n, _)) in &by_type {
        let _ = writeln!(out, "charter_requests_open{{type=\"{kind}\"}} {n}");
    }
    out.push_str("# HELP charter_requests_overdue Rights requests past their deadline, by type.\n# TYPE charter_requests_overdue gauge\n");
    for (kind, (_, late)) in &by_type {
        let _ = writeln!(out, "charter_requests_overdue{{type=\"{kind}\"}} {late}");
    }
    let least = open.iter().filter_map(|r| r.deadline_us()).min().map_or(0.0, |d| (d - now) as f64 / 1e6);
    let _ = writeln!(
        out,
        "# HELP charter_requests_least_time_left_seconds Time left until the nearest deadline of an open request.\n# TYPE charter_requests_least_time_left_seconds gauge\ncharter_requests_least_time_left_seconds {least}"
    );
    out
}

/// What retention sweeps on this database have done, by category and outcome (deleted,
/// anonymised, suppressed, shredded: totals; held: at the latest sweep).
async fn retention(state: &AppState) -> String {
    use std::fmt::Write as _;
    let outcomes = state.store.retention_report(0, i64::MAX).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot count retention outcomes");
        Vec::new()
    });
    let mut out = String::from(
        "# HELP charter_retention_total Values retention sweeps deleted, anonymised or suppressed, and subjects shredded, by category.\n# TYPE charter_retention_total counter\n",
    );
    for o in outcomes.iter().filter(|o| o.outcome != "held") {
        let _ =
            writeln!(out, "charter_retention_total{{category=\"{}\",outcome=\"{}\"}} {}", o.category, o.outcome, o.n);
    }
    out.push_str("# HELP charter_retention_held Values due but kept by a legal hold at the latest sweep, by category.\n# TYPE charter_retention_held gauge\n");
    for o in outcomes.iter().filter(|o| o.outcome == "held") {
        let _ = writeln!(out, "charter_retention_held{{category=\"{}\"}} {}", o.category, o.n);
    }
    out
}

/// The queue as every server on the database sees it, and this process's attempts.
async fn jobs(state: &AppState) -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::from("# HELP charter_jobs Messages in the queue, by state.\n# TYPE charter_jobs gauge\n");
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
