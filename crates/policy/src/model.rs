//! The policy file's shape, as serde reads it.
//!
//! Values whose form needs checking (durations, dates, emails, URLs) are kept
//! as strings here and checked in [`crate::validate`], so that every problem in a
//! file is reported in one run with its location instead of stopping at the first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The policy's keyed sections, in file order. Looked up on every decision with keys
/// the policy itself defines, so a fast fixed hash serves (no keys from outside are
/// ever inserted, so there is nothing to flood).
pub type Map<V> = indexmap::IndexMap<String, V, foldhash::fast::FixedState>;

/// A whole privacy policy: the single source of truth for notice, RoPA,
/// CCPA disclosures and every runtime decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Policy {
    /// Version label of this policy, e.g. `"2024.03.29"`. Shown in the notice and recorded in the audit chain.
    pub version: String,
    /// The date this version was last updated, `YYYY-MM-DD` (P36).
    pub last_updated: String,
    /// Who is responsible for the personal data.
    pub controller: Controller,
    /// Short introductory statements shown at the top of the notice.
    #[serde(default)]
    pub scope: Scope,
    /// Data categories, keyed by fideslang-style key (`user.contact.email`).
    #[serde(default)]
    pub categories: Map<Category>,
    /// Processing purposes, keyed by a short identifier.
    #[serde(default)]
    pub purposes: Map<Purpose>,
    /// The places where personal data enters, keyed by point name.
    #[serde(default)]
    pub collection_points: Map<CollectionPoint>,
    /// Pages of the privacy center that let people act on their choices.
    #[serde(default)]
    pub pages: Map<Page>,
    /// Processors, service providers, third parties and affiliates.
    #[serde(default)]
    pub recipients: Map<Recipient>,
    /// Cookies and similar technologies, keyed by cookie name.
    #[serde(default)]
    pub cookies: Map<Cookie>,
    /// Services and the GDPR role charter's controller plays in each (P20).
    #[serde(default)]
    pub services: Map<Service>,
    /// When personal data may be disclosed without the person's request (P18).
    #[serde(default)]
    pub legal_disclosures: Vec<LegalDisclosure>,
    /// Rights per jurisdiction.
    #[serde(default)]
    pub rights: Rights,
    /// What happens when personal data is breached (P34).
    pub breach: Breach,
    /// Federated learning: what leaves a data owner (P07).
    #[serde(default)]
    pub federated_learning: Option<FederatedLearning>,
    /// Security measures and incident reporting (P33, P35).
    #[serde(default)]
    pub security: Security,
    /// How identifiers are put in one normal form, so one person is one subject.
    #[serde(default)]
    pub identifiers: Identifiers,
    /// Retention rules that are not per category (P31).
    #[serde(default)]
    pub retention: RetentionRules,
    /// How compliance is monitored (P32).
    #[serde(default)]
    pub compliance: Compliance,
    /// How material changes to this policy are announced (P36).
    #[serde(default)]
    pub changes: Changes,
    /// The cookie banner and the public consent endpoint (P12, P13, P25).
    #[serde(default)]
    pub consent: ConsentSettings,
    /// How rights requests are handled (P22-P27).
    #[serde(default)]
    pub requests: RequestSettings,
}

/// The controller of the personal data and how to reach them (P37).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Controller {
    /// Legal name, e.g. `"TensorOpera, Inc."`.
    pub name: String,
    /// Postal address, one line.
    pub address: String,
    /// Where privacy questions and rights requests go.
    pub privacy_email: String,
    /// Where security incidents are reported (P35).
    pub security_email: String,
    /// The website this policy covers.
    pub website: String,
    /// Nobody younger than this may use the services (P29).
    pub minimum_age: u32,
    /// Data protection officer, when one is appointed.
    #[serde(default)]
    pub dpo: Option<Contact>,
    /// Representative in the EU (GDPR Art. 27), when one is appointed.
    #[serde(default)]
    pub eu_representative: Option<Contact>,
}

/// A named contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contact {
    /// Person or organisation.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Postal address.
    #[serde(default)]
    pub address: Option<String>,
}

/// What the policy covers and does not cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Scope {
    /// Where the policy applies (websites, messages, services).
    #[serde(default)]
    pub applies_to: Vec<String>,
    /// What it explicitly does not cover.
    #[serde(default)]
    pub excludes: Vec<String>,
}

