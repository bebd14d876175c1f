//! Raw uploads (P05, P08): `POST /v1/collect/{point}/upload?field=F&<subject>[&record=R]`
//! streams the body into object storage, sealed chunk by chunk under a data key of the
//! object's own before it leaves the process, enforcing the point's size and content
//! types as it goes. At a record point the file makes a record of its own, or joins
//! record `R` of the subject; the subject is found or created as a collection at the
//! point would, so the answer is the same for someone known or not. `download` streams
//! it back.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::{Bytes, BytesMut};
use charter_core::audit::AuditEvent;
use charter_policy::model::PointKind;
use charter_policy::model::{FieldType, ScanAction};
use charter_scan::stream::StreamScanner;
use charter_scan::EntityType;
use charter_store::vault::{CollectError, CollectionWrite, ObjectRecord, RecordWrite, SubjectRecord};
use charter_vault::stream::{StreamSealer, CHUNK};
use charter_vault::{DataKey, Holder};
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as ObjectPath;
use object_store::WriteMultipart;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Caller, Path, Query};
use crate::routes::collect::{entry_then_write, point_for_key, refused, resolve, Resolved};
use crate::state::AppState;
use crate::subject::{self, Identifier, SubjectId, SubjectSelector};
use charter_store::api_keys::ApiKey;
use charter_vault::Personal;

/// Upload and download routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/collect/{point}/upload", post(upload))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    field: Option<String>,
    id: Option<String>,
    email: Option<Personal<String>>,
    phone: Option<Personal<String>>,
    external_id: Option<Personal<String>>,
    record: Option<String>,
}

async fn upload(
    State(state): State<AppState>,
    Caller(key): Caller,
    point: Result<Path<String>, ApiError>,
    q: Result<Query<UploadQuery>, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let point = match point {
        Ok(Path(point)) => point,
        Err(e) => return Err(refused(&state, &key, "", None, e).await),
    };
    let field = q.as_ref().ok().and_then(|Query(q)| q.field.clone());
    let received = match q {
        Ok(Query(q)) => receive(&state, &key, &point, q, &headers, body).await,
        Err(e) => Err(e),
    };
    match received {
        Err(e) => Err(refused(&state, &key, &point, field.as_deref(), e).await),
        stored => stored,
    }
}

