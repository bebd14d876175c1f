//! Email: over SMTP (`lettre`) when a server is configured, else into the sealed outbox.
//! Each message's `Message-ID` is made from its job id, so a message sent again after a
//! crash is recognisably the same one.

use std::time::Duration;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::ExposeSecret as _;

use crate::{Attempt, DeliveryError, JobKey, Mail, Outbox};

/// SMTP connections kept open at most (a worker sends up to its concurrency at once).
const POOL: u32 = 64;

/// How long one SMTP exchange may take before it counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// DKIM signing: the private key (RSA in PKCS#1 PEM, or an Ed25519 seed in base64),
/// selector and domain.
#[derive(Debug, Clone)]
pub struct Dkim {
    pub key_pem: secrecy::SecretString,
    pub selector: String,
    pub domain: String,
}

/// Where mail goes.
enum Route {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, server: String },
    Outbox(Outbox),
}

/// Sends mail through one route.
pub struct Mailer {
    route: Route,
    from: Mailbox,
    dkim: Option<DkimConfig>,
}

/// `List-Unsubscribe: <URL>` (RFC 2369).
#[derive(Clone)]
struct ListUnsubscribe(String);

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim_start_matches('<').trim_end_matches('>').to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

fn dkim_config(dkim: &Dkim) -> Result<DkimConfig, DeliveryError> {
    let pem = dkim.key_pem.expose_secret();
    let key = DkimSigningKey::new(pem, DkimSigningAlgorithm::Rsa)
        .or_else(|_| DkimSigningKey::new(pem.trim(), DkimSigningAlgorithm::Ed25519))
        .map_err(|_| {
            DeliveryError::Config(
                "the DKIM key is neither an RSA private key (PKCS#1 PEM) nor an Ed25519 seed (base64)".into(),
            )
        })?;
    let headers = ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"]
        .map(HeaderName::new_from_ascii_str)
        .to_vec();
    // Relaxed headers: the signature header is folded differently once its `b=` value is
    // filled in, and under simple canonicalization a receiving server, which removes only
    // that value, would hash other bytes than were signed.
    let canonicalization =
        DkimCanonicalization { header: DkimCanonicalizationType::Relaxed, body: DkimCanonicalizationType::Relaxed };
    Ok(DkimConfig::new(dkim.selector.clone(), dkim.domain.clone(), key, headers, canonicalization))
}

impl Mailer {
    /// Mail over SMTP at `url` (`smtp://` plain or with `?tls=required` for STARTTLS,
    /// `smtps://` implicit TLS; user and password in the URL), or into `outbox` without one.
    pub fn new(
        url: Option<&secrecy::SecretString>,
        from: &str,
        dkim: Option<&Dkim>,
        outbox: Outbox,
    ) -> Result<Self, DeliveryError> {
        let from: Mailbox =
            from.parse().map_err(|_| DeliveryError::Config("--mail-from is not an email address".into()))?;
        let route = match url {
            None => Route::Outbox(outbox),
            Some(url) => {
                let url = url.expose_secret();
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|_| DeliveryError::Config("--smtp-url is not an smtp:// or smtps:// URL".into()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .pool_config(PoolConfig::new().max_size(POOL))
                    .build();
                Route::Smtp { transport, server: server_of(url) }
            }
        };
        Ok(Self { route, from, dkim: dkim.map(dkim_config).transpose()? })
    }

    /// Where mail goes, for logs: the SMTP server's host and port, or the outbox folder.
    pub fn describe(&self) -> String {
        match &self.route {
            Route::Smtp { server, .. } => format!("the SMTP server at {server}"),
            Route::Outbox(o) => format!("the sealed outbox at {} (set --smtp-url to send)", o.dir().display()),
        }
    }

    /// Whether mail stays on this machine.
    pub fn is_outbox(&self) -> bool {
        matches!(self.route, Route::Outbox(_))
    }

    /// The message for job `job_id`, or why it cannot be made (a permanent failure).
    fn build(&self, job_id: &str, mail: &Mail) -> Result<lettre::Message, Attempt> {
        let to: Mailbox = mail.to.parse().map_err(|_| Attempt::permanent("invalid address"))?;
        let domain = self.from.email.domain().to_owned();
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{job_id}@{domain}>")));
        if let Some(url) = &mail.unsubscribe {
            builder = builder.header(ListUnsubscribe(url.clone())).header(ListUnsubscribePost);
        }
        let built = match &mail.html {
            None => builder.header(ContentType::TEXT_PLAIN).body(mail.text.clone()),
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), html.clone())),
        };
        let mut message = built.map_err(|_| Attempt::permanent("unbuildable message"))?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok(message)
    }

    /// Sends job `job_id`'s mail once (`key` seals it in the outbox).
    pub async fn send(&self, job_id: &str, key: &JobKey, mail: &Mail) -> Attempt {
        let message = match self.build(job_id, mail) {
            Ok(m) => m,
            Err(refused) => return refused,
        };
        match &self.route {
            Route::Outbox(outbox) => match outbox.put("mail", job_id, key, &message.formatted()) {
                Ok(()) => Attempt::sent("outbox"),
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot write to the outbox");
                    Attempt::retry("outbox unwritable", None)
                }
            },
            Route::Smtp { transport, .. } => match transport.send(message).await {
                Ok(response) => Attempt::sent(format!("smtp {}", response.code())),
                Err(e) => smtp_failure(&e),
            },
        }
    }
}

