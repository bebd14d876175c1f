//! The privacy notice, rendered from the policy in force.

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// `/`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(notice))
}

async fn notice(State(state): State<AppState>) -> Html<String> {
    Html(state.policy().notice_at(charter_store::now_us()).to_owned())
}
