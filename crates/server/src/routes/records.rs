//! A subject's records in reads: a page of them in `GET /v1/subjects/{id}/data` (newest
//! first, `limit`, `cursor`, `point`), one by id in `GET /v1/subjects/{id}/records/{record}`,
//! and `POST /v1/subjects/{id}/close`, which records that an account closed.
//!
//! Every field and file of a record is decided as a profile field is. A page leaves out
//! the records the purpose may not read and counts them in `withheld`, by reason; a page
//! covers `limit` records in order, so it may list fewer.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use charter_core::access::{self, Denial, FieldRef, SubjectState};
use charter_core::audit::AuditEvent;
use charter_store::api_keys::ApiKey;
use charter_store::records::{PageQuery, Position, StoredRecord};
use charter_vault::{DataKey, Holder};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::{Caller, Json, Path, Query};
use crate::routes::subjects::{
    asked_purpose, audit, disclosures, event, read_refused, read_view, require_key_purpose, require_purpose,
    typed_value,
};
use crate::state::AppState;
use crate::subject::{self, sealed_error, unwrap_key, SubjectId};

/// `/v1/subjects/{id}/records/{record}` and `/v1/subjects/{id}/close`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/subjects/{id}/records/{record}", get(one)).route("/v1/subjects/{id}/close", post(close))
}

/// Records per page unless the read asks for another number, and the most it may ask for.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// Which page of records a read asks for, checked.
pub(crate) struct Paging {
    limit: u32,
    after: Position,
    point: Option<String>,
}

impl Paging {
    /// The page a read's `limit`, `cursor` and `point` name: a limit from 1 to 200, a cursor
    /// from an earlier page, a point in the policy (400 otherwise, never echoing them).
    pub(crate) fn parse(
        state: &AppState,
        limit: Option<&str>,
        cursor: Option<&str>,
        point: Option<String>,
    ) -> Result<Self, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) => l.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| ApiError::BadRequest {
                code: "bad_limit",
                message: format!("`limit` is a whole number from 1 to {MAX_LIMIT}"),
            })?,
        };
        let after = match cursor {
            None => Position::start(),
            Some(c) => decode_cursor(c).ok_or_else(|| ApiError::BadRequest {
                code: "bad_cursor",
                message: "`cursor` is not one a page of records gave".into(),
            })?,
        };
        if point.as_ref().is_some_and(|p| !state.policy().policy.collection_points.contains_key(p)) {
            return Err(ApiError::BadRequest {
                code: "unknown_point",
                message: "no collection point of that name is in the policy".into(),
            });
        }
        Ok(Self { limit, after, point })
    }
}

/// The opaque cursor of the page after `p`.
fn encode_cursor(p: &Position) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", p.collected_at_us, p.id))
}

fn decode_cursor(c: &str) -> Option<Position> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (at, id) = text.split_once(':')?;
    let id = uuid::Uuid::parse_str(id).ok()?.to_string();
    Some(Position { collected_at_us: at.parse().ok()?, id })
}

/// The fields and files of a record a read returns, by index.
type Chosen = (Vec<usize>, Vec<usize>);

/// What a read decides about one page of records.
pub(crate) struct Page {
    /// The records it may read, each with the fields and files it returns (by index).
    readable: Vec<(StoredRecord, Vec<usize>, Vec<usize>)>,
    /// How many it may not, by reason.
    withheld: BTreeMap<&'static str, u64>,
    /// The cursor of the next page, when there is one.
    next: Option<String>,
}

/// What a read for `purpose` is deciding with: the policy, the caller's purposes, the
/// subject's standing, the field names asked for, and the time.
pub(crate) struct Decision<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) key: &'a ApiKey,
    pub(crate) purpose: &'a str,
    pub(crate) subject: &'a SubjectState,
    pub(crate) requested: Option<&'a [&'a str]>,
    pub(crate) now_us: i64,
}

