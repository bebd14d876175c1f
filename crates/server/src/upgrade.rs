//! Rewrites, when charter starts, what an earlier version wrote: each profile value
//! sealed with its subject's key gets a key of its own; the values a subject has at what
//! is now a record point become one record of that point (collected when the latest of
//! them was); each object collected at a record point before records existed joins a
//! record of its own. One transaction per subject; a subject another server rewrote
//! first is left as it found it. Erasures a stopped process left half purged are
//! finished too.

use std::collections::BTreeMap;

use charter_core::audit::AuditEvent;
use charter_policy::model::PointKind;
use charter_store::upgrade::{Legacy, Rewrite};
use charter_store::vault::{RecordField, RecordWrite};
use charter_vault::{DataKey, Holder, KeyWrapper as _};
use serde_json::json;

use crate::state::AppState;

/// An opened value: its field's name, its category, the plaintext.
type Opened<'a> = (&'a str, &'a str, Vec<u8>);

/// Subjects read per batch.
const BATCH: u32 = 200;

/// What the rewrite did, for the audit chain and the log.
#[derive(Debug, Default, serde::Serialize)]
pub struct Upgraded {
    subjects: u64,
    values: u64,
    records: u64,
    objects: u64,
}

/// Rewrites every subject an earlier version left, then finishes half-purged erasures.
pub async fn run(state: &AppState) -> anyhow::Result<()> {
    let mut done = Upgraded::default();
    let mut after = String::new();
    loop {
        let ids = state.store.legacy_subjects(&after, BATCH).await?;
        for id in &ids {
            let Some(legacy) = state.store.legacy(id).await? else { continue };
            let rewrite = rewrite(state, &legacy)?;
            let counts = (rewrite.resealed.len() + rewrite.moved.len(), rewrite.records.len(), rewrite.attached.len());
            if state.store.rewrite_legacy(&rewrite).await? {
                done.subjects += 1;
                done.values += counts.0 as u64;
                done.records += counts.1 as u64;
                done.objects += counts.2 as u64;
            }
        }
        match ids.last() {
            Some(last) if ids.len() == BATCH as usize => after.clone_from(last),
            _ => break,
        }
    }
    if done.subjects > 0 {
        tracing::info!(subjects = done.subjects, records = done.records, "data from an earlier version rewritten");
        let entry = AuditEvent::new("system", "data.upgrade", "ok").with_detail(&json!(done));
        state.audit.append(entry).await?;
    }
    for id in state.store.erased_with_leftovers().await? {
        state.store.purge_erased(&id, 500).await?;
    }
    Ok(())
}

/// One subject's rewrite: its values opened with its key and sealed anew.
fn rewrite(state: &AppState, legacy: &Legacy) -> anyhow::Result<Rewrite> {
    let subject = &legacy.subject;
    let wrapped = subject.wrapped.as_ref().ok_or_else(|| anyhow::anyhow!("a subject with data has no key"))?;
    let data_key = state.keys.unwrap(&subject.id, wrapped)?;
    let points = &state.policy().policy.collection_points;
    let is_record = |point: &str| points.get(point).is_some_and(|p| p.kind == Some(PointKind::Record));
    let mut out = Rewrite { subject_id: subject.id.clone(), ..Rewrite::default() };
    let mut by_point: BTreeMap<&str, (i64, Vec<Opened>)> = BTreeMap::new();
    for v in &legacy.values {
        let plain = data_key.open_field(&subject.id, &v.field, &v.category, &v.sealed)?;
        if is_record(&v.point) {
            let (at, fields) = by_point.entry(&v.point).or_default();
            *at = (*at).max(v.collected_at_us);
            fields.push((&v.field, &v.category, plain));
            out.moved.push(v.field.clone());
        } else {
            let own = DataKey::generate();
            let sealed = own.seal_field(&subject.id, &v.field, &v.category, &plain);
            out.resealed.push((v.field.clone(), sealed, data_key.wrap_own(&subject.id, Holder::Value(&v.field), &own)));
        }
    }
    for (point, (at, fields)) in by_point {
        let record = new_record(&data_key, &subject.id, &fields);
        out.records.push((record, point.to_owned(), at));
    }
    for o in legacy.objects.iter().filter(|o| is_record(&o.point)) {
        let record = new_record(&data_key, &subject.id, &[]);
        out.attached.push((o.id.clone(), record.id.clone()));
        out.records.push((record, o.point.clone(), o.collected_at_us));
    }
    Ok(out)
}

/// A new record of `subject` holding `fields` (name, category, value).
fn new_record(data_key: &DataKey, subject: &str, fields: &[Opened]) -> RecordWrite {
    let id = uuid::Uuid::new_v4().to_string();
    let own = DataKey::generate();
    let cipher = own.fields();
    let fields = fields
        .iter()
        .map(|(field, category, plain)| RecordField {
            field: (*field).to_owned(),
            category: (*category).to_owned(),
            sealed: cipher.seal_in_record(subject, &id, field, category, plain),
        })
        .collect();
    RecordWrite { wrapped_key: data_key.wrap_own(subject, Holder::Record(&id), &own), id, fields }
}
