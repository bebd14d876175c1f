//! Settings: flags and `CHARTER_*` variables first, then the config file, then defaults.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use secrecy::SecretString;
use serde::Deserialize;

use crate::args::{Cli, Command, LogFormat};

/// What a config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    policy: Option<PathBuf>,
    object_store: Option<String>,
    log_format: Option<LogFormat>,
    sqlite_synchronous: Option<String>,
}

/// The resolved settings every command shares.
#[derive(Debug)]
pub struct Settings {
    /// The data directory.
    pub data_dir: PathBuf,
    /// A database URL instead of the data directory's SQLite file.
    pub database_url: Option<SecretString>,
    /// Address `serve` listens on.
    pub listen: String,
    /// Policy file for `serve`; `None` means the embedded default.
    pub policy: Option<PathBuf>,
    /// Object storage URL for uploads; the data directory's `objects/` when `None`.
    pub object_store: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// How the SQLite files are synced (config file key `sqlite_synchronous`).
    pub sqlite_synchronous: charter_store::Synchronous,
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    // The message names the key and position; config values are never echoed.
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {} is invalid: {}", path.display(), e.message()))
}

impl Settings {
    /// Resolves settings for `cli`.
    pub fn resolve(cli: &Cli) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None if Path::new("charter.toml").is_file() => read_file(Path::new("charter.toml"))?,
            None => FileConfig::default(),
        };
        let (listen, policy, object_store) = match &cli.command {
            Command::Serve(a) => (a.listen.clone(), a.policy.clone(), a.object_store.clone()),
            _ => (None, None, None),
        };
        Ok(Self {
            data_dir: cli.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("charter-data")),
            database_url: cli.database_url.clone().or(file.database_url).map(SecretString::from),
            listen: listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            policy: policy.or(file.policy),
            object_store: object_store.or(file.object_store),
            log_format: cli.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            sqlite_synchronous: match file.sqlite_synchronous {
                Some(s) => s.parse().map_err(|e: String| anyhow::anyhow!("config file: {e}"))?,
                None => charter_store::Synchronous::Full,
            },
        })
    }
}
