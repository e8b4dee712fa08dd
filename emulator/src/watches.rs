//! Watches (`?watch=true`): the store's log of recent changes and the chunked JSON event stream
//! served from it, with kube-apiserver's resourceVersion rules, selectors, bookmarks and timeouts.
//!
//! Memory is bounded: the log keeps at most the last [`HISTORY`] changes and [`HISTORY_BYTES`] of
//! objects, and every watch reads from it (a resourceVersion older than the log gets `410 Expired`,
//! as a real server's watch cache answers); a watch whose reader falls further behind than the log
//! reaches is ended with a `410` ERROR event (a client then re-lists, as kube-runtime's watcher
//! does), so a slow watcher holds no buffer of its own. At most [`MAX_WATCHES`] watches are open
//! at once (429).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::state::Shared;
use crate::status::ApiError;
use crate::store::metadata_mut;

/// How many recent changes the log keeps for watches that resume from a resourceVersion.
pub const HISTORY: usize = 1024;
/// About how many bytes of objects the log keeps at most.
pub const HISTORY_BYTES: usize = 64 * 1024 * 1024;
/// How many watches may be open at once.
pub const MAX_WATCHES: usize = 256;
/// A watch without `timeoutSeconds` ends after this long (kube-apiserver: `--min-request-timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// An object was created.
    Added,
    /// An object was replaced.
    Modified,
    /// An object was removed.
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The API group of the object.
    pub group: &'static str,
    /// The plural resource name of the object.
    pub plural: &'static str,
    /// The namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// The object after the change (for DELETED: as it was, with the deletion's resourceVersion).
    pub object: Value,
    /// The object before a MODIFIED change, so selector watches see objects enter and leave.
    pub old: Option<Value>,
    /// The store revision of the change.
    pub revision: u64,
}

/// The log of recent changes, and the revision of the latest, which open watches wait on.
#[derive(Debug)]
pub struct EventLog {
    history: VecDeque<(Arc<Event>, usize)>,
    bytes: usize,
    /// The revision of the newest change dropped from `history` (0: none dropped yet).
    forgotten: u64,
    latest: watch::Sender<u64>,
    watches: Arc<Semaphore>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            history: VecDeque::new(),
            bytes: 0,
            forgotten: 0,
            latest: watch::channel(0).0,
            watches: Arc::new(Semaphore::new(MAX_WATCHES)),
        }
    }
}

/// A rough size of a JSON value in memory, for the log's byte bound.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => 24 + s.len(),
        Value::Array(a) => 24 + a.iter().map(approx_size).sum::<usize>(),
        Value::Object(m) => {
            24 + m
                .iter()
                .map(|(k, v)| 24 + k.len() + approx_size(v))
                .sum::<usize>()
        }
        _ => 16,
    }
}

/// A resourceVersion older than what the log still holds.
#[derive(Debug)]
pub struct Expired {
    /// The oldest resourceVersion a watch may still start from.
    pub oldest: u64,
}

impl EventLog {
    /// Records a created or replaced object.
    pub fn record(
        &mut self,
        kind: EventType,
        rt: &ResourceType,
        ns: &str,
        obj: &Value,
        old: Option<Value>,
        revision: u64,
    ) {
        self.push(Event {
            kind,
            group: rt.group,
            plural: rt.plural,
            namespace: ns.to_string(),
            object: obj.clone(),
            old,
            revision,
        });
    }

    /// Records a removed object; the event carries the deletion's resourceVersion, as a real server's does.
    pub fn record_deleted(
        &mut self,
        group: &'static str,
        plural: &'static str,
        ns: &str,
        obj: &Value,
        revision: u64,
    ) {
        let mut object = obj.clone();
        if let Some(meta) = metadata_mut(&mut object) {
            meta.insert("resourceVersion".into(), revision.to_string().into());
        }
        self.push(Event {
            kind: EventType::Deleted,
            group,
            plural,
            namespace: ns.to_string(),
            object,
            old: None,
            revision,
        });
    }

    fn push(&mut self, event: Event) {
        let size = approx_size(&event.object) + event.old.as_ref().map_or(0, approx_size);
        let revision = event.revision;
        self.history.push_back((Arc::new(event), size));
        self.bytes += size;
        while self.history.len() > HISTORY || (self.bytes > HISTORY_BYTES && self.history.len() > 1)
        {
            let Some((dropped, size)) = self.history.pop_front() else {
                break;
            };
            self.bytes -= size;
            self.forgotten = dropped.revision;
        }
        self.latest.send_replace(revision);
    }