/// The steps of an upload: the file field and what it accepts, the subject, the bytes
/// streamed in (sealed, and scanned as the point says), then the entry and the record.
async fn receive(
    state: &AppState,
    key: &ApiKey,
    point: &str,
    q: UploadQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    point_for_key(state, key, point)?;
    let header = |name| headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
    let content_type = header(header::CONTENT_TYPE).unwrap_or("").split(';').next().unwrap_or("").trim();
    let length = header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let file = accepted_file(state, point, q.field.as_deref(), content_type, length)?;
    let selector = SubjectSelector::from_parts(q.email, q.phone, q.external_id, q.id);
    let identifier = selector.identifier(state)?;
    let known = subject::find(state, &identifier).await?;
    let joins = match &q.record {
        Some(record) => Some(record_to_join(state, known.as_ref(), point, record).await?),
        None => None,
    };
    let stream = body.into_data_stream().map_err(|e| body_error(&e));
    let mut got = store_file(state, key, &file, known.map(|s| s.id), stream).await?;
    got.row.record_id = joins;
    let (subject_id, record_id) = record_upload(state, key, &identifier, &got).await?;
    let answer = json!({
        "subject_id": subject_id, "object_id": got.object.id, "record_id": record_id,
        "size": got.row.size, "received": got.received
    });
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

/// Why a request body stopped: its timeout ran out, or it broke off.
pub(crate) fn body_error(e: &(dyn std::error::Error + 'static)) -> ApiError {
    match crate::listen::is_body_timeout(e) {
        true => ApiError::BodyTimeout,
        false => {
            ApiError::BadRequest { code: "upload_interrupted", message: "the upload stopped before its end".into() }
        }
    }
}

/// A file received and stored, sealed, but not recorded yet: its row (subject, record
/// and wrapped key still to settle), its key, what the scan found and the bytes received.
pub(crate) struct Received {
    pub(crate) row: ObjectRecord,
    pub(crate) object: Object,
    /// What the scan found, for the audit chain (types and counts).
    scan: Option<Value>,
    /// The content type, when the policy declares it (a caller's own text is not one for
    /// the permanent chain).
    declared_type: Option<String>,
    pub(crate) received: u64,
}

impl Received {
    /// The file's part of a `data.collect` entry: names, sizes and counts, never content.
    pub(crate) fn entry(&self) -> Value {
        json!({
            "field": self.row.field, "object": self.row.id, "size": self.row.size,
            "content_type": self.declared_type, "scan": self.scan
        })
    }

    /// Where its sealed bytes are.
    pub(crate) fn path(&self) -> ObjectPath {
        ObjectPath::from(self.row.location.as_str())
    }
}

/// Streams one file into object storage under a key of its own, sealed and scanned as
/// `file` says; a refusal leaves nothing stored (and a rejecting scan's finding is in the
/// audit chain, naming `subject` when known).
pub(crate) async fn store_file(
    state: &AppState,
    key: &ApiKey,
    file: &FileField<'_>,
    subject: Option<String>,
    stream: impl futures_util::Stream<Item = Result<Bytes, ApiError>> + Unpin,
) -> Result<Received, ApiError> {
    let object = Object { id: uuid::Uuid::new_v4().to_string(), key: DataKey::generate() };
    let location = format!("objects/{}", object.id);
    // Sealed under the object's own key, bound to the object alone: the subject is
    // settled when the file is recorded, and the key is wrapped under theirs then.
    let (sealer, header_bytes) = StreamSealer::new(&object.key, "", &object.id);
    let upload = state.objects.put_multipart(&ObjectPath::from(location.as_str())).await?;
    let mut sink = Sink { writer: WriteMultipart::new(upload), sealer, buf: BytesMut::with_capacity(CHUNK), stored: 0 };
    sink.writer.write(&header_bytes);
    let mut received = 0;
    let scanned = match stream_in(stream, &mut sink, file, &mut received).await {
        Ok(scanned) => scanned,
        Err(e) => return Err(refused_upload(state, key, file, subject, sink, e).await),
    };
    let stored = sink.finish().await?;
    let scan = scanned.map(|(action, counts)| {
        let findings: serde_json::Map<String, Value> =
            counts.iter().map(|(k, n)| (k.name().to_owned(), json!(n))).collect();
        json!({ "action": action_name(action), "findings": findings })
    });
    let row = ObjectRecord {
        id: object.id.clone(),
        subject_id: String::new(),
        point: file.point.to_owned(),
        field: file.field.clone(),
        category: file.decl.category.clone(),
        content_type: file.content_type.clone(),
        size: i64::try_from(stored).unwrap_or(i64::MAX),
        location,
        collected_at_us: charter_store::now_us(),
        record_id: None,
        wrapped_key: None,
    };
    let declared_type = file.decl.content_types.contains(&file.content_type).then(|| file.content_type.clone());
    Ok(Received { row, object, scan, declared_type, received })
}

/// The rows of `files` once their subject and record are settled: each object's key
/// wrapped under the subject's.
pub(crate) fn attach(subject: &Resolved, record_id: Option<&str>, files: &[Received]) -> Vec<ObjectRecord> {
    files
        .iter()
        .map(|f| {
            let mut row = f.row.clone();
            row.subject_id = subject.id.clone();
            row.record_id = record_id.map(str::to_owned).or(row.record_id);
            row.wrapped_key = Some(subject.data_key.wrap_own(&subject.id, Holder::Object(&f.object.id), &f.object.key));
            row
        })
        .collect()
}

/// An object being stored: its id and its own data key.
pub(crate) struct Object {
    pub(crate) id: String,
    key: DataKey,
}

/// The record an upload joins: one of the subject's, collected at the same point (404
/// `unknown_record` otherwise, as for a subject not known).
async fn record_to_join(
    state: &AppState,
    subject: Option<&SubjectRecord>,
    point: &str,
    record: &str,
) -> Result<String, ApiError> {
    let unknown = || ApiError::Missing { code: "unknown_record", message: "no such record of this subject".into() };
    let subject = subject.ok_or_else(unknown)?;
    let record = SubjectId::parse(record).map_err(|_| unknown())?;
    match state.store.record(&subject.id, record.as_str()).await? {
        Some(r) if r.point == point => Ok(r.id),
        _ => Err(unknown()),
    }
}

/// A point's file field, as an upload names it, and what it accepts.
pub(crate) struct FileField<'p> {
    point: &'p str,
    pub(crate) field: String,
    decl: charter_policy::model::Field,
    max: u64,
    content_type: String,
}

/// The file field `field` of `point`, if the point declares it as a file; the file's
/// `content_type`, if the field accepts it; its declared `length`, if within the field's
/// limit.
pub(crate) fn accepted_file<'p>(
    state: &AppState,
    point: &'p str,
    field: Option<&str>,
    content_type: &str,
    length: Option<u64>,
) -> Result<FileField<'p>, ApiError> {
    let in_force = state.policy();
    let p = &in_force.policy.collection_points[point];
    let field = field.ok_or_else(|| ApiError::BadRequest {
        code: "missing_field",
        message: "name the file field: ?field=...".into(),
    })?;
    let decl = match p.fields.get(field) {
        Some(d) if d.kind == FieldType::File => d.clone(),
        Some(_) => {
            return Err(ApiError::Unprocessable {
                code: "wrong_type",
                message: format!("field `{field}` of `{point}` is not a file"),
                details: Value::Null,
            })
        }
        None => {
            return Err(ApiError::Unprocessable {
                code: "undeclared_field",
                message: format!("the field named is not declared for collection point `{point}`; nothing was stored"),
                details: Value::Null,
            })
        }
    };
    let max = decl.max_bytes.unwrap_or(0);
    if !decl.content_types.is_empty() && !decl.content_types.iter().any(|t| t == content_type) {
        return Err(ApiError::UnsupportedType {
            message: format!(
                "field `{field}` accepts {}; this file's content type is not one of them",
                decl.content_types.join(", ")
            ),
        });
    }
    if length.is_some_and(|n| n > max) {
        return Err(ApiError::TooLarge { message: format!("field `{field}` accepts at most {max} bytes") });
    }
    Ok(FileField { point, field: field.to_owned(), decl, max, content_type: content_type.to_owned() })
}

