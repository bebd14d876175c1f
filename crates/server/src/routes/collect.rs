//! `POST /v1/collect/{point}`: data minimisation at the door. Only what the
//! policy declares for the point is accepted; a refused request stores nothing.

use axum::extract::{FromRequest as _, Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use charter_core::audit::AuditEvent;
use charter_core::collect::{self, Refusal};
use charter_core::consent::{self, Source, VisitorId, SALE_OR_SHARING};
use charter_policy::model::{FieldType, PointKind};
use charter_store::api_keys::ApiKey;
use charter_store::consents::NewConsent;
use charter_store::vault::{CollectError, CollectionWrite, FieldWrite, RecordField, RecordWrite, ValueMode, Written};
use charter_vault::{DataKey, Holder, IdentifierKind, KeyWrapper as _};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::{Caller, Json, Path};
use crate::routes::upload::{attach, Received};
use crate::sign_in::{Named, NotStarted};
use crate::state::{AppState, InForce};
use crate::subject::{self, unwrap_key, Identifier, SubjectId, SubjectSelector};

/// `/v1/collect/{point}`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/collect/{point}", post(collect))
}

/// A collection's JSON body: who it is about, the fields, the consents.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectBody {
    subject: SubjectSelector,
    #[serde(default)]
    fields: Map<String, Value>,
    #[serde(default)]
    consents: Map<String, Value>,
    /// The cookie banner's visitor id of the person, whose answers as a visitor then join
    /// the subject's.
    #[serde(default)]
    visitor: Option<String>,
}

/// Whether a request carries the Global Privacy Control signal (`Sec-GPC: 1` exactly).
pub(crate) fn gpc_on(headers: &axum::http::HeaderMap) -> bool {
    headers.get("sec-gpc").is_some_and(|v| v.as_bytes() == b"1")
}

/// Today's date in UTC as (year, month, day).
pub(crate) fn today_utc() -> (i32, u32, u32) {
    let days = charter_store::now_us().div_euclid(86_400_000_000);
    charter_core::time::civil_from_days(days)
}

/// Every refusal of a known key is in the audit chain: those [`accept`] records with their
/// details, and the rest (point, body, subject) by their code here. A
/// `multipart/form-data` request carries the JSON body and files together
/// ([`crate::routes::submission`]).
async fn collect(
    State(state): State<AppState>,
    Caller(key): Caller,
    point: Result<Path<String>, ApiError>,
    request: Request,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let point = match point {
        Ok(Path(point)) => point,
        Err(e) => return Err(refused(&state, &key, "", None, e).await),
    };
    // One policy throughout, even if a new version is published meanwhile.
    let policy = state.policy();
    let answer = match crate::routes::submission::boundary(request.headers()) {
        Some(boundary) => crate::routes::submission::receive(&state, &policy, &key, &point, boundary, request).await,
        None => {
            let gpc = gpc_on(request.headers());
            let body = Json::<CollectBody>::from_request(request, &state).await;
            accept(&state, &policy, &key, &point, body, gpc).await
        }
    };
    match answer {
        Err(e) => Err(refused(&state, &key, &point, None, e).await),
        created => created,
    }
}

async fn accept(
    state: &AppState,
    policy: &InForce,
    key: &ApiKey,
    point: &str,
    body: Result<Json<CollectBody>, ApiError>,
    gpc: bool,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let Json(body) = body?;
    let prepared = prepare(state, policy, key, point, &body, gpc).await?;
    store(state, key, point, &prepared, &[]).await
}

/// A collection checked and ready to store: what the point accepts of it, the identifier
/// that names its subject, and how the point keeps it.
pub(crate) struct Prepared<'p> {
    accepted: collect::Collection<'p>,
    identifier: Identifier,
    keeping: Keeping<'p>,
    /// The banner's visitor the person was, whose answers join theirs.
    visitor: Option<VisitorId>,
    /// The request carried the Global Privacy Control signal: an opt-out of sale and sharing.
    gpc: bool,
}

