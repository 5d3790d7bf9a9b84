//! JSON → Kubernetes protobuf: the other direction of [`super::decode`],
//! for clients that prefer `application/vnd.kubernetes.protobuf` in their
//! `Accept` (client-go's typed clients, kubectl 1.32+).
//!
//! Fields are written in tag order; a field absent from the JSON (or
//! `null`) is not written, which a Go client reads as its zero value (or
//! `nil` for a pointer), exactly what the JSON meant. JSON keys the schema
//! does not know (`apiVersion` and `kind` inside a message, fields newer
//! than the schema) are dropped, as a Go client's types would drop them.
//! A value of the wrong type is an error, so that the caller can answer
//! in JSON instead of sending something a client would misread.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{FieldDef, Kind, MAX_DEPTH, Schema, Special, Writer, schema};

/// Why an object could not be written as protobuf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(String);

fn err<T>(message: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError(message.into()))
}

/// A whole body: [`super::MAGIC`], then the `runtime.Unknown` envelope naming the
/// object's `apiVersion` and `kind` around the object's message.
pub fn encode(obj: &Value) -> Result<Vec<u8>, EncodeError> {
    let (Some(api_version), Some(kind)) = (obj["apiVersion"].as_str(), obj["kind"].as_str()) else {
        return err("the object names no apiVersion and kind");
    };
    let schema = schema();
    let Some(index) = schema.message_for(api_version, kind) else {
        return err(format!("no protobuf schema for {api_version}, Kind={kind}"));
    };
    let raw = schema.encode_message(index, obj, 1)?;
    Ok(Writer::envelope(api_version, kind, raw))
}

/// One watch event as kube-apiserver streams it in protobuf: a 4-byte
/// big-endian length, then a `meta.v1.WatchEvent` (no magic, no envelope)
/// whose `object` holds the object's whole body (magic and envelope).
pub fn watch_frame(event: &Value) -> Result<Vec<u8>, EncodeError> {
    let Some(kind) = event["type"].as_str() else {
        return err("a watch event names no type");
    };
    let object = encode(&event["object"])?;
    let raw = Writer::default()
        .str(1, kind)
        .msg(2, Writer::default().bytes(1, &object));
    let Ok(len) = u32::try_from(raw.0.len()) else {
        return err("a watch event of more than 4 GiB");
    };
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend(raw.0);
    Ok(frame)
}

impl Schema {
    /// A message from a JSON value: an object for plain messages, the JSON
    /// form for the special ones (`Time`'s string, `IntOrString`'s number
    /// or string, …).
    fn encode_message(&self, index: usize, v: &Value, depth: usize) -> Result<Writer, EncodeError> {
        if depth > MAX_DEPTH {
            return err("the object is nested too deeply");
        }
        let Some(message) = self.messages.get(index) else {
            return err("unknown message");
        };
        if message.special != Special::None {
            return encode_special(message.special, v);
        }
        let Value::Object(obj) = v else {
            return err(format!("an object was expected, not {v}"));
        };
        let mut w = Writer::default();
        for tag in &message.order {
            let field = &message.fields[tag];
            let tag = u64::from(*tag);
            if field.json == "-" {
                // A struct Go embeds inline: its keys sit in this object.
                let Kind::Message(inner) = field.kind else {
                    continue;
                };
                let own: Map<String, Value> = obj
                    .iter()
                    .filter(|(k, _)| self.owns(inner, k, 0))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !own.is_empty() {
                    let m = self.encode_message(inner, &Value::Object(own), depth + 1)?;
                    w = w.msg(tag, m);
                }
                continue;
            }
            let Some(value) = obj.get(field.json).filter(|v| !v.is_null()) else {
                // ObjectMeta's creationTimestamp is a struct in Go, always
                // written: zero, it is JSON's null.
                if field.json == "creationTimestamp" && obj.contains_key(field.json) {
                    w = w.msg(tag, Writer::default());
                }
                continue;
            };
            w = self
                .encode_field(field, tag, value, w, depth)
                .map_err(|e| EncodeError(format!("{}: {e}", field.json)))?;
        }
        Ok(w)
    }

    /// Whether `key` is a field of message `index` or of a struct it embeds.
    fn owns(&self, index: usize, key: &str, depth: usize) -> bool {
        let Some(message) = self.messages.get(index) else {
            return false;
        };
        message.by_json.contains_key(key)
            || (depth < 8
                && message.fields.values().any(|f| match f.kind {
                    Kind::Message(inner) if f.json == "-" => self.owns(inner, key, depth + 1),
                    _ => false,
                }))
    }

