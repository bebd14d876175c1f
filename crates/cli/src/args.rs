//! The command tree.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// charter: a privacy policy, enforced.
#[derive(Debug, Parser)]
#[command(name = "charter", version, about, propagate_version = true)]
pub struct Cli {
    /// A TOML config file (keys: data_dir, database_url, listen, policy, log_format). Default: ./charter.toml when present.
    #[arg(long, global = true, env = "CHARTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory: SQLite database, objects and key file. Default: ./charter-data.
    #[arg(long, global = true, env = "CHARTER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of the data directory's SQLite file (postgres://... or sqlite://...).
    #[arg(long, global = true, env = "CHARTER_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "CHARTER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Check, render, compare and describe policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with the audit chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Manage the key file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Find personal data in files and folders (exit 1 when any is found); optionally anonymise them.
    Scan(ScanArgs),
    /// Measure charter's performance figures and print them as Markdown.
    Bench(charter_bench::BenchArgs),
}

/// Options of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and folders to scan.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScanFormat,
    /// Anonymisation config (`[types.EMAIL_ADDRESS] mode = "pseudonym"`, ...); needs --out.
    #[arg(long, value_name = "CONFIG")]
    pub anonymise: Option<PathBuf>,
    /// Folder for anonymised copies.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Output formats of `scan`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScanFormat {
    /// One line per finding.
    Text,
    /// One JSON object per file: {"path", "findings": [{"type", "start", "end", "confidence"}]}.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// API-key commands.
#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; prints its token alone on stdout, once. Only its hash is stored.
    Create {
        /// A unique name; the audit chain records it as the actor.
        #[arg(long)]
        name: String,
        /// Purposes the key may read for, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "")]
        purposes: Vec<String>,
        /// Collection points the key may collect at, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "")]
        points: Vec<String>,
        /// The policy the purposes and points are checked against. Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Revoke a key by name.
    Revoke {
        /// The key's name.
        #[arg(long)]
        name: String,
    },
}

/// Key-file commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Replace the key-encryption key: rewrap every data key under a new one, then retire the old.
    Rotate,
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Default: 127.0.0.1:8080.
    #[arg(long, env = "CHARTER_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// The policy file in force. Default: the embedded TensorOpera policy.
    #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Object storage for uploads: s3://bucket[/prefix] (S3, R2, MinIO; credentials from AWS_* variables)
    /// or gs://bucket (GOOGLE_* variables). Default: the data directory's objects/ folder.
    #[arg(long, env = "CHARTER_OBJECT_STORE", value_name = "URL")]
    pub object_store: Option<String>,
}

/// Output formats of `policy render`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NoticeFormat {
    /// Markdown.
    Md,
    /// A standalone HTML page.
    Html,
}

/// Output formats of `policy ropa`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RopaFormat {
    /// CSV with a header row.
    Csv,
    /// A JSON array.
    Json,
}

/// Output formats of `policy disclosures`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DisclosureFormat {
    /// Markdown.
    Md,
    /// JSON.
    Json,
}

/// Output formats of `policy diff`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiffFormat {
    /// One line per change.
    Text,
    /// JSON.
    Json,
}

/// Policy commands. FILE defaults to the embedded TensorOpera policy.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy: exit 0 when valid; otherwise every error on stderr, exit 2.
    Check {
        /// The policy file.
        file: Option<PathBuf>,
    },
    /// Render the human-readable privacy notice.
    Render {
        /// The policy file.
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: NoticeFormat,
    },
    /// Print the GDPR Art. 30 record of processing, one row per purpose.
    Ropa {
        /// The policy file.
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: RopaFormat,
    },
    /// Print the CCPA/CPRA disclosures.
    Disclosures {
        /// The policy file.
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: DisclosureFormat,
    },
    /// Compare two versions: exit 0 unchanged, 1 immaterial changes, 3 material changes.
    Diff {
        /// The old version.
        old: PathBuf,
        /// The new version.
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
    },
    /// Print the JSON Schema of the policy format.
    Schema,
}

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and every checkpoint signature; exit 1 naming the first bad entry.
    Verify,
    /// Record an operational event (a compliance review, a manual notification) in the chain.
    Record(RecordArgs),
}

/// Options of `audit record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// What happened, dotted lowercase, e.g. `compliance.review`.
    #[arg(long)]
    pub action: String,
    /// Who did it: a role or staff identifier, not a personal name or email.
    #[arg(long)]
    pub actor: String,
    /// The outcome.
    #[arg(long, default_value = "ok")]
    pub result: String,
    /// Context as a JSON object, with names and counts only, never personal data.
    #[arg(long, default_value = "{}")]
    pub detail: String,
}