/// Where the data in a category comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The person gives it to us.
    Provided,
    /// Collected automatically as people use the services (P09).
    Automatic,
    /// Received from someone else (P14).
    ThirdParty,
}

/// What happens to data when its retention ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryAction {
    /// Delete it.
    Delete,
    /// Anonymise it so it no longer relates to a person.
    Anonymise,
}

/// How an anonymised value keeps only its coarse part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Generalise {
    /// An IP address becomes its network: IPv4 /24, IPv6 /48.
    Network,
    /// A location becomes its country (the last part of "City, Region, CC").
    Country,
    /// A user agent, browser or system becomes its family ("Firefox", "Windows").
    Family,
    /// A timestamp becomes its day.
    Day,
    /// A URL or path loses its query and fragment.
    Url,
    /// Kept as it is: the value relates to no one once the rest is gone.
    Keep,
}

/// A category of personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Category {
    /// What the category holds, in plain words.
    pub description: String,
    /// Where it comes from.
    pub source: Source,
    /// Named sources, for data received from third parties (e.g. `"LinkedIn"`).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Whether a value of this category identifies a person on its own (P10).
    pub identifies: bool,
    /// How long it is kept: a duration (`"90d"`, `"2y"`) or `"account+30d"`
    /// (while the account is open, then 30 days).
    #[serde(default)]
    pub retention: Option<String>,
    /// What happens when retention ends.
    #[serde(default)]
    pub on_expiry: Option<ExpiryAction>,
    /// How a value is generalised when it is anonymised (`on_expiry = "anonymise"`).
    #[serde(default)]
    pub generalise: Option<Generalise>,
    /// The CCPA category this belongs to, for the disclosures.
    #[serde(default)]
    pub ccpa: Option<CcpaCategory>,
    /// Whether this is sensitive personal information (GDPR Art. 9 / CPRA).
    #[serde(default)]
    pub sensitive: bool,
}

/// The CCPA §1798.140(v) categories of personal information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CcpaCategory {
    /// Name, email, postal address, IP address, account name.
    Identifiers,
    /// Records described in Cal. Civ. Code §1798.80(e) (e.g. financial information).
    CustomerRecords,
    /// Characteristics of protected classifications.
    ProtectedCharacteristics,
    /// Products or services purchased, purchasing history.
    CommercialInformation,
    /// Biometric information.
    Biometric,
    /// Browsing history, search history, interaction with a website.
    InternetActivity,
    /// Geolocation data.
    Geolocation,
    /// Audio, electronic, visual or similar information.
    SensoryData,
    /// Professional or employment-related information.
    Professional,
    /// Non-public education information.
    Education,
    /// Inferences drawn to create a profile.
    Inferences,
    /// Sensitive personal information (CPRA).
    SensitivePersonalInformation,
}

/// A lawful basis for processing (GDPR Art. 6(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    /// Art. 6(1)(a).
    Consent,
    /// Art. 6(1)(b).
    Contract,
    /// Art. 6(1)(c).
    LegalObligation,
    /// Art. 6(1)(d).
    VitalInterests,
    /// Art. 6(1)(e).
    PublicTask,
    /// Art. 6(1)(f).
    LegitimateInterests,
}

impl LawfulBasis {
    /// The basis in words, as the notice and the RoPA print it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Consent => "Consent",
            Self::Contract => "Performance of a contract",
            Self::LegalObligation => "Compliance with a legal obligation",
            Self::VitalInterests => "Vital interests",
            Self::PublicTask => "Public task",
            Self::LegitimateInterests => "Legitimate interests",
        }
    }
}

/// One basis or several; the file may write either `"contract"` or `["contract", "legal_obligation"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Bases {
    /// A single basis.
    One(LawfulBasis),
    /// Several bases, the first being the main one.
    Many(Vec<LawfulBasis>),
}

impl Bases {
    /// The bases as a slice.
    pub fn as_slice(&self) -> &[LawfulBasis] {
        match self {
            Self::One(b) => std::slice::from_ref(b),
            Self::Many(v) => v,
        }
    }

    /// Whether `basis` is among them.
    pub fn contains(&self, basis: LawfulBasis) -> bool {
        self.as_slice().contains(&basis)
    }
}

