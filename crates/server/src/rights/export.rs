//! The answer to an access, portability or know request: a ZIP archive made while it is
//! downloaded (nothing of it is ever written to disk), a record at a time, so memory stays
//! flat whatever the person holds. It has
//! - `data.json`: everything, in a documented, versioned schema (`charter.export.v1`):
//!   profile values, records, file details, consent history, requests, disclosures per
//!   recipient, and what GDPR Art. 15(1)-(2) says the person must be told;
//! - `csv/<category>.csv`: one table per category of data;
//! - `summary.html`: the same in words, to read.
//!
//! A "categories" answer (CCPA) and Shine the Light hold no values: the categories, the
//! purposes, the recipients and the disclosures.

use std::collections::BTreeSet;
use std::io::{self, Write};

use axum::body::{Body, Bytes};
use charter_core::requests::RequestType;
use charter_policy::model::Policy;
use charter_store::records::{PageQuery, Position, StoredRecord};
use charter_store::requests::Request;
use charter_vault::{DataKey, Holder};
use serde_json::{json, Map, Value};
use tokio::runtime::Handle;

use super::zip::ZipStream;
use crate::state::AppState;

/// Records read per page.
const PAGE: u32 = 500;

/// Sends what the archive writes to the client, waiting while the client is behind.
struct ToClient(tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>);

