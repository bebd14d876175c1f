//! `charter policy publish FILE`: puts a policy in force for every server on the
//! database (P36). It validates the file, shows what differs from the version in force,
//! and stores the new version with its hash; running servers pick it up within seconds.
//!
//! A material change needs `--yes` (exit 3 without it). Publishing one lapses the consent
//! given for every purpose whose scope grew, and tells every subject with an email
//! address through the delivery jobs. The notices are queued idempotently: publishing
//! the same file again finishes an interrupted run and queues nobody twice.

use std::path::Path;

use anyhow::Context as _;
use charter_core::audit::AuditEvent;
use charter_delivery::{Mail, Message};
use charter_policy::diff::{self, Outcome, PolicyDiff};
use charter_policy::LoadedPolicy;
use charter_store::policies::{NewPolicyVersion, PolicyVersion};
use serde_json::json;

use super::campaign::{queue_mailing, Audience, Mailing};
use super::jobs::Opened;
use crate::config::Settings;
use crate::Failure;

/// Publishes `file`; `yes` confirms a material change.
pub async fn run(settings: &Settings, file: &Path, yes: bool) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read policy file {}", file.display()))?;
    let next = charter_policy::load(&file.display().to_string(), &text).map_err(|errors| {
        eprintln!("{errors}");
        Failure::Refused
    })?;
    let d = Opened::open(settings).await?;
    let outcome = publish(&d, settings, &next, &text, yes).await;
    d.close().await?;
    outcome
}

async fn publish(d: &Opened, settings: &Settings, next: &LoadedPolicy, text: &str, yes: bool) -> Result<(), Failure> {
    let in_force = d.store.policy_in_force().await.context("cannot read the policy in force")?;
    if let Some(v) = in_force.as_ref().filter(|v| v.published.sha256 == next.sha256) {
        println!("version {} (sha256 {}) is already in force", v.published.version, v.published.sha256);
        return finish_notices(d, settings, v).await;
    }
    let d_changes = match &in_force {
        Some(v) => {
            let old = charter_policy::load("published policy", &v.published.text)
                .map_err(|e| anyhow::anyhow!("the published policy no longer loads: {e}"))?;
            diff::diff(&old.policy, &next.policy)
        }
        None => PolicyDiff { changes: Vec::new() },
    };
    show(&d_changes, in_force.is_none());
    let material = d_changes.outcome() == Outcome::Material;
    if material && !yes {
        eprintln!("not published: the change is material; run again with --yes to publish it and notify every subject");
        return Err(Failure::Code(3));
    }
    let widened: Vec<String> =
        if material { d_changes.widened_purposes(&next.policy).into_iter().collect() } else { Vec::new() };
    let plain: Vec<&str> = d_changes.changes.iter().filter_map(|c| c.material.as_deref()).collect();
    let version = NewPolicyVersion {
        version: next.policy.version.clone(),
        sha256: next.sha256.clone(),
        last_updated: next.policy.last_updated.clone(),
        text: text.to_owned(),
        material,
        changes: serde_json::to_string(&plain).context("cannot write the changes")?,
        published_at_us: charter_store::now_us(),
    };
    let (seq, lapsed) = d.store.publish_policy(&version, &widened).await.context("cannot publish the policy")?;
    let detail = json!({
        "policy_version": version.version, "policy_sha256": version.sha256, "material": material,
        "widened": widened, "consents_lapsed": lapsed,
    });
    d.audit
        .append(AuditEvent::new("operator", "policy.published", "ok").with_detail(&detail))
        .await
        .context("cannot record the publication in the audit chain")?;
    println!(
        "published version {} (sha256 {}); running servers use it within seconds",
        version.version, version.sha256
    );
    if !widened.is_empty() {
        println!("consent lapsed for purposes whose scope grew ({}): {lapsed} answers", widened.join(", "));
    }
    let published = PolicyVersion { seq, published: version, notified_at_us: None };
    if material {
        return finish_notices(d, settings, &published).await;
    }
    Ok(())
}

/// Prints the differences.
fn show(d: &PolicyDiff, first: bool) {
    if first {
        println!("no version was published before: this one becomes the policy in force");
        return;
    }
    for c in &d.changes {
        println!("{c}");
    }
    let material = d.changes.iter().filter(|c| c.material.is_some()).count();
    println!("{} change(s), {material} material", d.changes.len());
}

/// Queues the notice of a material version to every subject with an address, unless
/// that was finished, then records it finished.
async fn finish_notices(d: &Opened, settings: &Settings, v: &PolicyVersion) -> Result<(), Failure> {
    if v.notified_at_us.is_some() {
        return Ok(());
    }
    let p = &v.published;
    let changes: Vec<String> = serde_json::from_str(&p.changes).unwrap_or_default();
    let loaded = charter_policy::load("published policy", &p.text)
        .map_err(|e| anyhow::anyhow!("the published policy no longer loads: {e}"))?;
    let controller = loaded.policy.controller.name.clone();
    let link = settings.public_url.as_deref().map_or_else(
        || loaded.policy.controller.website.trim_end_matches('/').to_owned(),
        |u| format!("{}/", u.trim_end_matches('/')),
    );
    let make = |_: &str, address: String| notice(&controller, &p.last_updated, &changes, &link, address);
    let mailing = Mailing {
        kind: "mail.policy_change",
        key: format!("policy:{}", &p.sha256[..16]),
        audience: Audience::Everyone,
        make: &make,
    };
    let (queued, skipped) = queue_mailing(d, &mailing).await?;
    d.store.policy_notified(v.seq, charter_store::now_us()).await.context("cannot record the notices as queued")?;
    let detail = json!({ "policy_version": p.version, "queued": queued, "without_address": skipped });
    d.audit
        .append(AuditEvent::new("operator", "policy.notified", "ok").with_detail(&detail))
        .await
        .context("cannot record the notices in the audit chain")?;
    println!("queued {queued} notices of the change; {skipped} subjects have no address");
    Ok(())
}

/// One subject's notice of the change.
fn notice(controller: &str, date: &str, changes: &[String], link: &str, to: String) -> Message {
    let list: String = changes.iter().map(|c| format!("- {c}\n")).collect();
    let text = format!(
        "We updated the privacy policy of {controller} on {date}. What changed:\n\n{list}\n\
         Read the whole policy: {link}\n\n\
         Where a use of your data now goes further than what you agreed to, we will ask you again \
         before we rely on your consent.\n"
    );
    Message::Mail(Mail {
        to,
        subject: format!("We updated our privacy policy ({date})"),
        text,
        html: None,
        unsubscribe: None,
    })
}
