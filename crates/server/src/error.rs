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
    #[error("unauthorised: {message}")]
    Unauthorised {
        /// The refusal's code.
        code: &'static str,
        /// What was wrong, without anything the caller sent.
        message: String,
    },
    /// Credentials that do not allow this (403).
    #[error("forbidden: {message}")]
    Forbidden {
        /// The refusal's code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A refused read (403).
    #[error("denied")]
    Denied {
        /// Every field's reason, by field name.
        fields: serde_json::Value,
    },
    /// A resource that does not exist (404), with its own code.
    #[error("missing: {message}")]
    Missing {
        /// The refusal's code.
        code: &'static str,
        /// What was not found.
        message: String,
    },
    /// The request could not be read (400).
    #[error("bad request: {message}")]
    BadRequest {
        /// The refusal's code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The request conflicts with what is stored (409).
    #[error("conflict: {message}")]
    Conflict {
        /// The refusal's code.
        code: &'static str,
        /// What conflicts, without anything the caller sent.
        message: String,
    },
    /// The upload's content type is not accepted (415).
    #[error("unsupported type")]
    UnsupportedType {
        /// Which types are.
        message: String,
    },
    /// The request body is too large (413).
    #[error("too large")]
    TooLarge {
        /// The limit.
        message: String,
    },
    /// The request body sent nothing for too long (408); the connection is closed.
    #[error("body timeout")]
    BodyTimeout,
    /// Too many failed password checks for the name given (429).
    #[error("too many attempts")]
    TooManyAttempts {
        /// When to try again, in words.
        message: String,
        /// Seconds until checks for the name are allowed again (`Retry-After`).
        retry_after_s: u64,
    },
    /// The request was understood and refused by the policy (422).
    #[error("unprocessable")]
    Unprocessable {
        /// The first refusal's code.
        code: &'static str,
        /// The first refusal, in words.
        message: String,
        /// Every refusal, with names the policy declares only.
        details: serde_json::Value,
    },
    /// A dependency (the database) is not available.
    #[error("not ready: {reason}")]
    NotReady {
        /// Which, in words.
        reason: &'static str,
    },
    /// Something failed inside; the cause is logged, not sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    /// A refusal already in the audit chain, answered as the refusal it holds.
    #[error(transparent)]
    Recorded(Box<ApiError>),
}

/// Failures inside charter (the database, the audit chain, object storage, a task) are
/// internal errors: `?` turns them into [`ApiError::Internal`], whose cause is logged and
/// never sent.
macro_rules! internal_from {
    ($($failure:ty),* $(,)?) => {
        $(impl From<$failure> for ApiError {
            fn from(e: $failure) -> Self {
                Self::Internal(e.into())
            }
        })*
    };
}

internal_from!(
    charter_store::StoreError,
    charter_store::AuditError,
    charter_store::vault::CollectError,
    charter_vault::MalformedHash,
    object_store::Error,
    serde_json::Error,
    tokio::task::JoinError,
);

impl ApiError {
    /// The code of a refusal of the caller's request (400, 403, 404, 409, 413, 415, 422); `None`
    /// for anything else.
    pub fn refusal_code(&self) -> Option<&'static str> {
        match self {
            Self::Forbidden { code, .. } | Self::Missing { code, .. } | Self::BadRequest { code, .. } => Some(code),
            Self::Conflict { code, .. } => Some(code),
            Self::Unprocessable { code, .. } => Some(code),
            Self::TooLarge { .. } => Some("too_large"),
            Self::UnsupportedType { .. } => Some("unsupported_content_type"),
            Self::TooManyAttempts { .. } => Some("too_many_attempts"),
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
            Self::NotReady { reason } => (StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason.to_owned()),
            Self::Unauthorised { code, message } => (StatusCode::UNAUTHORIZED, code, message),
            Self::Forbidden { code, message } => (StatusCode::FORBIDDEN, code, message),
            Self::Missing { code, message } => (StatusCode::NOT_FOUND, code, message),
            Self::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message),
            Self::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            Self::TooLarge { message } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", message),
            Self::UnsupportedType { message } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_content_type", message)
            }
            Self::Denied { fields } => {
                let first = fields
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(|v| v.as_str())
                    .unwrap_or("denied")
                    .to_owned();
                let body = json!({ "error": { "code": first, "message": "this purpose may not read these fields", "fields": fields } });
                return (StatusCode::FORBIDDEN, Json(body)).into_response();
            }
            Self::BodyTimeout => {
                let body = json!({ "error": { "code": "body_timeout", "message": "the request body stopped arriving before its end" } });
                return (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], Json(body)).into_response();
            }
            Self::TooManyAttempts { message, retry_after_s } => {
                let body = json!({ "error": { "code": "too_many_attempts", "message": message } });
                return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry_after_s.to_string())], Json(body))
                    .into_response();
            }
            Self::Unprocessable { code, message, details } => {
                let body = json!({ "error": { "code": code, "message": message, "details": details } });
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