/// A purpose for which personal data is processed (P15, P21).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Purpose {
    /// What the processing is for, in plain words.
    pub description: String,
    /// Lawful basis or bases.
    pub basis: Bases,
    /// The legitimate interest, required when the basis includes `legitimate_interests`.
    #[serde(default)]
    pub legitimate_interest: Option<String>,
    /// Categories this purpose uses.
    pub categories: Vec<String>,
    /// Direct marketing: people may object at any time, and every message carries an unsubscribe link (P16).
    #[serde(default)]
    pub direct_marketing: bool,
    /// Decisions based solely on automated processing with legal or similarly significant effect.
    #[serde(default)]
    pub automated_decision: bool,
    /// Counts as "sale" or "sharing" under the CCPA/CPRA (P25).
    #[serde(default)]
    pub sale_or_sharing: bool,
    /// May continue while a subject's processing is restricted (GDPR Art. 18(2)).
    #[serde(default)]
    pub allowed_while_restricted: bool,
    /// CCPA business purpose this falls under, for the disclosures.
    #[serde(default)]
    pub business_purpose: Option<String>,
}

/// The kind of value a collection-point field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free text on one line.
    String,
    /// Free text over several lines.
    Text,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A URL.
    Url,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A date of birth, `YYYY-MM-DD`; a point with one enforces the minimum age.
    BirthDate,
    /// A yes/no statement that the person is at least the minimum age.
    AgeAttestation,
    /// A whole number.
    Integer,
    /// true or false.
    Boolean,
    /// An uploaded file.
    File,
    /// A secret the person chooses, such as a password: kept only as a salted hash
    /// (argon2id), which no read returns.
    Password,
}

/// One field a collection point may collect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Field {
    /// The data category of the value.
    pub category: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether the field must be present.
    #[serde(default)]
    pub required: bool,
    /// Largest value in bytes (text) or size in bytes (files).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Accepted content types, for files.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// For files: scan uploads for personal data, and what to do with what is found.
    #[serde(default)]
    pub scan: Option<ScanAction>,
    /// For passwords: check the value against the hash the subject already has for the
    /// same field, and store nothing of it (a sign-in), instead of storing a new hash.
    #[serde(default)]
    pub verify: bool,
}

/// What an upload scan does with the personal data it finds (P07, P08).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanAction {
    /// Refuse the upload; nothing is stored.
    Reject,
    /// Store it anonymised: each finding replaced by its type's tag.
    Anonymise,
    /// Store it as sent and record the findings (types and counts) in the audit chain.
    Record,
}

/// What a collection point stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// The person's current details (one value per field), such as an account.
    Profile,
    /// Each collection adds a record of its own, such as a support message or an order.
    Record,
}

impl CollectionPoint {
    /// Whether a collection here only checks (a sign-in verifies a password) and stores
    /// none of its fields.
    pub fn is_sign_in(&self) -> bool {
        self.fields.values().any(|f| f.verify)
    }
}

/// A place where personal data enters (P01–P08).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CollectionPoint {
    /// What the point is, in plain words.
    pub description: String,
    /// The purposes it collects for.
    pub purposes: Vec<String>,
    /// What a collection here stores: the person's current details (`profile`) or a
    /// record of its own (`record`). Required where fields are stored; a sign-in point
    /// (one that verifies a password) and a point without fields store nothing.
    #[serde(default)]
    pub kind: Option<PointKind>,
    /// At a profile point, the fields a collection may change once they hold a value;
    /// any other field is only filled when it has none.
    #[serde(default)]
    pub updates: Vec<String>,
    /// The fields it may collect; anything else is refused.
    #[serde(default)]
    pub fields: Map<Field>,
    /// Consent purposes this point asks for.
    #[serde(default)]
    pub consents: Vec<String>,
    /// Consent purposes this point lets people withdraw.
    #[serde(default)]
    pub withdraws: Vec<String>,
    /// Whether giving this data is optional for the person (P06).
    #[serde(default)]
    pub optional: bool,
    /// Recipient that stores what this point collects, when not the main store (P08).
    #[serde(default)]
    pub stored_with: Option<String>,
}

/// A privacy-center page that lets people act on their choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Page {
    /// Page title.
    pub title: String,
    /// Path on the privacy center, starting with `/`.
    pub path: String,
    /// Consent purposes the page lets people withdraw (and give again).
    #[serde(default)]
    pub withdraws: Vec<String>,
}

/// The relationship a recipient has with the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipientRole {
    /// GDPR processor / CCPA service provider, bound by contract.
    Processor,
    /// An independent third party.
    ThirdParty,
    /// A subsidiary or affiliate.
    Affiliate,
    /// A buyer or successor in a merger, sale or other business transfer.
    BusinessTransfer,
}

