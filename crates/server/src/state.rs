//! Shared state for handlers.

use std::sync::Arc;
use std::time::Instant;

use charter_policy::LoadedPolicy;
use charter_store::{AuditLog, Store};
use charter_vault::KeyFile;

use crate::telemetry::Metrics;

/// Everything a handler may need, behind one reference count: every request clones
/// it, so a clone is one atomic increment rather than one per part.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// The state over `services`.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Services {
    /// The database.
    pub store: Store,
    /// The audit chain writer.
    pub audit: AuditLog,
    /// The data directory's keys: wrapping data keys, blind indexes.
    pub keys: Arc<KeyFile>,
    /// What this process's delivery worker has done.
    pub delivery: Arc<charter_delivery::Counters>,
    /// The policy in force and what is made from it; replaced whole when a new version
    /// is published ([`Services::policy`] gives a request the one it works under).
    pub in_force: std::sync::RwLock<Arc<InForce>>,
    /// Puts identifiers in their normal form, as the policy says.
    pub identifiers: charter_vault::Normaliser,
    /// Recently looked-up API keys.
    pub api_keys: crate::extract::KeyCache,
    /// Failed password checks, per name a request gives.
    pub sign_ins: crate::sign_in::SignInThrottle,
    /// Object storage for uploads.
    pub objects: Arc<dyn object_store::ObjectStore>,
    /// Where people reach this server (`https://example.com`), for links in messages.
    pub public_url: Option<String>,
    /// Request counters.
    pub metrics: Metrics,
    /// When the process started.
    pub started: Instant,
}

impl Services {
    /// The policy in force now. A request takes it once and works under it throughout,
    /// even if a new version is published meanwhile.
    pub fn policy(&self) -> Arc<InForce> {
        self.in_force.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts `next` in force for every request that starts from now.
    pub fn replace_policy(&self, next: InForce) {
        *self.in_force.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
    }
}

/// A policy in force and what is made from it once: the notice, its hash, the banner.
pub struct InForce {
    /// The policy.
    pub loaded: LoadedPolicy,
    /// Its sequence number among published versions; `None` when none was published and
    /// the server runs on its `--policy` file (or the embedded default).
    pub seq: Option<i64>,
    /// The notice.
    pub notice_html: String,
    /// Its SHA-256 in hex: what the consent ledger records as the text shown.
    pub notice_hash: String,
    /// The notice with the "We updated this policy" banner, shown until `until_us`
    /// (30 days after a material change was published).
    pub updated: Option<(String, i64)>,
    /// The cookie banner with its settings, made on first request.
    pub consent_js: std::sync::OnceLock<bytes::Bytes>,
}

impl InForce {
    /// `loaded` in force, with its notice made; `seq` as published; `material` the last
    /// material change (its `last_updated`, its changes in plain words, when published).
    pub fn new(loaded: LoadedPolicy, seq: Option<i64>, material: Option<(String, Vec<String>, i64)>) -> Self {
        use sha2::Digest as _;
        let notice_html = charter_policy::render::notice::html(&loaded.policy);
        let notice_hash = hex::encode(sha2::Sha256::digest(notice_html.as_bytes()));
        let updated = material.map(|(date, changes, at_us)| {
            (with_update_banner(&notice_html, &date, &changes), at_us + UPDATE_BANNER_US)
        });
        Self { loaded, seq, notice_html, notice_hash, updated, consent_js: std::sync::OnceLock::new() }
    }

    /// The notice to show at `now_us`: with the update banner while it lasts.
    pub fn notice_at(&self, now_us: i64) -> &str {
        match &self.updated {
            Some((html, until_us)) if now_us < *until_us => html,
            _ => &self.notice_html,
        }
    }
}

impl std::ops::Deref for InForce {
    type Target = LoadedPolicy;

    fn deref(&self) -> &LoadedPolicy {
        &self.loaded
    }
}

/// How long the notice says it was updated: 30 days.
pub const UPDATE_BANNER_US: i64 = 30 * 24 * 3600 * 1_000_000;

/// `notice` with "We updated this policy on DATE" and the material changes in plain words
/// at the top of its content.
fn with_update_banner(notice: &str, date: &str, changes: &[String]) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let items: String = changes.iter().map(|c| format!("<li>{}</li>", escape(c))).collect();
    let banner = format!(
        "<section role=\"status\" id=\"policy-updated\"><p><strong>We updated this policy on {}.</strong> \
         What changed:</p><ul>{items}</ul></section>\n",
        escape(date)
    );
    match notice.find("<main>") {
        Some(at) => format!("{}{banner}{}", &notice[..at + "<main>".len()], &notice[at + "<main>".len()..]),
        None => format!("{banner}{notice}"),
    }
}

/// A process-wide semaphore of `per_core` permits per core, made on first use in `cell`:
/// the bound on blocking work (scans beside uploads, password hashing) that would
/// otherwise pile threads and memory onto the runtime's blocking pool.
pub(crate) fn per_core_permits(
    cell: &'static std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
    per_core: usize,
) -> &'static Arc<tokio::sync::Semaphore> {
    cell.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Arc::new(tokio::sync::Semaphore::new(cores * per_core))
    })
}
