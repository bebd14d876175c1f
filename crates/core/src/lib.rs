//! # charter-core
//!
//! The domain, without I/O: everything here is a pure function of its inputs,
//! so it can be property-tested and reasoned about on its own.
//!
//! ## Layout
//! - [`access`]: purpose-bound access — may purpose P see a field of subject
//!   S, and if not, the machine-readable reason.
//! - [`consent`]: the consent ledger's rules — sources, coarse evidence, visitor ids,
//!   answers and banner choices, and the fold that gives a person's consent now.
//! - [`collect`]: what a collection point accepts (declared fields, types,
//!   sizes, consents asked, minimum age).
//! - [`requests`]: rights requests — their types and rights, the states they move
//!   through, and their legal deadlines.
//! - [`retention`]: when a category's values come due, how anonymised values are
//!   generalised, and which anonymised records are kept (k-anonymity).
//! - [`time`]: calendar arithmetic (no clock): months, business days.
//! - [`audit`]: the audit chain's rules — what an event holds, how an entry is
//!   hashed onto its predecessor, what a checkpoint signs, and how a sequence of
//!   stored entries is checked. The store persists entries; this decides whether
//!   they form one unbroken chain.

pub mod access;
pub mod audit;
pub mod collect;
pub mod consent;
pub mod requests;
pub mod retention;
pub mod time;
