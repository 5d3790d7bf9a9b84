//! Watches: `?watch=true` on a collection streams one JSON event per line
//! (`ADDED`, `MODIFIED`, `DELETED`, `ERROR`) until the client goes away or
//! `timeoutSeconds` pass.
//!
//! Selectors are applied to both sides of a change, as Kubernetes does: an
//! object that starts matching arrives as `ADDED`, one that stops matching
//! as `DELETED`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rudder_api::StatusError;
use rudder_api::selector::fields_of;
use rudder_api::table::{self, IncludeObject};
use rudder_store::{Event, EventKind, Revision, WatchStream};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use std::borrow::Cow;
use std::sync::Arc;

use crate::http::{Body, Format, Query};
use crate::metrics::Metrics;
use crate::objects::{
    Filter, Objects, Target, collection_prefix, decode, parse_watch_rv, set_resource_version,
    store_error, view,
};
use crate::watchcache::{Cache, CacheEvent, Subscription, bookmark};
use rudder_api::Resource;

/// Events a slow client may have waiting before the watch ends.
const WATCH_BUFFER: usize = 1024;

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

pub(crate) async fn watch(
    objects: &Objects,
    t: &Target,
    q: &Query,
    format: Format,
    metrics: &Arc<Metrics>,
) -> Result<Response<Body>, StatusError> {
    let r = t.resource;
    let filter = Filter::parse(r, q)?;
    // The watch path form /watch/namespaces/ns/pods/name.
    let filter_name = t.name.clone();
    let prefix = collection_prefix(r, t.namespace.as_deref());
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(WATCH_BUFFER);
    let render = Render {
        format,
        group: r.group,
        kind: r.kind,
        include: IncludeObject::parse(q.get("includeObject")),
        columns_sent: false,
    };
    let from = parse_watch_rv(q.get("resourceVersion"))?.map(|rv| rv + 1);
    // The WatchList protocol: the current state first, whatever the version.
    let from = from.filter(|_| !q.flag("sendInitialEvents"));
    let cache = objects.caches().get(r).await?;
    let open = metrics.watch_started(r.plural);
    let bookmarks = q.flag("allowWatchBookmarks");
    if let Some(sub) = cache.subscribe(from, &prefix) {
        let watcher = Watcher {
            filter,
            name: filter_name,
            prefix,
            render,
            tx,
            resource: r,
            bookmarks,
            initial_end: bookmarks && q.flag("sendInitialEvents"),
        };
        tokio::spawn(async move {
            watcher.run(cache, sub, timeout).await;
            drop(open);
        });
    } else {
        // Older than the cache's history: a watch on the store, which
        // replays from there (or answers 410 Gone if compacted).
        let from = from.unwrap_or_default();
        let stream = objects
            .store()
            .watch(&prefix, from)
            .await
            .map_err(store_error)?;
        let pump = Pump {
            resource: r,
            filter,
            name: filter_name,
            tx,
            render,
            bookmarks,
        };
        tokio::spawn(async move {
            pump.run(stream, from, timeout).await;
            drop(open);
        });
    }
    let body = BodyExt::boxed(StreamBody::new(tokio_stream_from(rx)));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;stream=watch"),
    );
    Ok(resp)
}

/// One watch served from the watch cache.
struct Watcher {
    filter: Filter,
    name: Option<String>,
    prefix: String,
    render: Render,
    tx: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    resource: &'static Resource,
    bookmarks: bool,
    /// `sendInitialEvents=true`: a bookmark marks the end of the initial
    /// ADDED events (the WatchList protocol).
    initial_end: bool,
}

