//! Settings: flags and `CHARTER_*` variables first, then the config file, then defaults.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use secrecy::SecretString;
use serde::Deserialize;

use std::time::Duration;

use crate::args::{Cli, Command, DeliveryArgs, JobsCommand, LogFormat, MailCommand};

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
    smtp_url: Option<String>,
    mail_from: Option<String>,
    public_url: Option<String>,
    dkim_key: Option<PathBuf>,
    dkim_selector: Option<String>,
    dkim_domain: Option<String>,
    sms_url: Option<String>,
    sms_from: Option<String>,
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
    /// Where messages go and how workers run.
    pub delivery: charter_delivery::Config,
    /// The public base URL links in messages start with.
    pub public_url: Option<String>,
    /// Whether `serve` runs the retention sweep.
    pub retention_sweep: bool,
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
        let flags = match &cli.command {
            Command::Serve(a) => (*a.delivery).clone(),
            Command::Jobs(JobsCommand::Run { delivery, .. })
            | Command::Mail(MailCommand::Test { delivery, .. } | MailCommand::Campaign { delivery, .. }) => {
                (**delivery).clone()
            }
            _ => DeliveryArgs::default(),
        };
        let public_url = flags.public_url.clone().or(file.public_url.clone());
        if public_url.as_deref().is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
            anyhow::bail!("--public-url must be an http:// or https:// URL");
        }
        let delivery = delivery(flags, &file)?;
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
            delivery,
            public_url,
            retention_sweep: !matches!(&cli.command, Command::Serve(a) if a.no_retention_sweep),
        })
    }
}

/// Seconds from a flag as a duration: positive and finite.
fn seconds(flag: &str, value: Option<f64>, default: Duration) -> anyhow::Result<Duration> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        Some(_) => anyhow::bail!("--{flag} must be a positive number of seconds"),
    }
}

/// The delivery settings: flags (and their variables) first, then the config file.
fn delivery(flags: DeliveryArgs, file: &FileConfig) -> anyhow::Result<charter_delivery::Config> {
    let dkim = match (
        flags.dkim_key.or(file.dkim_key.clone()),
        flags.dkim_selector.or(file.dkim_selector.clone()),
        flags.dkim_domain.or(file.dkim_domain.clone()),
    ) {
        (None, None, None) => None,
        (Some(key), Some(selector), Some(domain)) => {
            let pem =
                std::fs::read_to_string(&key).with_context(|| format!("cannot read the DKIM key {}", key.display()))?;
            Some(charter_delivery::mail::Dkim { key_pem: SecretString::from(pem), selector, domain })
        }
        _ => anyhow::bail!("DKIM needs all three of --dkim-key, --dkim-selector and --dkim-domain"),
    };
    let sms = match (flags.sms_url.or(file.sms_url.clone()), flags.sms_from.or(file.sms_from.clone())) {
        (None, _) => None,
        (Some(url), Some(from)) => {
            let token = std::env::var("CHARTER_SMS_TOKEN")
                .map_err(|_| anyhow::anyhow!("--sms-url needs the gateway's token in CHARTER_SMS_TOKEN"))?;
            Some(charter_delivery::sms::Gateway { url, from, token: SecretString::from(token) })
        }
        (Some(_), None) => anyhow::bail!("--sms-url needs --sms-from"),
    };
    let defaults = charter_delivery::WorkerSettings::default();
    let worker = charter_delivery::WorkerSettings {
        lease: seconds("job-lease", flags.job_lease, defaults.lease)?,
        retry_base: seconds("job-retry-base", flags.job_retry_base, defaults.retry_base)?,
        poll: seconds("job-poll", flags.job_poll, defaults.poll)?,
        concurrency: flags.job_concurrency.map_or(defaults.concurrency, usize::from),
        ..defaults
    };
    Ok(charter_delivery::Config {
        smtp_url: flags.smtp_url.or(file.smtp_url.clone()).map(SecretString::from),
        mail_from: flags.mail_from.or(file.mail_from.clone()),
        dkim,
        sms,
        worker,
    })
}
