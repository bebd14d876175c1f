//! Extractors: JSON bodies in charter's error shape, and API-key authentication.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use charter_store::api_keys::ApiKey;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body whose rejections come back as charter errors.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) if crate::listen::is_body_timeout(&rejection) => Err(ApiError::BodyTimeout),
            Err(rejection) => Err(match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::TooLarge { message: "the request body is larger than 1 MiB".into() }
                }
                StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::BadRequest {
                    code: "unsupported_media_type",
                    message: "send the body as application/json".into(),
                },
                // serde_json's message names the position and expected shape, not the values.
                _ => ApiError::BadRequest {
                    code: "malformed_json",
                    message: format!("the body is not valid JSON of the expected shape: {}", safe_reason(&rejection)),
                },
            }),
        }
    }
}

/// The position part of a JSON error, without any echoed content.
fn safe_reason(rejection: &JsonRejection) -> String {
    let text = rejection.body_text();
    match text.rfind(" at line ") {
        Some(i) => format!("error{}", &text[i..]),
        None => "the body could not be parsed".into(),
    }
}

/// Path parameters whose rejections come back as charter errors, never echoing the segment
/// at fault (one whose percent-encoding is not UTF-8, say).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(rejection) if rejection.status().is_server_error() => {
                Err(ApiError::Internal(anyhow::anyhow!("a route's path parameters: {}", rejection.body_text())))
            }
            Err(_) => Err(ApiError::BadRequest {
                code: "malformed_path",
                message: "a path segment could not be read: it is not valid UTF-8 once percent-decoded".into(),
            }),
        }
    }
}

/// A query string whose rejections come back as charter errors, naming the
/// parameter at fault but never echoing its value.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str::<T>(query).map(Self).map_err(|e| {
            // serde names the parameter at fault: one of ours when missing or repeated, the
            // caller's own when unknown, which is not echoed (only what this endpoint takes).
            let text = e.to_string();
            let safe = if text.starts_with("unknown field") {
                match text.find("expected") {
                    Some(i) => format!("a query parameter is not one this endpoint takes; {}", &text[i..]),
                    None => "a query parameter is not one this endpoint takes".to_owned(),
                }
            } else if text.contains("missing field") || text.contains("duplicate field") {
                text
            } else {
                "a query parameter has the wrong form".to_owned()
            };
            ApiError::BadRequest { code: "malformed_query", message: safe }
        })
    }
}

/// The authenticated caller: a live API key (shared with the key cache, so a request
/// does not copy its names and grants).
pub struct Caller(pub Arc<ApiKey>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        let token = match header.and_then(|h| h.strip_prefix("Bearer ")) {
            Some(t) if !t.trim().is_empty() => t.trim(),
            _ => {
                return Err(ApiError::Unauthorised {
                    code: "missing_api_key",
                    message: "send an API key as `Authorization: Bearer <key>`".into(),
                })
            }
        };
        let key = match state.api_keys.get(token) {
            Some(k) => Some(k),
            None => {
                let k = state.store.api_key_by_token(token).await?;
                let k = k.map(Arc::new);
                if let Some(k) = &k {
                    state.api_keys.put(token, k.clone());
                }
                k
            }
        };
        match key {
            Some(k) if k.revoked_at_us.is_none() => Ok(Self(k)),
            Some(_) => {
                Err(ApiError::Unauthorised { code: "revoked_api_key", message: "this API key was revoked".into() })
            }
            None => {
                Err(ApiError::Unauthorised { code: "invalid_api_key", message: "this API key is not known".into() })
            }
        }
    }
}

/// A short-lived cache of API-key lookups, so a busy key is not read from the
/// database on every request. Entries live [`KEY_CACHE_TTL`]: a revocation made
/// by another process takes effect within that time.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (Arc<ApiKey>, std::time::Instant)>>,
}

/// How long a cached key lookup is trusted.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl KeyCache {
    fn get(&self, token: &str) -> Option<Arc<ApiKey>> {
        let map = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(token).filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL).map(|(k, _)| k.clone())
    }

    fn put(&self, token: &str, key: Arc<ApiKey>) {
        let mut map = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        map.insert(token.to_owned(), (key, std::time::Instant::now()));
    }
}
