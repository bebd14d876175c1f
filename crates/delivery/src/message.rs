//! What a job sends. A message holds personal data (an address, a number, words about a
//! person), so it exists in clear only in memory: it is sealed before it is queued and
//! opened by the worker that sends it. Its `Debug` output names no person.

use serde::{Deserialize, Serialize};

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Mail,
    Sms,
    Webhook,
}

impl Channel {
    /// The channel's name in the jobs table, the audit chain and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::Sms => "sms",
            Self::Webhook => "webhook",
        }
    }

    /// Attempts before a job on this channel is dead, unless its kind says otherwise.
    pub fn default_attempts(self) -> u32 {
        match self {
            Self::Mail | Self::Sms => 8,
            Self::Webhook => 12,
        }
    }
}

/// One message.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Message {
    Mail(Mail),
    Sms(Sms),
    Webhook(Webhook),
}

impl Message {
    pub fn channel(&self) -> Channel {
        match self {
            Self::Mail(_) => Channel::Mail,
            Self::Sms(_) => Channel::Sms,
            Self::Webhook(_) => Channel::Webhook,
        }
    }
}

/// An email.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Mail {
    /// The address it goes to.
    pub to: String,
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// The same in HTML, sent beside the text (`multipart/alternative`) when present.
    #[serde(default)]
    pub html: Option<String>,
    /// A one-click unsubscribe URL: `List-Unsubscribe` and `List-Unsubscribe-Post` headers.
    #[serde(default)]
    pub unsubscribe: Option<String>,
}

/// A text message.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Sms {
    /// The number it goes to, in any form the normaliser reads.
    pub to: String,
    pub body: String,
}

/// A call to a processor named in the policy's recipients.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// The recipient's name in the policy; its `deletion.webhook` URL is where it goes.
    pub recipient: String,
    /// What happened, e.g. `erasure.requested`.
    pub event: String,
    /// The event's data (ids, never an identifier in clear unless the recipient needs it).
    pub data: serde_json::Value,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mail(_) => f.write_str("Message::Mail([redacted])"),
            Self::Sms(_) => f.write_str("Message::Sms([redacted])"),
            Self::Webhook(w) => write!(f, "Message::Webhook({} {}, [redacted])", w.recipient, w.event),
        }
    }
}
