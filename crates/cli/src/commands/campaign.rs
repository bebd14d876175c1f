//! `charter mail campaign`: one message per subject the purpose may reach, queued for
//! the workers. Each subject is decided by the same rule as a read (consent given, or a
//! legitimate interest not objected to; never an erased, restricted or opted-out person),
//! and each message is sealed under the subject's key with a one-click unsubscribe link.
//! The campaign's id is a hash of what it sends, so running it again queues nothing twice.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use charter_core::consent::{unsubscribe_payload, UNSUBSCRIBE_LINK};
use charter_delivery::{Enqueue, Mail, Message, Seal};
use charter_policy::model::Policy;
use charter_store::vault::ReadView;
use charter_vault::{DataKey, KeyWrapper as _};
use serde_json::json;
use sha2::Digest as _;

use super::jobs::Opened;
use crate::config::Settings;
use crate::Failure;

/// What to send, and for which purpose.
pub struct Campaign {
    pub purpose: String,
    pub subject: String,
    pub template: PathBuf,
}

/// Longest template read.
const MAX_TEMPLATE: u64 = 1024 * 1024;
/// Subjects decided and queued per transaction.
const PAGE: u32 = 500;
/// The category of the address a campaign goes to.
const EMAIL_CATEGORY: &str = "user.contact.email";

/// The message's words, as text and HTML.
struct Body {
    markdown: String,
    html: String,
}

/// Runs a campaign.
pub async fn run(settings: &Settings, c: Campaign, policy: Option<&Path>) -> Result<(), Failure> {
    let loaded = super::policy::load_or_default(policy)?;
    if !loaded.policy.purposes.contains_key(&c.purpose) {
        eprintln!("error: --purpose `{}` is not a purpose in the policy", c.purpose);
        return Err(Failure::Refused);
    }
    let Some(base) = settings.public_url.as_deref().map(|u| u.trim_end_matches('/').to_owned()) else {
        eprintln!("error: mail campaign needs --public-url: each message links to its unsubscribe page there");
        return Err(Failure::Refused);
    };
    let body = read_template(&c.template)?;
    let d = Opened::open(settings).await?;
    let id = campaign_id(&c, &body.markdown);
    let outcome = queue_all(&d, &loaded.policy, &c, &body, &base, &id).await;
    let (queued, skipped) = match outcome {
        Ok(counts) => counts,
        Err(e) => {
            d.close().await?;
            return Err(e.into());
        }
    };
    let detail = json!({ "campaign": id, "purpose": c.purpose, "queued": queued, "skipped": skipped });
    d.audit
        .append(charter_core::audit::AuditEvent::new("operator", "mail.campaign", "ok").with_detail(&detail))
        .await
        .context("cannot record the campaign in the audit chain")?;
    d.close().await?;
    println!("campaign {id}: queued {queued} messages; {skipped} subjects not reachable for `{}`", c.purpose);
    Ok(())
}

/// The template, read and rendered.
fn read_template(path: &Path) -> Result<Body, Failure> {
    let size = std::fs::metadata(path).map(|m| m.len()).map_err(|e| {
        eprintln!("error: cannot read --template {}: {e}", path.display());
        Failure::Refused
    })?;
    if size > MAX_TEMPLATE {
        eprintln!("error: --template {} is larger than 1 MiB", path.display());
        return Err(Failure::Refused);
    }
    let markdown = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: --template {} is not readable UTF-8 text: {e}", path.display());
        Failure::Refused
    })?;
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new(&markdown));
    Ok(Body { markdown, html })
}

/// A hash of the purpose, subject line and words: the same campaign has the same id.
fn campaign_id(c: &Campaign, markdown: &str) -> String {
    let mut h = sha2::Sha256::new();
    for part in [c.purpose.as_str(), c.subject.as_str(), markdown] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Whom a mailing reaches.
pub(crate) enum Audience<'a> {
    /// Those `purpose` may reach, as a read would decide.
    Purpose(&'a Policy, &'a str),
    /// Every live subject with an address (a notice the law or the policy requires).
    Everyone,
}

/// A message to every subject of an audience, made per subject from their id and address.
pub(crate) struct Mailing<'a> {
    /// The jobs' kind, e.g. `mail.campaign`.
    pub kind: &'static str,
    /// What makes the idempotency keys unique to this mailing (`campaign:ID`).
    pub key: String,
    pub audience: Audience<'a>,
    pub make: &'a dyn Fn(&str, String) -> Message,
}

