//! `charter retention run [--dry-run]` and `charter retention report`: the retention
//! sweep from cron, and what retention did, for audits. `charter hold add|remove|list`:
//! legal holds. Each change is in the audit chain.

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use charter_server::retention::{Sweep, Tally};
use charter_store::retention::Hold;
use charter_store::DataDir;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::args::{HoldCommand, RetentionCommand};
use crate::config::Settings;
use crate::Failure;

fn refuse(msg: &str) -> Failure {
    eprintln!("error: {msg}");
    Failure::Refused
}

async fn open(settings: &Settings) -> anyhow::Result<DataDir> {
    let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
    DataDir::open_existing(&settings.data_dir, url.as_deref()).await
}

/// The policy in force: the published version, or `--policy` (the embedded one by default).
pub(crate) async fn policy_in_force(
    data: &DataDir,
    flag: Option<&std::path::Path>,
) -> Result<charter_policy::Policy, Failure> {
    match data.store.policy_in_force().await.context("cannot read the policy in force")? {
        Some(v) => Ok(charter_policy::load("published policy", &v.published.text)
            .map_err(|e| anyhow::anyhow!("the published policy no longer loads: {e}"))?
            .policy),
        None => Ok(super::policy::load_or_default(flag)?.policy),
    }
}

/// Runs a retention command.
pub async fn run(cmd: RetentionCommand, settings: &Settings) -> Result<(), Failure> {
    match cmd {
        RetentionCommand::Run { dry_run, policy } => sweep(settings, dry_run, policy.as_deref()).await,
        RetentionCommand::Report { from, to, format } => report(settings, &from, &to, &format).await,
    }
}