/// An SMTP failure as an attempt: a 5xx reply is permanent, anything else is retried.
/// The reply's text is not kept (a server may quote the address).
fn smtp_failure(e: &lettre::transport::smtp::Error) -> Attempt {
    let reply = match e.status() {
        Some(code) => format!("smtp {code}"),
        None if e.is_timeout() => "smtp timeout".to_owned(),
        None if e.is_tls() => "smtp tls".to_owned(),
        None => "smtp unreachable".to_owned(),
    };
    if e.is_permanent() {
        Attempt::permanent(reply)
    } else {
        Attempt::retry(reply, None)
    }
}

/// `host:port` of an SMTP URL, without user or password.
fn server_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer(dkim: Option<&Dkim>) -> (tempfile::TempDir, Mailer) {
        let dir = tempfile::tempdir().unwrap();
        let keys = std::sync::Arc::new(charter_vault::KeyFile::load_or_create(&dir.path().join("keys.json")).unwrap());
        let outbox = Outbox::new(dir.path().join("outbox"), keys);
        (dir, Mailer::new(None, "Privacy <privacy@tensoropera.example>", dkim, outbox).unwrap())
    }

    fn mail() -> Mail {
        Mail {
            to: "ada@example.org".into(),
            subject: "News".into(),
            text: "Hello.\n".into(),
            unsubscribe: Some("https://privacy.example.com/u/1".into()),
            html: None,
        }
    }

    #[test]
    fn a_message_carries_its_job_id_and_one_click_unsubscribe() {
        let (_dir, m) = mailer(None);
        let text = String::from_utf8(m.build("job-1", &mail()).unwrap().formatted()).unwrap();
        assert!(text.contains("Message-ID: <job-1@tensoropera.example>\r\n"), "{text}");
        assert!(text.contains("List-Unsubscribe: <https://privacy.example.com/u/1>\r\n"), "{text}");
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), "{text}");
        assert!(!text.contains("DKIM-Signature"));
        let plain = Mail { unsubscribe: None, ..mail() };
        assert!(!String::from_utf8(m.build("job-2", &plain).unwrap().formatted())
            .unwrap()
            .contains("List-Unsubscribe"));
        let bad = Mail { to: "not an address".into(), ..mail() };
        assert_eq!(m.build("job-3", &bad).unwrap_err(), Attempt::permanent("invalid address"));
        assert!(text.contains("Content-Type: text/plain"), "{text}");
        let rich = Mail { html: Some("<p>Hello.</p>".into()), ..mail() };
        let rich = String::from_utf8(m.build("job-4", &rich).unwrap().formatted()).unwrap();
        assert!(rich.contains("multipart/alternative") && rich.contains("<p>Hello.</p>"), "{rich}");
        assert!(rich.contains("Content-Type: text/plain") && rich.contains("Content-Type: text/html"), "{rich}");
    }

    #[test]
    fn dkim_signs_the_headers_that_matter() {
        let seed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\n";
        let dkim =
            Dkim { key_pem: seed.to_owned().into(), selector: "mail2026".into(), domain: "tensoropera.example".into() };
        let (_dir, m) = mailer(Some(&dkim));
        let text = String::from_utf8(m.build("job-1", &mail()).unwrap().formatted()).unwrap();
        let sig = text.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ").replace("\r\n\t", " ");
        let line = sig.lines().find(|l| l.starts_with("DKIM-Signature:")).expect("a DKIM-Signature header");
        assert!(
            line.contains("a=ed25519-sha256") && line.contains("d=tensoropera.example") && line.contains("s=mail2026"),
            "{line}"
        );
        let signed = line.split("h=").nth(1).unwrap().split(';').next().unwrap().to_ascii_lowercase();
        for h in ["from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"] {
            assert!(signed.split(':').any(|x| x.trim() == h), "{h} not signed: {signed}");
        }
        let wrong = Dkim { key_pem: "not a key".to_owned().into(), ..dkim };
        let dir = tempfile::tempdir().unwrap();
        let keys = std::sync::Arc::new(charter_vault::KeyFile::load_or_create(&dir.path().join("k.json")).unwrap());
        let refused =
            Mailer::new(None, "privacy@tensoropera.example", Some(&wrong), Outbox::new(dir.path().into(), keys));
        assert!(matches!(refused, Err(DeliveryError::Config(m)) if m.contains("neither an RSA")));
    }

    #[test]
    fn the_server_is_named_without_credentials() {
        assert_eq!(super::server_of("smtp://user:p%40ss@mail.example.org:587?tls=required"), "mail.example.org:587");
        assert_eq!(super::server_of("smtps://mail.example.org"), "mail.example.org");
        assert_eq!(super::server_of("smtp://127.0.0.1:2525/"), "127.0.0.1:2525");
    }
}
