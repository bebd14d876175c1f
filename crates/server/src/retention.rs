//! The retention sweep: each category's rule applied to what has come due, per record
//! value, profile value and file — deleted, or generalised in place; records left with
//! nothing but anonymised values detached from their person and kept only in groups
//! of at least k; people whose account is closed and who have nothing left
//! crypto-shredded. Holds keep what they cover.
//!
//! Every step works in batches, one transaction each, that record their own outcome;
//! a sweep stopped anywhere leaves whole batches behind it, and the next sweep finds
//! the rest still due. `charter serve` runs it as a job of the queue (see
//! [`crate::retention::worker`]); `charter retention run` runs it from cron.

use std::collections::BTreeMap;

use charter_core::retention::{anonymous_record, generalise, rules, AnonymousRecord, Rule};
use charter_policy::model::{ExpiryAction, Generalise, Policy};
use charter_store::retention::{Batch, DetachableRecord, DueValue, Place};
use charter_store::{Store, StoreError};
use charter_vault::{DataKey, Holder, KeyWrapper};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

pub mod worker;

/// Values per batch (one transaction).
const BATCH: u32 = 1_000;

/// What a sweep works with.
pub struct Sweep<'a> {
    pub store: &'a Store,
    pub keys: &'a dyn KeyWrapper,
    pub objects: &'a dyn ObjectStore,
    pub policy: &'a Policy,
    /// The time the rules are applied at.
    pub now_us: i64,
}

/// What a rule has due, as a dry run shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub category: String,
    /// `delete` or `anonymise`.
    pub action: &'static str,
    /// Values due, held ones included.
    pub due: i64,
    /// Values a hold keeps.
    pub held: i64,
}

