//! What a key rotation must carry over before the old key-encryption key is retired:
//! the own keys of unsent jobs wrapped under the key file, the webhook secrets, and the
//! sealed outbox. Each is opened under the old key and sealed again under the current one.

use charter_store::Store;
use charter_vault::{KeyFile, KeyWrapper as _, WrappedKey};

use crate::{DeliveryError, Outbox};

/// What was carried over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewrapped {
    pub jobs: usize,
    pub secrets: usize,
    pub outbox: usize,
}

/// Rewraps and reseals everything delivery keeps under keys older than the current one.
/// Run after the old versions are marked retired: from then on no job is queued under
/// them, and a job queued just before is caught by a later pass.
pub async fn rewrap(store: &Store, keys: &KeyFile, outbox: &Outbox) -> Result<Rewrapped, DeliveryError> {
    let mut jobs = 0;
    for _ in 0..5 {
        let passed = rewrap_jobs(store, keys).await?;
        if passed == 0 {
            break;
        }
        jobs += passed;
    }
    let mut secrets = 0;
    for (recipient, sealed_secret) in store.webhook_secrets().await? {
        let label = crate::webhook::secret_label(&recipient);
        let secret = charter_vault::envelope::open(keys, &label, &sealed_secret)
            .map_err(|source| DeliveryError::Sealed { what: format!("the webhook secret of {recipient}"), source })?;
        let again = charter_vault::envelope::seal(keys, &label, &secret);
        store.put_webhook_secret(&recipient, &again, charter_store::now_us()).await?;
        secrets += 1;
    }
    let outbox = outbox.reseal()?;
    Ok(Rewrapped { jobs, secrets, outbox })
}

/// One pass over the unsent jobs whose own keys are under an older key; returns how many
/// it rewrapped.
async fn rewrap_jobs(store: &Store, keys: &KeyFile) -> Result<usize, DeliveryError> {
    let current = keys.current_version();
    let mut fresh = Vec::new();
    for (id, version, wrapped) in store.job_keys_not_under(current).await? {
        let label = crate::queue::label(&id);
        match keys.unwrap(&label, &WrappedKey { kek_version: version, sealed: wrapped }) {
            Ok(own) => {
                let again = keys.wrap(&label, &own);
                fresh.push((id, again.kek_version, again.sealed));
            }
            // Already unreadable (its key-encryption key is gone): nothing to carry, and
            // it must not stop the rotation.
            Err(e) => tracing::warn!(job = %id, error = ?e, "a job's key does not open; left as it is"),
        }
    }
    store.rewrap_job_keys(&fresh).await?;
    Ok(fresh.len())
}
