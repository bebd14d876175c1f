//! Signed webhooks to processors: a recipient whose policy entry says
//! `deletion = { webhook = "https://..." }` is called at that URL with a JSON body and
//!
//! - `Charter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed by
//!   the recipient's secret (made by `charter recipients secret NAME`, kept sealed);
//! - `Charter-Delivery: <job id>`, the same on every retry, so a receiver drops duplicates.
//!
//! 2xx is success; 408, 429 and 5xx are retried (honouring `Retry-After`); any other
//! status is permanent.

use std::collections::BTreeMap;
use std::time::Duration;

use charter_store::Store;
use charter_vault::KeyFile;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::{Attempt, DeliveryError, Webhook};

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Charter-Signature` value for `body` at `unix_seconds`.
pub fn signature(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` (a `Charter-Signature` value) signs `body` with `secret`, made within
/// `tolerance_s` seconds of `now_s`: how charter checks a processor's signed callback.
pub fn check_signature(secret: &[u8], header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

/// A recipient's signing secret, opened; `None` when none was made.
pub async fn recipient_secret(
    store: &Store,
    keys: &KeyFile,
    recipient: &str,
) -> Result<Option<Vec<u8>>, DeliveryError> {
    let Some(sealed) = store.webhook_secret(recipient).await? else { return Ok(None) };
    charter_vault::envelope::open(keys, &secret_label(recipient), &sealed)
        .map(Some)
        .map_err(|_| DeliveryError::Config(format!("the signing secret of `{recipient}` does not open")))
}

/// Calls processors.
pub struct Webhooks {
    client: reqwest::Client,
    /// Recipient name → URL, from the policy.
    urls: BTreeMap<String, String>,
}

/// The label a recipient's secret is sealed under.
pub(crate) fn secret_label(recipient: &str) -> String {
    format!("webhook-secret/{recipient}")
}

/// Makes a new signing secret for `recipient` (replacing any earlier one), stores it
/// sealed, and returns it for the operator to give the processor.
pub async fn new_secret(store: &Store, keys: &KeyFile, recipient: &str, now_us: i64) -> Result<String, DeliveryError> {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let secret = format!("whsec_{}", hex::encode(raw));
    let sealed = charter_vault::envelope::seal(keys, &secret_label(recipient), secret.as_bytes());
    store.put_webhook_secret(recipient, &sealed, now_us).await?;
    Ok(secret)
}

impl Webhooks {
    /// The webhooks the policy declares.
    pub fn new(policy: &charter_policy::model::Policy) -> Result<Self, DeliveryError> {
        let urls = policy
            .recipients
            .iter()
            .filter_map(|(name, r)| match &r.deletion {
                Some(charter_policy::model::Deletion::Webhook(url)) => Some((name.clone(), url.clone())),
                _ => None,
            })
            .collect();
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| DeliveryError::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { client, urls })
    }

    /// Calls the recipient of `hook` once, as job `job_id`.
    pub async fn send(&self, store: &Store, keys: &KeyFile, job_id: &str, hook: &Webhook) -> Attempt {
        let Some(url) = self.urls.get(&hook.recipient) else {
            return Attempt::permanent("no webhook for the recipient in the policy");
        };
        let secret = match store.webhook_secret(&hook.recipient).await {
            Ok(Some(sealed)) => match charter_vault::envelope::open(keys, &secret_label(&hook.recipient), &sealed) {
                Ok(s) => s,
                Err(_) => return Attempt::permanent("the signing secret does not open"),
            },
            Ok(None) => return Attempt::permanent("no signing secret: run charter recipients secret"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a signing secret");
                return Attempt::retry("database", None);
            }
        };
        let body = serde_json::json!({
            "id": job_id,
            "event": hook.event,
            "recipient": hook.recipient,
            "data": hook.data,
        })
        .to_string();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let sent = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("Charter-Signature", signature(&secret, now, body.as_bytes()))
            .header("Charter-Delivery", job_id)
            .body(body)
            .send()
            .await;
        http_attempt(sent)
    }
}

/// An HTTP call's outcome as an attempt: 2xx sent; 408, 429 and 5xx retried (after
/// `Retry-After` seconds when given); other statuses permanent; no answer retried.
pub(crate) fn http_attempt(sent: Result<reqwest::Response, reqwest::Error>) -> Attempt {
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Attempt::retry("http timeout", None),
        Err(_) => return Attempt::retry("http unreachable", None),
    };
    let status = response.status();
    let reply = format!("http {}", status.as_u16());
    if status.is_success() {
        return Attempt::sent(reply);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status.as_u16() {
        408 | 429 | 500..=599 => Attempt::retry(reply, retry_after),
        _ => Attempt::permanent(reply),
    }
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    #[test]
    fn a_signature_checks_with_its_secret_body_and_time_only() {
        let header = signature(b"secret", 1000, b"{}");
        assert!(check_signature(b"secret", &header, b"{}", 1000, 300));
        assert!(check_signature(b"secret", &header, b"{}", 1300, 300));
        assert!(!check_signature(b"secret", &header, b"{}", 1301, 300), "too old");
        assert!(!check_signature(b"secret", &header, b"{}", 699, 300), "from the future");
        assert!(!check_signature(b"other", &header, b"{}", 1000, 300), "another secret");
        assert!(!check_signature(b"secret", &header, b"{ }", 1000, 300), "another body");
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=zz"] {
            assert!(!check_signature(b"secret", bad, b"{}", 1000, 300), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_an_hmac_of_time_dot_body() {
        // HMAC-SHA256("key", "1700000000.{}"), computed with Python's hmac module.
        let s = super::signature(b"key", 1_700_000_000, b"{}");
        assert_eq!(s, "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae");
        assert_ne!(s, super::signature(b"key", 1_700_000_001, b"{}"));
        assert_ne!(s, super::signature(b"other", 1_700_000_000, b"{}"));
    }
}
