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
    })
    .await?;
    // The one line on stdout: where to find the server (tests read it when listening on port 0).
    let mut out = std::io::stdout();
    writeln!(out, "charter listening on http://{}", app.addr()).context("cannot write to stdout")?;
    out.flush().context("cannot write to stdout")?;
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