    /// Forgets every change up to `revision`: a watch from an older resourceVersion gets 410, as a
    /// real server's watch cache answers for versions from before it started.
    pub fn forget_history(&mut self, revision: u64) {
        while self
            .history
            .front()
            .is_some_and(|(e, _)| e.revision <= revision)
        {
            if let Some((_, size)) = self.history.pop_front() {
                self.bytes -= size;
            }
        }
        self.forgotten = self.forgotten.max(revision);
    }

    /// The changes after `revision`, or Expired when some of them are no longer held.
    pub fn since(&self, revision: u64) -> Result<Vec<Arc<Event>>, Expired> {
        if revision < self.forgotten {
            return Err(Expired {
                oldest: self.forgotten,
            });
        }
        let start = self
            .history
            .partition_point(|(e, _)| e.revision <= revision);
        Ok(self
            .history
            .range(start..)
            .map(|(e, _)| e.clone())
            .collect())
    }

    /// A receiver that changes whenever a change is recorded.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

/// Which events one watch wants.
#[derive(Debug, Clone)]
struct Filter {
    group: &'static str,
    plural: &'static str,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches_object(&self, obj: &Value) -> bool {
        self.labels.matches(
            obj.get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object),
        ) && self.fields.matches(obj)
    }

    /// The event this watch sees for a change, if any: an object that stops matching a selector
    /// is DELETED for it, one that starts matching is ADDED, as a real server's watch cache does.
    fn view(&self, event: &Event) -> Option<(EventType, Value)> {
        if event.group != self.group
            || event.plural != self.plural
            || self
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != event.namespace)
        {
            return None;
        }
        let now = self.matches_object(&event.object);
        match (event.kind, event.old.as_ref()) {
            (EventType::Modified, Some(old)) => match (self.matches_object(old), now) {
                (true, true) => Some((EventType::Modified, event.object.clone())),
                (false, true) => Some((EventType::Added, event.object.clone())),
                (true, false) => Some((EventType::Deleted, event.object.clone())),
                (false, false) => None,
            },
            (kind, _) => now.then(|| (kind, event.object.clone())),
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn expired(message: String) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Expired", "code": 410,
    })
}

/// The state of one open watch's stream.
struct Stream {
    shared: Arc<Shared>,
    pending: VecDeque<Bytes>,
    changes: watch::Receiver<u64>,
    filter: Filter,
    deadline: Instant,
    bookmarks: Option<Instant>,
    bookmark_object: Value,
    progress: u64,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Stream {
    fn bookmark(&self) -> Bytes {
        let mut object = self.bookmark_object.clone();
        object["metadata"]["resourceVersion"] = self.progress.to_string().into();
        event_line("BOOKMARK", &object)
    }

    /// Reads the changes after `progress` from the log into `pending`.
    fn catch_up(&mut self) {
        let events = self.shared.store().events.since(self.progress);
        match events {
            Ok(events) => {
                for event in events {
                    self.progress = event.revision;
                    if let Some((kind, object)) = self.filter.view(&event) {
                        self.pending.push_back(event_line(kind.as_str(), &object));
                    }
                }
            }
            Err(_) => {
                self.pending.push_back(event_line(
                    "ERROR",
                    &expired("The resourceVersion for the provided watch is too old.".into()),
                ));
                self.done = true;
            }
        }
    }

    async fn next(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Stream)> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some((Ok(line), self));
            }
            if self.done {
                return None;
            }
            let bookmark_at = self.bookmarks.unwrap_or(self.deadline).min(self.deadline);
            tokio::select! {
                changed = self.changes.changed() => match changed {
                    Ok(()) => {
                        self.changes.borrow_and_update();
                        self.catch_up();
                    }
                    Err(_) => self.done = true,
                },
                _ = tokio::time::sleep_until(bookmark_at) => {
                    if self.bookmarks.is_some() {
                        let line = self.bookmark();
                        self.pending.push_back(line);
                        self.bookmarks = Some(Instant::now() + BOOKMARK_INTERVAL);
                    }
                    if Instant::now() >= self.deadline {
                        self.done = true;
                    }
                }
            }
        }
    }
}

