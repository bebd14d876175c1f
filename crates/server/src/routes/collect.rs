//! `POST /v1/collect/{point}`: data minimisation at the door. Only what the
//! policy declares for the point is accepted; a refused request stores nothing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use charter_core::audit::AuditEvent;
use charter_core::collect::{self, Refusal};
use charter_policy::model::FieldType;
use charter_store::vault::{CollectError, CollectionWrite, SubjectRecord};
use charter_vault::{DataKey, IdentifierKind, KeyWrapper as _};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::{Caller, Json};
use crate::routes::subjects::{subject_from_id, SubjectSelector};
use crate::state::AppState;

/// `/v1/collect/{point}`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/collect/{point}", post(collect))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectBody {
    subject: SubjectSelector,
    #[serde(default)]
    fields: Map<String, Value>,
    #[serde(default)]
    consents: Map<String, Value>,
}

/// Today's date in UTC as (year, month, day).
pub(crate) fn today_utc() -> (i32, u32, u32) {
    let days = charter_store::now_us().div_euclid(86_400_000_000);
    charter_core::time::civil_from_days(days)
}

async fn collect(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(point): Path<String>,
    Json(body): Json<CollectBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let policy = &state.policy.policy;
    if !policy.collection_points.contains_key(&point) {
        return Err(ApiError::Missing("unknown_point", format!("collection point `{point}` is not in the policy")));
    }
    if !key.points.contains(&point) {
        return Err(ApiError::Forbidden(
            "point_not_granted_to_key",
            format!("API key `{}` may not collect at `{point}`", key.name),
        ));
    }
    let accepted = match collect::check(policy, &point, &body.fields, &body.consents, today_utc()) {
        Ok(c) => c,
        Err(refusals) => {
            let codes: Vec<Value> = refusals.iter().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).collect();
            let event = AuditEvent::new(&key.name, "data.collect", "refused")
                .with_detail(&json!({ "point": point, "refusals": codes }));
            state.audit.append(event).await.map_err(|e| ApiError::Internal(e.into()))?;
            let first = refusals[0].clone();
            let code = match first {
                Refusal::UnknownPoint { .. } => "unknown_point",
                Refusal::UndeclaredField { .. } => "undeclared_field",
                Refusal::WrongType { .. } => "wrong_type",
                Refusal::TooLarge { .. } => "too_large",
                Refusal::MissingRequired { .. } => "missing_required",
                Refusal::FileField { .. } => "file_field",
                Refusal::ConsentNotAsked { .. } => "consent_not_asked",
                Refusal::ConsentNotBoolean { .. } => "consent_not_boolean",
                Refusal::UnderMinimumAge { .. } => "under_minimum_age",
            };
            return Err(ApiError::Unprocessable(code, first.message(), Value::Array(codes)));
        }
    };
    let values = stored_values(&accepted.fields).await?;
    let identifier = body.subject.identifier()?;
    let blind = match &identifier {
        Identifier::Raw(kind, value) => Some((*kind, state.keys.blind_indexer().index(*kind, value))),
        Identifier::Id(_) => None,
    };
    // Two collections for a new person can race; the loser finds the winner's subject on its second pass.
    for _ in 0..2 {
        let (subject, data_key, new_wrapped) = match (&identifier, &blind) {
            (Identifier::Id(id), _) => {
                let s = subject_from_id(&state, id).await?;
                let dk = unwrap_key(&state, &s)?;
                (s.id, dk, None)
            }
            (Identifier::Raw(..), None) => unreachable!("raw identifiers are always blind-indexed"),
            (Identifier::Raw(..), Some((kind, blind))) => {
                match state
                    .store
                    .subject_by_identifier(kind.as_str(), blind)
                    .await
                    .map_err(|e| ApiError::Internal(e.into()))?
                {
                    Some(s) => {
                        let dk = unwrap_key(&state, &s)?;
                        (s.id, dk, None)
                    }
                    None => {
                        let id = uuid::Uuid::new_v4().to_string();
                        let dk = DataKey::generate();
                        let wrapped = state.keys.wrap(&id, &dk);
                        (id, dk, Some(wrapped))
                    }
                }
            }
        };
        let cipher = data_key.fields();
        let fields = accepted
            .fields
            .iter()
            .zip(&values)
            .map(|(f, value)| (f.field, f.category, cipher.seal(&subject, f.field, f.category, value.as_bytes())))
            .collect();
        let write = CollectionWrite {
            subject_id: &subject,
            new_subject: new_wrapped.as_ref(),
            identifier: blind.as_ref().map(|(kind, b)| (kind.as_str(), *b)),
            point: &point,
            fields,
            consents: accepted.consents.clone(),
            at_us: charter_store::now_us(),
        };
        match state.store.write_collection(&write).await {
            Ok(()) => {
                let names: Vec<&str> = accepted.fields.iter().map(|f| f.field).collect();
                let consents: Vec<Value> =
                    accepted.consents.iter().map(|(p, g)| json!({ "purpose": p, "given": g })).collect();
                let mut event = AuditEvent::new(&key.name, "data.collect", "ok")
                    .with_detail(&json!({ "point": point, "fields": names, "consents": consents, "new_subject": new_wrapped.is_some() }));
                event.subject = Some(subject.clone());
                state.audit.append(event).await.map_err(|e| ApiError::Internal(e.into()))?;
                return Ok((StatusCode::CREATED, axum::Json(json!({ "subject_id": subject }))));
            }
            Err(CollectError::IdentifierRace) => continue,
            Err(CollectError::Db(e)) => return Err(ApiError::Internal(e.into())),
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!("collection kept racing for the same identifier")))
}

/// The values to seal, in field order: a password field's is its salted argon2id hash (the
/// password itself is never stored), computed off the runtime's threads since the hash is
/// deliberately slow.
async fn stored_values(fields: &[charter_core::collect::Accepted<'_>]) -> Result<Vec<String>, ApiError> {
    let values: Vec<(FieldType, String)> = fields.iter().map(|f| (f.kind, f.value.clone())).collect();
    if !values.iter().any(|(kind, _)| *kind == FieldType::Password) {
        return Ok(values.into_iter().map(|(_, v)| v).collect());
    }
    tokio::task::spawn_blocking(move || {
        values
            .into_iter()
            .map(|(kind, v)| if kind == FieldType::Password { charter_vault::hash_password(&v) } else { v })
            .collect()
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
}

/// How the request names its subject.
pub(crate) enum Identifier {
    /// By charter's opaque id.
    Id(String),
    /// By an identifier, as given (it is only ever blind-indexed).
    Raw(IdentifierKind, String),
}

/// The subject's data key; a shredded subject has none.
pub(crate) fn unwrap_key(state: &AppState, s: &SubjectRecord) -> Result<DataKey, ApiError> {
    let wrapped = s.wrapped.as_ref().ok_or_else(crate::routes::subjects::unknown_subject)?;
    state.keys.unwrap(&s.id, wrapped).map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot unwrap a data key: {e}")))
}