/// Checks a collection's body at `point` for `key`: nothing is stored yet.
pub(crate) async fn prepare<'p>(
    state: &AppState,
    policy: &'p InForce,
    key: &ApiKey,
    point: &str,
    body: &CollectBody,
    gpc: bool,
) -> Result<Prepared<'p>, ApiError> {
    point_for_key(state, key, point)?;
    let visitor = match body.visitor.as_deref().map(VisitorId::parse) {
        Some(None) => return Err(bad_visitor()),
        parsed => parsed.flatten(),
    };
    let accepted = checked(state, policy, key, point, body).await?;
    let identifier = body.subject.identifier(state)?;
    let keeping = keeping(state, policy, point, &accepted, &identifier)?;
    Ok(Prepared { accepted, identifier, keeping, visitor, gpc })
}

fn bad_visitor() -> ApiError {
    ApiError::Unprocessable {
        code: "bad_visitor",
        message: "visitor is the 32 lowercase hex digits the cookie banner made".into(),
        details: Value::Null,
    }
}

/// After a collection is stored: the visitor's answers join the subject's, and a Global
/// Privacy Control signal records an opt-out of sale and sharing unless one is in force.
async fn after_stored(state: &AppState, key: &ApiKey, subject: &str, prepared: &Prepared<'_>) -> Result<(), ApiError> {
    if let Some(visitor) = &prepared.visitor {
        let joined = state.store.join_visitor(visitor.as_str(), subject).await?;
        if joined > 0 {
            let mut e = AuditEvent::new(&key.name, "consent.joined", "ok").with_detail(&json!({ "answers": joined }));
            e.subject = Some(subject.to_owned());
            state.audit.append(e).await?;
        }
    }
    if !prepared.gpc {
        return Ok(());
    }
    let history = state.store.subject_consents(subject).await?;
    let now = consent::fold(history.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)));
    if now.get(SALE_OR_SHARING) == Some(&false) {
        return Ok(());
    }
    let row = NewConsent {
        subject_id: Some(subject.to_owned()),
        ..crate::routes::consents::answer(state, SALE_OR_SHARING, false, Source::Gpc)
    };
    if state.store.append_consents(&[row]).await? {
        let mut e = AuditEvent::new(&key.name, "consent.recorded", "ok")
            .with_detail(&json!({ "source": "gpc", "answers": { SALE_OR_SHARING: false } }));
        e.subject = Some(subject.to_owned());
        state.audit.append(e).await?;
    }
    Ok(())
}

/// Stores a prepared collection, with `files` already received and sealed: all of it in
/// one write, or nothing.
pub(crate) async fn store(
    state: &AppState,
    key: &ApiKey,
    point: &str,
    prepared: &Prepared<'_>,
    files: &[Received],
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let Prepared { accepted, identifier, keeping, .. } = prepared;
    let blind = match identifier {
        Identifier::Named { normal, blind, .. } => Some((normal.kind(), *blind)),
        Identifier::Id(_) => None,
    };
    // Collections can race: for a new person (the loser finds the winner's subject on its
    // next pass), to set a password (the loser checks against the winner's), or with an
    // erasure (the next pass finds the person gone).
    for _ in 0..3 {
        let subject = resolve(state, identifier).await?;
        let who = match &blind {
            Some((kind, blind)) => Named::Blind(kind.as_str(), *blind),
            None => Named::Id(subject.id.clone()),
        };
        let values = passwords(state, key, point, &subject, &who, &accepted.fields).await?;
        let mut write = collection_write(&subject, blind.as_ref(), keeping, point, accepted, &values);
        let record_id = write.record.as_ref().map(|r| r.id.clone());
        write.objects = attach(&subject, record_id.as_deref(), files);
        match write_with_entry(state, key, point, accepted, write, files).await? {
            Ok(written) => {
                after_stored(state, key, &subject.id, prepared).await?;
                return Ok((StatusCode::CREATED, axum::Json(created(&subject.id, record_id, written))));
            }
            Err(CollectError::IdentifierRace | CollectError::AlreadySet | CollectError::Erased) => continue,
            Err(CollectError::IdentifierTaken(kind)) => return Err(identifier_taken(kind)),
            Err(e @ (CollectError::KekRetired(_) | CollectError::Db(_))) => return Err(e.into()),
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!("collection kept racing for the same identifier")))
}

