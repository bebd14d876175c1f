//! Replaying, onto restored data, what the audit chain says changed after the backup:
//! erasures, restrictions and their lifting, objections, withdrawals and opt-outs,
//! closed accounts, and rectifications (the old values erased). Every step is one the
//! store makes idempotent, so a replay stopped half-way is simply run again.
//!
//! What the chain cannot say is not replayed: answers of visitors not yet known as a
//! person (the chain keeps no visitor id), and people who first came after the backup.

use charter_core::audit::Entry;
use charter_core::consent::{Source, SALE_OR_SHARING};
use charter_core::requests::{effect, Effect, RequestType};
use charter_policy::model::Policy;
use charter_store::consents::NewConsent;
use charter_store::requests::Choices;
use charter_store::{Store, StoreError};
use serde_json::Value;

/// Entries read per page.
const PAGE: i64 = 1_000;

/// What a replay changed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Replayed {
    pub entries: u64,
    pub erasures: u64,
    pub restrictions: u64,
    pub choices: u64,
    pub closed_accounts: u64,
    pub rectifications: u64,
}

/// Replays every entry after `after_seq` onto `store`, under `policy`.
pub async fn run(store: &Store, policy: &Policy, after_seq: i64) -> Result<Replayed, StoreError> {
    let mut done = Replayed::default();
    let mut from = after_seq;
    loop {
        let page = charter_store::audit::entries_after(store, from, PAGE).await?;
        for e in &page {
            apply(store, policy, e, &mut done).await?;
            done.entries += 1;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => from = last.seq,
            _ => return Ok(done),
        }
    }
}

async fn apply(store: &Store, policy: &Policy, e: &Entry, done: &mut Replayed) -> Result<(), StoreError> {
    let Some(subject) = e.event.subject.as_deref() else { return Ok(()) };
    if e.event.result != "ok" {
        return Ok(());
    }
    let detail: Value = serde_json::from_str(&e.event.detail).unwrap_or(Value::Null);
    match e.event.action.as_str() {
        "request.completed" => {
            let Some(kind) = detail["type"].as_str().and_then(RequestType::parse) else { return Ok(()) };
            let effect = effect(kind, detail["purpose"].as_str(), policy);
            apply_effect(store, policy, subject, effect, e.at_us, done).await
        }
        "account.close" => {
            done.closed_accounts += u64::from(store.close_account(subject, e.at_us).await?);
            Ok(())
        }
        "consent.recorded" | "preferences.changed" => {
            let source = detail["source"].as_str().and_then(Source::parse).unwrap_or(Source::PreferenceCenter);
            let choices = Choices {
                answers: answers(&detail["answers"], subject, source, e.at_us),
                object: names(&detail["objected"]),
                lift: names(&detail["lifted"]),
                requests: Vec::new(),
            };
            done.choices += u64::from(store.apply_choices(subject, &choices, e.at_us).await?);
            Ok(())
        }
        // A rectification: the corrected values came after the backup, so the old ones
        // the backup holds are erased.
        "data.collect" if e.event.actor == crate::rights::ACTOR => {
            done.rectifications += store.forget_values(subject, &names(&detail["fields"])).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn apply_effect(
    store: &Store,
    policy: &Policy,
    subject: &str,
    effect: Effect,
    at_us: i64,
    done: &mut Replayed,
) -> Result<(), StoreError> {
    let answer = |purpose: &str| Choices {
        answers: answers(&serde_json::json!({ purpose: false }), subject, Source::Request, at_us),
        ..Choices::default()
    };
    match effect {
        Effect::Erase => {
            erase(store, policy, subject, at_us).await?;
            done.erasures += 1;
        }
        Effect::Restrict => done.restrictions += u64::from(store.set_restricted(subject, Some(at_us)).await?),
        Effect::Unrestrict => done.restrictions += u64::from(store.set_restricted(subject, None).await?),
        Effect::Object(purposes) => {
            let c = Choices { object: purposes, ..Choices::default() };
            done.choices += u64::from(store.apply_choices(subject, &c, at_us).await?);
        }
        Effect::Withdraw(p) => done.choices += u64::from(store.apply_choices(subject, &answer(&p), at_us).await?),
        Effect::OptOut => {
            done.choices += u64::from(store.apply_choices(subject, &answer(SALE_OR_SHARING), at_us).await?);
        }
        Effect::None | Effect::Export | Effect::Rectify => {}
    }
    Ok(())
}

/// The erasure as it was done: everything shredded, or, where the law obliges keeping
/// records, everything but those.
async fn erase(store: &Store, policy: &Policy, subject: &str, at_us: i64) -> Result<(), StoreError> {
    let kept_by_law = crate::rights::fulfil::kept_points(policy);
    let held: Vec<String> = store
        .records_per_point(subject)
        .await?
        .into_iter()
        .map(|(point, _)| point)
        .filter(|p| kept_by_law.iter().any(|(k, _)| k == p))
        .collect();
    if held.is_empty() {
        store.shred(subject, at_us).await?;
        store.purge_erased(subject, 500).await?;
    } else {
        store.erase_except(subject, &held, at_us).await?;
    }
    Ok(())
}

/// `{"purpose": given, ...}` as ledger answers.
fn answers(map: &Value, subject: &str, source: Source, at_us: i64) -> Vec<NewConsent> {
    let Some(map) = map.as_object() else { return Vec::new() };
    map.iter()
        .filter_map(|(purpose, given)| {
            Some(NewConsent {
                subject_id: Some(subject.to_owned()),
                visitor_id: None,
                purpose: purpose.clone(),
                given: given.as_bool()?,
                at_us,
                source: source.as_str(),
                point: None,
                policy_version: None,
                notice_hash: None,
                ip_prefix: None,
                agent: None,
                conflicts_with_gpc: false,
            })
        })
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}
