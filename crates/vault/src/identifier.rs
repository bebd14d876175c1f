//! Identifiers (email addresses, phone numbers, ids from other systems): checked and put
//! in one normal form, so that one person is one subject however they type them, and
//! two people never share one because of what they left out.
//!
//! Every use of an identifier goes through [`Normaliser`]: blind indexes, and later
//! the addresses mail and text messages go to.
//!
//! - **Refused:** an empty value, and any control or invisible character (NUL, zero-width
//!   space and joiners, soft hyphen, direction marks, variation selectors, ...).
//! - **Email:** Unicode NFKC (fullwidth letters, the Kelvin sign and decomposed accents
//!   become their ordinary forms), one `@`, a local part and a dotted domain of the
//!   usual shapes; the domain is lower-cased, and the local part too unless the policy
//!   says its case matters.
//! - **Phone:** NFKC, then parsed as a phone number (national numbers in the policy's
//!   region) and written in E.164 (`+14155550100`); an extension is not part of it.
//! - **External id:** trimmed, otherwise as given.

use unicode_normalization::UnicodeNormalization as _;

use crate::crypto::IdentifierKind;

/// Why a value is not an identifier of its kind. Never holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadIdentifier {
    /// Nothing but spaces.
    #[error("is empty")]
    Empty,
    /// A control or invisible character.
    #[error("contains a control or invisible character")]
    Invisible,
    /// Longer than any real identifier.
    #[error("is too long")]
    TooLong,
    /// Not an email address.
    #[error("is not an email address")]
    NotEmail,
    /// Not a phone number (or, without a region, not in international form).
    #[error("is not a phone number in international form (+ and the country code)")]
    NotPhone,
}

/// An identifier in its normal form: only a [`Normaliser`] makes one.
#[derive(Clone, PartialEq, Eq)]
pub struct NormalForm {
    kind: IdentifierKind,
    value: String,
}

impl NormalForm {
    /// Its kind.
    pub fn kind(&self) -> IdentifierKind {
        self.kind
    }

    /// The normal form itself (personal data: never log it).
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for NormalForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NormalForm({}, [redacted])", self.kind.as_str())
    }
}

/// Puts identifiers in their normal form, with the policy's settings.
#[derive(Debug, Clone)]
pub struct Normaliser {
    phone_region: Option<phonenumber::country::Id>,
    fold_local_part: bool,
}

/// The longest value looked at (an email address is at most 254 bytes).
const MAX_LEN: usize = 320;

impl Normaliser {
    /// A normaliser reading national phone numbers in `phone_region` (ISO 3166-1 alpha-2,
    /// e.g. `"US"`; `None`: international form only), and matching the local part of email
    /// addresses ignoring case when `fold_local_part`.
    pub fn new(phone_region: Option<&str>, fold_local_part: bool) -> Result<Self, String> {
        let phone_region = match phone_region {
            Some(r) => Some(r.parse().map_err(|_| format!("`{r}` is not a region phone numbers are known for"))?),
            None => None,
        };
        Ok(Self { phone_region, fold_local_part })
    }

    /// `value` as an identifier of `kind`, in normal form.
    pub fn normalise(&self, kind: IdentifierKind, value: &str) -> Result<NormalForm, BadIdentifier> {
        let value = value.trim();
        if value.is_empty() {
            return Err(BadIdentifier::Empty);
        }
        if value.len() > MAX_LEN {
            return Err(BadIdentifier::TooLong);
        }
        if value.chars().any(invisible) {
            return Err(BadIdentifier::Invisible);
        }
        let value = match kind {
            IdentifierKind::Email => self.email(&value.nfkc().collect::<String>())?,
            IdentifierKind::Phone => self.phone(&value.nfkc().collect::<String>())?,
            IdentifierKind::ExternalId => value.to_owned(),
        };
        Ok(NormalForm { kind, value })
    }