/// The scan a point asks for. Recording and rejecting points scan on a thread of their
/// own while the same bytes are sealed and stored (a rejected upload is aborted before
/// anything is committed); an anonymising point's stored bytes are the scanner's output,
/// so it scans in line.
fn scanner_for(action: Option<ScanAction>) -> Option<(ScanAction, Scan)> {
    let action = action?;
    let scan = match action {
        ScanAction::Anonymise => Scan::InLine(StreamScanner::new(Some(charter_scan::anonymise::Anonymiser::new(b"")))),
        // With every scan thread busy, this upload scans in line rather than wait for one.
        ScanAction::Record | ScanAction::Reject => match BesideScan::start(action == ScanAction::Reject) {
            Some(b) => Scan::Beside(b),
            None => Scan::InLine(StreamScanner::new(None)),
        },
    };
    Some((action, scan))
}

/// What a scan found, by type.
type Findings = std::collections::BTreeMap<EntityType, u64>;

/// Streams the file into `sink`, scanning it as the field says and counting the bytes
/// `received`; a body over the field's limit, or with personal data at a rejecting
/// point, is refused. What the scan found, when there was one.
async fn stream_in(
    mut stream: impl futures_util::Stream<Item = Result<Bytes, ApiError>> + Unpin,
    sink: &mut Sink,
    file: &FileField<'_>,
    received: &mut u64,
) -> Result<Option<(ScanAction, Findings)>, ApiError> {
    let reject = file.decl.scan == Some(ScanAction::Reject);
    let mut scanner = scanner_for(file.decl.scan);
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        *received += piece.len() as u64;
        if *received > file.max {
            return Err(ApiError::TooLarge {
                message: format!("field `{}` accepts at most {} bytes", file.field, file.max),
            });
        }
        match scanner.as_mut() {
            Some((_, Scan::InLine(s))) => {
                let out = s.push(&piece);
                if reject && !s.counts().is_empty() {
                    break; // refused below, with what the scan counted
                }
                sink.feed(&out).await?;
            }
            Some((_, Scan::Beside(b))) => {
                if b.found_for_reject() {
                    break; // refused below, with what the scan counted
                }
                b.push(piece.clone()).await;
                sink.feed(&piece).await?;
            }
            None => sink.feed(&piece).await?,
        }
    }
    let Some((action, scan)) = scanner else { return Ok(None) };
    let counts = match scan {
        Scan::InLine(s) => {
            let (rest, counts) = s.finish();
            sink.feed(&rest).await?;
            counts
        }
        Scan::Beside(b) => b.finish().await?,
    };
    refuse_if_found(action, &counts, &file.field)?;
    Ok(Some((action, counts)))
}