impl Decision<'_> {
    /// Whether the purpose may read a value of `category`, collected at `at_us`.
    fn decide(&self, name: &str, category: &str, at_us: i64) -> Result<(), Denial> {
        let r = FieldRef { name, category, collected_at_us: at_us };
        access::decide(&self.state.policy().policy, self.purpose, &self.key.purposes, self.subject, &r, self.now_us)
    }

    /// Whether a value of `category` named `name` is one the read is about: asked for by
    /// name, or (when no names are given) of a category the purpose uses.
    fn wanted(&self, name: &str, category: &str) -> bool {
        match self.requested {
            Some(names) => names.contains(&name),
            None => self.state.policy().policy.purposes[self.purpose].categories.iter().any(|c| c == category),
        }
    }

    /// The fields and files of `r` the read returns, by index; or why it may read none
    /// (the first refusal of a wanted value, or no value of a category the purpose uses).
    /// A read that names fields is not about a record holding none of them: `Ok(None)`.
    fn record(&self, r: &StoredRecord) -> Result<Option<Chosen>, Denial> {
        let fields: Vec<usize> =
            (0..r.fields.len()).filter(|&i| self.wanted(&r.fields[i].field, &r.fields[i].category)).collect();
        let files: Vec<usize> =
            (0..r.files.len()).filter(|&i| self.wanted(&r.files[i].field, &r.files[i].category)).collect();
        if fields.is_empty() && files.is_empty() {
            return match self.requested {
                Some(_) => Ok(None),
                None => Err(Denial::CategoryNotInPurpose),
            };
        }
        for &i in &fields {
            self.decide(&r.fields[i].field, &r.fields[i].category, r.collected_at_us)?;
        }
        for &i in &files {
            self.decide(&r.files[i].field, &r.files[i].category, r.collected_at_us)?;
        }
        Ok(Some((fields, files)))
    }

    /// The page of records `paging` names, decided.
    pub(crate) async fn page(&self, subject_id: &str, paging: &Paging) -> Result<Page, ApiError> {
        let q = PageQuery {
            subject_id,
            point: paging.point.as_deref(),
            after: paging.after.clone(),
            limit: paging.limit + 1,
        };
        let mut records = self.state.store.records_page(&q).await?;
        let more = records.len() > paging.limit as usize;
        records.truncate(paging.limit as usize);
        let next = more.then(|| records.last().map(|r| encode_cursor(&Position::of(r)))).flatten();
        let mut page = Page { readable: Vec::with_capacity(records.len()), withheld: BTreeMap::new(), next };
        for r in records {
            match self.record(&r) {
                Ok(Some((fields, files))) => page.readable.push((r, fields, files)),
                Ok(None) => {}
                Err(d) => *page.withheld.entry(d.code()).or_default() += 1,
            }
        }
        Ok(page)
    }
}

impl Page {
    /// The record ids read, for the audit chain.
    pub(crate) fn ids(&self) -> Vec<&str> {
        self.readable.iter().map(|(r, _, _)| r.id.as_str()).collect()
    }

    /// The categories of everything the page returns, one per value, for disclosures.
    pub(crate) fn categories(&self) -> impl Iterator<Item = &str> + Clone {
        self.readable.iter().flat_map(|(r, fields, files)| {
            fields
                .iter()
                .map(|&i| r.fields[i].category.as_str())
                .chain(files.iter().map(|&i| r.files[i].category.as_str()))
        })
    }

    /// How many records were withheld, by reason, as JSON.
    pub(crate) fn withheld(&self) -> Value {
        Value::Object(self.withheld.iter().map(|(k, n)| ((*k).to_owned(), Value::from(*n))).collect())
    }

    /// The cursor of the next page.
    pub(crate) fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// The readable records opened, newest first.
    pub(crate) fn open(&self, state: &AppState, data_key: &DataKey, subject: &str) -> Result<Vec<Value>, ApiError> {
        self.readable.iter().map(|(r, fields, files)| open_record(state, data_key, subject, r, fields, files)).collect()
    }
}