impl RecipientRole {
    /// The role in words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Processor => "Processor / service provider",
            Self::ThirdParty => "Third party",
            Self::Affiliate => "Affiliate",
            Self::BusinessTransfer => "Business transfer",
        }
    }
}

/// The safeguard for an international transfer (P28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Safeguard {
    /// An adequacy decision (GDPR Art. 45).
    Adequacy,
    /// Standard contractual clauses or another Art. 46 safeguard.
    Art46Sccs,
    /// No transfer outside the EEA, or no safeguard needed.
    None,
}

impl Safeguard {
    /// The safeguard in words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Adequacy => "Adequacy decision (GDPR Art. 45)",
            Self::Art46Sccs => "Standard contractual clauses (GDPR Art. 46)",
            Self::None => "None required",
        }
    }
}

/// How a deletion request reaches a recipient (P24).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Deletion {
    /// A signed webhook to this URL.
    Webhook(String),
    /// By hand, through this channel (an email address or a form's URL).
    Manual(String),
}

/// Someone personal data is disclosed to (P17).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recipient {
    /// Display name, e.g. `"Microsoft Clarity"`.
    pub name: String,
    /// Relationship to the controller.
    pub role: RecipientRole,
    /// What they do for us.
    pub service: String,
    /// Categories they receive.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Purposes for which they receive them.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Country where they process the data (ISO 3166 alpha-2).
    #[serde(default)]
    pub country: Option<String>,
    /// Transfer safeguard.
    #[serde(default = "no_safeguard")]
    pub safeguard: Safeguard,
    /// Their privacy policy.
    #[serde(default)]
    pub privacy_policy_url: Option<String>,
    /// Where people opt out of their processing.
    #[serde(default)]
    pub opt_out_url: Option<String>,
    /// How a deletion request reaches them.
    #[serde(default)]
    pub deletion: Option<Deletion>,
    /// Whether they use the data for their own direct marketing ("Shine the Light", P27).
    #[serde(default)]
    pub own_direct_marketing: bool,
    /// Whether disclosing to them is a sale or sharing under the CCPA: nothing is
    /// disclosed to them about a person who opted out (P25).
    #[serde(default)]
    pub sale_or_sharing: bool,
}

fn no_safeguard() -> Safeguard {
    Safeguard::None
}

/// Cookie categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CookieCategory {
    /// Needed for the site to work.
    StrictlyNecessary,
    /// Remembers choices.
    Functional,
    /// Measures use.
    Analytics,
    /// Advertising and tracking.
    Marketing,
}

/// A cookie or similar technology (P12, P13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cookie {
    /// Who sets it: `"first_party"` or a recipient key.
    pub provider: String,
    /// Its category.
    pub category: CookieCategory,
    /// What it is for.
    pub purpose: String,
    /// How long it lives (`"session"` or a duration).
    pub lifetime: String,
}

/// The role the controller plays for a service (P20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GdprRole {
    /// Decides how personal data is used.
    Controller,
    /// Uses personal data only as its customers allow.
    Processor,
}

/// A service and the GDPR role played in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    /// What the service is.
    pub description: String,
    /// The role played in it.
    pub role: GdprRole,
}

/// Grounds for disclosure without a request (P18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegalDisclosure {
    /// A court order, law, legal process or regulator's request.
    LegalProcess,
    /// Protecting the rights, property or safety of the company, customers or others, including fraud protection.
    ProtectRights,
    /// Enforcing terms of use and other agreements, including billing and collection.
    EnforceTerms,
}

/// Rights, per jurisdiction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rights {
    /// EU/EEA (GDPR).
    #[serde(default)]
    pub gdpr: Option<GdprRights>,
    /// California (CCPA/CPRA).
    #[serde(default)]
    pub ccpa: Option<CcpaRights>,
}

/// GDPR rights (P22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GdprRight {
    /// Art. 15.
    Access,
    /// Art. 16.
    Rectification,
    /// Art. 17.
    Erasure,
    /// Art. 18.
    Restriction,
    /// Art. 21(1).
    Objection,
    /// Art. 21(2).
    ObjectDirectMarketing,
    /// Art. 22.
    ObjectAutomatedDecision,
    /// Art. 20.
    Portability,
    /// Art. 7(3).
    WithdrawConsent,
    /// Art. 77.
    Complaint,
}

