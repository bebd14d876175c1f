//! Purpose-bound reads: `GET /v1/subjects/{id}/data?purpose=P[&fields=a,b]` and
//! `GET /v1/subjects/lookup?email=...&purpose=P`. Every field is decided by
//! `charter_core::access`; any refusal returns no data at all. Reads, denials
//! and the disclosures a read implies are in the audit chain before any data leaves.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::Router;
use charter_core::access::{self, Denial, FieldRef};
use charter_core::audit::AuditEvent;
use charter_policy::model::FieldType;
use charter_store::api_keys::ApiKey;
use charter_store::vault::ReadView;
use charter_vault::Personal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Caller, Path, Query};
use crate::routes::records::{Decision, Paging};
use crate::state::AppState;
use crate::subject::{self, unwrap_key, SubjectId, SubjectSelector};

/// `/v1/subjects/...`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/subjects/lookup", get(lookup)).route("/v1/subjects/{id}/data", get(read))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    purpose: Option<String>,
    fields: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    point: Option<String>,
}

async fn read(
    State(state): State<AppState>,
    Caller(key): Caller,
    id: Result<Path<String>, ApiError>,
    q: Result<Query<ReadQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let asked = asked_purpose(&q, |q| &q.purpose);
    let answer = async {
        let (Path(id), Query(q)) = (id?, q?);
        let purpose = require_purpose(&state, q.purpose)?;
        let id = SubjectId::parse(&id);
        require_key_purpose(&state, &key, &purpose, id.as_ref().ok()).await?;
        let paging = Paging::parse(&state, q.limit.as_deref(), q.cursor.as_deref(), q.point)?;
        let view = read_view(&state, &id?, &purpose).await?;
        read_subject(&state, &key, view, purpose, q.fields, paging).await
    };
    read_refused(&state, &key, asked, answer.await).await
}

/// The purpose a read's query names, if it could be parsed.
pub(crate) fn asked_purpose<Q>(q: &Result<Query<Q>, ApiError>, purpose: fn(&Q) -> &Option<String>) -> Option<String> {
    q.as_ref().ok().and_then(|Query(q)| purpose(q).clone())
}

/// Gives back a read's answer, first recording it in the audit chain when it is a refusal
/// not recorded yet (a query that does not parse, a missing or unknown purpose, a subject
/// that cannot be named or found, an unknown object): a `data.denied` entry whose result
/// is the refusal's code. It names the purpose only when the policy declares it, and no
/// subject, since the one asked for was not found or not named.
pub(crate) async fn read_refused(
    state: &AppState,
    key: &ApiKey,
    purpose: Option<String>,
    answer: Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let error = match answer {
        Err(e) if e.refusal_code().is_some() => e,
        other => return other,
    };
    let code = error.refusal_code().unwrap_or_default();
    let mut entry = AuditEvent::new(&key.name, "data.denied", code);
    entry.purpose = purpose.filter(|p| state.policy().policy.purposes.contains_key(p));
    audit(state, vec![entry]).await?;
    Err(error)
}

/// Refuses (403, audited) a key that does not hold `purpose`. It runs before any subject
/// is looked up, so the refusal is the same whether or not the subject exists: a key
/// cannot probe who is a subject through purposes it does not hold. The entry names the
/// subject id the caller asked for, when it gave a well-formed one.
pub(crate) async fn require_key_purpose(
    state: &AppState,
    key: &ApiKey,
    purpose: &str,
    asked: Option<&SubjectId>,
) -> Result<(), ApiError> {
    if key.purposes.iter().any(|p| p == purpose) {
        return Ok(());
    }
    let asked = asked.map(SubjectId::as_str);
    let denial = Denial::PurposeNotGrantedToKey.code();
    audit(state, vec![event(key, asked, purpose, "data.denied", denial, &json!({}))]).await?;
    Err(ApiError::Forbidden {
        code: "purpose_not_granted_to_key",
        message: format!("API key `{}` may not read for `{purpose}`", key.name),
    }
    .recorded())
}

/// A subject (by its opaque id in normal form, see [`subject_id`]) with what a read for
/// `purpose` needs; an unknown id is 404.
pub(crate) async fn read_view(state: &AppState, id: &SubjectId, purpose: &str) -> Result<ReadView, ApiError> {
    state.store.subject_for_read(id.as_str(), purpose).await?.ok_or_else(subject::unknown_subject)
}

