//! Anonymisation, per entity type: redact, mask, tag, keyed hash, consistent
//! pseudonym, or generalise.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::entity::{EntityType, Finding};

/// What to do with one type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mode {
    /// Remove the value.
    Redact,
    /// Replace every character but the last `keep` with `*`.
    Mask {
        /// Characters left visible at the end.
        #[serde(default = "four")]
        keep: usize,
    },
    /// Replace with the type's name, e.g. `<EMAIL_ADDRESS>`.
    Tag,
    /// Replace with a keyed hash (HMAC-SHA256, hex, first 16 characters).
    Hash,
    /// Replace with a consistent token: the same value gives the same token within a scope.
    Pseudonym,
    /// Keep only the coarse part: a date's year, an IPv4 address's /24 network.
    Generalise,
}

fn four() -> usize {
    4
}

/// Anonymisation settings: a mode per type (types not listed are tagged) and the key for hashes and pseudonyms.
#[derive(Debug, Clone)]
pub struct Anonymiser {
    modes: HashMap<EntityType, Mode>,
    key: Vec<u8>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML of the expected shape.
    #[error("anonymisation config is invalid: {0}")]
    Parse(String),
    /// A type name that does not exist.
    #[error("unknown entity type `{0}`")]
    UnknownType(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    types: HashMap<String, Mode>,
}

impl Anonymiser {
    /// Settings with `key` (the scope of pseudonyms and hashes) and no per-type modes.
    pub fn new(key: &[u8]) -> Self {
        Self { modes: HashMap::new(), key: key.to_vec() }
    }

    /// Sets the mode of one type.
    pub fn with(mut self, kind: EntityType, mode: Mode) -> Self {
        self.modes.insert(kind, mode);
        self
    }

    /// Reads `[types.EMAIL_ADDRESS] mode = "pseudonym"` tables.
    pub fn from_toml(text: &str, key: &[u8]) -> Result<Self, ConfigError> {
        let file: ConfigFile = serde_json::from_value(toml_to_json(text).map_err(ConfigError::Parse)?)
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut a = Self::new(key);
        for (name, mode) in file.types {
            let kind = EntityType::parse(&name).ok_or(ConfigError::UnknownType(name))?;
            a.modes.insert(kind, mode);
        }
        Ok(a)
    }

