//! # charter-scan
//!
//! Finds personal data in text (and so in CSV, JSON and raw uploads) and
//! anonymises it. Hand-written matchers over bytes, each with its checksum or
//! context rule, so that hard negatives (order numbers, versions, timestamps,
//! UUIDs, hashes, numbers failing their checksum) stay negative.
//!
//! ## Layout
//! - [`entity`]: entity types (named as Presidio names them) and findings.
//! - [`detect`]: the recognisers and [`detect::scan`].
//! - [`names`]: person names and locations, from shipped name and place lists plus context rules.
//! - [`anonymise`]: per-type redaction, masking, tags, keyed hashes, consistent pseudonyms, generalisation.
//! - [`stream`]: scanning any `Read` in chunks with bounded memory.

pub mod anonymise;
pub mod detect;
pub mod entity;
pub mod names;
pub mod stream;

pub use detect::scan;
pub use entity::{EntityType, Finding};
