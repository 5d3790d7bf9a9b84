//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`), as
//! kubectl 1.32+ and other typed clients send them, turned into the JSON
//! the rest of the server works with.
//!
//! The wire format is the magic `k8s\0` followed by a `runtime.Unknown`
//! message: `{1: TypeMeta{1: apiVersion, 2: kind}, 2: raw, 3:
//! contentEncoding, 4: contentType}`, where `raw` is the object encoded with
//! its type's `generated.proto`. Those types are described, field by field,
//! in `k8s.schema` (written by `tools/protogen`); this module walks the
//! protobuf with that table, no generated code per type.
//!
//! JSON follows Go's rules for the same object: a scalar left at its zero
//! value is dropped (Go's `omitempty`) unless the field is required or is a
//! pointer where an explicit zero means something (`replicas: 0`); an empty
//! message is kept (`emptyDir: {}`); a struct Go embeds inline (`Probe`'s
//! handler, `Volume`'s source) is merged into its parent; `Time`, `MicroTime`, `Duration`,
//! `Quantity`, `IntOrString`, `RawExtension` and `FieldsV1` get their JSON
//! forms; bytes become base64.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{Map, Value};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// Kinds served in a version newer than the schema's sources (kinds
/// promoted after Kubernetes 1.34): (apiVersion, kind prefix, the version
/// whose messages they share, unchanged at promotion).
const PROMOTED: &[(&str, &str, &str)] = &[(
    "admissionregistration.k8s.io/v1",
    "MutatingAdmissionPolicy",
    "v1beta1",
)];

/// Nesting deeper than this is refused rather than recursed into.
const MAX_DEPTH: usize = 100;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

fn err<T>(message: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(message.into()))
}

/// Decodes a whole body (magic, envelope, object) into a JSON object with
/// `apiVersion` and `kind` set.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return err("the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"");
    };
    decode_unknown(envelope, 0)
}

/// Decodes one event of a protobuf watch stream: the `meta.v1.WatchEvent`
/// that follows a frame's 4-byte length, into `{"type", "object"}`.
pub fn decode_watch_event(raw: &[u8]) -> Result<Value, DecodeError> {
    let schema = schema();
    let Some(index) = schema.message_for("meta.k8s.io/v1", "WatchEvent") else {
        return err("no protobuf schema for WatchEvent");
    };
    match schema.decode_message(index, raw, 1)? {
        Some(event) => Ok(event),
        None => err("the event is not a message"),
    }
}

fn decode_unknown(envelope: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut encoding = String::new();
    let mut reader = Reader::new(envelope);
    while let Some((tag, wire)) = reader.key()? {
        match (tag, wire) {
            (1, 2) => {
                let mut meta = Reader::new(reader.bytes()?);
                while let Some((tag, wire)) = meta.key()? {
                    match (tag, wire) {
                        (1, 2) => api_version = meta.string()?,
                        (2, 2) => kind = meta.string()?,
                        _ => meta.skip(wire)?,
                    }
                }
            }
            (2, 2) => raw = reader.bytes()?,
            (3, 2) => encoding = reader.string()?,
            _ => reader.skip(wire)?,
        }
    }
    if !encoding.is_empty() {
        return err(format!("content encoding {encoding:?} is not supported"));
    }
    if kind.is_empty() {
        return err("the protobuf envelope names no kind");
    }
    let schema = schema();
    let Some(index) = schema.message_for(&api_version, &kind) else {
        return err(format!("no protobuf schema for {api_version}, Kind={kind}"));
    };
    let Some(Value::Object(fields)) = schema.decode_message(index, raw, depth + 1)? else {
        return err("the object is not a message");
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    obj.extend(fields);
    Ok(Value::Object(obj))
}

/// Fields that are pointers in Go: an explicit zero there is a value
/// (`replicas: 0`, `automountServiceAccountToken: false`), not an absence.
const POINTER_FIELDS: &[&str] = &[
    "activeDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "averageUtilization",
    "backoffLimit",
    "backoffLimitPerIndex",
    "completions",
    "defaultMode",
    "enableServiceLinks",
    "expirationSeconds",
    "failedJobsHistoryLimit",
    "fsGroup",
    "gracePeriodSeconds",
    "hostUsers",
    "immutable",
    "leaseDurationSeconds",
    "leaseTransitions",
    "maxFailedIndexes",
    "minReplicas",
    "mode",
    "optional",
    "parallelism",
    "priority",
    "privileged",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "ready",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "serving",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "suspend",
    "targetCPUUtilizationPercentage",
    "terminating",
    "terminationGracePeriodSeconds",
    "ttlSecondsAfterFinished",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    None,
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    Raw,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Bytes,
    I32,
    I64,
    Bool,
    F64,
    Message(usize),
    MapStr,
    MapBytes,
    MapMessage(usize),
}

#[derive(Debug)]
struct FieldDef {
    json: &'static str,
    repeated: bool,
    keep_zero: bool,
    kind: Kind,
}

#[derive(Debug)]
struct Message {
    special: Special,
    fields: HashMap<u32, FieldDef>,
    /// Tags in ascending order: the order fields are written in.
    order: Vec<u32>,
    /// JSON name → tag (embedded structs, named `-`, are not listed).
    by_json: HashMap<&'static str, u32>,
}

#[derive(Debug)]
struct Schema {
    messages: Vec<Message>,
    /// Lower-cased message name → index.
    by_name: HashMap<String, usize>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse(include_str!("k8s.schema")))
}