/// The read's purpose: present and in the policy.
pub(crate) fn require_purpose(state: &AppState, purpose: Option<String>) -> Result<String, ApiError> {
    let purpose = purpose.ok_or_else(|| ApiError::BadRequest {
        code: "missing_purpose",
        message: "name the purpose of this read: ?purpose=...".into(),
    })?;
    if !state.policy().policy.purposes.contains_key(&purpose) {
        return Err(ApiError::BadRequest {
            code: "unknown_purpose",
            message: "no purpose of that name is in the policy".into(),
        });
    }
    Ok(purpose)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupQuery {
    purpose: Option<String>,
    fields: Option<String>,
    email: Option<Personal<String>>,
    phone: Option<Personal<String>>,
    external_id: Option<Personal<String>>,
    limit: Option<String>,
    cursor: Option<String>,
    point: Option<String>,
}

async fn lookup(
    State(state): State<AppState>,
    Caller(key): Caller,
    q: Result<Query<LookupQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let asked = asked_purpose(&q, |q| &q.purpose);
    let answer = async {
        let Query(q) = q?;
        let selector = SubjectSelector::from_parts(q.email, q.phone, q.external_id, None);
        let identifier = selector.identifier(&state)?;
        let purpose = require_purpose(&state, q.purpose)?;
        require_key_purpose(&state, &key, &purpose, None).await?;
        let paging = Paging::parse(&state, q.limit.as_deref(), q.cursor.as_deref(), q.point)?;
        let found = subject::named(&state, &identifier).await?;
        let view = read_view(&state, &SubjectId::of(&found), &purpose).await?;
        read_subject(&state, &key, view, purpose, q.fields, paging).await
    };
    read_refused(&state, &key, asked, answer.await).await
}

/// A subject's event for `purpose`, its detail serialised straight from `detail`.
pub(crate) fn event(
    key: &ApiKey,
    subject: Option<&str>,
    purpose: &str,
    action: &str,
    result: &str,
    detail: &impl Serialize,
) -> AuditEvent {
    let mut e = AuditEvent::new(&key.name, action, result);
    // Names and codes only: serialising them cannot fail.
    e.detail = serde_json::to_string(detail).unwrap_or_else(|_| "{\"detail\":\"unserialisable\"}".to_owned());
    e.subject = subject.map(str::to_owned);
    e.purpose = Some(purpose.to_owned());
    e
}

/// Appends a request's events together, before any data leaves.
pub(crate) async fn audit(state: &AppState, events: Vec<AuditEvent>) -> Result<(), ApiError> {
    state.audit.append_all(events).await?;
    Ok(())
}

fn field_kind(state: &AppState, point: &str, field: &str) -> FieldType {
    state
        .policy()
        .policy
        .collection_points
        .get(point)
        .and_then(|p| p.fields.get(field))
        .map_or(FieldType::String, |f| f.kind)
}

/// An opened value as JSON, typed as field `field` of `point` declares it.
pub(crate) fn typed_value(state: &AppState, point: &str, field: &str, plain: Vec<u8>) -> Result<Value, ApiError> {
    let text =
        String::from_utf8(plain).map_err(|_| ApiError::Internal(anyhow::anyhow!("a sealed field is not UTF-8")))?;
    Ok(match field_kind(state, point, field) {
        FieldType::Integer => text.parse::<i64>().map_or(Value::String(text), Value::from),
        FieldType::Boolean | FieldType::AgeAttestation => Value::Bool(text == "true"),
        _ => Value::String(text),
    })
}

/// A read of a subject for `purpose`: its profile fields (any refusal returns no data) and
/// a page of its records (those it may not read withheld), in the audit chain before
/// anything leaves.
async fn read_subject(
    state: &AppState,
    key: &ApiKey,
    view: ReadView,
    purpose: String,
    fields: Option<String>,
    paging: Paging,
) -> Result<Response, ApiError> {
    let policy = &state.policy().policy;
    let p = &policy.purposes[&purpose];
    let (subject, stored) = (&view.subject, &view.fields);
    let requested: Option<Vec<&str>> = fields.as_deref().map(|f| f.split(',').filter(|s| !s.is_empty()).collect());
    let candidates: Vec<_> = match &requested {
        Some(names) => stored.iter().filter(|f| names.contains(&f.field.as_str())).collect(),
        None => stored.iter().filter(|f| p.categories.contains(&f.category)).collect(),
    };
    let subject_state = view.state(&purpose);
    let decision = Decision {
        state,
        key,
        purpose: &purpose,
        subject: &subject_state,
        requested: requested.as_deref(),
        now_us: charter_store::now_us(),
    };
    refuse_profile(&decision, &subject.id, &candidates).await?;
    let page = decision.page(&subject.id, &paging).await?;
    // A password is kept only as a salted hash: no read returns it, or discloses it.
    let (candidates, hashed): (Vec<_>, Vec<_>) =
        candidates.into_iter().partition(|f| !state.policy().is_password(&f.field));
    let hashed: Vec<&str> = hashed.iter().map(|f| f.field.as_str()).collect();
    let data_key = unwrap_key(state, subject)?;
    // In field order, as the store gives the fields.
    let mut out = Vec::with_capacity(candidates.len());
    for f in &candidates {
        let plain = crate::subject::open_value(&data_key, &subject.id, f)?;
        out.push((f.field.as_str(), typed_value(state, &f.point, &f.field, plain)?));
    }
    let records = page.open(state, &data_key, &subject.id)?;
    let names: Vec<&str> = candidates.iter().map(|f| f.field.as_str()).collect();
    let detail = json!({ "fields": names, "records": page.ids(), "withheld": page.withheld() });
    let mut events = vec![event(key, Some(&subject.id), &purpose, "data.read", "ok", &detail)];
    let categories = candidates.iter().map(|f| f.category.as_str()).chain(page.categories());
    disclosures(policy, key, &subject.id, &purpose, categories, &mut events);
    audit(state, events).await?;
    // Names asked for and not returned: those the policy declares are listed; the others,
    // which the caller chose and could be anything, are only counted.
    let in_records = |n: &str| records.iter().any(|r| r["fields"].get(n).is_some());
    let (missing, undeclared): (Vec<&str>, Vec<&str>) = requested
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !names.contains(n) && !hashed.contains(n) && !in_records(n))
        .partition(|n| state.policy().declares_field(n));
    let answer = ReadAnswer {
        fields: Fields(&out),
        hashed,
        missing,
        undeclared: undeclared.len(),
        purpose: &purpose,
        records: &records,
        next_cursor: page.next(),
        subject_id: &subject.id,
        withheld: page.withheld(),
    };
    let body = serde_json::to_vec(&answer)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Refuses the read (403, audited, no data) when the purpose may not run for the subject at
/// all, or any profile field it is about is refused.
async fn refuse_profile(
    decision: &Decision<'_>,
    subject: &str,
    candidates: &[&charter_store::vault::StoredField],
) -> Result<(), ApiError> {
    let mut denied = BTreeMap::new();
    let policy = &decision.state.policy().policy;
    // A purpose that may not run for this subject (erased, restricted, objected to, without
    // consent) reads nothing of it: neither profile nor records.
    if let Err(d) = access::decide_purpose(policy, decision.purpose, &decision.key.purposes, decision.subject) {
        denied.insert("*".to_owned(), Value::from(d.code()));
    }
    for f in candidates {
        let r = FieldRef { name: &f.field, category: &f.category, collected_at_us: f.collected_at_us };
        if let Err(d) =
            access::decide(policy, decision.purpose, &decision.key.purposes, decision.subject, &r, decision.now_us)
        {
            denied.insert(f.field.clone(), Value::from(d.code()));
        }
    }
    if denied.is_empty() {
        return Ok(());
    }
    let detail = json!({ "fields": denied });
    audit(decision.state, vec![event(decision.key, Some(subject), decision.purpose, "data.denied", "denied", &detail)])
        .await?;
    Err(ApiError::Denied { fields: Value::Object(denied.into_iter().collect()) })
}

/// The disclosures a read for `purpose` of data in `categories` makes: one event per
/// recipient the policy shares that purpose with, naming the shared categories (one entry
/// per item read).
pub(crate) fn disclosures<'a>(
    policy: &charter_policy::model::Policy,
    key: &ApiKey,
    subject: &str,
    purpose: &str,
    categories: impl Iterator<Item = &'a str> + Clone,
    events: &mut Vec<AuditEvent>,
) {
    for (rkey, r) in &policy.recipients {
        if !r.purposes.iter().any(|p| p == purpose) {
            continue;
        }
        let shared: Vec<&str> = categories.clone().filter(|c| r.categories.iter().any(|rc| rc == c)).collect();
        if !shared.is_empty() {
            let detail = json!({ "recipient": rkey, "categories": shared });
            events.push(event(key, Some(subject), purpose, "data.disclose", "ok", &detail));
        }
    }
}

/// A read's answer, serialised from what the read holds rather than copied into a JSON tree.
/// Its keys are declared in alphabetical order, the order the answer has always had.
#[derive(Serialize)]
struct ReadAnswer<'a> {
    fields: Fields<'a>,
    hashed: Vec<&'a str>,
    missing: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero")]
    undeclared: usize,
    purpose: &'a str,
    records: &'a [Value],
    subject_id: &'a str,
    withheld: Value,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The opened values by field name, as a JSON object (field names are unique per
/// subject: they are the stored rows' key).
struct Fields<'a>(&'a [(&'a str, Value)]);

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}