    fn encode_field(
        &self,
        field: &FieldDef,
        tag: u64,
        value: &Value,
        mut w: Writer,
        depth: usize,
    ) -> Result<Writer, EncodeError> {
        match field.kind {
            Kind::MapStr | Kind::MapBytes | Kind::MapMessage(_) => {
                let Value::Object(map) = value else {
                    return err("a map was expected");
                };
                for (k, v) in map {
                    let entry = Writer::default().str(1, k);
                    let entry = match (field.kind, v) {
                        (_, Value::Null) => entry,
                        (Kind::MapStr, Value::String(s)) => entry.str(2, s),
                        (Kind::MapBytes, Value::String(s)) => entry.bytes(2, &unbase64(s)?),
                        (Kind::MapMessage(index), v) => {
                            entry.msg(2, self.encode_message(index, v, depth + 1)?)
                        }
                        _ => return err(format!("{k}: a string was expected")),
                    };
                    w = w.msg(tag, entry);
                }
                Ok(w)
            }
            _ if field.repeated => {
                let Value::Array(items) = value else {
                    return err("a list was expected");
                };
                for item in items {
                    w = self.encode_one(field.kind, tag, item, w, depth)?;
                }
                Ok(w)
            }
            kind => self.encode_one(kind, tag, value, w, depth),
        }
    }

    fn encode_one(
        &self,
        kind: Kind,
        tag: u64,
        v: &Value,
        w: Writer,
        depth: usize,
    ) -> Result<Writer, EncodeError> {
        Ok(match (kind, v) {
            (Kind::Message(index), v) => w.msg(tag, self.encode_message(index, v, depth + 1)?),
            (Kind::Str, Value::String(s)) => w.str(tag, s),
            (Kind::Bytes, Value::String(s)) => w.bytes(tag, &unbase64(s)?),
            (Kind::Bool, Value::Bool(b)) => w.int(tag, i64::from(*b)),
            (Kind::I32 | Kind::I64, Value::Number(n)) => w.int(tag, integer(n)?),
            (Kind::F64, Value::Number(n)) => {
                w.fixed64(tag, n.as_f64().unwrap_or_default().to_bits())
            }
            (_, v) => return err(format!("{v} is not of the field's type")),
        })
    }
}

/// An integer from JSON, where `3.0` counts but `3.5` does not.
fn integer(n: &serde_json::Number) -> Result<i64, EncodeError> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        _ => err(format!("{n} is not an integer")),
    }
}

fn unbase64(s: &str) -> Result<Vec<u8>, EncodeError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| EncodeError("bytes that are not base64".into()))
}

fn encode_special(special: Special, v: &Value) -> Result<Writer, EncodeError> {
    let w = Writer::default();
    Ok(match (special, v) {
        (Special::Time | Special::MicroTime, Value::String(s)) => {
            let Some((seconds, nanos)) = parse_time(s) else {
                return err(format!("{s:?} is not an RFC 3339 time"));
            };
            w.int(1, seconds).int(2, nanos)
        }
        (Special::Duration, Value::String(s)) => {
            let Some(nanos) = parse_go_duration(s) else {
                return err(format!("{s:?} is not a duration"));
            };
            w.int(1, nanos)
        }
        (Special::Quantity, Value::String(s)) => w.str(1, s),
        (Special::Quantity, Value::Number(n)) => w.str(1, &n.to_string()),
        (Special::IntOrString, Value::Number(n)) => w.int(1, 0).int(2, integer(n)?),
        (Special::IntOrString, Value::String(s)) => w.int(1, 1).str(3, s),
        // A RawExtension's bytes are what a client put there, JSON for
        // every object a client stores (a ControllerRevision's data);
        // FieldsV1 is JSON too.
        (Special::Raw, v) => w.bytes(1, &serde_json::to_vec(v).unwrap_or_default()),
        (special, v) => return err(format!("{v} is not a {special:?}")),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → seconds and nanoseconds.
fn parse_time(s: &str) -> Option<(i64, i64)> {
    let seconds = crate::time::parse_rfc3339(s)?;
    let nanos = match s.get(19..).and_then(|rest| rest.strip_prefix('.')) {
        Some(frac) => {
            let digits: String = frac
                .chars()
                .take_while(char::is_ascii_digit)
                .take(9)
                .collect();
            format!("{digits:0<9}").parse().ok()?
        }
        None => 0,
    };
    Some((seconds, nanos))
}

/// Go's `time.ParseDuration`: `1h2m3.5s`, `300ms`, `-2s`, `0`.
pub(crate) fn parse_go_duration(s: &str) -> Option<i64> {
    let (sign, mut rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * unit;
    }
    #[allow(clippy::cast_possible_truncation)]
    Some((sign * total).round() as i64)
}
