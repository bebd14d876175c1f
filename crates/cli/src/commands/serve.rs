//! `charter serve`.

use std::io::Write as _;

use anyhow::Context as _;
use charter_server::{Application, Settings as ServerSettings};

use crate::config::Settings;
use crate::Failure;

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> Result<(), Failure> {
    let policy = super::policy::load_or_default(settings.policy.as_deref())?;
    let app = Application::build(ServerSettings {
        listen: settings.listen,
        data_dir: settings.data_dir.clone(),
        database_url: settings.database_url,
        policy,
        policy_named: settings.policy.is_some(),
        public_url: settings.public_url.clone(),
        object_store: settings.object_store,
        limits: Default::default(),
        sqlite_synchronous: settings.sqlite_synchronous,
        delivery: settings.delivery,
        retention_sweep: settings.retention_sweep,
    })
    .await?;
    let shutdown = shutdown_signal()?;
    // The one line on stdout: where to find the server (tests read it when listening on port 0).
    let mut out = std::io::stdout();
    writeln!(out, "charter listening on http://{}", app.addr()).context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;
    app.run_until(shutdown).await?;
    Ok(())
}

/// Registers for SIGTERM and Ctrl-C now (so a signal arriving right after start-up
/// is not lost) and returns a future that resolves when either arrives.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutting down");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
    }
}
