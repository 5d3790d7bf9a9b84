//! HTTP plumbing shared by the handlers: bodies, JSON responses, query
//! strings, time stamps.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Frame;
use rudder_api::StatusError;
use serde_json::Value;

/// Every response body: whole or streamed (watch).
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub(crate) fn json(status: StatusCode, value: &Value) -> Response<Body> {
    // Serialising a Value cannot fail.
    json_bytes(
        status,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

/// A response of JSON already encoded.
pub(crate) fn json_bytes(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn error(e: &StatusError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &e.to_json())
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// What the client asked to get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    /// A `meta.k8s.io` Table, in this apiVersion.
    Table(&'static str),
    /// `meta.k8s.io` PartialObjectMetadata (lists: PartialObjectMetadataList),
    /// in this apiVersion: only the objects' metadata, what metadata-only
    /// informers (the garbage collector's) ask for.
    Metadata(&'static str),
}

/// An object as PartialObjectMetadata: its kind's type and its metadata.
pub(crate) fn partial_metadata(api_version: &str, obj: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": obj["metadata"],
    })
}

/// Picks the first media range of `Accept` the server can produce (JSON is
/// the fallback: every client lists it).
pub(crate) fn negotiate(accept: Option<&str>) -> Format {
    first_producible(accept).map_or(Format::Json, |(format, _)| format)
}

/// Whether the first media range of `Accept` the server can produce is
/// protobuf (client-go's typed clients: `application/vnd.kubernetes.protobuf,
/// application/json`).
pub(crate) fn prefers_protobuf(accept: Option<&str>) -> bool {
    first_producible(accept).is_some_and(|(_, protobuf)| protobuf)
}

/// The form and encoding of the first media range of `Accept` the server
/// can produce. Tables are JSON only, as from kube-apiserver.
fn first_producible(accept: Option<&str>) -> Option<(Format, bool)> {
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        let protobuf = media == PROTOBUF;
        if !protobuf && media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        match (param("as"), param("g"), param("v")) {
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) if !protobuf => {
                return Some((Format::Table("meta.k8s.io/v1"), false));
            }
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) if !protobuf => {
                return Some((Format::Table("meta.k8s.io/v1beta1"), false));
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some(v @ ("v1" | "v1beta1")),
            ) => {
                let api_version = if v == "v1" {
                    "meta.k8s.io/v1"
                } else {
                    "meta.k8s.io/v1beta1"
                };
                return Some((Format::Metadata(api_version), protobuf));
            }
            (None, _, _) => return Some((Format::Json, protobuf)),
            _ => {}
        }
    }
    None
}

/// Kubernetes' protobuf media type.
pub(crate) const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Whether `Accept` takes JSON at all (an absent header does).
fn accepts_json(accept: Option<&str>) -> bool {
    accept.is_none_or(|a| {
        a.split(',').any(|range| {
            matches!(
                range.split(';').next().unwrap_or("").trim(),
                "application/json" | "application/*" | "*/*" | ""
            )
        })
    })
}

/// A JSON response re-encoded in protobuf for a client that prefers it:
/// whole objects with magic and envelope, watch streams as length-prefixed
/// `WatchEvent`s. What has no protobuf form (custom resources, bodies
/// without a kind) stays JSON, or is 406 when the client takes no JSON.
pub(crate) async fn protobuf_response(
    resp: Response<Body>,
    accept: Option<&str>,
) -> Response<Body> {
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match content_type {
        "application/json" => {
            let (mut parts, body) = resp.into_parts();
            let Ok(collected) = body.collect().await else {
                return error(&StatusError::internal("the response could not be read"));
            };
            let bytes = collected.to_bytes();
            let encoded = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| rudder_api::protobuf::encode(&v).ok());
            match encoded {
                Some(pb) => {
                    parts
                        .headers
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
                    Response::from_parts(parts, full(pb))
                }
                None if accepts_json(accept) => Response::from_parts(parts, full(bytes)),
                None => error(&StatusError::not_acceptable(NOT_ACCEPTABLE)),
            }
        }
        "application/json;stream=watch" => {
            let (mut parts, body) = resp.into_parts();
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.kubernetes.protobuf;stream=watch"),
            );
            Response::from_parts(parts, protobuf_watch(body))
        }
        _ => resp,
    }
}

