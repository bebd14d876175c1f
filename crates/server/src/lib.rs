//! # charter-server
//!
//! The HTTP face of charter, built on axum.
//!
//! ## Layout
//! - [`startup`]: [`Application::build`] opens the data directory, loads the
//!   policy, starts the audit writer and binds the listener; `run_until` serves
//!   until shutdown and records the stop in the audit chain.
//! - [`published`]: the policy in force once versions are published: served at start,
//!   and picked up by running servers within seconds of its publication.
//! - [`codes`]: one-time codes by email, charter's one way of proving who someone is.
//! - [`rights`]: rights requests: filing and verifying, the state machine's steps,
//!   fulfilment as leased work any server resumes, and the person told at each step.
//! - [`state`]: the one [`state::AppState`] every handler receives.
//! - [`error`]: the JSON error shape and how internal failures stay internal.
//! - [`headers`]: security headers on every response (a strict CSP on pages).
//! - [`listen`]: accepting connections, with header, body and idle timeouts and a cap on open connections.
//! - [`extract`]: JSON bodies in charter's error shape; API-key authentication (`Caller`).
//! - [`objects`]: object storage for uploads (local folder, S3-compatible, GCS).
//! - [`subject`]: naming a subject (the [`subject::SubjectId`] newtype, identifiers in
//!   normal form found by blind index), and its data key.
//! - [`upgrade`]: at start, rewriting what an earlier version wrote (values get keys of their
//!   own, values at record points become records) and finishing half-purged erasures.
//! - [`sign_in`]: failed password checks counted per name a request gives, and the refusal after too many.
//! - [`telemetry`]: request metrics and logs that name the route template,
//!   never the raw URI (which could carry personal data in its query).
//! - `routes/`: one module per area, each exporting `routes()`:
//!   `health` (`/healthz`, `/readyz`), `metrics` (`/metrics`),
//!   `openapi` (`/openapi.json`), `notice` (`/`, the rendered policy),
//!   `collect` (`POST /v1/collect/{point}`), `subjects` (purpose-bound reads), `records` (a
//!   page of records in a read, one record, closing an account), `upload` (streamed, sealed
//!   uploads), `download` (opened as the client reads).

pub mod backup;
pub mod codes;
pub mod error;
pub mod extract;
pub mod headers;
pub mod listen;
pub mod objects;
pub mod pages;
pub mod published;
pub mod retention;
pub mod rights;
pub mod routes;
pub mod sign_in;
pub mod startup;
pub mod state;
pub mod subject;
pub mod telemetry;
pub mod upgrade;

pub use listen::Limits;
pub use startup::{Application, Settings};
