//! One-time codes: charter's one way of proving who someone is. A person gives their
//! email address; if charter knows it, a six-digit code goes there (with a link that
//! carries it) through the delivery jobs. The code is valid for 10 minutes, for one use
//! and three attempts. Whether or not the address is known, the answer is the same and
//! takes the same time, and both count against the same limits (per address and per
//! client network, `[security] codes_per_address_per_hour` and
//! `codes_per_network_per_hour`), so nobody can learn who has an account.

use std::time::{Duration, Instant};

use charter_core::audit::AuditEvent;
use charter_delivery::{Enqueue, Mail, Message, Seal, Sms};
use charter_store::codes::NewCode;
use charter_vault::{IdentifierKind, Personal};
use rand::Rng as _;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::subject::{self, Identifier};

/// How long a code is valid.
pub const LIFETIME_US: i64 = 10 * 60 * 1_000_000;
/// Attempts at one code.
pub const MAX_ATTEMPTS: i64 = 3;
const HOUR_US: i64 = 3600 * 1_000_000;
/// Every request for a code is answered no sooner than this after it arrived: sending to
/// a known address does a little more work than ignoring an unknown one.
const ANSWER_AFTER: Duration = Duration::from_millis(250);
/// The MAC's use: a code is bound to its challenge.
const CODE_MAC: &str = "one-time-code";

/// What became of a request for a code (the person is told the same in both cases of
/// `Issued`, known or not).
pub enum Issued {
    /// A challenge was made; a code went to the address if charter knows it.
    Challenge(String),
    /// Too many codes for this address or network lately: try later.
    Limited,
}

/// Why an address was refused before anything was done.
#[derive(Debug)]
pub struct BadAddress(pub String);

/// Where a code goes: an email address or a phone number, as the person gave it.
pub struct Contact<'a> {
    pub kind: IdentifierKind,
    pub value: &'a Personal<String>,
}

/// A code issued: its challenge, and the subject it would prove (kept by the caller
/// with the request it verifies; never shown to the person).
pub struct Challenge {
    pub id: String,
    pub subject: Option<String>,
    /// The contact's blind index, in hex.
    pub contact_blind: String,
}

/// Issues a code proving `purpose` (`preferences`, `request`) for `contact`, from `client`
/// (the network). `link` is the page path that takes `?challenge=...&code=...`.
pub async fn issue(
    state: &AppState,
    purpose: &'static str,
    contact: Contact<'_>,
    client: Option<String>,
    link: &str,
) -> Result<Result<Issued, BadAddress>, ApiError> {
    Ok(issue_challenge(state, purpose, contact, client, link).await?.map(|c| match c {
        Some(c) => Issued::Challenge(c.id),
        None => Issued::Limited,
    }))
}

/// [`issue`], giving the whole challenge (`None` when limited).
pub async fn issue_challenge(
    state: &AppState,
    purpose: &'static str,
    contact: Contact<'_>,
    client: Option<String>,
    link: &str,
) -> Result<Result<Option<Challenge>, BadAddress>, ApiError> {
    let started = Instant::now();
    let outcome = issue_now(state, purpose, contact, client, link).await;
    tokio::time::sleep_until((started + ANSWER_AFTER).into()).await;
    outcome
}