/// Aborts a refused upload's object, so nothing is committed; a rejecting point's
/// finding is recorded in the audit chain with what was found (types and counts).
async fn refused_upload(
    state: &AppState,
    key: &ApiKey,
    file: &FileField<'_>,
    subject: Option<String>,
    sink: Sink,
    e: ApiError,
) -> ApiError {
    if let Err(abort) = sink.writer.abort().await {
        return abort.into();
    }
    let ApiError::Unprocessable { code: "personal_data_found", details, .. } = &e else { return e };
    let mut event = AuditEvent::new(&key.name, "data.collect", "refused").with_detail(
        &json!({ "point": file.point, "fields": [file.field], "scan": { "action": "reject", "findings": details } }),
    );
    event.subject = subject;
    match state.audit.append(event).await {
        Ok(_) => e.recorded(),
        Err(audit) => audit.into(),
    }
}

/// The upload's `data.collect` entry, then its rows, for the subject found or created: the
/// object (its key wrapped under the subject's), in a record of its own at a record point
/// unless it joins one. In the chain before the object is recorded (its sealed bytes are
/// stored, but nothing points at them yet); the bytes are deleted when the write, or the
/// entry, fails. A race for a new person's identifier is settled as a collection's is:
/// the next pass finds the winner. Returns the subject's and the record's ids.
async fn record_upload(
    state: &AppState,
    key: &ApiKey,
    identifier: &Identifier,
    file: &Received,
) -> Result<(String, Option<String>), ApiError> {
    let point = file.row.point.as_str();
    let record_point = state.policy().policy.collection_points[point].kind == Some(PointKind::Record);
    let joins = file.row.record_id.clone();
    let record_id = joins.clone().or_else(|| record_point.then(|| SubjectId::generate().as_str().to_owned()));
    let path = file.path();
    for _ in 0..3 {
        let subject = resolve(state, identifier).await?;
        let write = upload_write(&subject, file, record_id.as_deref(), joins.is_none());
        let mut detail = file.entry();
        detail["point"] = json!(point);
        detail["fields"] = json!([file.row.field]);
        detail["record"] = json!(record_id);
        detail["new_subject"] = json!(subject.new_wrapped.is_some());
        let mut event = AuditEvent::new(&key.name, "data.collect", "ok").with_detail(&detail);
        event.subject = Some(subject.id.clone());
        let store = state.store.clone();
        let written = async move { store.write_collection(&write).await };
        let objects = state.objects.clone();
        let unrecorded = {
            let path = path.clone();
            async move {
                let _ = objects.delete(&path).await;
            }
        };
        match entry_then_write(state, event, point, written, upload_failure, unrecorded).await {
            Ok(Ok(_)) => return Ok((subject.id, record_id)),
            Ok(Err(CollectError::IdentifierRace | CollectError::Erased)) => continue,
            Ok(Err(e)) => {
                let _ = state.objects.delete(&path).await;
                return Err(e.into());
            }
            Err(e) => return Err(e),
        }
    }
    let _ = state.objects.delete(&path).await;
    Err(ApiError::Internal(anyhow::anyhow!("an upload kept racing for the same identifier")))
}

/// Why an upload's write failed, for its `failed` entry.
fn upload_failure(e: &CollectError) -> &'static str {
    match e {
        CollectError::IdentifierRace => "identifier_race",
        CollectError::Erased => "subject_erased",
        _ => "database_error",
    }
}

/// What an upload writes for `subject`: the subject when new, the record when `new_record`,
/// and the object's row with its key wrapped under the subject's.
fn upload_write(subject: &Resolved, file: &Received, record_id: Option<&str>, new_record: bool) -> CollectionWrite {
    let record = record_id.filter(|_| new_record).map(|id| RecordWrite {
        id: id.to_owned(),
        wrapped_key: subject.data_key.wrap_own(&subject.id, Holder::Record(id), &DataKey::generate()),
        fields: Vec::new(),
    });
    CollectionWrite {
        subject_id: subject.id.clone(),
        new_subject: subject.new_wrapped.clone(),
        identifier: subject.identifier,
        point: file.row.point.clone(),
        profile: Vec::new(),
        record,
        consents: Vec::new(),
        objects: attach(subject, record_id, std::slice::from_ref(file)),
        at_us: charter_store::now_us(),
    }
}