async fn sweep(settings: &Settings, dry_run: bool, flag: Option<&std::path::Path>) -> Result<(), Failure> {
    let data = open(settings).await?;
    let policy = policy_in_force(&data, flag).await?;
    let objects = charter_server::objects::open(settings.object_store.as_deref(), &settings.data_dir.join("objects"))?;
    let sweep = Sweep {
        store: &data.store,
        keys: &data.keys,
        objects: objects.as_ref(),
        policy: &policy,
        now_us: charter_store::now_us(),
    };
    if dry_run {
        println!("| category | on expiry | due | held |\n|---|---|---:|---:|");
        for d in sweep.plan().await.context("cannot count what is due")? {
            println!("| {} | {} | {} | {} |", d.category, d.action, d.due, d.held);
        }
        data.store.close().await;
        return Ok(());
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut bar = Bar::new();
    let tally = sweep.run(&id, &mut |done, total| bar.show(done, total)).await.context("the sweep stopped")?;
    bar.end();
    let detail = json!({ "sweep": id, "outcomes": charter_server::retention::tally_json(&tally) });
    super::record_operator(&data, "retention.sweep", detail).await?;
    print_tally(&tally);
    Ok(())
}

fn print_tally(tally: &Tally) {
    if tally.is_empty() {
        println!("nothing was due");
    }
    for ((category, outcome), n) in tally {
        println!("{category}: {n} {outcome}");
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct Bar {
    on: bool,
}

impl Bar {
    fn new() -> Self {
        Self { on: std::io::stderr().is_terminal() }
    }

    fn show(&mut self, done: u64, total: u64) {
        if !self.on || total == 0 {
            return;
        }
        let filled = usize::try_from(done * 30 / total).unwrap_or(30);
        eprint!("\r[{}{}] {done}/{total}", "#".repeat(filled), "-".repeat(30 - filled));
        let _ = std::io::stderr().flush();
    }

    fn end(&mut self) {
        if self.on {
            eprintln!();
        }
    }
}

async fn report(settings: &Settings, from: &str, to: &str, format: &str) -> Result<(), Failure> {
    let time = |t: &str, name: &str| {
        charter_core::time::us_from_rfc3339(t)
            .ok_or_else(|| refuse(&format!("--{name} `{t}` is not a time: write 2026-12-03 or 2026-12-03T10:00:00Z")))
    };
    let (from_us, to_us) = (time(from, "from")?, time(to, "to")?);
    if to_us <= from_us {
        return Err(refuse("--to must come after --from"));
    }
    if format != "md" && format != "json" {
        return Err(refuse("--format is `md` or `json`"));
    }
    let data = open(settings).await?;
    let lines = data.store.retention_report(from_us, to_us).await.context("cannot read retention outcomes")?;
    data.store.close().await;
    if format == "json" {
        let rows: Vec<_> =
            lines.iter().map(|l| json!({ "category": l.category, "outcome": l.outcome, "count": l.n })).collect();
        let doc = json!({ "from": from, "to": to, "outcomes": rows });
        println!("{}", serde_json::to_string_pretty(&doc).expect("JSON serialises"));
        return Ok(());
    }
    println!("# Retention from {from} to {to}\n");
    println!("`*` stands for whole records (suppressed: anonymised records in groups smaller than k) and whole subjects (shredded). `held` counts what legal holds kept at the window's last sweep.\n");
    println!("| category | outcome | count |\n|---|---|---:|");
    for l in &lines {
        println!("| {} | {} | {} |", l.category, l.outcome, l.n);
    }
    if lines.is_empty() {
        println!("| (nothing) | | 0 |");
    }
    Ok(())
}

/// Runs a hold command.
pub async fn hold(cmd: HoldCommand, settings: &Settings) -> Result<(), Failure> {
    match cmd {
        HoldCommand::Add { subject, category, reason } => add_hold(settings, subject, category, &reason).await,
        HoldCommand::Remove { id } => {
            let data = open(settings).await?;
            if !data.store.remove_hold(&id, charter_store::now_us()).await.context("cannot end the hold")? {
                data.store.close().await;
                return Err(refuse(&format!("no hold `{id}` is in force")));
            }
            super::record_operator(&data, "hold.removed", json!({ "hold": id })).await?;
            println!("hold {id} ended");
            Ok(())
        }
        HoldCommand::List { all } => {
            let data = open(settings).await?;
            let holds = data.store.holds(all).await.context("cannot list holds")?;
            data.store.close().await;
            println!("| id | on | reason | since | ended |\n|---|---|---|---|---|");
            for h in holds {
                let on = h
                    .subject_id
                    .map_or_else(|| format!("category {}", h.category.unwrap_or_default()), |s| format!("subject {s}"));
                let ended = h.removed_at_us.map(charter_core::time::rfc3339_from_us).unwrap_or_default();
                println!(
                    "| {} | {on} | {} | {} | {ended} |",
                    h.id,
                    h.reason,
                    charter_core::time::rfc3339_from_us(h.created_at_us)
                );
            }
            Ok(())
        }
    }
}

async fn add_hold(
    settings: &Settings,
    subject: Option<String>,
    category: Option<String>,
    reason: &str,
) -> Result<(), Failure> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(refuse("--reason is required, at most 500 bytes"));
    }
    let data = open(settings).await?;
    if let Some(s) = &subject {
        if data.store.subject(s).await.context("cannot look up the subject")?.is_none() {
            data.store.close().await;
            return Err(refuse(&format!("no subject `{s}`")));
        }
    }
    if let Some(c) = &category {
        let policy = policy_in_force(&data, None).await?;
        if !policy.categories.contains_key(c) {
            data.store.close().await;
            return Err(refuse(&format!("`{c}` is not a category of the policy in force")));
        }
    }
    let hold = Hold {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: subject,
        category,
        reason: reason.to_owned(),
        created_at_us: charter_store::now_us(),
        removed_at_us: None,
    };
    data.store.add_hold(&hold).await.context("cannot store the hold")?;
    let detail = json!({ "hold": hold.id, "subject": hold.subject_id, "category": hold.category });
    super::record_operator(&data, "hold.added", detail).await?;
    eprintln!("hold added; retention deletes nothing it covers until it is removed");
    println!("{}", hold.id);
    Ok(())
}