    fn keyed(&self, kind: EntityType, value: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(kind.name().as_bytes());
        mac.update(b"\0");
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The replacement for one value.
    pub fn replacement(&self, kind: EntityType, value: &[u8]) -> Vec<u8> {
        match self.modes.get(&kind).unwrap_or(&Mode::Tag) {
            Mode::Redact => Vec::new(),
            Mode::Mask { keep } => {
                let text = String::from_utf8_lossy(value);
                let n = text.chars().count();
                text.chars()
                    .enumerate()
                    .map(|(i, c)| if i + keep < n && !c.is_whitespace() && c != '-' { '*' } else { c })
                    .collect::<String>()
                    .into_bytes()
            }
            Mode::Tag => format!("<{}>", kind.name()).into_bytes(),
            Mode::Hash => self.keyed(kind, value).as_bytes()[..16].to_vec(),
            Mode::Pseudonym => format!("{}_{}", kind.name(), &self.keyed(kind, value)[..10]).into_bytes(),
            Mode::Generalise => generalise(kind, value).unwrap_or_else(|| format!("<{}>", kind.name()).into_bytes()),
        }
    }

    /// `text` with every finding replaced. Findings must not overlap (as [`crate::scan`] returns them).
    pub fn apply(&self, text: &[u8], findings: &[Finding]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            out.extend_from_slice(&text[at..f.start]);
            out.extend(self.replacement(f.kind, &text[f.start..f.end]));
            at = f.end;
        }
        out.extend_from_slice(&text[at..]);
        out
    }
}

fn generalise(kind: EntityType, value: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(value).ok()?;
    match kind {
        EntityType::DateOfBirth => {
            let year = s.split(['-', '/', '.']).find(|p| p.len() == 4)?;
            Some(year.as_bytes().to_vec())
        }
        EntityType::IpAddress if s.contains('.') => {
            let parts: Vec<&str> = s.split('.').collect();
            Some(format!("{}.{}.{}.0/24", parts.first()?, parts.get(1)?, parts.get(2)?).into_bytes())
        }
        EntityType::IpAddress => {
            let addr: std::net::Ipv6Addr = s.parse().ok()?;
            let seg = addr.segments();
            Some(format!("{:x}:{:x}:{:x}::/48", seg[0], seg[1], seg[2]).into_bytes())
        }
        _ => None,
    }
}

/// A tiny TOML reader for the config's one shape, `[types.NAME]` tables of scalars,
/// so this crate needs no TOML parser of its own.
fn toml_to_json(text: &str) -> Result<serde_json::Value, String> {
    let mut types = serde_json::Map::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(h) = line.strip_prefix("[types.").and_then(|h| h.strip_suffix(']')) {
            current = Some(h.trim_matches('"').to_owned());
            types.insert(h.trim_matches('"').to_owned(), serde_json::json!({}));
            continue;
        }
        let (k, v) =
            line.split_once('=').ok_or_else(|| format!("line {}: expected `key = value` or `[types.NAME]`", n + 1))?;
        let table =
            current.as_ref().ok_or_else(|| format!("line {}: settings must follow a `[types.NAME]` header", n + 1))?;
        let v = v.trim();
        let value = if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            serde_json::Value::String(s.to_owned())
        } else {
            serde_json::Value::from(
                v.parse::<u64>().map_err(|_| format!("line {}: expected a quoted string or a number", n + 1))?,
            )
        };
        types.get_mut(table).and_then(|t| t.as_object_mut()).map(|t| t.insert(k.trim().to_owned(), value));
    }
    Ok(serde_json::json!({ "types": types }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_mode() {
        let a = Anonymiser::new(b"scope-1")
            .with(EntityType::EmailAddress, Mode::Pseudonym)
            .with(EntityType::CreditCard, Mode::Mask { keep: 4 })
            .with(EntityType::IpAddress, Mode::Generalise)
            .with(EntityType::DateOfBirth, Mode::Generalise)
            .with(EntityType::UsSsn, Mode::Redact)
            .with(EntityType::PhoneNumber, Mode::Hash);
        let text = b"ada@example.com paid with 4111 1111 1111 1111 from 192.168.1.20, born 1984-07-13, SSN 123-45-6789, tel +44 20 7946 0018, https://x.example";
        let out = String::from_utf8(a.apply(text, &crate::scan(text))).unwrap();
        assert!(out.starts_with("EMAIL_ADDRESS_"), "{out}");
        assert!(out.contains("**** **** **** 1111"), "{out}");
        assert!(out.contains("192.168.1.0/24"), "{out}");
        assert!(out.contains("born 1984,"), "{out}");
        assert!(out.contains("SSN ,"), "{out}");
        assert!(out.contains("<URL>"), "unlisted types are tagged: {out}");
        assert!(!out.contains("+44 20"), "{out}");
    }

    #[test]
    fn config_file() {
        let a = Anonymiser::from_toml("[types.EMAIL_ADDRESS]\nmode = \"mask\"\nkeep = 3\n", b"k").unwrap();
        assert_eq!(a.replacement(EntityType::EmailAddress, b"abc@x.io"), b"*****.io");
        assert!(matches!(
            Anonymiser::from_toml("[types.SHOE_SIZE]\nmode = \"tag\"\n", b"k"),
            Err(ConfigError::UnknownType(_))
        ));
        assert!(Anonymiser::from_toml("[types.URL]\nmode = \"scramble\"\n", b"k").is_err());
    }

    proptest! {
        #[test]
        fn anonymised_output_contains_no_detected_value(user in "[a-z]{3,10}", host in "[a-z]{3,10}", n in 0u32..1000) {
            let text = format!("contact {user}.{n}@{host}.com or {user}@{host}.org, ip 10.{}.{}.7", n % 256, (n / 4) % 256);
            let a = Anonymiser::new(b"scope").with(EntityType::EmailAddress, Mode::Pseudonym).with(EntityType::IpAddress, Mode::Hash);
            let found = crate::scan(text.as_bytes());
            let out = String::from_utf8(a.apply(text.as_bytes(), &found)).unwrap();
            for f in &found {
                prop_assert!(!out.contains(&text[f.start..f.end]), "{} left in {}", &text[f.start..f.end], out);
            }
        }

        #[test]
        fn pseudonyms_are_consistent_within_a_scope(value in "[a-z]{1,12}@[a-z]{2,8}\\.com") {
            let a = Anonymiser::new(b"scope").with(EntityType::EmailAddress, Mode::Pseudonym);
            let b = Anonymiser::new(b"other").with(EntityType::EmailAddress, Mode::Pseudonym);
            prop_assert_eq!(a.replacement(EntityType::EmailAddress, value.as_bytes()), a.replacement(EntityType::EmailAddress, value.as_bytes()));
            prop_assert_ne!(a.replacement(EntityType::EmailAddress, value.as_bytes()), b.replacement(EntityType::EmailAddress, value.as_bytes()));
        }
    }
}
