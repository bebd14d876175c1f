//! Doing what a request asks, once it is in progress: the person's state changed
//! (objection, withdrawal, restriction, opt-out), their values corrected, their data
//! erased (with the law's exceptions, processors told, a signed certificate), or a copy
//! made ready to download. Then the request completes and the person is told.

use std::collections::BTreeSet;

use charter_core::consent::{Source, SALE_OR_SHARING};
use charter_core::requests::{effect, Effect, Move, RequestType};
use charter_policy::model::{Deletion, LawfulBasis, PointKind, Policy};
use charter_store::consents::NewConsent;
use charter_store::erasure::{Certificate, ProcessorTask};
use charter_store::requests::{Choices, Request};
use serde_json::{json, Value};

use super::{internal, move_request, status_token, tell};
use crate::error::ApiError;
use crate::state::AppState;

/// How long a download link works, and how many times.
pub const DOWNLOAD_US: i64 = 7 * 24 * 3600 * 1_000_000;
pub const DOWNLOADS: i64 = 3;

/// Fulfils `r` (in progress) and completes it.
pub async fn fulfil(state: &AppState, r: &mut Request) -> Result<(), ApiError> {
    let kind = RequestType::parse(&r.kind).ok_or_else(|| internal("a request has an unknown type"))?;
    let details: Value = serde_json::from_str(&r.details).unwrap_or(Value::Null);
    let purpose = details.get("purpose").and_then(Value::as_str);
    let policy = state.policy();
    let Some(subject) = r.subject_id.clone() else {
        move_request(state, r, Move::Complete, "system", Some("no data is held about this person".into())).await?;
        return Ok(());
    };
    let effect = effect(kind, purpose, &policy.policy);
    // The address an erasure's confirmation goes to, read while it still opens.
    let farewell = match effect {
        Effect::Erase => super::address_of(state, &subject).await?.map(|(address, _)| address),
        _ => None,
    };
    let done = match effect {
        Effect::None | Effect::Export => {
            r.downloads_left = Some(DOWNLOADS);
            r.download_until_us = Some(charter_store::now_us() + DOWNLOAD_US);
            "Your copy is ready to download for 7 days (3 downloads)."
        }
        Effect::Rectify => {
            rectify(state, r, &subject).await?;
            "We corrected your data as you asked."
        }
        Effect::Erase => {
            erase(state, r, &subject, &policy.policy).await?;
            "We erased your data, except what the law obliges us to keep (kept apart, and used for nothing else)."
        }
        Effect::Restrict => {
            state.store.set_restricted(&subject, Some(charter_store::now_us())).await?;
            "We paused the use of your data."
        }
        Effect::Unrestrict => {
            state.store.set_restricted(&subject, None).await?;
            "We lifted the pause on the use of your data."
        }
        Effect::Object(purposes) => {
            choose(state, &subject, Choices { object: purposes, ..Choices::default() }).await?;
            "We recorded your objection: we no longer use your data for it."
        }
        Effect::Withdraw(p) => {
            choose(
                state,
                &subject,
                Choices { answers: vec![answer(state, &subject, &p, false)], ..Choices::default() },
            )
            .await?;
            "We recorded the withdrawal of your consent."
        }
        Effect::OptOut => {
            let opt_out = answer(state, &subject, SALE_OR_SHARING, false);
            choose(state, &subject, Choices { answers: vec![opt_out], ..Choices::default() }).await?;
            "Opt-out request honored: we do not sell or share your personal information."
        }
    };
    move_request(state, r, Move::Complete, "system", None).await?;
    let mut text = format!("Your request is complete: {}.\n{done}", kind.describe());
    if let Some(base) = &state.public_url {
        let page = crate::pages::path_of(state, "requests", "/requests");
        text.push_str(&format!(
            "\n\nSee it here: {base}{}/{}?t={}",
            page.trim_end_matches('/'),
            r.id,
            status_token(state, &r.id)
        ));
    }
    match farewell {
        Some(address) => super::tell_erased(state, r, "Your request is complete", text, address).await,
        None => tell(state, r, "completed", "Your request is complete", text).await,
    }
}

fn answer(state: &AppState, subject: &str, purpose: &str, given: bool) -> NewConsent {
    NewConsent {
        subject_id: Some(subject.to_owned()),
        ..crate::routes::consents::answer(state, purpose, given, Source::Request)
    }
}

