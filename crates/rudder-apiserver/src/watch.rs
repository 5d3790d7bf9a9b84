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
use rudder_api::table::{self, IncludeObject};
use rudder_store::{Event, EventKind, RangeRequest, WatchStream};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use std::sync::Arc;

use crate::http::{Body, Format, Query};
use crate::metrics::Metrics;
use crate::objects::{
    Filter, Objects, Target, collection_prefix, decode, parse_watch_rv, set_resource_version,
    store_error,
};

/// Events a slow client may have waiting before the watch ends.
const WATCH_BUFFER: usize = 1024;

pub(crate) async fn watch(
    objects: &Objects,
    t: &Target,
    q: &Query,
    format: Format,
    metrics: &Arc<Metrics>,
) -> Result<Response<Body>, StatusError> {
    let r = t.resource;
    let filter = Filter::parse(r, q)?;
    let mut filter_name = None;
    if let Some(name) = &t.name {
        // The watch path form /watch/namespaces/ns/pods/name.
        filter_name = Some(name.clone());
    }
    let prefix = collection_prefix(r, t.namespace.as_deref());
    let store = objects.store().clone();
    let mut initial = Vec::new();
    let from = match parse_watch_rv(q.get("resourceVersion"))? {
        Some(rv) => rv + 1,
        None => {
            // No resourceVersion (or "0"): start with the current state.
            let list = store
                .range(RangeRequest::prefix(prefix.clone()))
                .await
                .map_err(store_error)?;
            for kv in &list.kvs {
                let obj = decode(kv)?;
                if filter.matches(&obj) && name_ok(&filter_name, &obj) {
                    initial.push(json!({"type": "ADDED", "object": obj}));
                }
            }
            list.revision + 1
        }
    };
    let stream = store.watch(&prefix, from).await.map_err(store_error)?;
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
    let open = metrics.watch_started(r.plural);
    tokio::spawn(async move {
        pump(stream, filter, filter_name, initial, tx, timeout, render).await;
        drop(open);
    });
    let body = BodyExt::boxed(StreamBody::new(tokio_stream_from(rx)));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;stream=watch"),
    );
    Ok(resp)
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
        let Format::Table(api_version) = self.format else {
            return event;
        };
        if event["type"] == "ERROR" {
            return event;
        }
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

async fn pump(
    mut stream: WatchStream,
    filter: Filter,
    name: Option<String>,
    initial: Vec<Value>,
    tx: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    timeout: Option<Duration>,
    mut render: Render,
) {
    for event in initial {
        if tx.send(line(&render.event(event))).await.is_err() {
            return;
        }
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                Ok(next) => next,
                Err(_) => return, // timeoutSeconds reached: end the response cleanly
            },
            None => tokio::select! {
                next = stream.next() => next,
                () = tx.closed() => return,
            },
        };
        let out = match next {
            None => return,
            Some(Err(e)) => {
                let status = store_error(e);
                let _ = tx
                    .send(line(&json!({"type": "ERROR", "object": status.to_json()})))
                    .await;
                return;
            }
            Some(Ok(event)) => match convert(&event, &filter, &name) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(status) => json!({"type": "ERROR", "object": status.to_json()}),
            },
        };
        if tx.send(line(&render.event(out))).await.is_err() {
            return;
        }
    }
}

/// The watch event for a store change, if it concerns this watch.
fn convert(
    event: &Event,
    filter: &Filter,
    name: &Option<String>,
) -> Result<Option<Value>, StatusError> {
    let matches = |obj: &Value| filter.matches(obj) && name_ok(name, obj);
    let prev = event.prev.as_ref().map(decode).transpose()?;
    let prev_matched = prev.as_ref().map(&matches);
    Ok(match event.kind {
        EventKind::Put => {
            let obj = decode(&event.kv)?;
            match (prev_matched, matches(&obj)) {
                (Some(true), true) => Some(json!({"type": "MODIFIED", "object": obj})),
                (_, true) => Some(json!({"type": "ADDED", "object": obj})),
                (Some(true), false) => Some(json!({"type": "DELETED", "object": obj})),
                (_, false) => None,
            }
        }
        EventKind::Delete => match (prev, prev_matched) {
            (Some(mut obj), Some(true)) => {
                // A deleted object carries the deleting revision.
                set_resource_version(&mut obj, event.revision());
                Some(json!({"type": "DELETED", "object": obj}))
            }
            _ => None,
        },
    })
}