async fn issue_now(
    state: &AppState,
    purpose: &'static str,
    contact: Contact<'_>,
    client: Option<String>,
    link: &str,
) -> Result<Result<Option<Challenge>, BadAddress>, ApiError> {
    let what = if contact.kind == IdentifierKind::Phone { "phone number" } else { "email address" };
    let normal = match state.identifiers.normalise(contact.kind, contact.value.expose()) {
        Ok(n) => n,
        Err(why) => return Ok(Err(BadAddress(format!("That {what} {why}.")))),
    };
    let blind = state.keys.blind_indexer().index(&normal);
    let now = charter_store::now_us();
    let blind_hex = hex::encode(blind);
    let (per_address, per_client) =
        state.store.codes_issued_since(&blind_hex, client.as_deref(), now - HOUR_US).await?;
    let security = state.policy().policy.security.clone();
    let over_address = per_address >= i64::from(security.codes_per_address_per_hour);
    if over_address || (client.is_some() && per_client >= i64::from(security.codes_per_network_per_hour)) {
        return Ok(Ok(None));
    }
    let identifier = Identifier::Named { normal, blind, given: contact.value.clone() };
    let known = subject::find(state, &identifier).await?.filter(|s| s.wrapped.is_some());
    let id = hex::encode(rand::random::<[u8; 16]>());
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
    let code_mac = hex::encode(state.keys.link_signer().tag(CODE_MAC, &format!("{id}:{code}")));
    let row = NewCode {
        id: id.clone(),
        purpose,
        subject_id: known.as_ref().map(|s| s.id.clone()),
        address_blind: blind_hex.clone(),
        client,
        code_mac,
        created_at_us: now,
        expires_at_us: now + LIFETIME_US,
    };
    state.store.insert_code(&row).await?;
    state.store.drop_codes_before(now - 24 * HOUR_US).await?;
    if let (Some(s), Identifier::Named { normal, .. }) = (&known, &identifier) {
        let to = Contact { kind: contact.kind, value: &Personal::new(normal.expose().to_owned()) };
        send(state, &s.id, &subject::unwrap_key(state, s)?, to, &id, &code, link).await?;
    }
    Ok(Ok(Some(Challenge { id, subject: known.map(|s| s.id), contact_blind: blind_hex })))
}

/// Queues the code to the address, sealed under the subject's key.
async fn send(
    state: &AppState,
    subject: &str,
    key: &charter_vault::DataKey,
    to: Contact<'_>,
    id: &str,
    code: &str,
    link: &str,
) -> Result<(), ApiError> {
    let controller = state.policy().policy.controller.name.clone();
    let url = state.public_url.as_ref().map(|base| format!("{base}{link}?challenge={id}&code={code}"));
    let mut text = format!("Your code for {controller} is {code}. It is valid for 10 minutes.\n");
    if let Some(url) = &url {
        text.push_str(&format!("\nOr open this link: {url}\n"));
    }
    let message = if to.kind == IdentifierKind::Phone {
        Message::Sms(Sms { to: to.value.expose().clone(), body: text })
    } else {
        text.push_str("\nIf you did not ask for it, ignore this message: nothing changes without the code.\n");
        Message::Mail(Mail {
            to: to.value.expose().clone(),
            subject: format!("Your code for {controller}: {code}"),
            text,
            html: None,
            unsubscribe: None,
        })
    };
    let job = Enqueue {
        kind: "mail.code",
        idempotency_key: format!("code:{id}"),
        message: &message,
        seal: Seal::Subject { id: subject, key },
        max_attempts: None,
    };
    charter_delivery::enqueue(&state.store, &*state.keys, job, charter_store::now_us())
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("cannot queue a one-time code")))?;
    let mut e = AuditEvent::new("subject", "code.sent", "ok").with_detail(&json!({ "challenge": id }));
    e.subject = Some(subject.to_owned());
    state.audit.append(e).await?;
    Ok(())
}

/// The subject `code` proves for challenge `challenge` and `purpose`, spending it; `None`
/// when it does not (wrong, expired, spent, out of attempts, another purpose, or issued
/// for an address charter does not know).
pub async fn verify(state: &AppState, purpose: &str, challenge: &str, code: &str) -> Result<Option<String>, ApiError> {
    let well_formed = challenge.len() == 32
        && challenge.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && code.len() == 6
        && code.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Ok(None);
    }
    let now = charter_store::now_us();
    let Some(attempt) = state.store.attempt_code(challenge, now, MAX_ATTEMPTS).await? else {
        return Ok(None);
    };
    let tag = hex::decode(&attempt.code_mac).unwrap_or_default();
    let matches = state.keys.link_signer().check_tag(CODE_MAC, &format!("{challenge}:{code}"), &tag);
    let Some(subject) = attempt.subject_id.filter(|_| matches && attempt.purpose == purpose) else {
        return Ok(None);
    };
    Ok(state.store.spend_code(challenge, now).await?.then_some(subject))
}
