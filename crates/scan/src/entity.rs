//! What is found.

use serde::Serialize;

/// A kind of personal data. Names follow Presidio's so results compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum EntityType {
    /// An email address.
    #[serde(rename = "EMAIL_ADDRESS")]
    EmailAddress,
    /// A phone number.
    #[serde(rename = "PHONE_NUMBER")]
    PhoneNumber,
    /// A payment card number (Luhn-checked).
    #[serde(rename = "CREDIT_CARD")]
    CreditCard,
    /// An IBAN (mod-97 checked).
    #[serde(rename = "IBAN_CODE")]
    IbanCode,
    /// An IPv4 or IPv6 address.
    #[serde(rename = "IP_ADDRESS")]
    IpAddress,
    /// A US social security number.
    #[serde(rename = "US_SSN")]
    UsSsn,
    /// A URL.
    #[serde(rename = "URL")]
    Url,
    /// A date in a birth context.
    #[serde(rename = "DATE_OF_BIRTH")]
    DateOfBirth,
    /// A secret or API key.
    #[serde(rename = "SECRET")]
    Secret,
    /// A person's name.
    #[serde(rename = "PERSON")]
    Person,
    /// A place: a street address, a city, a region or a country.
    #[serde(rename = "LOCATION")]
    Location,
}

impl EntityType {
    /// The type's name, as in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::EmailAddress => "EMAIL_ADDRESS",
            Self::PhoneNumber => "PHONE_NUMBER",
            Self::CreditCard => "CREDIT_CARD",
            Self::IbanCode => "IBAN_CODE",
            Self::IpAddress => "IP_ADDRESS",
            Self::UsSsn => "US_SSN",
            Self::Url => "URL",
            Self::DateOfBirth => "DATE_OF_BIRTH",
            Self::Secret => "SECRET",
            Self::Person => "PERSON",
            Self::Location => "LOCATION",
        }
    }

    /// Parses a type name.
    pub fn parse(name: &str) -> Option<Self> {
        ALL.iter().copied().find(|t| t.name() == name)
    }
}

/// Every type.
pub const ALL: &[EntityType] = &[
    EntityType::EmailAddress,
    EntityType::PhoneNumber,
    EntityType::CreditCard,
    EntityType::IbanCode,
    EntityType::IpAddress,
    EntityType::UsSsn,
    EntityType::Url,
    EntityType::DateOfBirth,
    EntityType::Secret,
    EntityType::Person,
    EntityType::Location,
];

/// One piece of personal data in a text: its type, its byte span, and how sure the matcher is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Finding {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: EntityType,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past its last byte.
    pub end: usize,
    /// Confidence in [0, 1].
    pub confidence: f32,
}