/// GDPR rights and how requests are handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GdprRights {
    /// The rights offered.
    pub rights: Vec<GdprRight>,
    /// Time to answer a request (GDPR: one month, `"1mo"`).
    pub deadline: String,
    /// How far the deadline may be extended (GDPR: two months, `"2mo"`).
    pub extension: String,
    /// Whether the requester's identity is verified first.
    pub verification: bool,
    /// Where the list of supervisory authorities is published.
    #[serde(default)]
    pub supervisory_authorities_url: Option<String>,
}

/// CCPA/CPRA rights (P23–P27).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CcpaRight {
    /// §1798.110.
    Know,
    /// §1798.105.
    Delete,
    /// §1798.106.
    Correct,
    /// §1798.120.
    OptOutSaleSharing,
    /// §1798.121.
    LimitSensitive,
    /// §1798.125.
    NonDiscrimination,
    /// Cal. Civ. Code §1798.83.
    ShineTheLight,
}

/// CCPA/CPRA rights and how requests are handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CcpaRights {
    /// The rights offered.
    pub rights: Vec<CcpaRight>,
    /// Time to answer a request (CCPA: 45 days, `"45d"`).
    pub deadline: String,
    /// How far the deadline may be extended (CCPA: 45 days, `"45d"`).
    pub extension: String,
    /// Whether the request must be verifiable.
    pub verification: bool,
    /// How far back a request to know reaches (CCPA: `"12mo"`).
    pub lookback: String,
    /// How people opt out of sale or sharing (an email address or a URL).
    #[serde(default)]
    pub opt_out_contact: Option<String>,
}

/// Breach notification commitments (P34).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Breach {
    /// Affected people are notified within this time of discovery (`"48h"`).
    pub notify_subjects_within: String,
    /// Channels used to notify them.
    pub channels: Vec<Channel>,
    /// The supervisory authority is notified within this time (GDPR Art. 33: `"72h"`).
    pub notify_authority_within: String,
    /// Notifications include guidance on what people can do to protect themselves.
    #[serde(default)]
    pub include_guidance: bool,
}

/// A way to reach a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Email.
    Email,
    /// A phone call or text message.
    Phone,
    /// A notice on the website's home page.
    HomePage,
}

impl Channel {
    /// The channel in words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::HomePage => "a notice on the home page",
        }
    }
}

/// What federated learning sends and keeps (P07).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FederatedLearning {
    /// Training data stays with its owner.
    pub data_stays_with_owner: bool,
    /// What leaves the owner is encrypted.
    pub updates_encrypted: bool,
    /// What leaves the owner is anonymised.
    pub updates_anonymised: bool,
    /// Personal information inside the training data is gathered.
    pub personal_data_gathered: bool,
    /// The collection point for raw uploads, if people may upload raw data (P08).
    #[serde(default)]
    pub raw_upload_point: Option<String>,
}

/// Security statements (P33, P35).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Security {
    /// Measures in place, in plain words.
    #[serde(default)]
    pub measures: Vec<String>,
    /// Security incidents can also be reported through the website's chat.
    #[serde(default)]
    pub incident_chat: bool,
    /// Failed password checks for one name before its checks are refused (P33).
    #[serde(default = "default_sign_in_failures")]
    pub sign_in_failures: u32,
    /// Minutes from a name's first failed check during which its failures count, and
    /// after which they are forgotten.
    #[serde(default = "default_sign_in_window_minutes")]
    pub sign_in_window_minutes: u32,
    /// One-time codes sent per address per hour (the preference center, rights requests).
    #[serde(default = "default_codes_per_address")]
    pub codes_per_address_per_hour: u32,
    /// One-time codes asked for per client network per hour.
    #[serde(default = "default_codes_per_network")]
    pub codes_per_network_per_hour: u32,
}

fn default_codes_per_address() -> u32 {
    5
}

fn default_codes_per_network() -> u32 {
    30
}

impl Default for Security {
    fn default() -> Self {
        Self {
            measures: Vec::new(),
            incident_chat: false,
            sign_in_failures: default_sign_in_failures(),
            sign_in_window_minutes: default_sign_in_window_minutes(),
            codes_per_address_per_hour: default_codes_per_address(),
            codes_per_network_per_hour: default_codes_per_network(),
        }
    }
}

fn default_sign_in_failures() -> u32 {
    5
}

fn default_sign_in_window_minutes() -> u32 {
    15
}