fn action_name(a: ScanAction) -> &'static str {
    match a {
        ScanAction::Reject => "reject",
        ScanAction::Anonymise => "anonymise",
        ScanAction::Record => "record",
    }
}

/// For a rejecting point, any finding refuses the upload, naming types and counts, never values.
fn refuse_if_found(action: ScanAction, counts: &Findings, field: &str) -> Result<(), ApiError> {
    if action != ScanAction::Reject || counts.is_empty() {
        return Ok(());
    }
    let found: serde_json::Map<String, Value> = counts.iter().map(|(k, n)| (k.name().to_owned(), json!(n))).collect();
    Err(ApiError::Unprocessable {
        code: "personal_data_found",
        message: format!(
            "the upload for `{field}` contains personal data, which this point does not accept; nothing was stored"
        ),
        details: Value::Object(found),
    })
}

/// How an upload is scanned.
enum Scan {
    /// In the request's own task: the stored bytes are the scanner's output.
    InLine(StreamScanner),
    /// On a thread beside the request, over the same bytes as they are stored.
    Beside(BesideScan),
}

/// Permits for scans beside uploads: a few per core, so that waiting scans can never take
/// every thread of the runtime's blocking pool, which object storage needs too.
fn scan_threads() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static PERMITS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    crate::state::per_core_permits(&PERMITS, 4)
}

/// A scan on a blocking thread fed with the upload's pieces through a bounded
/// channel (so memory stays bounded and a slow scan slows the upload down).
struct BesideScan {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    found: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reject: bool,
    done: tokio::task::JoinHandle<std::collections::BTreeMap<EntityType, u64>>,
}

impl BesideScan {
    /// Pieces waiting for the scanner, at most.
    const QUEUE: usize = 8;

    /// A scan on a thread of its own, when one of the [`scan_threads`] permits is free.
    fn start(reject: bool) -> Option<Self> {
        let permit = scan_threads().clone().try_acquire_owned().ok()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(Self::QUEUE);
        let found = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = found.clone();
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut scanner = StreamScanner::counting();
            while let Some(piece) = rx.blocking_recv() {
                scanner.push(&piece);
                if !scanner.counts().is_empty() {
                    flag.store(true, std::sync::atomic::Ordering::Release);
                    if reject {
                        break; // one finding refuses the upload: no need to read on
                    }
                }
            }
            scanner.finish().1
        });
        Some(Self { tx: Some(tx), found, reject, done })
    }

    /// Whether a rejecting point's scan has already found personal data.
    fn found_for_reject(&self) -> bool {
        self.reject && self.found.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn push(&mut self, piece: Bytes) {
        // A closed channel means a rejecting scan stopped at a finding; `finish` reports it.
        if let Some(tx) = &self.tx {
            if tx.send(piece).await.is_err() {
                self.tx = None;
            }
        }
    }

    /// Waits for the scan of everything pushed; the findings counted by type.
    async fn finish(mut self) -> Result<std::collections::BTreeMap<EntityType, u64>, ApiError> {
        self.tx = None;
        Ok(self.done.await?)
    }
}

/// Seals bytes into 64 KiB chunks and writes them to object storage with back-pressure.
struct Sink {
    writer: WriteMultipart,
    sealer: StreamSealer,
    buf: BytesMut,
    stored: u64,
}

impl Sink {
    async fn feed(&mut self, mut rest: &[u8]) -> Result<(), ApiError> {
        self.stored += rest.len() as u64;
        while !rest.is_empty() {
            if self.buf.len() == CHUNK {
                // More data follows, so the full chunk is not the last.
                self.writer.write(&self.sealer.seal(&self.buf, false));
                self.buf.clear();
                // Back-pressure: at most two parts in flight, so memory stays bounded.
                self.writer.wait_for_capacity(2).await?;
            }
            let take = (CHUNK - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(())
    }

    /// Seals the last chunk and completes the object; returns the plaintext bytes stored.
    async fn finish(mut self) -> Result<u64, ApiError> {
        if self.buf.len() == CHUNK {
            self.writer.write(&self.sealer.seal(&self.buf, false));
            self.buf.clear();
        }
        self.writer.write(&self.sealer.seal(&self.buf, true));
        self.writer.finish().await?;
        Ok(self.stored)
    }
}
