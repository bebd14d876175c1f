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
    /// Run, list and requeue the durable jobs that send messages.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Send mail.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Open the sealed outbox, where messages go while no SMTP server or SMS gateway is set.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Manage processors named in the policy's recipients.
    #[command(subcommand)]
    Recipients(RecipientsCommand),
    /// Manage the privacy team's console accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Apply the policy's retention rules now (for cron), and report what they did.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Legal holds: while one is in force, retention deletes nothing of its subject or category.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Back up the data, the audit chain and the objects; restore a backup.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Check a file charter signed (a certificate of erasure, a backup's manifest): exit 0 valid, 2 not.
    Verify {
        /// The file.
        file: PathBuf,
    },
}

/// Console account commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add an account (or give an existing one a new setup link); prints the one-time
    /// setup link, valid 24 hours, alone on stdout.
    Add {
        /// The person's email: what they sign in with (kept only as its blind index).
        email: String,
        /// `privacy` acts on requests; `auditor` reads only.
        #[arg(long)]
        role: String,
        /// The policy whose identifier rules apply. Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

/// Where messages go, and how the workers that send them run. Shared by `serve`,
/// `jobs run` and `mail test`; each may also come from the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct DeliveryArgs {
    /// SMTP server: smtp://user:pass@host:port (add ?tls=required for STARTTLS) or smtps://... for
    /// implicit TLS. Without it, mail goes to the sealed outbox in the data directory.
    #[arg(long, env = "CHARTER_SMTP_URL", value_name = "URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The From address of mail (needed with --smtp-url).
    #[arg(long, env = "CHARTER_MAIL_FROM", value_name = "ADDRESS")]
    pub mail_from: Option<String>,
    /// The public base URL links in messages start with, e.g. https://privacy.example.com.
    #[arg(long, env = "CHARTER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// DKIM private key (PEM, RSA or Ed25519); with --dkim-selector and --dkim-domain.
    #[arg(long, env = "CHARTER_DKIM_KEY", value_name = "FILE")]
    pub dkim_key: Option<PathBuf>,
    /// DKIM selector.
    #[arg(long, env = "CHARTER_DKIM_SELECTOR", value_name = "SELECTOR")]
    pub dkim_selector: Option<String>,
    /// DKIM signing domain.
    #[arg(long, env = "CHARTER_DKIM_DOMAIN", value_name = "DOMAIN")]
    pub dkim_domain: Option<String>,
    /// SMS gateway taking a form POST of To, From and Body with basic auth (the account as the
    /// URL's user, the token from CHARTER_SMS_TOKEN). Without it, text messages go to the outbox.
    #[arg(long, env = "CHARTER_SMS_URL", value_name = "URL", hide_env_values = true)]
    pub sms_url: Option<String>,
    /// The sender number or name of text messages (needed with --sms-url).
    #[arg(long, env = "CHARTER_SMS_FROM", value_name = "FROM")]
    pub sms_from: Option<String>,
    /// Seconds a worker holds a claimed job before another may take it; a send may take at
    /// most half of it. Default: 120.
    #[arg(long, value_name = "SECONDS")]
    pub job_lease: Option<f64>,
    /// Seconds before the first retry of a failed job; each later one doubles (to an hour). Default: 30.
    #[arg(long, value_name = "SECONDS")]
    pub job_retry_base: Option<f64>,
    /// Seconds an idle worker waits before looking for due jobs again. Default: 1.
    #[arg(long, value_name = "SECONDS")]
    pub job_poll: Option<f64>,
    /// Messages a worker sends at once (1-256). A worker stopped abruptly may send again at
    /// most this many messages the remote side had already accepted. Default: 16.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub job_concurrency: Option<u16>,
}

/// Job commands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run a worker in the foreground (where no server runs), until stopped or, with
    /// --until-empty, until no job is queued or running.
    Run {
        /// Stop once the queue is empty.
        #[arg(long)]
        until_empty: bool,
        /// The policy in force (its recipients' webhooks). Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
        #[command(flatten)]
        delivery: Box<DeliveryArgs>,
    },
    /// List jobs, newest first.
    List {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<JobState>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Requeue a dead job now, its attempts counted afresh.
    Retry {
        /// The job's id.
        id: String,
    },
}