async fn choose(state: &AppState, subject: &str, c: Choices) -> Result<(), ApiError> {
    state.store.apply_choices(subject, &c, charter_store::now_us()).await?;
    Ok(())
}

/// The corrected values, sealed with the request, collected at a profile point that may
/// update them: checked, sealed and indexed as any collection there, the old values
/// (and their keys) replaced.
async fn rectify(state: &AppState, r: &Request, subject: &str) -> Result<(), ApiError> {
    let Some(sealed) = &r.sealed_details else { return Ok(()) };
    let s = crate::subject::by_id(state, &crate::subject::SubjectId::parse(subject)?).await?;
    let key = crate::subject::unwrap_key(state, &s)?;
    let plain = key.open_message(&super::intake::sealed_label(&r.id), sealed).map_err(crate::subject::sealed_error)?;
    let details: Value = serde_json::from_slice(&plain).map_err(|_| internal("sealed request details are not JSON"))?;
    let fields = details.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
    let in_force = state.policy();
    let point = in_force
        .policy
        .collection_points
        .iter()
        .find(|(_, p)| p.kind == Some(PointKind::Profile) && fields.keys().all(|f| p.updates.contains(f)))
        .map(|(k, _)| k.clone())
        .ok_or_else(|| ApiError::Conflict {
            code: "no_point",
            message: "no profile point may update these fields".into(),
        })?;
    let key = charter_store::api_keys::ApiKey {
        id: super::ACTOR.into(),
        name: super::ACTOR.into(),
        purposes: in_force.policy.purposes.keys().cloned().collect(),
        points: vec![point.clone()],
        revoked_at_us: None,
    };
    let body = serde_json::from_value(json!({ "subject": { "id": subject }, "fields": fields }))
        .map_err(|_| internal("a correction does not make a collection"))?;
    let prepared = crate::routes::collect::prepare(state, &in_force, &key, &point, &body, false).await?;
    let _created = crate::routes::collect::store(state, &key, &point, &prepared, &[]).await?;
    Ok(())
}

/// The points whose records the law obliges keeping: record points collecting for a
/// purpose whose basis is a legal obligation (payment records for bookkeeping).
pub fn kept_points(policy: &Policy) -> Vec<(String, String)> {
    policy
        .collection_points
        .iter()
        .filter(|(_, p)| p.kind == Some(PointKind::Record))
        .filter_map(|(k, p)| {
            let legal = p.purposes.iter().find(|pu| {
                policy.purposes.get(*pu).is_some_and(|q| q.basis.as_slice().contains(&LawfulBasis::LegalObligation))
            })?;
            Some((k.clone(), legal.clone()))
        })
        .collect()
}

/// Erases the subject: objects deleted from object storage, then everything else
/// crypto-shredded, or (when records must be kept) deleted but those records, which stay
/// restricted; every processor that received their data told; a certificate signed.
async fn erase(state: &AppState, r: &Request, subject: &str, policy: &Policy) -> Result<(), ApiError> {
    let kept_by_law = kept_points(policy);
    let per_point = state.store.records_per_point(subject).await?;
    let kept: Vec<(String, i64, String)> = per_point
        .iter()
        .filter_map(|(point, n)| {
            kept_by_law.iter().find(|(k, _)| k == point).map(|(_, why)| (point.clone(), *n, why.clone()))
        })
        .collect();
    let fields = state.store.subject_for_read(subject, "").await?.map(|v| v.fields).unwrap_or_default();
    let categories: BTreeSet<String> = fields.iter().map(|f| f.category.clone()).collect();
    let objects = state.store.subject_objects(subject).await?;
    let kept_names: Vec<String> = kept.iter().map(|(p, _, _)| p.clone()).collect();
    let mut removed_objects = 0;
    for o in objects.iter().filter(|o| !kept_names.contains(&o.point)) {
        let path = object_store::path::Path::from(o.location.as_str());
        match state.objects.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => removed_objects += 1,
            Err(e) => return Err(ApiError::Internal(anyhow::Error::new(e).context("cannot delete an object"))),
        }
    }
    let now = charter_store::now_us();
    let erased_records = if kept.is_empty() {
        state.store.shred(subject, now).await?;
        state.store.purge_erased(subject, 500).await?
    } else {
        state.store.erase_except(subject, &kept_names, now).await?
    };
    let tasks = tell_processors(state, r, subject, &categories, policy).await?;
    let body = json!({
        "certificate": "charter.erasure.v1",
        "request": r.id,
        "type": r.kind,
        "jurisdiction": r.jurisdiction,
        "received": charter_core::time::rfc3339_from_us(r.received_at_us),
        "erased_at": charter_core::time::rfc3339_from_us(now),
        "erased": {
            "profile_categories": categories,
            "records": erased_records,
            "objects": removed_objects,
            "subject_key_destroyed": kept.is_empty(),
        },
        "kept": kept.iter().map(|(point, n, purpose)| json!({
            "point": point, "records": n,
            "why": format!("kept under a legal obligation (purpose `{purpose}`) until its retention ends; processing restricted"),
        })).collect::<Vec<_>>(),
        "processors": tasks.iter().map(|t| json!({ "recipient": t.recipient, "channel": t.channel, "status": t.status })).collect::<Vec<_>>(),
    });
    certify(state, &r.id, &body).await
}

