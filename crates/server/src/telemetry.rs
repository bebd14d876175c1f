//! Request metrics and logs (at debug level; `CHARTER_LOG=debug` shows one line per request). Both name the matched route template
//! (`/v1/subjects/{id}`), never the raw path or query, so identifiers in URLs
//! cannot reach a log line or a metric label.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Per route template: (method, status, requests, seconds).
type ByRoute = BTreeMap<String, Vec<(Method, u16, u64, f64)>>;

/// Counts requests by method, route template and status, with the time spent.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<ByRoute>,
    /// Sealed chunks of uploads opened for downloads.
    download_chunks: std::sync::atomic::AtomicU64,
}

impl Metrics {
    /// Counts one sealed chunk opened for a download.
    pub fn download_chunk(&self) {
        self.download_chunks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts one request; allocates only for a route, method and status not seen before.
    fn record(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let mut m = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match m.get_mut(route) {
            Some(list) => match list.iter_mut().find(|e| e.0 == method && e.1 == status) {
                Some(e) => {
                    e.2 += 1;
                    e.3 += seconds;
                }
                None => list.push((method.clone(), status, 1, seconds)),
            },
            None => {
                m.insert(route.to_owned(), vec![(method.clone(), status, 1, seconds)]);
            }
        }
    }

    /// The counters in Prometheus text format.
    pub fn render(&self, state: &AppState) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        out.push_str(
            "# HELP charter_http_requests_total HTTP requests answered.\n# TYPE charter_http_requests_total counter\n",
        );
        // Sorted by method, route and status, so the text is the same whatever order requests came in.
        let mut rows: Vec<(String, String, u16, u64, f64)> = {
            let m = self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            m.iter()
                .flat_map(|(route, l)| {
                    l.iter().map(move |(method, status, n, s)| (method.to_string(), route.clone(), *status, *n, *s))
                })
                .collect()
        };
        rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
        for (method, route, status, n, _) in &rows {
            let _ = writeln!(
                out,
                "charter_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP charter_http_request_seconds_sum Time spent answering HTTP requests.\n# TYPE charter_http_request_seconds_sum counter\n");
        for (method, route, status, _, s) in &rows {
            let _ = writeln!(
                out,
                "charter_http_request_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {s}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP charter_audit_entries_appended_total Audit entries appended by this process.\n# TYPE charter_audit_entries_appended_total counter\ncharter_audit_entries_appended_total {}",
            state.audit.appended()
        );
        let _ = writeln!(
            out,
            "# HELP charter_audit_batches_total Commits the audit writer wrote those entries in.\n# TYPE charter_audit_batches_total counter\ncharter_audit_batches_total {}",
            state.audit.batches()
        );
        let _ = writeln!(
            out,
            "# HELP charter_download_chunks_opened_total Sealed 64 KiB chunks of uploads opened for downloads.\n# TYPE charter_download_chunks_opened_total counter\ncharter_download_chunks_opened_total {}",
            self.download_chunks.load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP charter_uptime_seconds Seconds since the process started.\n# TYPE charter_uptime_seconds gauge\ncharter_uptime_seconds {}",
            state.started.elapsed().as_secs_f64()
        );
        let p = state.policy();
        let _ = writeln!(
            out,
            "# HELP charter_policy_info The policy in force.\n# TYPE charter_policy_info gauge\ncharter_policy_info{{version=\"{}\",sha256=\"{}\"}} 1",
            p.policy.version.replace(['"', '\\', '\n'], "_"),
            p.sha256
        );
        out
    }
}

/// Records and logs every request by its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let seconds = start.elapsed().as_secs_f64();
    state.metrics.record(&method, route, status, seconds);
    tracing::debug!(%method, %route, status, ms = seconds * 1000.0, "request");
    response
}