/// States of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobState {
    Queued,
    Running,
    Done,
    Dead,
    Void,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Void => "void",
        }
    }
}

/// Mail commands.
#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send one test message through the configured channel and print the reply; exits
    /// non-zero with the reason when it is refused or the server cannot be reached.
    Test {
        /// The address to send to.
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        /// Queue it for the workers of a running server instead of sending it now.
        #[arg(long)]
        queue: bool,
        /// The policy in force. Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
        #[command(flatten)]
        delivery: Box<DeliveryArgs>,
    },
    /// Queue a message for every subject that `--purpose` may reach: consent given, or a
    /// legitimate interest not objected to. Each carries a one-click unsubscribe link
    /// under --public-url. Running it again queues nothing twice.
    Campaign {
        /// The purpose it serves (e.g. `newsletter`).
        #[arg(long)]
        purpose: String,
        /// The subject line.
        #[arg(long)]
        subject: String,
        /// The message in Markdown: sent as HTML and as the text itself.
        #[arg(long, value_name = "FILE")]
        template: PathBuf,
        /// The policy in force. Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
        #[command(flatten)]
        delivery: Box<DeliveryArgs>,
    },
}

/// Outbox commands.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List the messages in the outbox.
    List,
    /// Print one message, opened.
    Show {
        /// The message's id (its job's id).
        id: String,
    },
}

/// Recipient commands.
#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// Make a new webhook signing secret for a recipient and print it, once (an earlier
    /// secret stops working).
    Secret {
        /// The recipient's name in the policy.
        name: String,
        /// The policy in force. Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
    },
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

/// Retention commands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete or anonymise what has come due, category by category, as the policy in force says.
    Run {
        /// Show what is due and what holds keep, changing nothing.
        #[arg(long)]
        dry_run: bool,
        /// The policy, when none was published to the database. Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// What retention deleted, anonymised and suppressed, and what holds kept, per category.
    Report {
        /// From this time (RFC 3339 or a date), inclusive.
        #[arg(long)]
        from: String,
        /// Until this time (RFC 3339 or a date), exclusive.
        #[arg(long)]
        to: String,
        /// `md` (default) or `json`.
        #[arg(long, default_value = "md")]
        format: String,
    },
}

/// Backup commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup into DIR (new or empty), with a signed manifest; no key is copied.
    Create {
        /// The backup folder.
        dir: PathBuf,
    },
    /// Restore a backup (stop the servers first): the manifest is checked (a backup that
    /// does not verify is refused, exit 2), the data put back, the audit chain kept, and
    /// every change the chain holds since the backup replayed before anything may use it.
    Restore {
        /// The backup folder.
        dir: PathBuf,
        /// The policy, when none was published to the database. Default: the embedded policy.
        #[arg(long, env = "CHARTER_POLICY", value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

/// Legal hold commands.
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Put a subject or a category on hold; prints the hold's id alone on its last line.
    Add {
        /// The subject's id.
        #[arg(long, conflicts_with = "category", required_unless_present = "category")]
        subject: Option<String>,
        /// A category of the policy.
        #[arg(long)]
        category: Option<String>,
        /// Why (a case or matter reference; it is kept in clear, so name no person).
        #[arg(long)]
        reason: String,
    },
    /// End a hold.
    Remove {
        /// The hold's id.
        id: String,
    },
    /// List holds in force (with `--all`, ended ones too).
    List {
        #[arg(long)]
        all: bool,
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
    /// Run no retention sweep in this server (where `charter retention run` runs from cron).
    #[arg(long)]
    pub no_retention_sweep: bool,
    #[command(flatten)]
    pub delivery: Box<DeliveryArgs>,
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
    /// Put a policy in force for every server on the database: validates it, shows the
    /// differences from the version in force, stores it; running servers use it within
    /// seconds. A material change lapses consent for purposes whose scope grew and queues
    /// a notice to every subject with an email address. Exit 0 published (or already in
    /// force), 2 invalid, 3 a material change not confirmed with --yes.
    Publish {
        /// The policy file.
        file: PathBuf,
        /// Confirm a material change.
        #[arg(long)]
        yes: bool,
    },
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
