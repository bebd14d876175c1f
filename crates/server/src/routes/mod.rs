//! Route areas. Each exports `routes()`; [`router`] mounts them all.

pub mod admin;
pub mod banner;
pub mod collect;
pub mod consents;
pub mod do_not_sell;
pub mod download;
pub mod health;
pub mod metrics;
pub mod notice;
pub mod openapi;
pub mod preferences;
pub mod privacy_center;
pub mod records;
pub mod requests;
pub mod subjects;
pub mod submission;
pub mod unsubscribe;
pub mod upload;

use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(notice::routes())
        .merge(admin::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(collect::routes())
        .merge(subjects::routes())
        .merge(consents::routes())
        .merge(banner::routes())
        .merge(do_not_sell::routes(&state))
        .merge(unsubscribe::routes(&state))
        .merge(preferences::routes(&state))
        .merge(requests::routes(&state))
        .merge(privacy_center::routes(&state))
        .merge(records::routes())
        .merge(download::routes())
        .merge(upload::routes().layer(axum::extract::DefaultBodyLimit::disable()))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::map_response(crate::headers::secure))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::telemetry::track))
        .with_state(state)
}