/// The answer to a stored collection: the subject, the record a record point added, and
/// the fields a profile point left as they were.
fn created(subject: &str, record_id: Option<String>, written: Written) -> Value {
    let mut answer = json!({ "subject_id": subject });
    if let Some(id) = record_id {
        answer["record_id"] = Value::from(id);
    }
    if !written.kept.is_empty() {
        answer["kept"] = Value::from(written.kept);
    }
    answer
}

/// The refusal of an identifier field that names another subject.
fn identifier_taken(kind: &str) -> ApiError {
    ApiError::Conflict {
        code: "identifier_in_use",
        message: format!("the {} given names another subject", kind.replace('_', " ")),
    }
}

/// What a point keeps of a collection, settled once before it is written.
struct Keeping<'p> {
    /// Profile or record; `None` where nothing is stored (a sign-in).
    kind: Option<PointKind>,
    /// The profile fields a collection here may change once they hold a value.
    updates: &'p [String],
    /// The blind index of each identifier field (email, phone) a profile point keeps.
    indexes: Vec<(&'p str, (&'static str, [u8; 32]))>,
}

/// What `point` keeps of `accepted`. At a profile point an identifier field is indexed, so
/// it finds its subject, and may not disagree with the identifier the request names the
/// subject by, unless the point updates that field (a change of address): 422
/// `selector_mismatch` otherwise.
fn keeping<'p>(
    state: &AppState,
    policy: &'p InForce,
    point: &str,
    accepted: &collect::Collection<'p>,
    identifier: &Identifier,
) -> Result<Keeping<'p>, ApiError> {
    let decl = &policy.policy.collection_points[point];
    let kind = if decl.is_sign_in() { None } else { decl.kind };
    let mut indexes = Vec::new();
    if kind == Some(PointKind::Profile) {
        for f in &accepted.fields {
            let id_kind = match f.kind {
                FieldType::Email => IdentifierKind::Email,
                FieldType::Phone => IdentifierKind::Phone,
                _ => continue,
            };
            let normal = state
                .identifiers
                .normalise(id_kind, &f.value)
                .map_err(|_| ApiError::Internal(anyhow::anyhow!("an accepted identifier has no normal form")))?;
            let differs = matches!(identifier, Identifier::Named { normal: by, .. }
                if by.kind() == id_kind && by.expose() != normal.expose());
            if differs && !decl.updates.iter().any(|u| u == f.field) {
                return Err(selector_mismatch(f.field));
            }
            indexes.push((f.field, (id_kind.as_str(), state.keys.blind_indexer().index(&normal))));
        }
    }
    Ok(Keeping { kind, updates: &decl.updates, indexes })
}

fn selector_mismatch(field: &str) -> ApiError {
    ApiError::Unprocessable {
        code: "selector_mismatch",
        message: format!(
            "field `{field}` differs from the identifier that names the subject; name the subject by its id to change it where the point allows"
        ),
        details: json!([{ "code": "selector_mismatch", "field": field }]),
    }
}

/// What the point accepts of the body (`core::collect::check`); a refusal is recorded in
/// the audit chain with its details and answered with every refusal.
async fn checked<'p>(
    state: &AppState,
    in_force: &'p InForce,
    key: &ApiKey,
    point: &str,
    body: &CollectBody,
) -> Result<collect::Collection<'p>, ApiError> {
    let policy = &in_force.policy;
    let refusals = match collect::check(policy, &state.identifiers, point, &body.fields, &body.consents, today_utc()) {
        Ok(c) => return Ok(c),
        Err(refusals) => refusals,
    };
    let audited = Refusal::audit_details(&refusals, policy);
    let event = AuditEvent::new(&key.name, "data.collect", "refused")
        .with_detail(&json!({ "point": point, "refusals": audited }));
    state.audit.append(event).await?;
    // Each refusal as the chain has it: names the policy declares, never the caller's own.
    let codes: Vec<Value> = refusals.iter().map(|r| r.audit_detail(policy)).collect();
    let first = &refusals[0];
    Err(ApiError::Unprocessable { code: first.code(), message: first.message(policy), details: Value::Array(codes) }
        .recorded())
}