/// Tells every recipient the person's data went to (by the policy's declaration of what
/// each receives, and by the disclosures in the audit chain): its signed webhook where
/// the policy gives one, otherwise a task for the team.
async fn tell_processors(
    state: &AppState,
    r: &Request,
    subject: &str,
    categories: &BTreeSet<String>,
    policy: &Policy,
) -> Result<Vec<ProcessorTask>, ApiError> {
    let disclosed: BTreeSet<String> = state
        .store
        .disclosures_of(subject, 0)
        .await?
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(&d.detail).ok()?.get("recipient")?.as_str().map(str::to_owned))
        .collect();
    let now = charter_store::now_us();
    let window = charter_policy::units::PolicyDuration::parse(&policy.requests.processor_confirm_within)
        .map_or(30 * 24, |d| d.approx_hours() as i64);
    let mut tasks = Vec::new();
    for (name, recipient) in &policy.recipients {
        let received = disclosed.contains(name) || recipient.categories.iter().any(|c| categories.contains(c));
        let Some(deletion) = recipient.deletion.as_ref().filter(|_| received) else { continue };
        let (channel, delivery_id) = match deletion {
            Deletion::Webhook(_) => ("webhook", Some(webhook(state, r, name, subject).await?)),
            Deletion::Manual(_) => ("manual", None),
        };
        tasks.push(ProcessorTask {
            request_id: r.id.clone(),
            recipient: name.clone(),
            channel: channel.into(),
            delivery_id,
            status: "pending".into(),
            due_at_us: now + window * 3_600_000_000,
            updated_at_us: now,
            escalated_at_us: None,
        });
    }
    state.store.add_processor_tasks(&tasks).await?;
    Ok(tasks)
}

/// Queues the signed erasure webhook to `recipient`; the delivery's id. The person is
/// named by charter's opaque subject id, never by an identifier.
async fn webhook(state: &AppState, r: &Request, recipient: &str, subject: &str) -> Result<String, ApiError> {
    let message = charter_delivery::Message::Webhook(charter_delivery::Webhook {
        recipient: recipient.to_owned(),
        event: "erasure.requested".into(),
        data: json!({ "request": r.id, "subject": subject, "callback": format!("/v1/processors/{recipient}/callback") }),
    });
    let job = charter_delivery::Enqueue {
        kind: "webhook.erasure",
        idempotency_key: format!("erasure:{}:{recipient}", r.id),
        message: &message,
        seal: charter_delivery::Seal::KeyFile,
        max_attempts: None,
    };
    let (id, _) = charter_delivery::enqueue(&state.store, &*state.keys, job, charter_store::now_us())
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("cannot queue an erasure webhook")))?;
    Ok(id)
}

/// Signs `body` with the data directory's checkpoint key and keeps it.
pub async fn certify(state: &AppState, request_id: &str, body: &Value) -> Result<(), ApiError> {
    let text = body.to_string();
    let signer = state.keys.checkpoint_signer();
    let c = Certificate {
        id: uuid::Uuid::new_v4().to_string(),
        request_id: request_id.to_owned(),
        signature: hex::encode(signer.sign(text.as_bytes())),
        body: text,
        issued_at_us: charter_store::now_us(),
    };
    state.store.insert_certificate(&c).await?;
    Ok(())
}

/// A certificate as a file `charter verify` checks: its body as signed, the signature and
/// the public key it verifies with.
pub fn certificate_file(state: &AppState, c: &Certificate) -> Value {
    json!({
        "signed": c.body,
        "signature": c.signature,
        "public_key": state.keys.checkpoint_signer().public_key_hex(),
    })
}
