//! Server-rendered pages for people (unsubscribe, do-not-sell, cookie policy,
//! preferences): templates under `templates/`, checked and compiled with the server
//! (askama, escaping every value), in the notice's stylesheet so the one
//! Content-Security-Policy hash covers them all. No page needs JavaScript.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::state::AppState;

/// What every page shows around its content.
pub struct Chrome {
    pub title: String,
    pub controller: String,
    pub css: &'static str,
}

impl Chrome {
    /// The frame of a page titled `title`.
    pub fn new(state: &AppState, title: &str) -> Self {
        Self {
            title: title.to_owned(),
            controller: state.policy().policy.controller.name.clone(),
            css: charter_policy::render::notice::CSS,
        }
    }
}

/// A page with one message.
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub chrome: Chrome,
    pub text: String,
}

/// `template` rendered, answered with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A page that says `text`, titled `title`, answered with `status`.
pub fn message(state: &AppState, status: StatusCode, title: &str, text: &str) -> Response {
    render(status, &Message { chrome: Chrome::new(state, title), text: text.to_owned() })
}

/// A form body (`application/x-www-form-urlencoded`) or query string as name-value
/// pairs; an unreadable one has none.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// The first value of `name` in a form.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The value of the cookie `name` the request carries.
pub fn cookie<'a>(parts: &'a axum::http::request::Parts, name: &str) -> Option<&'a str> {
    let cookies = parts.headers.get_all(axum::http::header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
    cookies.flat_map(|c| c.split(';')).find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The path of the policy's page `key`, or `default` when the policy has none.
pub fn path_of(state: &AppState, key: &str, default: &str) -> String {
    state.policy().policy.pages.get(key).map_or_else(|| default.to_owned(), |p| p.path.clone())
}