/// What a sweep did: counts by (category, outcome); `*` for whole records and subjects.
pub type Tally = BTreeMap<(String, &'static str), u64>;

/// Why a sweep stopped. Nothing personal: a value that does not open is deleted, not reported.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("the database failed during the retention sweep: {0}")]
    Store(#[from] StoreError),
    #[error("object storage failed during the retention sweep: {0}")]
    Objects(#[from] object_store::Error),
}

fn action_name(a: ExpiryAction) -> &'static str {
    match a {
        ExpiryAction::Delete => "delete",
        ExpiryAction::Anonymise => "anonymise",
    }
}

const PLACES: [Place; 3] = [Place::RecordFields, Place::ProfileValues, Place::Objects];

impl Sweep<'_> {
    /// What each rule has due now, and what holds keep: the dry run.
    pub async fn plan(&self) -> Result<Vec<Due>, SweepError> {
        self.plan_of(&rules(self.policy, self.now_us)).await
    }

    async fn plan_of(&self, rules: &[Rule]) -> Result<Vec<Due>, SweepError> {
        let mut out = Vec::new();
        for rule in rules {
            let (mut due, mut held) = (0, 0);
            for place in PLACES {
                let (d, h) = self.store.count_due(place, &rule.category, rule.cutoff).await?;
                due += d;
                held += h;
            }
            out.push(Due { category: rule.category.clone(), action: action_name(rule.action), due, held });
        }
        Ok(out)
    }

    /// Applies every rule, then detaches, checks k-anonymity and shreds, as sweep `id`.
    /// `progress(done, total)` follows the values handled out of those due.
    pub async fn run(&self, id: &str, progress: &mut (dyn FnMut(u64, u64) + Send)) -> Result<Tally, SweepError> {
        let rules = rules(self.policy, self.now_us);
        let plan = self.plan_of(&rules).await?;
        let total = plan.iter().map(|d| u64::try_from(d.due - d.held).unwrap_or(0)).sum();
        let mut tally = Tally::new();
        for d in plan.iter().filter(|d| d.held > 0) {
            let held = u64::try_from(d.held).unwrap_or(0);
            self.store.add_outcome(id, &d.category, "held", held, self.now_us).await?;
            tally.insert((d.category.clone(), "held"), held);
        }
        let mut done = 0;
        progress(done, total);
        for (rule, d) in rules.iter().zip(&plan) {
            // A rule with nothing due opens no write transaction.
            if d.due == d.held {
                continue;
            }
            let counts = match rule.action {
                ExpiryAction::Delete => self.delete(rule, id).await?,
                ExpiryAction::Anonymise => self.anonymise(rule, id).await?,
            };
            for (outcome, n) in counts.into_iter().filter(|(_, n)| *n > 0) {
                done += n;
                *tally.entry((rule.category.clone(), outcome)).or_default() += n;
            }
            progress(done.min(total), total);
        }
        self.finish(id, &mut tally).await?;
        if total > 0 {
            self.store.purge_after_sweep().await;
        }
        progress(total, total);
        Ok(tally)
    }

    fn batch<'r>(&self, place: Place, rule: &'r Rule, id: &'r str) -> Batch<'r> {
        Batch { place, category: &rule.category, cutoff: rule.cutoff, sweep: id, limit: BATCH, now_us: self.now_us }
    }

    /// Deletes a rule's due values and files.
    async fn delete(&self, rule: &Rule, id: &str) -> Result<Vec<(&'static str, u64)>, SweepError> {
        let mut deleted = 0;
        for place in [Place::RecordFields, Place::ProfileValues] {
            loop {
                let n = self.store.delete_due(&self.batch(place, rule, id)).await?;
                deleted += n;
                if n < u64::from(BATCH) {
                    break;
                }
            }
        }
        deleted += self.delete_files(rule, id).await?;
        Ok(vec![("deleted", deleted)])
    }

    /// Deletes a rule's due files: their bytes, then their rows (a file cannot be
    /// generalised, so an anonymised category's files go too).
    async fn delete_files(&self, rule: &Rule, id: &str) -> Result<u64, SweepError> {
        let mut deleted = 0;
        loop {
            let due = self.store.due_objects(&rule.category, rule.cutoff, BATCH).await?;
            if due.is_empty() {
                return Ok(deleted);
            }
            for o in &due {
                match self.objects.delete(&ObjectPath::from(o.location.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let ids: Vec<String> = due.iter().map(|o| o.id.clone()).collect();
            deleted += self.store.delete_objects(&ids, &rule.category, id, self.now_us).await?;
            if due.len() < BATCH as usize {
                return Ok(deleted);
            }
        }
    }

    /// Generalises a rule's due values in place; a value that cannot be generalised (or
    /// no longer opens) is deleted.
    async fn anonymise(&self, rule: &Rule, id: &str) -> Result<Vec<(&'static str, u64)>, SweepError> {
        let how = rule.generalise.unwrap_or(Generalise::Keep);
        let (mut anonymised, mut deleted) = (0, 0);
        for place in [Place::RecordFields, Place::ProfileValues] {
            loop {
                let (a, d) =
                    self.store.anonymise_due(&self.batch(place, rule, id), |v| self.generalised(v, how)).await?;
                anonymised += a;
                deleted += d;
                if a + d < u64::from(BATCH) {
                    break;
                }
            }
        }
        deleted += self.delete_files(rule, id).await?;
        Ok(vec![("anonymised", anonymised), ("deleted", deleted)])
    }

    /// The subject's data key, if it still opens.
    fn data_key(&self, subject: &str, wrapped: Option<&charter_vault::WrappedKey>) -> Option<DataKey> {
        self.keys.unwrap(subject, wrapped?).ok()
    }

    /// A due value opened, generalised and sealed again under the same key.
    fn generalised(&self, v: &DueValue, how: Generalise) -> Option<Vec<u8>> {
        let dk = self.data_key(&v.subject_id, v.subject_key.as_ref())?;
        let s = v.subject_id.as_str();
        match &v.record_id {
            Some(record) => {
                let own = dk.unwrap_own(s, Holder::Record(record), v.own_key.as_deref()?).ok()?;
                let cipher = own.fields();
                let plain = cipher.open_in_record(s, record, &v.field, &v.category, &v.sealed).ok()?;
                let coarse = generalise(how, std::str::from_utf8(&plain).ok()?)?;
                Some(cipher.seal_in_record(s, record, &v.field, &v.category, coarse.as_bytes()))
            }
            None => {
                let own = dk.unwrap_own(s, Holder::Value(&v.field), v.own_key.as_deref()?).ok()?;
                let plain = own.open_field(s, &v.field, &v.category, &v.sealed).ok()?;
                let coarse = generalise(how, std::str::from_utf8(&plain).ok()?)?;
                Some(own.seal_field(s, &v.field, &v.category, coarse.as_bytes()))
            }
        }
    }

    /// A record with nothing but anonymised values, opened: what of it is kept.
    fn assembled(&self, r: &DetachableRecord) -> Option<AnonymousRecord> {
        let dk = self.data_key(&r.subject_id, r.subject_key.as_ref())?;
        let own = dk.unwrap_own(&r.subject_id, Holder::Record(&r.id), &r.own_key).ok()?;
        let cipher = own.fields();
        let mut fields = Vec::with_capacity(r.fields.len());
        for (field, category, sealed) in &r.fields {
            let plain = cipher.open_in_record(&r.subject_id, &r.id, field, category, sealed).ok()?;
            fields.push((field.clone(), category.clone(), String::from_utf8(plain).ok()?));
        }
        Some(anonymous_record(self.policy, &r.point, r.collected_at_us, &fields))
    }

    /// Detaches fully anonymised records, keeps only k-anonymous ones, and shreds
    /// closed accounts with nothing left.
    async fn finish(&self, id: &str, tally: &mut Tally) -> Result<(), SweepError> {
        let mut detached = 0;
        loop {
            let n = self.store.detach_anonymised(BATCH, self.now_us, |r| self.assembled(r)).await?;
            detached += n;
            if n < u64::from(BATCH) {
                break;
            }
        }
        loop {
            // Records whose values were all deleted: their values are counted already.
            let n = self.store.delete_empty_records(BATCH).await?;
            if n < u64::from(BATCH) {
                break;
            }
        }
        let (_, suppressed) = self.store.check_k_anonymity(self.policy.retention.k(), id, self.now_us).await?;
        let mut shredded = 0;
        loop {
            let ids = self.store.closed_and_empty(BATCH).await?;
            for s in &ids {
                shredded += u64::from(self.store.shred(s, self.now_us).await?);
            }
            if ids.len() < BATCH as usize {
                break;
            }
        }
        self.store.add_outcome(id, "*", "shredded", shredded, self.now_us).await?;
        for (outcome, n) in [("detached", detached), ("suppressed", suppressed), ("shredded", shredded)] {
            if n > 0 {
                tally.insert(("*".to_owned(), outcome), n);
            }
        }
        Ok(())
    }
}

/// A tally as the audit chain keeps it: counts by category and outcome, nothing else.
pub fn tally_json(tally: &Tally) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for ((category, outcome), n) in tally {
        let entry = out.entry(category.clone()).or_insert_with(|| serde_json::json!({}));
        entry[*outcome] = serde_json::Value::from(*n);
    }
    serde_json::Value::Object(out)
}
