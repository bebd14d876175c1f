//! # charter-store
//!
//! Persistence on SQLite (the embedded default) or PostgreSQL (for several
//! nodes), through one set of runtime-checked queries, so the build never needs
//! a database.
//!
//! ## Layout
//! - [`data_dir`]: the on-disk layout of one installation (database, objects, key file).
//! - [`db`]: connecting, the per-backend migrations, readiness.
//! - [`audit`]: the audit chain's writer (one task per process that batches
//!   concurrent appends into one statement, and survives other processes
//!   appending to the same database) and its verifier.
//! - [`native`]: direct SQLite connections for the hot paths (the audit writer, purpose-bound reads).
//! - [`vault`]: subjects, blind indexes, sealed profile values, consents, objections, writing a
//!   collection, shredding.
//! - [`consents`]: the consent ledger: answers appended, histories, visitors joined to subjects.
//! - [`records`]: reading a subject's records a page at a time, or one by id; closing an account.
//! - [`codes`]: one-time codes that prove who someone is, with their rate limits.
//! - [`requests`]: objections and the log of what people asked for, applied with their answers.
//! - [`policies`]: published policy versions, and consents lapsed by a material change.
//! - [`erasure`]: erasure with legal exceptions, processors told and tracked, certificates.
//! - [`jobs`]: the durable queue of messages and calls, claimed under leases.
//! - [`admins`]: the privacy team's console accounts and sessions.
//! - [`api_keys`]: API keys, stored as hashes.
//! - [`sign_ins`]: failed password checks and checks under way, per name, shared by servers.
//! - [`upgrade`]: reading and rewriting what an earlier version wrote (legacy sealing, values at
//!   what are now record points).

pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod backup;
pub mod codes;
pub mod consents;
pub mod data_dir;
pub mod db;
pub mod erasure;
pub mod jobs;
pub mod native;
pub mod policies;
pub mod records;
pub mod requests;
pub mod retention;
pub mod sign_ins;
pub mod upgrade;
pub mod vault;

pub use audit::{now_us, AuditError, AuditLog, VerifyError, VerifyReport};
pub use data_dir::{DataDir, DirLock};
pub use db::{Backend, Store, StoreError, Synchronous};