    fn email(&self, value: &str) -> Result<String, BadIdentifier> {
        let (local, domain) = value.rsplit_once('@').ok_or(BadIdentifier::NotEmail)?;
        if !local_part_ok(local) || !domain_ok(domain) {
            return Err(BadIdentifier::NotEmail);
        }
        let local = if self.fold_local_part { local.to_lowercase() } else { local.to_owned() };
        Ok(format!("{local}@{}", domain.to_lowercase()))
    }

    fn phone(&self, value: &str) -> Result<String, BadIdentifier> {
        let number = phonenumber::parse(self.phone_region, value).map_err(|_| BadIdentifier::NotPhone)?;
        if !phonenumber::is_valid(&number) {
            return Err(BadIdentifier::NotPhone);
        }
        Ok(number.format().mode(phonenumber::Mode::E164).to_string())
    }
}

/// A character that controls or does not show: Unicode's controls and format characters,
/// and the fillers, joiners and selectors that print as nothing.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c as u32,
            0x00AD
                | 0x034F
                | 0x061C
                | 0x115F..=0x1160
                | 0x17B4..=0x17B5
                | 0x180B..=0x180F
                | 0x200B..=0x200F
                | 0x202A..=0x202E
                | 0x2060..=0x206F
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFEFF
                | 0xFFA0
                | 0xFFF0..=0xFFFB
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0000..=0xE0FFF
        )
}

/// The part of an address before the `@`: 1 to 64 bytes, no spaces or `@`, no characters
/// that need quoting, dots only between other characters.
fn local_part_ok(local: &str) -> bool {
    (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| !c.is_whitespace() && !"@\"(),:;<>[\\]".contains(c))
}

