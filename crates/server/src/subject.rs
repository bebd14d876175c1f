//! Naming a subject: by charter's opaque id, parsed once at the edge into a
//! [`SubjectId`], or by an identifier (email, phone, external id) put in its normal form
//! and found through its blind index.
//!
//! A subject indexed before identifiers had their normal form is found by the index of
//! its old form when the new one misses, and is then indexed under the new one.

use charter_store::vault::{StoredField, SubjectRecord};
use charter_vault::{BadIdentifier, DataKey, Holder, IdentifierKind, KeyWrapper as _, NormalForm, Personal};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// Charter's opaque id of a subject, in normal form (a lower-case hyphenated UUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectId(String);

impl SubjectId {
    /// Parses an id as a request gives it; a malformed one names no subject (404), like an
    /// unknown one.
    pub fn parse(id: &str) -> Result<Self, ApiError> {
        uuid::Uuid::parse_str(id).map(|u| Self(u.to_string())).map_err(|_| unknown_subject())
    }

    /// A fresh random id, for a new subject.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id of a subject as stored (already in normal form).
    pub fn of(subject: &SubjectRecord) -> Self {
        Self(subject.id.clone())
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The answer for an id or identifier that names no subject.
pub fn unknown_subject() -> ApiError {
    ApiError::Missing { code: "unknown_subject", message: "no such subject".into() }
}

/// How a request names a subject: exactly one of these.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SubjectSelector {
    email: Option<Personal<String>>,
    phone: Option<Personal<String>>,
    external_id: Option<Personal<String>>,
    id: Option<String>,
}

/// How the request names its subject, once checked.
pub enum Identifier {
    /// By charter's opaque id.
    Id(SubjectId),
    /// By an identifier: its normal form, that form's blind index, and the value as
    /// given (only for finding a subject indexed under an earlier form).
    Named {
        /// The identifier in normal form.
        normal: NormalForm,
        /// Its blind index, made once.
        blind: [u8; 32],
        /// The value as the request gave it.
        given: Personal<String>,
    },
}

impl SubjectSelector {
    /// A selector from its parts.
    pub fn from_parts(
        email: Option<Personal<String>>,
        phone: Option<Personal<String>>,
        external_id: Option<Personal<String>>,
        id: Option<String>,
    ) -> Self {
        Self { email, phone, external_id, id }
    }

    /// The one way the request names its subject, checked: exactly one is given, an id is
    /// well formed, an identifier is one of its kind (422 `bad_subject` otherwise).
    pub fn identifier(&self, state: &AppState) -> Result<Identifier, ApiError> {
        let given = [self.email.is_some(), self.phone.is_some(), self.external_id.is_some(), self.id.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(bad_subject("name the subject with exactly one of email, phone, external_id or id".into()));
        }
        let (kind, value) = match (&self.email, &self.phone, &self.external_id, &self.id) {
            (_, _, _, Some(id)) => return SubjectId::parse(id).map(Identifier::Id),
            (Some(v), _, _, _) => (IdentifierKind::Email, v),
            (_, Some(v), _, _) => (IdentifierKind::Phone, v),
            (_, _, Some(v), _) => (IdentifierKind::ExternalId, v),
            _ => unreachable!("exactly one is set"),
        };
        let normal = state.identifiers.normalise(kind, value.expose()).map_err(|e| bad_identifier(kind, e))?;
        let blind = state.keys.blind_indexer().index(&normal);
        Ok(Identifier::Named { normal, blind, given: value.clone() })
    }
}

fn bad_subject(message: String) -> ApiError {
    ApiError::Unprocessable { code: "bad_subject", message, details: Value::Null }
}

/// The refusal of an identifier that is not one of its kind, saying why and never echoing it.
fn bad_identifier(kind: IdentifierKind, why: BadIdentifier) -> ApiError {
    bad_subject(format!("the subject's {} {why}", kind.as_str().replace('_', " ")))
}

/// The subject with id `id`; an unknown one is 404.
pub async fn by_id(state: &AppState, id: &SubjectId) -> Result<SubjectRecord, ApiError> {
    state.store.subject(id.as_str()).await?.ok_or_else(unknown_subject)
}

/// The subject a checked identifier names, if any. Named by an identifier, it is found
/// by the index of the normal form, or else by the index an earlier version made of the
/// value given, in which case the subject is indexed under the normal form from then on.
pub async fn find(state: &AppState, identifier: &Identifier) -> Result<Option<SubjectRecord>, ApiError> {
    let (normal, blind, given) = match identifier {
        Identifier::Id(id) => return Ok(Some(by_id(state, id).await?)),
        Identifier::Named { normal, blind, given } => (normal, blind, given),
    };
    let kind = normal.kind().as_str();
    if let Some(s) = state.store.subject_by_identifier(kind, blind).await? {
        return Ok(Some(s));
    }
    let legacy = state.keys.blind_indexer().index_legacy(normal.kind(), given.expose());
    if legacy == *blind {
        return Ok(None);
    }
    let Some(s) = state.store.subject_by_identifier(kind, &legacy).await? else {
        return Ok(None);
    };
    state.store.reindex_identifier(kind, &legacy, blind, &s.id).await?;
    Ok(Some(s))
}

/// The subject a checked identifier names; an unknown one is 404.
pub async fn named(state: &AppState, identifier: &Identifier) -> Result<SubjectRecord, ApiError> {
    find(state, identifier).await?.ok_or_else(unknown_subject)
}

/// The subject's data key; a shredded subject has none (404).
pub fn unwrap_key(state: &AppState, s: &SubjectRecord) -> Result<DataKey, ApiError> {
    let wrapped = s.wrapped.as_ref().ok_or_else(unknown_subject)?;
    state.keys.unwrap(&s.id, wrapped).map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot unwrap a data key: {e}")))
}

/// A profile value opened: its own key unwrapped with the subject's key `data_key`, then
/// the value. One an earlier version sealed with the subject's key itself is resealed when
/// charter starts, so none is found here.
pub fn open_value(data_key: &DataKey, subject: &str, stored: &StoredField) -> Result<Vec<u8>, ApiError> {
    let wrapped = stored
        .wrapped_key
        .as_deref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a profile value was not resealed at start")))?;
    let own = data_key.unwrap_own(subject, Holder::Value(&stored.field), wrapped).map_err(sealed_error)?;
    own.open_field(subject, &stored.field, &stored.category, &stored.sealed).map_err(sealed_error)
}

/// A sealed value or key that did not open: an internal error, its cause logged.
pub fn sealed_error(e: charter_vault::CryptoError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("a sealed value did not open: {e}"))
}
