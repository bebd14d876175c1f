//! Downloads of uploads: `GET /v1/subjects/{id}/objects/{object}?purpose=P`
//! streams an object back through the same purpose check as fields, opened
//! chunk by chunk as the client reads it.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::{Bytes, BytesMut};
use charter_core::access::{self, FieldRef};
use charter_core::audit::AuditEvent;
use charter_store::api_keys::ApiKey;
use charter_vault::stream::{StreamOpener, HEADER, SEALED_CHUNK};
use charter_vault::{DataKey, Holder};
use futures_util::StreamExt as _;
use object_store::path::Path as ObjectPath;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{Caller, Path, Query};
use crate::routes::subjects::{
    asked_purpose, disclosures, read_refused, read_view, require_key_purpose, require_purpose,
};
use crate::state::AppState;
use crate::subject::{sealed_error, unwrap_key, SubjectId};

/// The download route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/subjects/{id}/objects/{object}", get(download))
}

#[derive(Deserialize)]
struct DownloadQuery {
    purpose: Option<String>,
}

async fn download(
    State(state): State<AppState>,
    Caller(key): Caller,
    ids: Result<Path<(String, String)>, ApiError>,
    q: Result<Query<DownloadQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let asked = asked_purpose(&q, |q| &q.purpose);
    let answer = match ids {
        Ok(Path((id, object))) => send_object(&state, &key, &id, &object, q).await,
        Err(e) => Err(e),
    };
    read_refused(&state, &key, asked, answer).await
}

async fn send_object(
    state: &AppState,
    key: &ApiKey,
    id: &str,
    object: &str,
    q: Result<Query<DownloadQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let policy = &state.policy().policy;
    let purpose = require_purpose(state, q.purpose)?;
    let id = SubjectId::parse(id);
    require_key_purpose(state, key, &purpose, id.as_ref().ok()).await?;
    let view = read_view(state, &id?, &purpose).await?;
    let subject = &view.subject;
    let record = state
        .store
        .object(&subject.id, object)
        .await?
        .ok_or_else(|| ApiError::Missing { code: "unknown_object", message: "no such object".into() })?;
    let subject_state = view.state(&purpose);
    let r = FieldRef { name: &record.field, category: &record.category, collected_at_us: record.collected_at_us };
    let mut event = AuditEvent::new(&key.name, "data.read", "ok")
        .with_detail(&json!({ "object": record.id, "fields": [record.field] }));
    event.subject = Some(subject.id.clone());
    event.purpose = Some(purpose.clone());
    if let Err(d) = access::decide(policy, &purpose, &key.purposes, &subject_state, &r, charter_store::now_us()) {
        event.action = "data.denied".into();
        event.result = d.code().into();
        state.audit.append(event).await?;
        return Err(ApiError::Denied { fields: json!({ record.field.clone(): d.code() }) });
    }
    // The object is read for `purpose`: a recipient the policy shares it with is disclosed its category.
    let mut events = vec![event];
    disclosures(policy, key, &subject.id, &purpose, std::iter::once(record.category.as_str()), &mut events);
    state.audit.append_all(events).await?;
    let data_key = unwrap_key(state, subject)?;
    // An object under a key of its own binds its id alone; one an earlier version sealed
    // under the subject's key binds the subject too.
    let (key, bound_to) = match &record.wrapped_key {
        Some(w) => {
            let own = data_key.unwrap_own(&subject.id, Holder::Object(&record.id), w).map_err(sealed_error)?;
            (own, String::new())
        }
        None => (data_key, subject.id.clone()),
    };
    let got = state.objects.get(&ObjectPath::from(record.location.as_str())).await?;
    let opening = Opening::new(state.clone(), got.into_stream(), key, bound_to, record.id.clone());
    let plain = futures_util::stream::unfold(opening, |mut o| async move { o.next().await.map(|item| (item, o)) });
    Response::builder()
        .header(header::CONTENT_TYPE, record.content_type)
        .header(header::CONTENT_LENGTH, record.size)
        .header(header::CONTENT_DISPOSITION, "attachment")
        .body(Body::from_stream(plain))
        .map_err(|e| ApiError::Internal(e.into()))
}

/// A stored object opened chunk by chunk as the client reads it: nothing is read
/// or decrypted ahead of the client, and nothing once it has gone away.
pub(crate) struct Opening {
    state: AppState,
    source: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    pending: BytesMut,
    opener: Option<StreamOpener>,
    key: DataKey,
    subject_id: String,
    object_id: String,
    finished: bool,
}

impl Opening {
    /// `source`, the sealed bytes of object `object_id`, to be opened with `key` (bound to
    /// `subject_id` for an object an earlier version sealed under the subject's key, else
    /// to nothing but its id).
    pub(crate) fn new(
        state: AppState,
        source: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
        key: DataKey,
        subject_id: String,
        object_id: String,
    ) -> Self {
        Self { state, source, pending: BytesMut::new(), opener: None, key, subject_id, object_id, finished: false }
    }

    /// The next opened chunk; `None` after the last.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        let item = self.step().await;
        if let Some(Err(e)) = &item {
            self.finished = true;
            tracing::error!(error = %e, "object download failed");
        }
        item
    }

    async fn step(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if self.finished {
                return None;
            }
            // A full frame followed by more bytes is never the last one.
            if let Some(o) = self.opener.as_mut().filter(|_| self.pending.len() > SEALED_CHUNK) {
                let frame = self.pending.split_to(SEALED_CHUNK);
                self.state.metrics.download_chunk();
                return Some(o.open(&frame, false).map(Bytes::from).map_err(std::io::Error::other));
            }
            match self.source.next().await {
                Some(Ok(piece)) => {
                    self.pending.extend_from_slice(&piece);
                    if let Err(e) = self.start() {
                        return Some(Err(e));
                    }
                }
                Some(Err(e)) => return Some(Err(std::io::Error::other(e))),
                None => {
                    self.finished = true;
                    return Some(self.last());
                }
            }
        }
    }

    /// Reads the stream's header once enough bytes have arrived.
    fn start(&mut self) -> Result<(), std::io::Error> {
        if self.opener.is_none() && self.pending.len() >= HEADER {
            let header = self.pending.split_to(HEADER);
            let opener = StreamOpener::new(&self.key, &self.subject_id, &self.object_id, &header)
                .map_err(std::io::Error::other)?;
            self.opener = Some(opener);
        }
        Ok(())
    }

    /// The last chunk, which must be shorter than a full one.
    fn last(&mut self) -> Result<Bytes, std::io::Error> {
        let truncated = || std::io::Error::other("stored object is truncated");
        let o = self.opener.as_mut().ok_or_else(truncated)?;
        if self.pending.len() == SEALED_CHUNK {
            return Err(truncated());
        }
        self.state.metrics.download_chunk();
        o.open(&self.pending, true).map(Bytes::from).map_err(std::io::Error::other)
    }
}
