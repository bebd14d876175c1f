//! Security headers on every response.
//!
//! Every response says `nosniff` and sends no referrer; an HTML page also gets a
//! Content-Security-Policy that allows nothing but its own inline stylesheet (by
//! hash) and no framing.

use std::sync::LazyLock;

use axum::http::header::{self, HeaderValue};
use axum::response::Response;
use base64::Engine as _;
use sha2::Digest as _;

/// The Content-Security-Policy of charter's HTML pages.
static PAGE_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let css = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(charter_policy::render::notice::CSS.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{css}'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).expect("the page policy is plain ASCII")
});

/// Adds the security headers to `response`.
pub async fn secure(mut response: Response) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if is_html {
        headers.insert(header::CONTENT_SECURITY_POLICY, PAGE_POLICY.clone());
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}