/// The subject a collection is for: found, or new (with a fresh data key, wrapped).
pub(crate) struct Resolved {
    pub(crate) id: String,
    pub(crate) data_key: DataKey,
    pub(crate) new_wrapped: Option<charter_vault::WrappedKey>,
    /// The identifier that names it, as (kind, blind index), to index a new subject by.
    pub(crate) identifier: Option<(&'static str, [u8; 32])>,
}

/// The subject `identifier` names: found, or (named by an identifier) a new one.
pub(crate) async fn resolve(state: &AppState, identifier: &Identifier) -> Result<Resolved, ApiError> {
    let index = match identifier {
        Identifier::Named { normal, blind, .. } => Some((normal.kind().as_str(), *blind)),
        Identifier::Id(_) => None,
    };
    Ok(match subject::find(state, identifier).await? {
        Some(s) => Resolved { data_key: unwrap_key(state, &s)?, id: s.id, new_wrapped: None, identifier: index },
        None => {
            let id = SubjectId::generate();
            let data_key = DataKey::generate();
            let new_wrapped = Some(state.keys.wrap(id.as_str(), &data_key));
            Resolved { id: id.as_str().to_owned(), data_key, new_wrapped, identifier: index }
        }
    })
}

/// What to store of each field once the passwords are settled ([`settle_passwords`]),
/// each check an attempt for the name the request gives (P33), throttled; a refused
/// password is recorded in the audit chain and answered 422.
async fn passwords(
    state: &AppState,
    key: &ApiKey,
    point: &str,
    subject: &Resolved,
    who: &Named,
    fields: &[collect::Accepted<'_>],
) -> Result<Vec<Stored>, ApiError> {
    let exists = subject.new_wrapped.is_none();
    // A sign-in always checks (against a fixed hash for someone never stored); setting a
    // password checks only when the subject exists, since a new one has none to match.
    let checks = fields.iter().any(|f| f.kind == FieldType::Password && (f.verify || exists));
    if !checks {
        return settle_passwords(state, &subject.id, &subject.data_key, exists, fields)
            .await?
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a new subject's password was refused")));
    }
    let attempt = match state.sign_ins.begin(who).await {
        Ok(a) => a,
        Err(NotStarted::Refused(wait)) => return Err(too_many_attempts(wait)),
        Err(NotStarted::Db(e)) => return Err(ApiError::Internal(e)),
    };
    let settled = settle_passwords(state, &subject.id, &subject.data_key, exists, fields).await;
    let (code, field) = match settled {
        Ok(Ok(values)) => {
            attempt.matched().await?;
            return Ok(values);
        }
        Ok(Err(refused)) => {
            attempt.failed().await?;
            refused
        }
        Err(e) => {
            attempt.abandoned().await?;
            return Err(e);
        }
    };
    let refusal = json!({ "code": code, "field": field });
    let mut event = AuditEvent::new(&key.name, "data.collect", "refused")
        .with_detail(&json!({ "point": point, "refusals": [refusal.clone()] }));
    // A refused sign-in names the subject it was for, so guessing shows in the chain.
    event.subject = exists.then(|| subject.id.clone());
    state.audit.append(event).await?;
    let message = match code {
        "verification_failed" => format!("field `{field}` does not match what is stored for this subject"),
        _ => format!(
            "field `{field}` is already set for this subject, to another value; change it where the current one is verified"
        ),
    };
    Err(ApiError::Unprocessable { code, message, details: Value::Array(vec![refusal]) }.recorded())
}

/// Everything the collection writes: at a profile point its values, each sealed under a
/// key of its own; at a record point a record, its fields sealed under the record's key;
/// anywhere a password being set (a profile value); and the consents. A sign-in stores
/// nothing of its fields.
fn collection_write(
    subject: &Resolved,
    blind: Option<&(IdentifierKind, [u8; 32])>,
    keeping: &Keeping<'_>,
    point: &str,
    accepted: &collect::Collection<'_>,
    values: &[Stored],
) -> CollectionWrite {
    let record = (keeping.kind == Some(PointKind::Record)).then(|| (SubjectId::generate(), DataKey::generate()));
    let mut profile = Vec::new();
    let mut record_fields = Vec::new();
    for (f, stored) in accepted.fields.iter().zip(values) {
        let (value, mode) = match stored {
            Stored::AsGiven if keeping.updates.iter().any(|u| u == f.field) => (&f.value, ValueMode::Replace),
            Stored::AsGiven => (&f.value, ValueMode::Fill),
            // A password is set only where none is: one set meanwhile by a concurrent
            // collection refuses this write, and the next pass checks against it.
            Stored::Hash(hash) => (hash, ValueMode::IfUnset),
            Stored::Nothing => continue,
        };
        match (&record, mode) {
            (Some((id, key)), ValueMode::Fill | ValueMode::Replace) => record_fields.push(RecordField {
                field: f.field.to_owned(),
                category: f.category.to_owned(),
                sealed: key.fields().seal_in_record(&subject.id, id.as_str(), f.field, f.category, value.as_bytes()),
            }),
            _ if keeping.kind.is_none() && mode != ValueMode::IfUnset => {}
            _ => profile.push(profile_value(subject, keeping, f, value, mode)),
        }
    }
    CollectionWrite {
        subject_id: subject.id.clone(),
        new_subject: subject.new_wrapped.clone(),
        identifier: blind.map(|(kind, b)| (kind.as_str(), *b)),
        point: point.to_owned(),
        profile,
        record: record.map(|(id, key)| RecordWrite {
            wrapped_key: subject.data_key.wrap_own(&subject.id, Holder::Record(id.as_str()), &key),
            id: id.as_str().to_owned(),
            fields: record_fields,
        }),
        consents: accepted.consents.iter().map(|(p, g)| ((*p).to_owned(), *g)).collect(),
        objects: Vec::new(),
        at_us: charter_store::now_us(),
    }
}

/// One profile value, sealed under a key of its own that the subject's key wraps.
fn profile_value(
    subject: &Resolved,
    keeping: &Keeping<'_>,
    f: &collect::Accepted<'_>,
    value: &str,
    mode: ValueMode,
) -> FieldWrite {
    let own = DataKey::generate();
    FieldWrite {
        field: f.field.to_owned(),
        category: f.category.to_owned(),
        sealed: own.seal_field(&subject.id, f.field, f.category, value.as_bytes()),
        wrapped_key: subject.data_key.wrap_own(&subject.id, Holder::Value(f.field), &own),
        mode,
        index: keeping.indexes.iter().find(|(name, _)| *name == f.field).map(|(_, index)| *index),
    }
}

/// Writes the collection after its `data.collect` entry ([`entry_then_write`]).
async fn write_with_entry(
    state: &AppState,
    key: &ApiKey,
    point: &str,
    accepted: &collect::Collection<'_>,
    write: CollectionWrite,
    files: &[Received],
) -> Result<Result<Written, CollectError>, ApiError> {
    let named = |verified: bool| -> Vec<&str> {
        accepted.fields.iter().filter(|f| f.verify == verified).map(|f| f.field).collect()
    };
    let (names, verified) = (named(false), named(true));
    let consents: Vec<Value> = accepted.consents.iter().map(|(p, g)| json!({ "purpose": p, "given": g })).collect();
    let mut detail = json!({
        "point": point, "fields": names, "verified": verified, "consents": consents,
        "new_subject": write.new_subject.is_some(), "record": write.record.as_ref().map(|r| r.id.as_str())
    });
    if !files.is_empty() {
        detail["files"] = files.iter().map(Received::entry).collect();
    }
    let mut event = AuditEvent::new(&key.name, "data.collect", "ok").with_detail(&detail);
    event.subject = Some(write.subject_id.clone());
    let store = state.store.clone();
    let written = async move { store.write_collection(&write).await };
    let reason = |e: &CollectError| match e {
        CollectError::IdentifierRace => "identifier_race",
        CollectError::AlreadySet => "password_race",
        CollectError::Erased => "subject_erased",
        CollectError::IdentifierTaken(_) => "identifier_in_use",
        CollectError::KekRetired(_) => "kek_retired",
        CollectError::Db(_) => "database_error",
    };
    entry_then_write(state, event, point, written, reason, std::future::ready(())).await
}

/// Appends `entry` (a collection's `data.collect` entry), then runs `write`; when the write
/// fails, appends a `failed` entry naming the first and `reason(error)`. The entry is in
/// the chain before the data is stored (as a read's is before data leaves), so a failure or
/// crash in between leaves an entry for a collection that did not happen, never stored
/// personal data without its entry. The steps run in a task of their own, which a client
/// going away does not cancel, so they are never split. When the entry itself cannot be
/// appended, `write` never runs and `unrecorded` does (to undo what the caller prepared).
pub(crate) async fn entry_then_write<T, E>(
    state: &AppState,
    entry: AuditEvent,
    point: &str,
    write: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
    reason: fn(&E) -> &'static str,
    unrecorded: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Result<T, E>, ApiError>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (state, point) = (state.clone(), point.to_owned());
    let task = tokio::spawn(async move {
        let (actor, subject) = (entry.actor.clone(), entry.subject.clone());
        let seq = match state.audit.append(entry).await {
            Ok(seq) => seq,
            Err(e) => {
                unrecorded.await;
                return Err(ApiError::Internal(e.into()));
            }
        };
        let outcome = write.await;
        if let Some((why, error)) = outcome.as_ref().err().map(|e| (reason(e), e.to_string())) {
            let mut failed = AuditEvent::new(actor, "data.collect", "failed")
                .with_detail(&json!({ "point": point, "entry": seq, "reason": why }));
            failed.subject = subject;
            if let Err(audit) = state.audit.append(failed).await {
                tracing::error!(%error, "a collection's write failed");
                return Err(ApiError::Internal(audit.into()));
            }
        }
        Ok(outcome)
    });
    task.await.map_err(|e| ApiError::Internal(anyhow::anyhow!("a collection's task failed: {e}")))?
}

/// The point must be in the policy (404) and the key must hold it (403).
pub(crate) fn point_for_key(state: &AppState, key: &ApiKey, point: &str) -> Result<(), ApiError> {
    if !state.policy().policy.collection_points.contains_key(point) {
        return Err(ApiError::Missing {
            code: "unknown_point",
            message: "no collection point of that name is in the policy".into(),
        });
    }
    if !key.points.iter().any(|p| p == point) {
        return Err(ApiError::Forbidden {
            code: "point_not_granted_to_key",
            message: format!("API key `{}` may not collect at `{point}`", key.name),
        });
    }
    Ok(())
}

/// Records a refused collection in the audit chain and gives back the refusal. The entry
/// names the point and field only when the policy declares them (for that point): a name
/// the caller chose could be anything, personal data included.
pub(crate) async fn refused(
    state: &AppState,
    key: &ApiKey,
    point: &str,
    field: Option<&str>,
    error: ApiError,
) -> ApiError {
    let Some(code) = error.refusal_code() else { return error };
    let in_force = state.policy();
    let declared = in_force.policy.collection_points.get(point);
    let field = field.filter(|f| declared.is_some_and(|p| p.fields.contains_key(*f)));
    let refusal = json!({ "code": code, "field": field });
    let event = AuditEvent::new(&key.name, "data.collect", "refused")
        .with_detail(&json!({ "point": declared.map(|_| point), "refusals": [refusal] }));
    match state.audit.append(event).await {
        Ok(_) => error,
        Err(e) => ApiError::Internal(e.into()),
    }
}

/// The refusal of a password check for someone whose attempts are used up, asking to wait
/// `wait`, in whole seconds rounded up.
fn too_many_attempts(wait: std::time::Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::TooManyAttempts {
        message: format!("too many failed password checks for this name; try again in {secs} s"),
        retry_after_s: secs,
    }
}

/// What a collection stores of one field.
enum Stored {
    /// The value as given.
    AsGiven,
    /// A password's salted hash.
    Hash(String),
    /// Nothing: a verified password.
    Nothing,
}

/// What to store of each field, in field order, once the subject is known. A password is
/// kept only as its salted argon2id hash:
/// - a verified one (`verify = true`, a sign-in) must match the stored hash and is never
///   stored;
/// - one being set is hashed when the subject has none; when it has one, the same
///   password leaves it as it is (a repeated sign-up) and another is refused, so a
///   collection cannot take over someone's password.
///
/// Every check runs argon2 (against a fixed hash when nothing is stored), so how long a
/// refusal takes does not tell whether the person exists. `Err((code, field))` refuses.
async fn settle_passwords<'f>(
    state: &AppState,
    subject: &str,
    data_key: &DataKey,
    exists: bool,
    fields: &[charter_core::collect::Accepted<'f>],
) -> Result<Result<Vec<Stored>, (&'static str, &'f str)>, ApiError> {
    let mut values = Vec::with_capacity(fields.len());
    for f in fields {
        if f.kind != FieldType::Password {
            values.push(Stored::AsGiven);
            continue;
        }
        let stored = if exists { stored_hash(state, subject, data_key, f.field).await? } else { None };
        let given = f.value.clone();
        let value = match (f.verify, stored) {
            // Setting a password the subject does not have yet.
            (false, None) => Stored::Hash(on_hashing_thread(move || charter_vault::hash_password(&given)).await?),
            // Checking one (a sign-in, or setting it again): against a fixed hash when
            // none is stored, so the refusal takes as long either way.
            (verify, stored) => {
                let had_one = stored.is_some();
                let matches = on_hashing_thread(move || {
                    let against = stored.as_deref().unwrap_or(&NO_HASH);
                    charter_vault::check_password(&given, against).map(|m| m && had_one)
                })
                .await??;
                match (verify, matches) {
                    (_, true) => Stored::Nothing,
                    (true, false) => return Ok(Err(("verification_failed", f.field))),
                    (false, false) => return Ok(Err(("password_already_set", f.field))),
                }
            }
        };
        values.push(value);
    }
    Ok(Ok(values))
}

/// A fixed hash, with the same settings as real ones, to check against when nothing is stored.
static NO_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| charter_vault::hash_password("charter: no password is stored"));

/// The subject's stored hash for password field `field`, if any.
async fn stored_hash(
    state: &AppState,
    subject: &str,
    data_key: &DataKey,
    field: &str,
) -> Result<Option<String>, ApiError> {
    let Some(stored) = state.store.field_value(subject, field).await? else {
        return Ok(None);
    };
    let hash = crate::subject::open_value(data_key, subject, &stored)?;
    let hash = String::from_utf8(hash)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("a stored password hash is malformed: not UTF-8")))?;
    Ok(Some(hash))
}

/// Runs password hashing or verification on a blocking thread, holding one of one-per-core
/// turns until it is done. argon2id takes about 20 ms of one core and 19 MiB of memory per
/// password by design; the rest wait their turn rather than pile threads and memory onto
/// the blocking pool. The turn moves with the work, so a caller that goes away does not
/// free it early.
async fn on_hashing_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    static PERMITS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let permit = crate::state::per_core_permits(&PERMITS, 1)
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing is closed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let out = work();
        drop(permit);
        out
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
}