/// Queues the campaign's messages; returns (queued, skipped).
async fn queue_all(
    d: &Opened,
    policy: &Policy,
    c: &Campaign,
    body: &Body,
    base: &str,
    id: &str,
) -> anyhow::Result<(u64, u64)> {
    let unsubscribe = policy.pages.get("unsubscribe").map_or("/unsubscribe", |p| p.path.as_str());
    let links = d.keys.link_signer();
    let make = |subject: &str, address: String| {
        let token = links.sign(UNSUBSCRIBE_LINK, &unsubscribe_payload(subject, &c.purpose));
        let url = format!("{base}{}/{token}", unsubscribe.trim_end_matches('/'));
        message(c, body, address, url)
    };
    let mailing = Mailing {
        kind: "mail.campaign",
        key: format!("campaign:{id}"),
        audience: Audience::Purpose(policy, &c.purpose),
        make: &make,
    };
    queue_mailing(d, &mailing).await
}

/// Walks every live subject a page at a time, queuing a message to each one the mailing
/// reaches, sealed under their key; returns (queued, skipped). Running it again queues
/// nothing twice, so an interrupted mailing is finished by running it again.
pub(crate) async fn queue_mailing(d: &Opened, m: &Mailing<'_>) -> anyhow::Result<(u64, u64)> {
    let tty = std::io::stderr().is_terminal();
    let (mut queued, mut skipped, mut after) = (0u64, 0u64, String::new());
    loop {
        let page = d.store.live_subjects(&after, PAGE).await.context("cannot list subjects")?;
        let Some(last) = page.last().cloned() else { break };
        let mut messages = Vec::new();
        for subject in &page {
            let Some((address, key)) = reachable(d, &m.audience, subject).await? else {
                skipped += 1;
                continue;
            };
            messages.push((subject.clone(), key, (m.make)(subject, address)));
        }
        let jobs = messages.iter().map(|(subject, key, message)| Enqueue {
            kind: m.kind,
            idempotency_key: format!("{}:{subject}", m.key),
            message,
            seal: Seal::Subject { id: subject, key },
            max_attempts: None,
        });
        let added = charter_delivery::enqueue_all(&d.store, &*d.keys, jobs.collect(), charter_store::now_us())
            .await
            .context("cannot queue the messages")?;
        queued += added.iter().filter(|(_, new)| *new).count() as u64;
        if tty {
            eprint!("\rqueued {queued}, not reachable {skipped}");
            let _ = std::io::stderr().flush();
        }
        after = last;
    }
    if tty {
        eprintln!();
    }
    Ok((queued, skipped))
}

/// The subject's address and data key when the audience includes them and they have an
/// address.
async fn reachable(d: &Opened, audience: &Audience<'_>, subject: &str) -> anyhow::Result<Option<(String, DataKey)>> {
    let purpose = match audience {
        Audience::Purpose(_, purpose) => purpose,
        Audience::Everyone => "",
    };
    let Some(view) = d.store.subject_for_read(subject, purpose).await.context("cannot read a subject")? else {
        return Ok(None);
    };
    if let Audience::Purpose(policy, purpose) = audience {
        let decided =
            charter_core::access::decide_purpose(policy, purpose, &[(*purpose).to_owned()], &view.state(purpose));
        if decided.is_err() {
            return Ok(None);
        }
    }
    address(d, &view, subject)
}

/// The subject's email address, opened.
fn address(d: &Opened, view: &ReadView, subject: &str) -> anyhow::Result<Option<(String, DataKey)>> {
    let (Some(wrapped), Some(field)) =
        (&view.subject.wrapped, view.fields.iter().find(|f| f.category == EMAIL_CATEGORY))
    else {
        return Ok(None);
    };
    let key = d.keys.unwrap(subject, wrapped).context("a subject's key does not open with the key file")?;
    let plain = charter_server::subject::open_value(&key, subject, field)
        .map_err(|_| anyhow::anyhow!("a subject's address does not open"))?;
    Ok(String::from_utf8(plain).ok().map(|a| (a, key)))
}

/// One subject's message.
fn message(c: &Campaign, body: &Body, to: String, unsubscribe: String) -> Message {
    let text = format!("{}\n\n--\nUnsubscribe: {unsubscribe}\n", body.markdown.trim_end());
    let link = unsubscribe.replace('&', "&amp;").replace('"', "&quot;");
    let html = format!("{}<hr>\n<p><a href=\"{link}\">Unsubscribe</a></p>\n", body.html);
    Message::Mail(Mail { to, subject: c.subject.clone(), text, html: Some(html), unsubscribe: Some(unsubscribe) })
}