/// A domain of two or more labels, each 1 to 63 bytes of letters, digits and inner hyphens,
/// the last not all digits.
fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && !labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(n: &Normaliser, v: &str) -> Result<String, BadIdentifier> {
        n.normalise(IdentifierKind::Email, v).map(|f| f.expose().to_owned())
    }

    fn phone(n: &Normaliser, v: &str) -> Result<String, BadIdentifier> {
        n.normalise(IdentifierKind::Phone, v).map(|f| f.expose().to_owned())
    }

    #[test]
    fn variants_of_one_address_are_one_address() {
        let n = Normaliser::new(None, true).unwrap();
        let variants = ["ada@example.com", " Ada@Example.COM ", "ａｄａ@ｅｘａｍｐｌｅ.ｃｏｍ", "ADA@EXAMPLE.COM"]
            .map(|v| email(&n, v));
        assert!(variants.iter().all(|v| v.as_deref() == Ok("ada@example.com")), "{variants:?}");
        assert_eq!(email(&n, "\u{212A}at@example.com"), Ok("kat@example.com".into()), "the Kelvin sign is a K");
        assert_eq!(email(&n, "jose\u{301}@example.com"), email(&n, "jos\u{e9}@example.com"), "decomposed accents");
        let keep = Normaliser::new(None, false).unwrap();
        assert_eq!(email(&keep, "Ada@Example.COM"), Ok("Ada@example.com".into()), "the domain is always folded");
    }

    #[test]
    fn what_is_not_an_address_is_refused() {
        let n = Normaliser::new(None, true).unwrap();
        let cases = [
            ("", BadIdentifier::Empty),
            ("   ", BadIdentifier::Empty),
            ("ada\u{0}@example.com", BadIdentifier::Invisible),
            ("ada\u{200B}@example.com", BadIdentifier::Invisible),
            ("ad\u{AD}a@example.com", BadIdentifier::Invisible),
            ("ada@exa\u{200D}mple.com", BadIdentifier::Invisible),
            ("ada@example.com\u{FE0F}", BadIdentifier::Invisible),
            ("ada@example.com\u{E0041}", BadIdentifier::Invisible),
            ("ada.example.com", BadIdentifier::NotEmail),
            ("@example.com", BadIdentifier::NotEmail),
            ("ada@", BadIdentifier::NotEmail),
            ("ada@localhost", BadIdentifier::NotEmail),
            ("ada@example.123", BadIdentifier::NotEmail),
            ("ada lovelace@example.com", BadIdentifier::NotEmail),
            (".ada@example.com", BadIdentifier::NotEmail),
            ("ada.@example.com", BadIdentifier::NotEmail),
            ("a..da@example.com", BadIdentifier::NotEmail),
            ("ada@-example.com", BadIdentifier::NotEmail),
            ("ada@example-.com", BadIdentifier::NotEmail),
            ("ada@example..com", BadIdentifier::NotEmail),
            ("ada@exa_mple.com", BadIdentifier::NotEmail),
            ("a(da@example.com", BadIdentifier::NotEmail),
        ];
        for (v, why) in cases {
            assert_eq!(email(&n, v), Err(why), "{v:?}");
        }
        assert_eq!(email(&n, &format!("{}@example.com", "a".repeat(64))).map(|e| e.len()), Ok(76));
        assert_eq!(email(&n, &format!("{}@example.com", "a".repeat(65))), Err(BadIdentifier::NotEmail));
        let long_domain = format!("ada@{}.com", vec!["b".repeat(63); 4].join("."));
        assert_eq!(email(&n, &long_domain), Err(BadIdentifier::NotEmail), "over 253 bytes");
        assert_eq!(email(&n, &format!("ada@{}.com", "b".repeat(64))), Err(BadIdentifier::NotEmail));
        assert_eq!(email(&n, &"a".repeat(321)), Err(BadIdentifier::TooLong));
    }

    #[test]
    fn phones_are_e164() {
        let international = Normaliser::new(None, true).unwrap();
        for v in [
            "+1 415 555 0100",
            "+1 (415) 555-0100",
            "+14155550100",
            "＋１ ４１５ ５５５ ０１００",
            "+1 415 555 0100 x684",
        ] {
            assert_eq!(phone(&international, v), Ok("+14155550100".into()), "{v}");
        }
        assert_eq!(phone(&international, "(415) 555-0100"), Err(BadIdentifier::NotPhone), "no region: + needed");
        assert_eq!(phone(&international, "+44 20 7946 0018"), Ok("+442079460018".into()));
        let us = Normaliser::new(Some("US"), true).unwrap();
        assert_eq!(phone(&us, "(415) 555-0100"), Ok("+14155550100".into()));
        let uk = Normaliser::new(Some("GB"), true).unwrap();
        assert_eq!(phone(&uk, "020 7946 0018"), Ok("+442079460018".into()));
        for v in ["no digits", "+", "12", "+1 415 555", "+999 123 456 789"] {
            assert_eq!(phone(&us, v), Err(BadIdentifier::NotPhone), "{v}");
        }
        assert_eq!(phone(&us, "+1 415\u{200B} 555 0100"), Err(BadIdentifier::Invisible));
        assert!(Normaliser::new(Some("XX"), true).unwrap_err().contains("`XX`"));
    }

    #[test]
    fn external_ids_are_trimmed_only() {
        let n = Normaliser::new(None, true).unwrap();
        let id = n.normalise(IdentifierKind::ExternalId, "  CRM-0042 ").unwrap();
        assert_eq!((id.kind(), id.expose()), (IdentifierKind::ExternalId, "CRM-0042"));
        assert_eq!(n.normalise(IdentifierKind::ExternalId, "CRM\u{7}42"), Err(BadIdentifier::Invisible));
        assert_eq!(format!("{id:?}"), "NormalForm(external_id, [redacted])", "Debug never shows the value");
        let longest = "x".repeat(MAX_LEN);
        assert_eq!(n.normalise(IdentifierKind::ExternalId, &longest).map(|f| f.expose().len()), Ok(MAX_LEN));
    }
}