impl Watcher {
    async fn run(mut self, cache: Arc<Cache>, sub: Subscription, timeout: Option<Duration>) {
        let Subscription {
            initial,
            replay,
            mut live,
            from,
            revision,
        } = sub;
        for kv in &initial {
            let event = match decode(kv).map(|mut obj| {
                view(self.resource, &mut obj);
                obj
            }) {
                Ok(obj) if self.matches(&obj) => json!({"type": "ADDED", "object": obj}),
                Ok(_) => continue,
                Err(status) => json!({"type": "ERROR", "object": status.to_json()}),
            };
            if !self.send_value(event).await {
                return;
            }
        }
        if self.initial_end {
            let mut mark = bookmark(self.resource, revision);
            mark["object"]["metadata"]["annotations"] =
                json!({"k8s.io/initial-events-end": "true"});
            if !self.send_value(mark).await {
                return;
            }
        }
        let mut sent = revision.max(from - 1);
        for event in &replay {
            if !self.send_event(event).await {
                return;
            }
            sent = sent.max(event.revision);
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticks = bookmark_ticks(timeout);
        loop {
            let next = tokio::select! {
                next = live.recv() => next,
                () = self.tx.closed() => return,
                () = sleep_until(deadline) => return,
                _ = ticks.tick(), if self.bookmarks => {
                    // Every change up to the cache's revision is queued
                    // here once it was read; if none is left, say so.
                    let now = cache.revision();
                    if live.is_empty() && now >= sent {
                        sent = now;
                        if !self.send_value(bookmark(self.resource, now)).await {
                            return;
                        }
                    }
                    continue;
                }
            };
            match next {
                Ok(event) => {
                    if event.revision < from || !event.key.starts_with(&self.prefix) {
                        continue;
                    }
                    sent = sent.max(event.revision);
                    if !self.send_event(&event).await {
                        return;
                    }
                }
                // Too slow to keep up, or the cache started over: end the
                // watch; the client watches again from what it has seen.
                Err(_) => return,
            }
        }
    }

    fn matches(&self, obj: &Value) -> bool {
        self.filter.matches(obj) && name_ok(&self.name, obj)
    }

    async fn send_value(&mut self, event: Value) -> bool {
        let frame = line(&self.render.event(event));
        self.tx.send(frame).await.is_ok()
    }

    async fn send_event(&mut self, e: &CacheEvent) -> bool {
        // The line rendered once serves every watch that shows the object
        // as stored and sees the change as the store did.
        let verbatim = !self.resource.converts() && matches!(self.render.format, Format::Json);
        if verbatim && self.filter.is_empty() && self.name.is_none() {
            return self.tx.send(Ok(Frame::data(e.line.clone()))).await.is_ok();
        }
        if let Format::Metadata(api_version) = self.render.format
            && self.filter.is_empty()
            && self.name.is_none()
        {
            let Some(line) = e.metadata_line(api_version) else {
                return true;
            };
            return self.tx.send(Ok(Frame::data(line))).await.is_ok();
        }
        if verbatim {
            // Selectors read a few fields: those are picked, the line is
            // the stored JSON.
            let fields = fields_of(self.resource.group, self.resource.kind).pick();
            let attrs = e.attrs(fields);
            let (obj, prev) = &*attrs;
            let Some(obj) = obj else { return true };
            let before = prev.as_ref().map(|p| self.matches(p));
            let Some(kind) = event_type(e.kind, before, self.matches(obj)) else {
                return true;
            };
            return self.tx.send(Ok(Frame::data(e.line_as(kind)))).await.is_ok();
        }
        let decoded = e.objects();
        let (obj, prev) = &*decoded;
        let Some(obj) = obj else { return true };
        // Selectors see the object as this resource shows it; only
        // resources served in several versions need a converted copy.
        let shown = |v: &Value| {
            let mut v = v.clone();
            view(self.resource, &mut v);
            v
        };
        let (obj, prev) = if self.resource.converts() {
            (
                Cow::Owned(shown(obj)),
                prev.as_ref().map(|p| Cow::Owned(shown(p))),
            )
        } else {
            (Cow::Borrowed(obj), prev.as_ref().map(Cow::Borrowed))
        };
        let before = prev.as_deref().map(|p| self.matches(p));
        let Some(kind) = event_type(e.kind, before, self.matches(&obj)) else {
            return true;
        };
        let obj = as_seen(kind, e.kind, obj, prev, e.revision);
        self.send_value(json!({"type": kind, "object": obj})).await
    }
}

/// As kube-apiserver: a bookmark every minute, and one 2 s before the
/// watch times out, so the client can resume from there.
fn bookmark_ticks(timeout: Option<Duration>) -> tokio::time::Interval {
    let period = match timeout {
        Some(t) if t > Duration::from_secs(2) => BOOKMARK_EVERY.min(t - Duration::from_secs(2)),
        _ => BOOKMARK_EVERY,
    };
    tokio::time::interval_at(tokio::time::Instant::now() + period, period)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn name_ok(name: &Option<String>, obj: &Value) -> bool {
    name.as_deref().is_none_or(|n| obj["metadata"]["name"] == n)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn line(event: &Value) -> Result<Frame<Bytes>, std::io::Error> {
    let mut bytes = serde_json::to_vec(event).unwrap_or_default();
    bytes.push(b'\n');
    Ok(Frame::data(Bytes::from(bytes)))
}

/// Turns event objects into one-row Tables when the client asked for
/// Tables; column definitions go with the first event only, as in
/// Kubernetes.
struct Render {
    format: Format,
    group: &'static str,
    kind: &'static str,
    include: IncludeObject,
    columns_sent: bool,
}

impl Render {
    fn event(&mut self, mut event: Value) -> Value {
        if event["type"] == "ERROR" {
            return event;
        }
        let api_version = match self.format {
            Format::Json => return event,
            Format::Metadata(api_version) => {
                event["object"] = crate::http::partial_metadata(api_version, &event["object"]);
                return event;
            }
            Format::Table(api_version) => api_version,
        };
        let obj = event["object"].take();
        let rv = obj["metadata"]["resourceVersion"].clone();
        let with_columns = !std::mem::replace(&mut self.columns_sent, true);
        let opts = table::TableOptions {
            api_version,
            include: self.include,
            with_columns,
            now: rudder_api::time::now(),
        };
        let list_meta = json!({"resourceVersion": rv});
        event["object"] = table::table(
            self.group,
            self.kind,
            std::slice::from_ref(&obj),
            list_meta,
            &opts,
        );
        event
    }
}

/// One watch served from the store (older than the cache's history).
struct Pump {
    resource: &'static Resource,
    filter: Filter,
    name: Option<String>,
    tx: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    render: Render,
    bookmarks: bool,
}

impl Pump {
    async fn run(mut self, mut stream: WatchStream, from: Revision, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticks = bookmark_ticks(timeout);
        // The store sends changes in order: once one is out, every earlier
        // one is.
        let mut sent = from.saturating_sub(1);
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = self.tx.closed() => return,
                () = sleep_until(deadline) => return,
                _ = ticks.tick(), if self.bookmarks && sent > 0 => {
                    let mark = bookmark(self.resource, sent);
                    if self.tx.send(line(&self.render.event(mark))).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let out = match next {
                None => return,
                Some(Err(e)) => {
                    let status = store_error(e);
                    let _ = self
                        .tx
                        .send(line(&json!({"type": "ERROR", "object": status.to_json()})))
                        .await;
                    return;
                }
                Some(Ok(event)) => {
                    sent = sent.max(event.revision());
                    match convert(&event, self.resource, &self.filter, &self.name) {
                        Ok(Some(v)) => v,
                        Ok(None) => continue,
                        Err(status) => json!({"type": "ERROR", "object": status.to_json()}),
                    }
                }
            };
            if self.tx.send(line(&self.render.event(out))).await.is_err() {
                return;
            }
        }
    }
}

/// The watch event for a store change, if it concerns this watch.
fn convert(
    event: &Event,
    resource: &Resource,
    filter: &Filter,
    name: &Option<String>,
) -> Result<Option<Value>, StatusError> {
    let viewed = |kv| {
        decode(kv).map(|mut obj| {
            view(resource, &mut obj);
            obj
        })
    };
    let prev = event.prev.as_ref().map(viewed).transpose()?;
    let obj = match (event.kind, &prev) {
        (EventKind::Put, _) => viewed(&event.kv)?,
        // A deleted object carries the deleting revision.
        (EventKind::Delete, Some(prev)) => {
            let mut obj = prev.clone();
            set_resource_version(&mut obj, event.revision());
            obj
        }
        (EventKind::Delete, None) => return Ok(None),
    };
    let matches = |obj: &Value| filter.matches(obj) && name_ok(name, obj);
    let before = prev.as_ref().map(matches);
    let Some(kind) = event_type(event.kind, before, matches(&obj)) else {
        return Ok(None);
    };
    let obj = as_seen(
        kind,
        event.kind,
        Cow::Owned(obj),
        prev.map(Cow::Owned),
        event.revision(),
    );
    Ok(Some(json!({"type": kind, "object": obj})))
}

/// The object a watch shows of a change it sees as `kind`: an object that
/// stops matching (`DELETED` where the change was a put) shows as it was
/// before the change, at the change's revision, as kube-apiserver's cacher
/// sends it.
fn as_seen<'a>(
    kind: &str,
    change: EventKind,
    obj: Cow<'a, Value>,
    prev: Option<Cow<'a, Value>>,
    revision: Revision,
) -> Cow<'a, Value> {
    match (kind, change, prev) {
        ("DELETED", EventKind::Put, Some(prev)) => {
            let mut prev = prev.into_owned();
            set_resource_version(&mut prev, revision);
            Cow::Owned(prev)
        }
        _ => obj,
    }
}

/// How a change shows to a watch with selectors: an object that starts
/// matching is ADDED, one that stops is DELETED (as Kubernetes does);
/// `None` when the watch does not see the change. `before` is whether the
/// previous version matched (`None`: there was none).
fn event_type(kind: EventKind, before: Option<bool>, now: bool) -> Option<&'static str> {
    match (kind, before, now) {
        (EventKind::Delete, Some(true), _) => Some("DELETED"),
        (EventKind::Delete, _, _) => None,
        (EventKind::Put, Some(true), true) => Some("MODIFIED"),
        (EventKind::Put, _, true) => Some("ADDED"),
        (EventKind::Put, Some(true), false) => Some("DELETED"),
        (EventKind::Put, _, false) => None,
    }
}