impl Write for ToClient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The archive for request `r`, as a body streamed while it is made.
pub fn stream(state: AppState, r: Request) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    let handle = Handle::current();
    let failed = tx.clone();
    tokio::task::spawn_blocking(move || {
        let out = io::BufWriter::with_capacity(64 * 1024, ToClient(tx));
        if let Err(e) = write_archive(&handle, &state, &r, ZipStream::new(out)) {
            tracing::warn!(error = %e, "an export stopped before its end");
            let _ = failed.blocking_send(Err(io::Error::other("the export stopped")));
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// What the archive is made from: the subject's key and profile, opened.
struct Person {
    id: String,
    key: Option<DataKey>,
    profile: Vec<(String, String, String, i64)>,
}

fn person(handle: &Handle, state: &AppState, subject: &str) -> io::Result<Person> {
    let view = handle.block_on(state.store.subject_for_read(subject, "")).map_err(io_err)?;
    let Some(view) = view else { return Ok(Person { id: subject.into(), key: None, profile: Vec::new() }) };
    let Some(wrapped) = &view.subject.wrapped else {
        return Ok(Person { id: subject.into(), key: None, profile: Vec::new() });
    };
    let key = charter_vault::KeyWrapper::unwrap(&*state.keys, subject, wrapped).map_err(io_err)?;
    let mut profile = Vec::new();
    for f in &view.fields {
        if state.policy().is_password(&f.field) {
            continue;
        }
        let plain = crate::subject::open_value(&key, subject, f).map_err(|_| io_err("a value does not open"))?;
        profile.push((
            f.field.clone(),
            f.category.clone(),
            String::from_utf8_lossy(&plain).into_owned(),
            f.collected_at_us,
        ));
    }
    Ok(Person { id: subject.into(), key: Some(key), profile })
}

/// Every record (of `point`, when given), a page at a time, each opened and given to
/// `each`: all its fields, or only those of category `only` (a record with none is
/// skipped unopened).
fn each_record(
    handle: &Handle,
    state: &AppState,
    p: &Person,
    point: Option<&str>,
    only: Option<&str>,
    mut each: impl FnMut(&StoredRecord, Vec<(String, String, String)>) -> io::Result<()>,
) -> io::Result<()> {
    let Some(key) = &p.key else { return Ok(()) };
    let mut after = Position::start();
    loop {
        let q = PageQuery { subject_id: &p.id, point, after: after.clone(), limit: PAGE };
        let page = handle.block_on(state.store.records_page(&q)).map_err(io_err)?;
        for r in &page {
            let wanted = |category: &str| only.is_none_or(|c| c == category);
            if only.is_some() && !r.fields.iter().any(|f| wanted(&f.category)) {
                continue;
            }
            let own = key.unwrap_own(&p.id, Holder::Record(&r.id), &r.wrapped_key).map_err(io_err)?;
            let cipher = own.fields();
            let mut values = Vec::new();
            for f in r.fields.iter().filter(|f| wanted(&f.category)) {
                let plain = cipher.open_in_record(&p.id, &r.id, &f.field, &f.category, &f.sealed).map_err(io_err)?;
                values.push((f.field.clone(), f.category.clone(), String::from_utf8_lossy(&plain).into_owned()));
            }
            each(r, values)?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Position::of(last),
            _ => return Ok(()),
        }
    }
}

fn write_archive<W: Write>(handle: &Handle, state: &AppState, r: &Request, mut zip: ZipStream<W>) -> io::Result<()> {
    let kind = RequestType::parse(&r.kind).unwrap_or(RequestType::Access);
    let values = matches!(kind, RequestType::Access | RequestType::Portability | RequestType::CcpaKnowSpecific);
    let subject = r.subject_id.clone().unwrap_or_default();
    let p = if values {
        person(handle, state, &subject)?
    } else {
        Person { id: subject.clone(), key: None, profile: Vec::new() }
    };
    let policy = state.policy();
    let lookback = if r.jurisdiction == "ccpa" { 365 * 24 * 3600 * 1_000_000 } else { i64::MAX };
    let since = charter_store::now_us().saturating_sub(lookback).max(0);
    let disclosures = handle.block_on(state.store.disclosures_of(&subject, since)).map_err(io_err)?;
    let consents = handle.block_on(state.store.subject_consents(&subject)).map_err(io_err)?;
    let requests = handle.block_on(state.store.subject_requests(&subject)).map_err(io_err)?;
    zip.start("data.json")?;
    let head = json!({ "schema": "charter.export.v1", "generated_at": charter_core::time::rfc3339_from_us(charter_store::now_us()), "request": r.id, "type": r.kind, "subject": subject });
    let head = head.to_string();
    zip.write_entry(&head.as_bytes()[..head.len() - 1])?;
    let profile: Map<String, Value> = p
        .profile
        .iter()
        .map(|(f, c, v, at)| {
            (f.clone(), json!({ "value": v, "category": c, "collected_at": charter_core::time::rfc3339_from_us(*at) }))
        })
        .collect();
    zip.write_entry(format!(",\"profile\":{},\"records\":[", Value::Object(profile)).as_bytes())?;
    let mut categories: BTreeSet<String> = p.profile.iter().map(|(_, c, _, _)| c.clone()).collect();
    let mut first = true;
    let mut files = Vec::new();
    each_record(handle, state, &p, None, None, |rec, vals| {
        categories.extend(vals.iter().map(|(_, c, _)| c.clone()));
        files.extend(rec.files.iter().map(|o| json!({ "object_id": o.id, "record_id": rec.id, "field": o.field, "content_type": o.content_type, "size": o.size })));
        let fields: Map<String, Value> = vals.into_iter().map(|(f, _, v)| (f, Value::from(v))).collect();
        let item = json!({ "record_id": rec.id, "point": rec.point, "collected_at": charter_core::time::rfc3339_from_us(rec.collected_at_us), "fields": fields });
        let sep = if std::mem::take(&mut first) { "" } else { "," };
        zip.write_entry(format!("{sep}{item}").as_bytes())
    })?;
    let tail = json!({
        "files": files,
        "consents": consents.iter().map(crate::routes::consents::row_json).collect::<Vec<_>>(),
        "requests": requests.iter().map(|q| json!({ "id": q.id, "type": q.kind, "status": q.status, "received": charter_core::time::rfc3339_from_us(q.received_at_us), "completed": q.completed_at_us.map(charter_core::time::rfc3339_from_us) })).collect::<Vec<_>>(),
        "disclosures": disclosures.iter().map(|d| {
            let detail: Value = serde_json::from_str(&d.detail).unwrap_or(Value::Null);
            json!({ "at": charter_core::time::rfc3339_from_us(d.at_us), "purpose": d.purpose, "recipient": detail.get("recipient"), "categories": detail.get("categories") })
        }).collect::<Vec<_>>(),
        "about": about(&policy.policy, &categories),
    });
    let tail = tail.to_string();
    zip.write_entry(format!("],{}", &tail[1..]).as_bytes())?;
    for category in &categories {
        write_csv(handle, state, &p, category, &mut zip)?;
    }
    write_files(handle, state, &p, &mut zip)?;
    zip.start("summary.html")?;
    zip.write_entry(summary(&policy.policy, r, &p, &categories, disclosures.len()).as_bytes())?;
    zip.finish()?.flush()
}

/// Every file the person gave, opened, under `files/`.
fn write_files<W: Write>(handle: &Handle, state: &AppState, p: &Person, zip: &mut ZipStream<W>) -> io::Result<()> {
    let Some(key) = &p.key else { return Ok(()) };
    let objects = handle.block_on(state.store.subject_objects(&p.id)).map_err(io_err)?;
    for o in objects {
        let (own, bound_to) = match &o.wrapped_key {
            Some(w) => (key.unwrap_own(&p.id, Holder::Object(&o.id), w).map_err(io_err)?, String::new()),
            // An object an earlier version sealed under the subject's key itself.
            None => {
                let record = handle.block_on(state.store.subject(&p.id)).map_err(io_err)?;
                let wrapped = record.and_then(|r| r.wrapped).ok_or_else(|| io_err("the subject's key is gone"))?;
                (charter_vault::KeyWrapper::unwrap(&*state.keys, &p.id, &wrapped).map_err(io_err)?, p.id.clone())
            }
        };
        let path = object_store::path::Path::from(o.location.as_str());
        let got = handle.block_on(state.objects.get(&path)).map_err(io_err)?;
        let mut opening =
            crate::routes::download::Opening::new(state.clone(), got.into_stream(), own, bound_to, o.id.clone());
        zip.start(&format!("files/{}-{}", o.id, o.field))?;
        while let Some(chunk) = handle.block_on(opening.next()) {
            zip.write_entry(&chunk?)?;
        }
    }
    Ok(())
}

/// One CSV of the category's values: the profile's, then each record's.
fn write_csv<W: Write>(
    handle: &Handle,
    state: &AppState,
    p: &Person,
    category: &str,
    zip: &mut ZipStream<W>,
) -> io::Result<()> {
    zip.start(&format!("csv/{category}.csv"))?;
    zip.write_entry(b"source,record_id,point,collected_at,field,value\r\n")?;
    for (f, c, v, at) in &p.profile {
        if c == category {
            let line = csv_line(&["profile", "", "", &charter_core::time::rfc3339_from_us(*at), f, v]);
            zip.write_entry(line.as_bytes())?;
        }
    }
    // Only the record points that collect the category are read.
    let in_force = state.policy();
    let points = in_force
        .policy
        .collection_points
        .iter()
        .filter(|(_, pt)| pt.kind == Some(charter_policy::model::PointKind::Record))
        .filter(|(_, pt)| pt.fields.values().any(|f| f.category == category));
    for (point, _) in points {
        each_record(handle, state, p, Some(point), Some(category), |rec, vals| {
            for (f, _, v) in &vals {
                let at = charter_core::time::rfc3339_from_us(rec.collected_at_us);
                zip.write_entry(csv_line(&["record", &rec.id, &rec.point, &at, f, v]).as_bytes())?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// A CSV line (RFC 4180): cells quoted when they hold a comma, quote or line break.
fn csv_line(cells: &[&str]) -> String {
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                (*c).to_owned()
            }
        })
        .collect();
    format!("{}\r\n", quoted.join(","))
}

/// What GDPR Art. 15(1)-(2) says the person must be told, from the policy, for the
/// categories they have data in.
fn about(policy: &Policy, categories: &BTreeSet<String>) -> Value {
    let purposes: Vec<Value> = policy
        .purposes
        .iter()
        .filter(|(_, p)| p.categories.iter().any(|c| categories.contains(c)) || categories.is_empty())
        .map(|(k, p)| json!({ "purpose": k, "description": p.description, "basis": serde_json::to_value(&p.basis).unwrap_or(Value::Null), "categories": p.categories }))
        .collect();
    let cats: Vec<Value> = policy
        .categories
        .iter()
        .filter(|(k, _)| categories.contains(*k) || categories.is_empty())
        .map(|(k, c)| json!({ "category": k, "description": c.description, "retention": c.retention, "source": serde_json::to_value(c.source).unwrap_or(Value::Null) }))
        .collect();
    let recipients: Vec<Value> = policy
        .recipients
        .iter()
        .map(|(k, r)| json!({ "recipient": k, "name": r.name, "role": serde_json::to_value(r.role).unwrap_or(Value::Null), "country": r.country, "safeguard": serde_json::to_value(r.safeguard).unwrap_or(Value::Null), "categories": r.categories, "own_direct_marketing": r.own_direct_marketing }))
        .collect();
    json!({
        "controller": { "name": policy.controller.name, "address": policy.controller.address, "contact": policy.controller.privacy_email },
        "purposes": purposes,
        "categories": cats,
        "recipients": recipients,
        "rights": serde_json::to_value(&policy.rights).unwrap_or(Value::Null),
        "complaint": policy.rights.gdpr.as_ref().and_then(|g| g.supervisory_authorities_url.clone()),
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The archive in words.
fn summary(policy: &Policy, r: &Request, p: &Person, categories: &BTreeSet<String>, disclosures: usize) -> String {
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your data at {c}</title></head><body>\
         <h1>Your data at {c}</h1><p>Request {id}, made {day}. The file <code>data.json</code> holds all of it; \
         <code>csv/</code> holds one table per kind of data.</p><h2>What we hold</h2><ul>",
        c = escape(&policy.controller.name),
        id = escape(&r.id),
        day = super::day(r.received_at_us),
    );
    for c in categories {
        let d = policy.categories.get(c).map_or(c.as_str(), |x| x.description.as_str());
        html.push_str(&format!("<li>{}</li>", escape(d)));
    }
    html.push_str("</ul><h2>Your profile</h2><ul>");
    for (f, _, v, _) in &p.profile {
        html.push_str(&format!("<li>{}: {}</li>", escape(f), escape(v)));
    }
    html.push_str(&format!(
        "</ul><h2>Why we use it</h2><ul>{}</ul><p>We disclosed your data {disclosures} time(s); \
         <code>data.json</code> lists each, with the recipient.</p><p>Questions: {}</p></body></html>",
        policy.purposes.values().map(|p| format!("<li>{}</li>", escape(&p.description))).collect::<String>(),
        escape(&policy.controller.privacy_email)
    ));
    html
}