/// How identifiers are put in one normal form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifiers {
    /// The region whose national phone numbers are read without a country code (ISO
    /// 3166-1 alpha-2, e.g. `"US"`); without it a phone number must start with `+` and
    /// its country code.
    #[serde(default)]
    pub phone_region: Option<String>,
    /// Whether the local part of an email address (before the `@`) is matched
    /// ignoring case, as nearly every provider does (the default), or as written.
    #[serde(default)]
    pub email_local_part: EmailLocalPart,
}

/// How the local part of an email address is matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailLocalPart {
    /// `Ada@example.com` and `ada@example.com` are one address.
    #[default]
    CaseInsensitive,
    /// They are two.
    CaseSensitive,
}

/// What happens when data cannot be deleted right away (P31).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionRules {
    /// Data in backups that cannot be deleted yet is isolated from further processing until it can be.
    #[serde(default)]
    pub isolate_backups: bool,
    /// How often the retention sweep runs (a duration, e.g. `"1d"`).
    #[serde(default)]
    pub sweep_every: Option<String>,
    /// The anonymised categories whose values, together, could single someone out: an
    /// anonymised record is kept only in a group of at least `k_anonymity` records
    /// sharing them.
    #[serde(default)]
    pub quasi_identifiers: Vec<String>,
    /// The smallest group an anonymised record may be kept in (at least 5; default 5).
    #[serde(default)]
    pub k_anonymity: Option<u32>,
    /// How long a backup is kept (a duration, e.g. `"35d"`); `charter backup prune`
    /// removes older ones.
    #[serde(default)]
    pub backup_retention: Option<String>,
}

impl RetentionRules {
    /// The smallest group an anonymised record is kept in.
    pub fn k(&self) -> u32 {
        self.k_anonymity.unwrap_or(5)
    }
}

/// How compliance is monitored (P32).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Compliance {
    /// How often compliance is reviewed (a duration).
    #[serde(default)]
    pub review_every: Option<String>,
    /// Whether external experts take part when needed.
    #[serde(default)]
    pub external_audits: bool,
}

/// The cookie banner and the public consent endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsentSettings {
    /// Origins (`https://example.com`) of the sites that include the banner: the public
    /// consent endpoint answers cross-origin requests from these only.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Choices the public consent endpoint records per client network per minute; more
    /// are refused with 429 (default 60).
    #[serde(default)]
    pub choices_per_minute: Option<u32>,
}

impl ConsentSettings {
    /// Choices recorded per client network per minute.
    pub fn choices_per_minute(&self) -> u32 {
        self.choices_per_minute.unwrap_or(60)
    }
}

/// The names of the request types a person may file (`charter_core::requests`).
pub const REQUEST_TYPES: [&str; 16] = [
    "access",
    "portability",
    "rectification",
    "erasure",
    "restriction",
    "restriction_lift",
    "objection",
    "marketing_objection",
    "automated_decision_objection",
    "consent_withdrawal",
    "ccpa_know_categories",
    "ccpa_know_specific",
    "ccpa_delete",
    "ccpa_correct",
    "ccpa_opt_out",
    "shine_the_light",
];

/// How rights requests are handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestSettings {
    /// A request not verified within this time expires (default `"7d"`).
    #[serde(default = "default_verify_within")]
    pub verify_within: String,
    /// The same person asking the same thing within this time makes one request; the
    /// later is marked a duplicate (default `"30d"`).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: String,
    /// Request types the privacy team approves before they are fulfilled.
    #[serde(default)]
    pub approval: Vec<String>,
    /// The team is reminded of an open request this long before its deadline (default `"7d"`).
    #[serde(default = "default_remind_before")]
    pub remind_before: String,
    /// A processor told to delete confirms within this time, or the team is told (default `"30d"`).
    #[serde(default = "default_processor_window")]
    pub processor_confirm_within: String,
}

fn default_verify_within() -> String {
    "7d".into()
}

fn default_duplicate_window() -> String {
    "30d".into()
}

fn default_remind_before() -> String {
    "7d".into()
}

fn default_processor_window() -> String {
    "30d".into()
}

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            verify_within: default_verify_within(),
            duplicate_window: default_duplicate_window(),
            approval: Vec::new(),
            remind_before: default_remind_before(),
            processor_confirm_within: default_processor_window(),
        }
    }
}

/// How changes to the policy are announced (P36).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Changes {
    /// Channels used to announce material changes.
    #[serde(default)]
    pub notify: Vec<Channel>,
}
