//! A subject's consent through the API: `POST /v1/subjects/{id}/consents`
//! `{"<purpose>": true|false, ...}` gives or withdraws, `GET` reads the history. A key
//! may answer and read only for purposes it holds. The very next read decides by the new
//! answers: the read path folds the same ledger.

use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::Router;
use charter_core::consent::{self, ChoiceError, Source, SALE_OR_SHARING};
use charter_store::api_keys::ApiKey;
use charter_store::consents::{ConsentRow, NewConsent};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::{Caller, Json, Path};
use crate::routes::subjects::{audit, event};
use crate::state::AppState;
use crate::subject::{self, SubjectId};

/// `/v1/subjects/{id}/consents`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/subjects/{id}/consents", get(history).post(record))
}

/// The refusal of answers that do not fit the policy.
pub(crate) fn choice_refused(e: &ChoiceError) -> ApiError {
    let code = match e {
        ChoiceError::Empty => "no_answer",
        ChoiceError::UnknownPurpose(_) => "unknown_purpose",
        ChoiceError::NotConsentBased(_) => "not_consent_based",
        ChoiceError::NotBoolean(_) => "not_boolean",
        ChoiceError::UnknownCategory(_) => "unknown_category",
    };
    ApiError::Unprocessable { code, message: e.to_string(), details: json!([]) }
}

/// Refuses a key that does not hold every purpose in `purposes` (403, audited).
async fn require_purposes(
    state: &AppState,
    key: &ApiKey,
    subject: &SubjectId,
    purposes: &[&str],
) -> Result<(), ApiError> {
    let Some(missing) = purposes.iter().find(|p| !key.purposes.iter().any(|k| k == *p)) else {
        return Ok(());
    };
    let e = event(key, Some(subject.as_str()), missing, "consent.denied", "purpose_not_granted_to_key", &json!({}));
    audit(state, vec![e]).await?;
    Err(ApiError::Forbidden {
        code: "purpose_not_granted_to_key",
        message: format!("API key `{}` may not answer or read consent for `{missing}`", key.name),
    }
    .recorded())
}

/// An answer given now through `source`, for a subject or visitor, with what was shown.
pub(crate) fn answer(state: &AppState, purpose: &str, given: bool, source: Source) -> NewConsent {
    NewConsent {
        subject_id: None,
        visitor_id: None,
        purpose: purpose.to_owned(),
        given,
        at_us: charter_store::now_us(),
        source: source.as_str(),
        point: None,
        policy_version: Some(state.policy().policy.version.clone()),
        notice_hash: Some(state.policy().notice_hash.to_string()),
        ip_prefix: None,
        agent: None,
        conflicts_with_gpc: false,
    }
}

async fn record(
    State(state): State<AppState>,
    Caller(key): Caller,
    id: Result<Path<String>, ApiError>,
    body: Result<Json<Map<String, Value>>, ApiError>,
) -> Result<Response, ApiError> {
    let id = SubjectId::parse(&id?.0)?;
    let Json(body) = body?;
    let answers = consent::parse_answers(&state.policy().policy, &body).map_err(|e| choice_refused(&e))?;
    let purposes: Vec<&str> = answers.iter().map(|(p, _)| p.as_str()).collect();
    require_purposes(&state, &key, &id, &purposes).await?;
    let rows: Vec<NewConsent> = answers
        .iter()
        .map(|(p, given)| NewConsent {
            subject_id: Some(id.as_str().to_owned()),
            ..answer(&state, p, *given, Source::Api)
        })
        .collect();
    if !state.store.append_consents(&rows).await? {
        return Err(subject::unknown_subject());
    }
    let given: Map<String, Value> = answers.iter().map(|(p, g)| (p.clone(), Value::Bool(*g))).collect();
    let mut e = event(
        &key,
        Some(id.as_str()),
        purposes[0],
        "consent.recorded",
        "ok",
        &json!({ "source": "api", "answers": given }),
    );
    e.purpose = None;
    audit(&state, vec![e]).await?;
    current(&state, &key, &id).await
}

async fn history(
    State(state): State<AppState>,
    Caller(key): Caller,
    id: Result<Path<String>, ApiError>,
) -> Result<Response, ApiError> {
    let id = SubjectId::parse(&id?.0)?;
    let held: Vec<&str> = key
        .purposes
        .iter()
        .map(String::as_str)
        .filter(|p| consent::rests_on_consent(&state.policy().policy, p))
        .collect();
    if held.is_empty() {
        return Err(ApiError::Forbidden {
            code: "purpose_not_granted_to_key",
            message: format!("API key `{}` holds no purpose that rests on consent", key.name),
        });
    }
    subject::by_id(&state, &id).await?;
    let mut e = event(&key, Some(id.as_str()), held[0], "consent.read", "ok", &json!({ "purposes": held }));
    e.purpose = None;
    audit(&state, vec![e]).await?;
    current(&state, &key, &id).await
}

/// The subject's consent now and its history, for the purposes `key` holds (and the
/// opt-out of sale and sharing when it holds a purpose that sells or shares).
async fn current(state: &AppState, key: &ApiKey, id: &SubjectId) -> Result<Response, ApiError> {
    let policy = &state.policy().policy;
    let sells = key.purposes.iter().any(|p| policy.purposes.get(p).is_some_and(|pu| pu.sale_or_sharing));
    let visible = |p: &str| key.purposes.iter().any(|k| k == p) || (sells && p == SALE_OR_SHARING);
    let rows: Vec<ConsentRow> =
        state.store.subject_consents(id.as_str()).await?.into_iter().filter(|r| visible(&r.answer.purpose)).collect();
    let now = consent::fold(rows.iter().map(|r| (r.answer.purpose.as_str(), r.answer.given)));
    let body = json!({
        "subject": id.as_str(),
        "consents": now,
        "history": rows.iter().map(row_json).collect::<Vec<_>>(),
    });
    Ok(axum::Json(body).into_response())
}

/// One answer as the API shows it.
pub(crate) fn row_json(r: &ConsentRow) -> Value {
    let a = &r.answer;
    json!({
        "seq": r.seq,
        "purpose": a.purpose,
        "given": a.given,
        "at": charter_core::time::rfc3339_from_us(a.at_us),
        "source": a.source,
        "point": a.point,
        "policy_version": a.policy_version,
        "notice_hash": a.notice_hash,
        "evidence": { "network": a.ip_prefix, "agent": a.agent },
        "conflicts_with_gpc": a.conflicts_with_gpc,
        "visitor": a.visitor_id,
    })
}

/// The coarse evidence of a request a person made: their network (/24 or /48) and their
/// browser and system family.
pub(crate) fn with_evidence(mut answer: NewConsent, parts: &axum::http::request::Parts) -> NewConsent {
    let peer = parts.extensions.get::<crate::listen::Peer>().and_then(|p| p.0);
    answer.ip_prefix = peer.map(consent::ip_prefix);
    answer.agent =
        parts.headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(consent::agent_family);
    answer
}
