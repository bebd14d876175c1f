//! Text messages: a form-encoded POST of `To`, `From` and `Body` with basic auth to an
//! HTTP gateway (the form Twilio's Messages API takes), else into the sealed outbox.
//! Numbers are put in E.164 first; one that cannot be is a permanent failure.

use std::time::Duration;

use charter_vault::{IdentifierKind, Normaliser};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{Attempt, DeliveryError, JobKey, Outbox, Sms};

/// How long one gateway call may take.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(30);

/// An SMS gateway: its URL (the account name as the URL's user), the sender, the token.
#[derive(Clone)]
pub struct Gateway {
    pub url: String,
    pub from: String,
    pub token: SecretString,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gateway([redacted])")
    }
}

enum Route {
    Gateway { client: reqwest::Client, url: reqwest::Url, account: String, from: String, token: SecretString },
    Outbox(Outbox),
}

/// Sends text messages through one route.
pub struct Texter {
    route: Route,
    numbers: Normaliser,
}

impl Texter {
    /// Text messages through `gateway`, or into `outbox` without one.
    pub fn new(gateway: Option<Gateway>, numbers: Normaliser, outbox: Outbox) -> Result<Self, DeliveryError> {
        let route = match gateway {
            None => Route::Outbox(outbox),
            Some(g) => {
                let mut url =
                    reqwest::Url::parse(&g.url).map_err(|_| DeliveryError::Config("--sms-url is not a URL".into()))?;
                let account = url.username().to_owned();
                let _ = url.set_username("");
                let _ = url.set_password(None);
                let client = reqwest::Client::builder()
                    .timeout(GATEWAY_TIMEOUT)
                    .build()
                    .map_err(|e| DeliveryError::Config(format!("cannot make an HTTP client: {e}")))?;
                Route::Gateway { client, url, account, from: g.from, token: g.token }
            }
        };
        Ok(Self { route, numbers })
    }

    /// Where text messages go, for logs.
    pub fn describe(&self) -> String {
        match &self.route {
            Route::Gateway { url, .. } => format!("the SMS gateway at {}", url.host_str().unwrap_or("?")),
            Route::Outbox(o) => format!("the sealed outbox at {} (set --sms-url to send)", o.dir().display()),
        }
    }

    /// Sends job `job_id`'s text message once (`key` seals it in the outbox).
    pub async fn send(&self, job_id: &str, key: &JobKey, sms: &Sms) -> Attempt {
        let Ok(to) = self.numbers.normalise(IdentifierKind::Phone, &sms.to) else {
            return Attempt::permanent("invalid number");
        };
        match &self.route {
            Route::Outbox(outbox) => {
                let text = format!("To: {}\n\n{}\n", to.expose(), sms.body);
                match outbox.put("sms", job_id, key, text.as_bytes()) {
                    Ok(()) => Attempt::sent("outbox"),
                    Err(e) => {
                        tracing::warn!(error = ?e, "cannot write to the outbox");
                        Attempt::retry("outbox unwritable", None)
                    }
                }
            }
            Route::Gateway { client, url, account, from, token } => {
                let form = [("To", to.expose()), ("From", from.as_str()), ("Body", sms.body.as_str())];
                let sent =
                    client.post(url.clone()).basic_auth(account, Some(token.expose_secret())).form(&form).send().await;
                crate::webhook::http_attempt(sent)
            }
        }
    }
}