/// Field selectors a type supports besides `metadata.name` and `metadata.namespace`.
fn extra_fields(rt: &ResourceType) -> &'static [&'static str] {
    match rt.plural {
        "secrets" => &["type"],
        "namespaces" => &["status.phase"],
        _ => &[],
    }
}

/// Serves a watch on a stored or custom resource type: `ns` is empty for all namespaces,
/// `name` non-empty for the old watch-one-object form.
pub fn serve(
    shared: &Arc<Shared>,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let mut field_text = query.get("fieldSelector").cloned().unwrap_or_default();
    if !name.is_empty() {
        if !field_text.is_empty() {
            field_text.push(',');
        }
        field_text.push_str(&format!("metadata.name={name}"));
    }
    let fields =
        FieldSelector::parse(&field_text, extra_fields(rt)).map_err(ApiError::bad_request)?;
    let timeout = match query.get("timeoutSeconds").map(String::as_str) {
        None | Some("") => DEFAULT_TIMEOUT,
        Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "timeoutSeconds: Invalid value: {t:?}: must be a non-negative integer"
            ))
        })?),
    };
    let bookmarks = matches!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let since = match query.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                &[crate::status::FieldError::invalid(
                    "resourceVersion",
                    rv,
                    "must be a valid resource version",
                )],
            )
        })?),
    };
    let filter = Filter {
        group: rt.group,
        plural: rt.plural,
        namespace: (rt.namespaced && !ns.is_empty()).then(|| ns.to_string()),
        labels,
        fields,
    };
    let store = shared.store();
    let permit = store
        .events
        .watches
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::for_code(429, "too many watches"))?;
    let mut pending = VecDeque::new();
    let mut done = false;
    let mut progress = store.revision();
    match since.map(|rv| (rv, store.events.since(rv))) {
        None => {
            for obj in store.list(rt, filter.namespace.as_deref()) {
                if filter.matches_object(obj) {
                    pending.push_back(event_line("ADDED", obj));
                }
            }
        }
        Some((rv, Err(Expired { oldest }))) => {
            pending.push_back(event_line(
                "ERROR",
                &expired(format!("too old resource version: {rv} ({oldest})")),
            ));
            done = true;
        }
        Some((rv, Ok(events))) => {
            progress = progress.max(rv);
            for event in events {
                progress = event.revision;
                if let Some((kind, object)) = filter.view(&event) {
                    pending.push_back(event_line(kind.as_str(), &object));
                }
            }
        }
    }
    let stream = Stream {
        shared: shared.clone(),
        pending,
        changes: store.events.subscribe(),
        filter,
        deadline: Instant::now() + timeout,
        bookmarks: bookmarks.then(|| Instant::now() + BOOKMARK_INTERVAL),
        bookmark_object: json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {}}),
        progress,
        done,
        _permit: permit,
    };
    drop(store);
    let body = Body::from_stream(futures::stream::unfold(stream, Stream::next));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventType, labels: Value, old: Option<Value>) -> Event {
        Event {
            kind,
            group: "",
            plural: "secrets",
            namespace: "ns".into(),
            object: json!({"metadata": {"labels": labels}}),
            old: old.map(|l| json!({"metadata": {"labels": l}})),
            revision: 7,
        }
    }

    #[test]
    fn selector_watches_see_objects_enter_and_leave() {
        let filter = Filter {
            group: "",
            plural: "secrets",
            namespace: Some("ns".into()),
            labels: LabelSelector::parse("a=1").unwrap_or_default(),
            fields: FieldSelector::default(),
        };
        let kind = |e: &Event| filter.view(e).map(|(k, _)| k);
        assert_eq!(
            kind(&event(EventType::Added, json!({"a": "1"}), None)),
            Some(EventType::Added)
        );
        assert_eq!(
            kind(&event(
                EventType::Modified,
                json!({"a": "2"}),
                Some(json!({"a": "1"}))
            )),
            Some(EventType::Deleted)
        );
        assert_eq!(
            kind(&event(
                EventType::Modified,
                json!({"a": "1"}),
                Some(json!({"a": "2"}))
            )),
            Some(EventType::Added)
        );
        assert_eq!(
            kind(&event(EventType::Added, json!({"a": "2"}), None)),
            None
        );
    }
}
