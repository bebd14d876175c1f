//! `charter admin add EMAIL --role privacy|auditor`: a console account for the privacy
//! team, with a one-time setup link (valid 24 hours) printed alone on stdout's last line.
//! The email is kept only as its blind index; adding an existing account again gives it a
//! new link. `charter verify FILE`: checks a signed file charter wrote (a certificate of
//! erasure) against the data directory's key.

use anyhow::Context as _;
use charter_store::admins::Admin;
use charter_store::DataDir;
use charter_vault::IdentifierKind;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::config::Settings;
use crate::Failure;

const SETUP_US: i64 = 24 * 3600 * 1_000_000;

fn refuse(msg: &str) -> Failure {
    eprintln!("error: {msg}");
    Failure::Refused
}

/// Adds a console account and prints its setup link.
pub async fn add(
    settings: &Settings,
    email: &str,
    role: &str,
    policy: Option<&std::path::Path>,
) -> Result<(), Failure> {
    if role != "privacy" && role != "auditor" {
        return Err(refuse("--role is `privacy` (acts on requests) or `auditor` (reads only)"));
    }
    let loaded = super::policy::load_or_default(policy)?;
    let ids = &loaded.policy.identifiers;
    let fold = ids.email_local_part == charter_policy::model::EmailLocalPart::CaseInsensitive;
    let normaliser =
        charter_vault::Normaliser::new(ids.phone_region.as_deref(), fold).map_err(|e| anyhow::anyhow!("{e}"))?;
    let normal =
        normaliser.normalise(IdentifierKind::Email, email).map_err(|why| refuse(&format!("the email {why}")))?;
    let url = settings.database_url.as_ref().map(|s| s.expose_secret().to_owned());
    let data = DataDir::open(&settings.data_dir, url.as_deref()).await?;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let now = charter_store::now_us();
    let admin = Admin {
        id: uuid::Uuid::new_v4().to_string(),
        email_blind: hex::encode(data.keys.blind_indexer().index(&normal)),
        role: role.to_owned(),
        password_hash: None,
        totp_salt: hex::encode(rand::random::<[u8; 16]>()),
        setup_mac: Some(hex::encode(data.keys.link_signer().tag("admin.setup", &token))),
        setup_until_us: Some(now + SETUP_US),
        created_at_us: now,
        disabled_at_us: None,
    };
    let stored = data.store.put_admin(&admin).await.context("cannot store the account")?;
    super::record_operator(&data, "admin.added", json!({ "admin": stored.id, "role": role })).await?;
    let base = settings.public_url.as_deref().map(|u| u.trim_end_matches('/').to_owned()).unwrap_or_default();
    eprintln!("account {} ({role}); the link below works once, for 24 hours:", stored.id);
    println!("{base}/admin/setup?t={token}");
    Ok(())
}

/// Checks a signed file against the data directory's checkpoint key: exit 0 when the
/// signature holds, 2 when it does not or the file is not one charter signs.
pub fn verify(settings: &Settings, file: &std::path::Path) -> Result<(), Failure> {
    if file.is_dir() || file.file_name().is_some_and(|n| n == charter_server::backup::MANIFEST) {
        return super::backup::verify(settings, file);
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| refuse("the file is not JSON charter signed"))?;
    let (Some(signed), Some(signature)) = (v["signed"].as_str(), v["signature"].as_str()) else {
        return Err(refuse("the file has no `signed` body and `signature`"));
    };
    let keys = charter_vault::KeyFile::load(&settings.data_dir.join("keys.json"))
        .with_context(|| format!("cannot load the key file of {}", settings.data_dir.display()))?;
    let verifier = keys.checkpoint_signer().verifier();
    let good = hex::decode(signature).is_ok_and(|s| verifier.verify(signed.as_bytes(), &s));
    if !good {
        return Err(refuse("the signature does not hold: the file was altered, or another data directory signed it"));
    }
    if v["public_key"].as_str().is_some_and(|k| k != verifier.public_key_hex()) {
        eprintln!("warning: the file names another public key than the one that verifies it");
    }
    let body: serde_json::Value = serde_json::from_str(signed).unwrap_or_default();
    println!("valid: {} signed by this data directory's key", body["certificate"].as_str().unwrap_or("a file"));
    Ok(())
}
