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
    /// The policy in force.
    pub policy: Arc<LoadedPolicy>,
    /// Puts identifiers in their normal form, as the policy says.
    pub identifiers: charter_vault::Normaliser,
    /// Recently looked-up API keys.
    pub api_keys: crate::extract::KeyCache,
    /// Failed password checks, per name a request gives.
    pub sign_ins: crate::sign_in::SignInThrottle,
    /// Object storage for uploads.
    pub objects: Arc<dyn object_store::ObjectStore>,
    /// The notice rendered once at start-up.
    pub notice_html: Arc<str>,
    /// Its SHA-256 in hex: what the consent ledger records as the text shown.
    pub notice_hash: Arc<str>,
    /// The cookie banner with its settings, made on first request.
    pub consent_js: std::sync::OnceLock<bytes::Bytes>,
    /// Request counters.
    pub metrics: Metrics,
    /// When the process started.
    pub started: Instant,
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
