//! # charter-policy
//!
//! The policy language: one TOML file states what a controller collects, why,
//! on which lawful basis, who receives it, how long it is kept, which rights
//! people have, and what happens in a breach. Everything else in charter reads it.
//!
//! ## Layout
//! - [`model`]: the file's shape (serde types; also the source of the JSON Schema).
//! - [`load`]: parsing with `file:line:column` diagnostics, unknown-key detection.
//! - `validate`: the rules beyond shape (undeclared references, missing
//!   retention, lawful-basis rules, malformed values), all reported in one run.
//! - [`units`]: durations, retention periods, dates, emails, URLs.
//! - [`render`]: the human-readable notice (Markdown, HTML), the GDPR Art. 30
//!   record of processing, and the CCPA disclosures.
//! - [`diff`]: what changed between two versions, and whether it is material.
//! - [`TENSOROPERA`]: the default policy, embedded in the binary.

pub mod diff;
pub mod load;
pub mod model;
pub mod render;
pub mod units;
mod validate;

pub use load::{load, Diagnostic, LoadedPolicy, PolicyErrors};
pub use model::Policy;

/// The TensorOpera policy, charter's default when no `--policy` is given.
pub const TENSOROPERA: &str = include_str!("../../../policies/tensoropera.toml");

/// The name diagnostics use for the embedded default policy.
pub const TENSOROPERA_NAME: &str = "policies/tensoropera.toml";

/// A JSON Schema of the policy format, for editors to validate and complete against.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Policy);
    serde_json::to_value(schema).expect("a schema always serialises")
}