impl Schema {
    fn parse(text: &'static str) -> Self {
        let lines: Vec<&'static str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let by_name: HashMap<String, usize> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.split(' ').next().unwrap_or("").to_ascii_lowercase(), i))
            .collect();
        let index = |name: &str| by_name.get(&name.to_ascii_lowercase()).copied();
        let messages = lines
            .iter()
            .map(|line| {
                let mut parts = line.split(' ');
                let name = parts.next().unwrap_or("");
                let special = match name {
                    "apimachinery.pkg.apis.meta.v1.Time" => Special::Time,
                    "apimachinery.pkg.apis.meta.v1.MicroTime" => Special::MicroTime,
                    "apimachinery.pkg.apis.meta.v1.Duration" => Special::Duration,
                    "apimachinery.pkg.api.resource.Quantity" => Special::Quantity,
                    "apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
                    "apimachinery.pkg.runtime.RawExtension"
                    | "apimachinery.pkg.apis.meta.v1.FieldsV1" => Special::Raw,
                    _ => Special::None,
                };
                let fields = parts
                    .filter_map(|f| {
                        let mut it = f.splitn(3, '=');
                        let json = it.next()?;
                        let tag: u32 = it.next()?.parse().ok()?;
                        let mut ty = it.next()?;
                        let repeated = ty.starts_with('*');
                        ty = ty.trim_start_matches('*');
                        let required = ty.ends_with('!');
                        ty = ty.trim_end_matches('!');
                        let kind = match ty {
                            "s" => Kind::Str,
                            "b" => Kind::Bytes,
                            "i32" => Kind::I32,
                            "i64" => Kind::I64,
                            "bool" => Kind::Bool,
                            "f64" => Kind::F64,
                            "ms:s" => Kind::MapStr,
                            "ms:b" => Kind::MapBytes,
                            t => match (t.strip_prefix("ms:m:"), t.strip_prefix("m:")) {
                                (Some(m), _) => Kind::MapMessage(index(m)?),
                                (None, Some(m)) => Kind::Message(index(m)?),
                                _ => return None,
                            },
                        };
                        let keep_zero = required || POINTER_FIELDS.contains(&json);
                        Some((
                            tag,
                            FieldDef {
                                json,
                                repeated,
                                keep_zero,
                                kind,
                            },
                        ))
                    })
                    .collect::<HashMap<u32, FieldDef>>();
                let mut order: Vec<u32> = fields.keys().copied().collect();
                order.sort_unstable();
                let by_json = fields
                    .iter()
                    .filter(|(_, f)| f.json != "-")
                    .map(|(tag, f)| (f.json, *tag))
                    .collect();
                Message {
                    special,
                    fields,
                    order,
                    by_json,
                }
            })
            .collect();
        Self { messages, by_name }
    }

