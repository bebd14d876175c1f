//! `POST /v1/collect/{point}` as `multipart/form-data`: first a part named `body` holding
//! the JSON body a collection takes, then one part per file field, named after it. The
//! body is checked before any file is read; each file streams through the upload's
//! sealing, size, content-type and scan rules; the whole submission is stored in one
//! write (one record at a record point) or not at all: files already stored are deleted
//! when a later part, or the write, is refused.

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use charter_policy::model::FieldType;
use charter_store::api_keys::ApiKey;
use futures_util::TryStreamExt as _;
use serde_json::Value;

use crate::error::ApiError;
use crate::routes::collect::{self, CollectBody};
use crate::routes::upload::{accepted_file, body_error, store_file, Received};
use crate::state::AppState;

/// The most the `body` part may hold, as a JSON body may.
const BODY_LIMIT: usize = 1024 * 1024;

/// The boundary of a `multipart/form-data` request; `None` for any other content type.
pub(crate) fn boundary(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    Some(multer::parse_boundary(content_type).map_err(|_| ApiError::BadRequest {
        code: "malformed_multipart",
        message: "a multipart/form-data body needs a boundary in its content type".into(),
    }))
}

/// Receives a multipart submission at `point`: all of it stored, or nothing.
pub(crate) async fn receive(
    state: &AppState,
    policy: &crate::state::InForce,
    key: &ApiKey,
    point: &str,
    boundary: Result<String, ApiError>,
    request: Request,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let gpc = collect::gpc_on(request.headers());
    let mut parts = multer::Multipart::new(request.into_body().into_data_stream(), boundary?);
    let body = body_part(&mut parts).await?;
    let prepared = collect::prepare(state, policy, key, point, &body, gpc).await?;
    let mut files = Vec::new();
    let answer = match file_parts(state, key, point, &mut parts, &mut files).await {
        Ok(()) => collect::store(state, key, point, &prepared, &files).await,
        Err(e) => Err(e),
    };
    if answer.is_err() {
        for f in &files {
            let _ = state.objects.delete(&f.path()).await;
        }
    }
    answer
}

/// The next part, or `None` after the last.
async fn next<'r>(parts: &mut multer::Multipart<'r>) -> Result<Option<multer::Field<'r>>, ApiError> {
    parts.next_field().await.map_err(part_error)
}

/// A part that could not be read: the body's own timeout or end, or malformed framing
/// (described without echoing anything the caller sent).
fn part_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::StreamReadFailed(inner) => body_error(inner.as_ref()),
        _ => ApiError::BadRequest {
            code: "malformed_multipart",
            message: "the multipart/form-data body is not well formed".into(),
        },
    }
}

/// The first part, `body`, parsed as a collection's JSON body.
async fn body_part(parts: &mut multer::Multipart<'_>) -> Result<CollectBody, ApiError> {
    let mut part = match next(parts).await? {
        Some(p) if p.name() == Some("body") => p,
        _ => {
            return Err(ApiError::BadRequest {
                code: "missing_body_part",
                message: "a multipart collection starts with a part named `body` holding the JSON body".into(),
            })
        }
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = part.chunk().await.map_err(part_error)? {
        if bytes.len() + chunk.len() > BODY_LIMIT {
            return Err(ApiError::TooLarge { message: "the `body` part is larger than 1 MiB".into() });
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest {
        code: "malformed_json",
        message: format!(
            "the `body` part is not valid JSON of the expected shape: error at line {} column {}",
            e.line(),
            e.column()
        ),
    })
}

/// Every file part, each stored sealed into `files` as it arrives; then every required
/// file field must have come.
async fn file_parts(
    state: &AppState,
    key: &ApiKey,
    point: &str,
    parts: &mut multer::Multipart<'_>,
    files: &mut Vec<Received>,
) -> Result<(), ApiError> {
    while let Some(part) = next(parts).await? {
        let Some(name) = part.name().map(str::to_owned) else {
            return Err(ApiError::BadRequest {
                code: "malformed_multipart",
                message: "every part of a multipart collection is named after its field".into(),
            });
        };
        if files.iter().any(|f| f.row.field == name) {
            return Err(ApiError::Unprocessable {
                code: "duplicate_file",
                message: "a file field carries one file per submission".into(),
                details: Value::Null,
            });
        }
        let content_type = part.content_type().map(|m| m.essence_str().to_owned()).unwrap_or_default();
        let file = accepted_file(state, point, Some(&name), &content_type, None)?;
        files.push(store_file(state, key, &file, None, part.map_err(part_error)).await?);
    }
    let in_force = state.policy();
    let declared = &in_force.policy.collection_points[point].fields;
    let missing = declared
        .iter()
        .find(|(name, f)| f.kind == FieldType::File && f.required && !files.iter().any(|x| &x.row.field == *name));
    match missing {
        Some((name, _)) => Err(ApiError::Unprocessable {
            code: "missing_required",
            message: format!("required file field `{name}` of `{point}` is missing; nothing was stored"),
            details: Value::Null,
        }),
        None => Ok(()),
    }
}
