//! One error shape for every response: `{"error": {"code": ..., "message": ...}}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What a handler can answer with besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such route or resource.
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No usable credentials (401).
    #[error("unauthorised: {0}")]
    Unauthorised(&'static str, String),
    /// Credentials that do not allow this (403).
    #[error("forbidden: {0}")]
    Forbidden(&'static str, String),
    /// A refused read, with every field's reason (403).
    #[error("denied")]
    Denied(serde_json::Value),
    /// A resource that does not exist (404), with its own code.
    #[error("missing: {0}")]
    Missing(&'static str, String),
    /// The request could not be read (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str, String),
    /// The upload's content type is not accepted (415).
    #[error("unsupported type")]
    UnsupportedType(String),
    /// The request body is too large (413).
    #[error("too large")]
    TooLarge(String),
    /// The request body sent nothing for too long (408); the connection is closed.
    #[error("body timeout")]
    BodyTimeout,
    /// Too many failed password checks for the name given (429): the message, and the
    /// seconds until they may try again.
    #[error("too many attempts")]
    TooManyAttempts(String, u64),
    /// The request was understood and refused by the policy (422), with details.
    #[error("unprocessable")]
    Unprocessable(&'static str, String, serde_json::Value),
    /// A dependency (the database) is not available.
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// Something failed inside; the cause is logged, not sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    /// A refusal already in the audit chain, answered as the refusal it holds.
    #[error(transparent)]
    Recorded(Box<ApiError>),
}

impl ApiError {
    /// The code of a refusal of the caller's request (400, 403, 404, 413, 415, 422); `None`
    /// for anything else.
    pub fn refusal_code(&self) -> Option<&'static str> {
        match self {
            Self::Forbidden(code, _) | Self::Missing(code, _) | Self::BadRequest(code, _) => Some(code),
            Self::Unprocessable(code, _, _) => Some(code),
            Self::TooLarge(_) => Some("too_large"),
            Self::UnsupportedType(_) => Some("unsupported_content_type"),
            Self::TooManyAttempts(..) => Some("too_many_attempts"),
            Self::BodyTimeout => Some("body_timeout"),
            _ => None,
        }
    }

    /// This refusal, marked as already in the audit chain (so it is not recorded twice).
    pub fn recorded(self) -> Self {
        match self {
            Self::Recorded(_) => self,
            other => Self::Recorded(Box::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::Recorded(inner) => return inner.into_response(),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such resource".to_owned()),
            Self::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed here".to_owned())
            }
            Self::NotReady(why) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready", why.to_owned()),
            Self::Unauthorised(code, msg) => (StatusCode::UNAUTHORIZED, code, msg),
            Self::Forbidden(code, msg) => (StatusCode::FORBIDDEN, code, msg),
            Self::Missing(code, msg) => (StatusCode::NOT_FOUND, code, msg),
            Self::BadRequest(code, msg) => (StatusCode::BAD_REQUEST, code, msg),
            Self::TooLarge(msg) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", msg),
            Self::UnsupportedType(msg) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_content_type", msg),
            Self::Denied(details) => {
                let first = details
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(|v| v.as_str())
                    .unwrap_or("denied")
                    .to_owned();
                let body = json!({ "error": { "code": first, "message": "this purpose may not read these fields", "fields": details } });
                return (StatusCode::FORBIDDEN, Json(body)).into_response();
            }
            Self::BodyTimeout => {
                let body = json!({ "error": { "code": "body_timeout", "message": "the request body stopped arriving before its end" } });
                return (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], Json(body)).into_response();
            }
            Self::TooManyAttempts(msg, wait) => {
                let body = json!({ "error": { "code": "too_many_attempts", "message": msg } });
                return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, wait.to_string())], Json(body))
                    .into_response();
            }
            Self::Unprocessable(code, msg, details) => {
                let body = json!({ "error": { "code": code, "message": msg, "details": details } });
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred".to_owned())
            }
        };
        (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
    }
}