    /// The message for an object of `apiVersion` and `kind`: core/v1 types
    /// live in `api.core.v1`, `apps/v1` in `api.apps.v1`,
    /// `rbac.authorization.k8s.io/v1` in `api.rbac.v1`, and so on.
    fn message_for(&self, api_version: &str, kind: &str) -> Option<usize> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let name = match group {
            "" => format!("api.core.{version}.{kind}"),
            "meta.k8s.io" => format!("apimachinery.pkg.apis.meta.{version}.{kind}"),
            "apiextensions.k8s.io" => {
                format!("apiextensions_apiserver.pkg.apis.apiextensions.{version}.{kind}")
            }
            g => format!("api.{}.{version}.{kind}", g.split('.').next().unwrap_or(g)),
        };
        // The meta.k8s.io kinds (DeleteOptions, Status, the other options)
        // are registered in every group version: client-go sends a
        // delete's options as `v1, Kind=DeleteOptions` or
        // `apps/v1, Kind=DeleteOptions`.
        self.by_name
            .get(&name.to_ascii_lowercase())
            .or_else(|| {
                let meta = format!("apimachinery.pkg.apis.meta.v1.{kind}");
                self.by_name.get(&meta.to_ascii_lowercase())
            })
            .or_else(|| {
                let (_, _, from) = PROMOTED
                    .iter()
                    .find(|(gv, k, _)| *gv == api_version && kind.starts_with(k))?;
                let name = name.replace(&format!(".{version}."), &format!(".{from}."));
                self.by_name.get(&name.to_ascii_lowercase())
            })
            .copied()
    }

    /// One message; `None` when it stands for an absent value (a zero
    /// `Time`, an empty `RawExtension`).
    fn decode_message(
        &self,
        index: usize,
        buf: &[u8],
        depth: usize,
    ) -> Result<Option<Value>, DecodeError> {
        if depth > MAX_DEPTH {
            return err("the object is nested too deeply");
        }
        let Some(message) = self.messages.get(index) else {
            return err("unknown message");
        };
        match message.special {
            Special::None => {}
            special => return decode_special(special, buf, depth),
        }
        let mut out = Map::new();
        let mut reader = Reader::new(buf);
        while let Some((tag, wire)) = reader.key()? {
            let Some(field) = message.fields.get(&tag) else {
                reader.skip(wire)?;
                continue;
            };
            match field.kind {
                Kind::MapStr | Kind::MapBytes | Kind::MapMessage(_) => {
                    if wire != 2 {
                        return err(format!(
                            "{}: a map entry must be length-delimited",
                            field.json
                        ));
                    }
                    let (key, value) = self.map_entry(field.kind, reader.bytes()?, depth)?;
                    let map = out
                        .entry(field.json)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let (Value::Object(map), Some(value)) = (map, value) {
                        map.insert(key, value);
                    }
                }
                Kind::Message(index) if field.json == "-" => {
                    if wire != 2 {
                        return err("an embedded struct must be length-delimited");
                    }
                    if let Some(Value::Object(inner)) =
                        self.decode_message(index, reader.bytes()?, depth + 1)?
                    {
                        out.extend(inner);
                    }
                }
                _ if field.repeated => {
                    let items = out
                        .entry(field.json)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    let Value::Array(items) = items else { continue };
                    if wire == 2 && is_numeric(field.kind) {
                        let mut packed = Reader::new(reader.bytes()?);
                        while !packed.done() {
                            let wire = if matches!(field.kind, Kind::F64) {
                                1
                            } else {
                                0
                            };
                            items.push(scalar(field, &mut packed, wire)?);
                        }
                    } else if let Some(value) = self.value(field, &mut reader, wire, depth)? {
                        items.push(value);
                    }
                }
                _ => match self.value(field, &mut reader, wire, depth)? {
                    Some(value) if field.keep_zero || !is_zero(&value) => {
                        out.insert(field.json.to_string(), value);
                    }
                    // Go writes an ObjectMeta's zero creationTimestamp as
                    // null (a struct, so never omitted).
                    None if field.json == "creationTimestamp" => {
                        out.insert(field.json.to_string(), Value::Null);
                    }
                    _ => {
                        out.remove(field.json);
                    }
                },
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn value(
        &self,
        field: &FieldDef,
        reader: &mut Reader<'_>,
        wire: u8,
        depth: usize,
    ) -> Result<Option<Value>, DecodeError> {
        match field.kind {
            Kind::Message(index) => {
                if wire != 2 {
                    return err(format!(
                        "{}: a message must be length-delimited",
                        field.json
                    ));
                }
                self.decode_message(index, reader.bytes()?, depth + 1)
            }
            _ => scalar(field, reader, wire).map(Some),
        }
    }

    fn map_entry(
        &self,
        kind: Kind,
        buf: &[u8],
        depth: usize,
    ) -> Result<(String, Option<Value>), DecodeError> {
        let mut reader = Reader::new(buf);
        let mut key = String::new();
        let mut value = None;
        while let Some((tag, wire)) = reader.key()? {
            match (tag, wire, kind) {
                (1, 2, _) => key = reader.string()?,
                (2, 2, Kind::MapStr) => value = Some(Value::String(reader.string()?)),
                (2, 2, Kind::MapBytes) => value = Some(Value::String(base64(reader.bytes()?))),
                (2, 2, Kind::MapMessage(index)) => {
                    value = self.decode_message(index, reader.bytes()?, depth + 1)?;
                }
                _ => reader.skip(wire)?,
            }
        }
        // A map entry without a value holds the zero value.
        let value = value.or(match kind {
            Kind::MapStr | Kind::MapBytes => Some(Value::String(String::new())),
            _ => self.zero_special(kind),
        });
        Ok((key, value))
    }

    fn zero_special(&self, kind: Kind) -> Option<Value> {
        match kind {
            Kind::MapMessage(index) => match self.messages.get(index)?.special {
                Special::Quantity => Some(Value::String("0".into())),
                Special::None => Some(Value::Object(Map::new())),
                _ => None,
            },
            _ => None,
        }
    }
}

fn is_numeric(kind: Kind) -> bool {
    matches!(kind, Kind::I32 | Kind::I64 | Kind::Bool | Kind::F64)
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn scalar(field: &FieldDef, reader: &mut Reader<'_>, wire: u8) -> Result<Value, DecodeError> {
    let expected = match field.kind {
        Kind::Str | Kind::Bytes => 2,
        Kind::F64 => 1,
        _ => 0,
    };
    if wire != expected {
        return err(format!(
            "{}: wire type {wire} where {expected} was expected",
            field.json
        ));
    }
    Ok(match field.kind {
        Kind::Str => Value::String(reader.string()?),
        Kind::Bytes => Value::String(base64(reader.bytes()?)),
        // int32 is sign-extended to 64 bits on the wire.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        Kind::I32 => Value::from(reader.varint()? as i64 as i32),
        #[allow(clippy::cast_possible_wrap)]
        Kind::I64 => Value::from(reader.varint()? as i64),
        Kind::Bool => Value::Bool(reader.varint()? != 0),
        Kind::F64 => serde_json::Number::from_f64(f64::from_bits(reader.fixed64()?))
            .map_or(Value::Null, Value::Number),
        _ => return err(format!("{}: not a scalar", field.json)),
    })
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode_special(
    special: Special,
    buf: &[u8],
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    let mut ints = [0i64; 4];
    let mut text = String::new();
    let mut raw: &[u8] = &[];
    let mut reader = Reader::new(buf);
    while let Some((tag, wire)) = reader.key()? {
        match (special, tag, wire) {
            (Special::Quantity | Special::IntOrString, 3, 2) | (Special::Quantity, 1, 2) => {
                text = reader.string()?;
            }
            (Special::Raw, 1, 2) => raw = reader.bytes()?,
            (_, 1..=3, 0) => {
                #[allow(clippy::cast_possible_wrap)]
                let v = reader.varint()? as i64;
                if let Some(slot) = usize::try_from(tag).ok().and_then(|t| ints.get_mut(t)) {
                    *slot = v;
                }
            }
            _ => reader.skip(wire)?,
        }
    }
    Ok(match special {
        Special::Time | Special::MicroTime => {
            let (seconds, nanos) = (ints[1], ints[2]);
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            let mut s = crate::time::rfc3339(seconds);
            if special == Special::MicroTime {
                s.pop();
                s.push_str(&format!(".{:06}Z", nanos.rem_euclid(1_000_000_000) / 1000));
            }
            Some(Value::String(s))
        }
        Special::Duration => Some(Value::String(go_duration(ints[1]))),
        Special::Quantity => Some(Value::String(text)),
        Special::IntOrString => Some(if ints[1] == 1 {
            Value::String(text)
        } else {
            #[allow(clippy::cast_possible_truncation)]
            Value::from(ints[2] as i32)
        }),
        Special::Raw if raw.is_empty() => None,
        Special::Raw => Some(match raw.strip_prefix(MAGIC) {
            Some(envelope) => decode_unknown(envelope, depth + 1)?,
            None => serde_json::from_slice(raw)
                .map_err(|e| DecodeError(format!("embedded object is not JSON: {e}")))?,
        }),
        Special::None => None,
    })
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `300ms`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = match n {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", fraction(n, div));
    }
    let secs = n / 1_000_000_000;
    let frac = fraction(n % 60_000_000_000, 1_000_000_000);
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    match (h, m) {
        (0, 0) => format!("{sign}{frac}s"),
        (0, m) => format!("{sign}{m}m{frac}s"),
        (h, m) => format!("{sign}{h}h{m}m{frac}s"),
    }
}

/// `n / div` with the remainder as decimals, trailing zeros dropped.
fn fraction(n: u64, div: u64) -> String {
    let (whole, rest) = (n / div, n % div);
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let decimals = format!("{rest:0width$}");
    format!("{whole}.{}", decimals.trim_end_matches('0'))
}

/// A cursor over protobuf wire data.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn done(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for (i, byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        err("truncated or overlong varint")
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let Some((head, rest)) = self.buf.split_first_chunk::<8>() else {
            return err("truncated fixed64");
        };
        self.buf = rest;
        Ok(u64::from_le_bytes(*head))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        if len > self.buf.len() {
            return err("a length-delimited field runs past the end of its message");
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| DecodeError("a string field is not valid UTF-8".into()))
    }

    /// The next field's tag and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, DecodeError> {
        if self.done() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| DecodeError("field tag too large".into()))?;
        if tag == 0 {
            return err("field tag 0");
        }
        #[allow(clippy::cast_possible_truncation)]
        Ok(Some((tag, (key & 7) as u8)))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.fixed64().map(drop),
            2 => self.bytes().map(drop),
            5 => {
                if self.buf.len() < 4 {
                    return err("truncated fixed32");
                }
                self.buf = &self.buf[4..];
                Ok(())
            }
            w => err(format!("unsupported wire type {w}")),
        }
    }
}