/// One record as a read returns it: its id, point, time, the fields and files chosen.
fn open_record(
    state: &AppState,
    data_key: &DataKey,
    subject: &str,
    r: &StoredRecord,
    fields: &[usize],
    files: &[usize],
) -> Result<Value, ApiError> {
    let own = data_key.unwrap_own(subject, Holder::Record(&r.id), &r.wrapped_key).map_err(sealed_error)?;
    let cipher = own.fields();
    let mut values = Map::new();
    for &i in fields {
        let f = &r.fields[i];
        let plain = cipher.open_in_record(subject, &r.id, &f.field, &f.category, &f.sealed).map_err(sealed_error)?;
        values.insert(f.field.clone(), typed_value(state, &r.point, &f.field, plain)?);
    }
    let files: Vec<Value> = files
        .iter()
        .map(|&i| {
            let o = &r.files[i];
            json!({ "object_id": o.id, "field": o.field, "content_type": o.content_type, "size": o.size })
        })
        .collect();
    Ok(json!({
        "record_id": r.id,
        "point": r.point,
        "collected_at": charter_core::time::rfc3339_from_us(r.collected_at_us),
        "fields": values,
        "files": files,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneQuery {
    purpose: Option<String>,
}

/// `GET /v1/subjects/{id}/records/{record}?purpose=P`: one record, or 403 with the reason
/// and no data.
async fn one(
    State(state): State<AppState>,
    Caller(key): Caller,
    ids: Result<Path<(String, String)>, ApiError>,
    q: Result<Query<OneQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let asked = asked_purpose(&q, |q| &q.purpose);
    let answer = async {
        let (Path((id, record)), Query(q)) = (ids?, q?);
        let purpose = require_purpose(&state, q.purpose)?;
        let id = SubjectId::parse(&id);
        require_key_purpose(&state, &key, &purpose, id.as_ref().ok()).await?;
        let view = read_view(&state, &id?, &purpose).await?;
        let unknown = || ApiError::Missing { code: "unknown_record", message: "no such record of this subject".into() };
        let record = SubjectId::parse(&record).map_err(|_| unknown())?;
        let r = state.store.record(&view.subject.id, record.as_str()).await?.ok_or_else(unknown)?;
        let subject_state = view.state(&purpose);
        let decision = Decision {
            state: &state,
            key: &key,
            purpose: &purpose,
            subject: &subject_state,
            requested: None,
            now_us: charter_store::now_us(),
        };
        let subject_id = view.subject.id.as_str();
        let (fields, files) = match decision.record(&r) {
            Ok(chosen) => chosen.unwrap_or_default(),
            Err(d) => {
                let detail = json!({ "records": { r.id.clone(): d.code() } });
                audit(&state, vec![event(&key, Some(subject_id), &purpose, "data.denied", "denied", &detail)]).await?;
                return Err(ApiError::Denied { fields: json!({ "record": d.code() }) }.recorded());
            }
        };
        let data_key = unwrap_key(&state, &view.subject)?;
        let opened = open_record(&state, &data_key, subject_id, &r, &fields, &files)?;
        let detail = json!({ "fields": [], "records": [r.id] });
        let mut events = vec![event(&key, Some(subject_id), &purpose, "data.read", "ok", &detail)];
        let categories = fields
            .iter()
            .map(|&i| r.fields[i].category.as_str())
            .chain(files.iter().map(|&i| r.files[i].category.as_str()));
        disclosures(&state.policy().policy, &key, subject_id, &purpose, categories, &mut events);
        audit(&state, events).await?;
        let body = serde_json::to_vec(&json!({ "purpose": purpose, "subject_id": subject_id, "record": opened }))?;
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    };
    read_refused(&state, &key, asked, answer.await).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    /// The point whose account closes; the key must hold it.
    point: String,
}

/// `POST /v1/subjects/{id}/close` `{"point": P}`: records that the account point `P`
/// opened is closed (`account+N` retention runs from then), with an API key that holds the
/// purposes of `P`. Closing again changes nothing and says so.
async fn close(
    State(state): State<AppState>,
    Caller(key): Caller,
    id: Result<Path<String>, ApiError>,
    body: Result<Json<CloseBody>, ApiError>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let (Path(id), Json(body)) = (id?, body?);
    let in_force = state.policy();
    let Some(point) = in_force.policy.collection_points.get(&body.point) else {
        return Err(ApiError::BadRequest {
            code: "unknown_point",
            message: "no collection point of that name is in the policy".into(),
        });
    };
    if point.kind != Some(charter_policy::model::PointKind::Profile) {
        return Err(ApiError::Unprocessable {
            code: "not_an_account_point",
            message: format!("`{}` keeps no profile, so no account opened there can close", body.point),
            details: Value::Null,
        });
    }
    if !point.purposes.iter().all(|p| key.purposes.contains(p)) {
        return Err(ApiError::Forbidden {
            code: "purpose_not_granted_to_key",
            message: format!("API key `{}` does not hold every purpose of `{}`", key.name, body.point),
        });
    }
    let subject = subject::by_id(&state, &SubjectId::parse(&id)?).await?;
    if subject.shredded_at_us.is_some() {
        return Err(subject::unknown_subject());
    }
    let at = charter_store::now_us();
    let mut entry = AuditEvent::new(&key.name, "account.close", "ok").with_detail(&json!({ "point": body.point }));
    entry.subject = Some(subject.id.clone());
    state.audit.append(entry).await?;
    let closed = state.store.close_account(&subject.id, at).await?;
    let closed_at = match closed {
        true => at,
        false => state.store.subject(&subject.id).await?.and_then(|s| s.account_closed_at_us).unwrap_or(at),
    };
    let answer = json!({
        "subject_id": subject.id,
        "closed_at": charter_core::time::rfc3339_from_us(closed_at),
        "already_closed": !closed,
    });
    Ok((if closed { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(answer)))
}
