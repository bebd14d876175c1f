//! Building and running the application.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use charter_core::audit::AuditEvent;
use charter_policy::LoadedPolicy;
use charter_store::{AuditLog, DataDir, DirLock};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::state::{AppState, Services};
use crate::telemetry::Metrics;

/// What the application needs to start.
pub struct Settings {
    /// Address to listen on; port 0 picks a free one.
    pub listen: String,
    /// The data directory (key file, objects, and the SQLite database unless `database_url` is set).
    pub data_dir: PathBuf,
    /// A PostgreSQL (or SQLite) URL instead of the data directory's SQLite file.
    pub database_url: Option<SecretString>,
    /// The policy to run, already validated.
    pub policy: LoadedPolicy,
    /// Whether `policy` was named (`--policy FILE`) rather than the embedded default: once
    /// a version is published the database holds the policy in force, and a named file
    /// that differs from it is refused.
    pub policy_named: bool,
    /// Where people reach this server, for links in the messages it sends.
    pub public_url: Option<String>,
    /// Object storage URL (`s3://...`, `gs://...`); the data directory's `objects/` folder when `None`.
    pub object_store: Option<String>,
    /// Connection timeouts and the cap on open connections.
    pub limits: crate::Limits,
    /// How the SQLite files are synced (a commit survives a power cut with `Full`).
    pub sqlite_synchronous: charter_store::Synchronous,
    /// Where messages go and how the workers that send them run.
    pub delivery: charter_delivery::Config,
    /// Whether this server runs the retention sweep (off where `charter retention run`
    /// runs from cron instead).
    pub retention_sweep: bool,
}

/// A built application, bound to its address and ready to serve.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    audit_task: JoinHandle<()>,
    limits: crate::Limits,
    /// The data directory's lock, shared, for as long as the server runs.
    lock: DirLock,
    /// Sends queued messages while the server runs.
    worker: charter_delivery::Worker,
    retention_sweep: bool,
}

impl Application {
    /// Opens the data directory, starts the audit writer, records the start
    /// (with the policy's version and hash) and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.as_ref().map(|s| s.expose_secret());
        let data = DataDir::open_with(&settings.data_dir, url, settings.sqlite_synchronous).await?;
        let (audit, audit_task) = AuditLog::start(&data.store, data.keys.checkpoint_signer());
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr().context("listener has no local address")?;
        let policy = crate::published::at_start(&data.store, settings.policy, settings.policy_named).await?;
        audit
            .append(AuditEvent::new("system", "server.start", "ok").with_detail(&json!({
                "policy_version": policy.policy.version,
                "policy_published": policy.seq.is_some(),
                "policy_sha256": policy.sha256,
                "backend": format!("{:?}", data.store.backend()).to_lowercase(),
                "charter_version": env!("CARGO_PKG_VERSION"),
            })))
            .await
            .context("cannot record the start in the audit chain")?;
        let objects = crate::objects::open(settings.object_store.as_deref(), &settings.data_dir.join("objects"))?;
        let ids = &policy.policy.identifiers;
        let fold = ids.email_local_part == charter_policy::model::EmailLocalPart::CaseInsensitive;
        let identifiers = charter_vault::Normaliser::new(ids.phone_region.as_deref(), fold)
            .map_err(|e| anyhow::anyhow!("the policy's [identifiers] phone_region: {e}"))?;
        let sign_ins = crate::sign_in::SignInThrottle::new(data.store.clone(), &policy.policy.security);
        let keys = Arc::new(data.keys);
        let senders =
            charter_delivery::Senders::new(&settings.delivery, keys.clone(), &policy.policy, &settings.data_dir)
                .context("cannot set up delivery")?;
        tracing::info!(mail = %senders.mail.describe(), sms = %senders.sms.describe(), "messages go to");
        let delivery = Arc::new(charter_delivery::Counters::default());
        let worker = charter_delivery::Worker::new(
            data.store.clone(),
            keys.clone(),
            audit.clone(),
            Arc::new(senders),
            settings.delivery.worker.clone(),
            delivery.clone(),
        );
        let state = AppState::new(Services {
            store: data.store,
            audit,
            keys,
            delivery,
            objects,
            api_keys: crate::extract::KeyCache::default(),
            sign_ins,
            in_force: std::sync::RwLock::new(Arc::new(policy)),
            identifiers,
            public_url: settings.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            metrics: Metrics::default(),
            started: Instant::now(),
        });
        crate::upgrade::run(&state).await.context("cannot rewrite data an earlier version wrote")?;
        Ok(Self {
            listener,
            addr,
            state,
            audit_task,
            limits: settings.limits,
            lock: data.lock,
            worker,
            retention_sweep: settings.retention_sweep,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for tests and embedding.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, lets requests in flight finish, then
    /// records the stop, signs a final checkpoint and closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, addr, state, audit_task, limits, lock, worker, retention_sweep } = self;
        tracing::info!(%addr, "serving");
        let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(worker.run_until(async move {
            let _ = worker_stopped.await;
        }));
        let (stop_rights, rights_stopped) = tokio::sync::oneshot::channel::<()>();
        let rights = tokio::spawn(crate::rights::worker::run(state.clone(), async move {
            let _ = rights_stopped.await;
        }));
        let (stop_sweeps, sweeps_stopped) = tokio::sync::oneshot::channel::<()>();
        let sweep_state = retention_sweep.then(|| state.clone());
        let sweeps = tokio::spawn(async move {
            if let Some(state) = sweep_state {
                crate::retention::worker::run(state, async move {
                    let _ = sweeps_stopped.await;
                })
                .await;
            }
        });
        let (stop_watch, watch_stopped) = tokio::sync::oneshot::channel::<()>();
        let watch = tokio::spawn(crate::published::watch(state.clone(), async move {
            let _ = watch_stopped.await;
        }));
        let router = crate::routes::router(state.clone());
        crate::listen::serve(listener, router, limits, shutdown).await;
        // The worker finishes the batch in hand; what it has not claimed waits in the queue.
        let _ = stop_worker.send(());
        let _ = stop_watch.send(());
        let _ = watch.await;
        let _ = stop_rights.send(());
        let _ = rights.await;
        // A sweep in hand stops only with the process; its lease lets another server finish it.
        let _ = stop_sweeps.send(());
        sweeps.abort();
        let _ = sweeps.await;
        if let Err(e) = worker.await {
            tracing::warn!(error = %e, "the delivery worker failed");
        }
        let audit = state.audit.clone();
        let store = state.store.clone();
        let uptime_s = state.started.elapsed().as_secs();
        drop(state);
        audit
            .append(AuditEvent::new("system", "server.stop", "ok").with_detail(&json!({ "uptime_s": uptime_s })))
            .await
            .context("cannot record the stop in the audit chain")?;
        audit.close().await.context("cannot sign the final audit checkpoint")?;
        drop(audit);
        if tokio::time::timeout(Duration::from_secs(10), audit_task).await.is_err() {
            tracing::warn!("audit writer did not stop within 10 s");
        }
        store.close().await;
        drop(lock);
        tracing::info!("stopped");
        Ok(())
    }
}