/// A watch's JSON lines as protobuf frames. An event that has no protobuf
/// form ends the stream with an error (the client watches again).
fn protobuf_watch(body: Body) -> Body {
    use futures_util::StreamExt as _;
    let mut pending: Vec<u8> = Vec::new();
    let frames = http_body_util::BodyStream::new(body).filter_map(move |frame| {
        let out = match frame.map(Frame::into_data) {
            Err(e) => Some(Err(e)),
            Ok(Err(_)) => None,
            Ok(Ok(data)) => {
                pending.extend_from_slice(&data);
                let mut out = Vec::new();
                let mut failed = None;
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let encoded = serde_json::from_slice::<Value>(&line)
                        .map_err(|e| e.to_string())
                        .and_then(|event| {
                            rudder_api::protobuf::watch_frame(&event).map_err(|e| e.to_string())
                        });
                    match encoded {
                        Ok(frame) => out.extend(frame),
                        Err(e) => {
                            failed = Some(std::io::Error::other(e));
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => Some(Err(e)),
                    None if out.is_empty() => None,
                    None => Some(Ok(Frame::data(Bytes::from(out)))),
                }
            }
        };
        std::future::ready(out)
    });
    BodyExt::boxed(http_body_util::StreamBody::new(frames))
}

/// kube-apiserver's message for an Accept header it can answer nothing to.
pub(crate) const NOT_ACCEPTABLE: &str = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Whether `Accept` takes the object itself: no header, or a media range
/// for plain JSON, YAML or protobuf (or a wildcard), without `as=`.
pub(crate) fn accepts_object(accept: Option<&str>) -> bool {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let plain = !parts.any(|p| p.starts_with("as="));
        plain
            && matches!(
                media,
                "application/json"
                    | "application/yaml"
                    | "application/vnd.kubernetes.protobuf"
                    | "application/*"
                    | "*/*"
            )
    })
}

/// Decoded query parameters, in order, and the request's User-Agent
/// (which names the field manager of writes that do not).
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>, Option<String>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = rudder_http::query_pairs(raw.unwrap_or(""));
        Self(pairs, None)
    }

    pub(crate) fn with_user_agent(mut self, user_agent: Option<&str>) -> Self {
        self.1 = user_agent.map(String::from);
        self
    }

    /// The field manager of a write: `fieldManager`, else the User-Agent
    /// up to its first `/` (kube-apiserver's rule), else `unknown`.
    pub(crate) fn field_manager(&self) -> String {
        match (self.get("fieldManager"), &self.1) {
            (Some(m), _) if !m.is_empty() => m.to_string(),
            (_, Some(ua)) if !ua.is_empty() => ua
                .split('/')
                .next()
                .unwrap_or(ua)
                .chars()
                .take(128)
                .collect(),
            _ => "unknown".into(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `true`/`1` → true (how Kubernetes reads boolean parameters).
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub(crate) fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accept_list_takes_the_object_unless_it_asks_only_for_other_forms() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
        assert!(!accepts_object(Some(table)));
        assert!(!accepts_object(Some(&format!(
            "{table},application/json;as=Table;v=v1beta1;g=meta.k8s.io"
        ))));
        assert!(accepts_object(Some(&format!("{table},application/json"))));
        assert!(accepts_object(Some(
            "application/vnd.kubernetes.protobuf, */*"
        )));
        assert!(accepts_object(None));
        assert!(accepts_object(Some("")));
    }

    #[test]
    fn accept_picks_tables_when_asked_and_json_otherwise() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)), Format::Table("meta.k8s.io/v1"));
        assert_eq!(
            negotiate(Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io")),
            Format::Table("meta.k8s.io/v1beta1")
        );
        assert_eq!(negotiate(Some("application/json, */*")), Format::Json);
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
            )),
            Format::Metadata("meta.k8s.io/v1")
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=Other;v=v1;g=meta.k8s.io,application/json"
            )),
            Format::Json
        );
        assert_eq!(negotiate(None), Format::Json);
    }

    #[test]
    fn protobuf_is_answered_when_it_comes_first_among_what_the_server_produces() {
        assert!(prefers_protobuf(Some(
            "application/vnd.kubernetes.protobuf,application/json"
        )));
        assert!(prefers_protobuf(Some(
            "application/vnd.kubernetes.protobuf, */*"
        )));
        assert!(!prefers_protobuf(Some(
            "application/json, application/vnd.kubernetes.protobuf"
        )));
        assert!(!prefers_protobuf(None));
        // Tables are JSON only: the JSON range after wins.
        let table =
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json";
        assert!(!prefers_protobuf(Some(table)));
        assert_eq!(negotiate(Some(table)), Format::Json);
        let metadata = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert!(prefers_protobuf(Some(metadata)));
        assert_eq!(
            negotiate(Some(metadata)),
            Format::Metadata("meta.k8s.io/v1")
        );
        assert!(!accepts_json(Some("application/vnd.kubernetes.protobuf")));
        assert!(accepts_json(Some(
            "application/vnd.kubernetes.protobuf, */*"
        )));
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&x&bad=%zz&end=%4",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("end"), Some("%4"));
    }
}