/// Writes protobuf by field number, and the Kubernetes envelope around a
/// message: what [`encode`] writes with, and how tests build the bodies
/// client-go sends.
#[derive(Debug, Default, Clone)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn varint(mut self, mut v: u64) -> Self {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return self;
            }
            self.0.push(byte | 0x80);
        }
    }

    /// A varint field (`int32`, `int64`, `bool`; negative numbers as Go
    /// writes them, in ten bytes).
    pub fn int(self, tag: u64, v: i64) -> Self {
        self.varint(tag << 3).varint(v as u64)
    }

    pub fn bytes(self, tag: u64, b: &[u8]) -> Self {
        let mut w = self.varint((tag << 3) | 2).varint(b.len() as u64);
        w.0.extend_from_slice(b);
        w
    }

    pub fn fixed64(mut self, tag: u64, v: u64) -> Self {
        self = self.varint((tag << 3) | 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn str(self, tag: u64, s: &str) -> Self {
        self.bytes(tag, s.as_bytes())
    }

    pub fn msg(self, tag: u64, m: Writer) -> Self {
        self.bytes(tag, &m.0)
    }

    /// A whole body: [`MAGIC`] and the `runtime.Unknown` envelope naming
    /// `api_version` and `kind` around the message `raw`.
    pub fn envelope(api_version: &str, kind: &str, raw: Writer) -> Vec<u8> {
        let meta = Writer::default().str(1, api_version).str(2, kind);
        let mut body = MAGIC.to_vec();
        body.extend(Writer::default().msg(1, meta).msg(2, raw).0);
        body
    }
}

mod encode;
pub use encode::{EncodeError, encode, watch_frame};

#[cfg(test)]
mod tests;
