//! Binary layout of the records the embedded store keeps in redb.
//!
//! Every record starts with a format byte so the layout can evolve. Decoding
//! never panics: a short or malformed record is [`Error::Corrupt`].

use bytes::Bytes;

use crate::{Error, EventKind, KeyValue, Result, Revision};

const FORMAT_V1: u8 = 1;

/// A key's current value: what the `kv` table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ValueRecord {
    pub(super) create_revision: Revision,
    pub(super) mod_revision: Revision,
    pub(super) version: i64,
    pub(super) value: Bytes,
}

impl ValueRecord {
    pub(super) fn into_kv(self, key: String) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        }
    }
}

pub(super) fn encode_value(
    create: Revision,
    modified: Revision,
    version: i64,
    value: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(25 + value.len());
    out.push(FORMAT_V1);
    put_meta(&mut out, create, modified, version);
    out.extend_from_slice(value);
    out
}

pub(super) fn decode_value(key: &str, raw: &[u8]) -> Result<ValueRecord> {
    let mut r = Reader {
        buf: raw,
        what: key,
    };
    r.format()?;
    let (create_revision, mod_revision, version) = r.meta()?;
    Ok(ValueRecord {
        create_revision,
        mod_revision,
        version,
        value: Bytes::copy_from_slice(r.buf),
    })
}

/// One change in the revision log, keyed by (revision, index in revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogRecord {
    pub(super) kind: EventKind,
    pub(super) key: String,
    /// For a put: the new value's create revision, version and value.
    pub(super) create_revision: Revision,
    pub(super) version: i64,
    pub(super) value: Bytes,
    pub(super) prev: Option<ValueRecord>,
}

pub(super) fn encode_log(rec: &LogRecord) -> Vec<u8> {
    let prev_len = rec.prev.as_ref().map_or(0, |p| 24 + p.value.len());
    let mut out = Vec::with_capacity(40 + rec.key.len() + rec.value.len() + prev_len);
    out.push(FORMAT_V1);
    out.push(match rec.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    put_bytes(&mut out, rec.key.as_bytes());
    out.extend_from_slice(&rec.create_revision.to_le_bytes());
    out.extend_from_slice(&rec.version.to_le_bytes());
    put_bytes(&mut out, &rec.value);
    match &rec.prev {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_meta(&mut out, p.create_revision, p.mod_revision, p.version);
            out.extend_from_slice(&p.value);
        }
    }
    out
}

pub(super) fn decode_log(revision: Revision, raw: &[u8]) -> Result<LogRecord> {
    let what = format!("revision log entry {revision}");
    let mut r = Reader {
        buf: raw,
        what: &what,
    };
    r.format()?;
    let kind = match r.u8()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        other => return Err(r.corrupt(&format!("unknown event kind {other}"))),
    };
    let key = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| r.corrupt("key is not UTF-8"))?;
    let create_revision = r.i64()?;
    let version = r.i64()?;
    let value = Bytes::copy_from_slice(r.bytes()?);
    let prev = match r.u8()? {
        0 => None,
        1 => {
            let (create_revision, mod_revision, version) = r.meta()?;
            Some(ValueRecord {
                create_revision,
                mod_revision,
                version,
                value: Bytes::copy_from_slice(r.buf),
            })
        }
        other => return Err(r.corrupt(&format!("bad prev marker {other}"))),
    };
    Ok(LogRecord {
        kind,
        key,
        create_revision,
        version,
        value,
        prev,
    })
}

fn put_meta(out: &mut Vec<u8>, create: Revision, modified: Revision, version: i64) {
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Values are capped far below 4 GiB by MAX_REQUEST_BYTES.
    let len = u32::try_from(bytes.len()).expect("record fields are below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'a str,
}

impl Reader<'_> {
    fn corrupt(&self, why: &str) -> Error {
        Error::Corrupt(format!("{}: {why}", self.what))
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.buf.len() < n {
            return Err(self.corrupt("record is truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64> {
        let raw: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| self.corrupt("bad integer"))?;
        Ok(i64::from_le_bytes(raw))
    }

    fn bytes(&mut self) -> Result<&[u8]> {
        let raw: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| self.corrupt("bad length"))?;
        let len = u32::from_le_bytes(raw) as usize;
        self.take(len)
    }

    fn format(&mut self) -> Result<()> {
        match self.u8()? {
            FORMAT_V1 => Ok(()),
            other => Err(self.corrupt(&format!("unknown record format {other}"))),
        }
    }

    fn meta(&mut self) -> Result<(Revision, Revision, i64)> {
        Ok((self.i64()?, self.i64()?, self.i64()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips() {
        let raw = encode_value(3, 7, 2, b"hello");
        let rec = decode_value("k", &raw).unwrap();
        assert_eq!(
            rec,
            ValueRecord {
                create_revision: 3,
                mod_revision: 7,
                version: 2,
                value: Bytes::from_static(b"hello")
            }
        );
    }

    #[test]
    fn log_round_trips_with_and_without_prev() {
        for prev in [
            None,
            Some(ValueRecord {
                create_revision: 1,
                mod_revision: 4,
                version: 3,
                value: Bytes::from_static(b"old"),
            }),
        ] {
            let rec = LogRecord {
                kind: EventKind::Put,
                key: "/registry/pods/a".into(),
                create_revision: 1,
                version: 4,
                value: Bytes::from_static(b"new"),
                prev,
            };
            assert_eq!(decode_log(9, &encode_log(&rec)).unwrap(), rec);
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let rec = LogRecord {
            kind: EventKind::Delete,
            key: "k".into(),
            create_revision: 0,
            version: 0,
            value: Bytes::new(),
            prev: Some(ValueRecord {
                create_revision: 1,
                mod_revision: 2,
                version: 1,
                value: Bytes::from_static(b"v"),
            }),
        };
        let raw = encode_log(&rec);
        // The prev value is the record's tail, so only cuts before it fail.
        for cut in 0..raw.len() - 1 {
            assert!(decode_log(1, &raw[..cut]).is_err(), "cut at {cut} decoded");
        }
        let value = encode_value(1, 1, 1, b"x");
        for cut in 0..25 {
            assert!(
                decode_value("k", &value[..cut]).is_err(),
                "cut at {cut} decoded"
            );
        }
    }

    #[test]
    fn unknown_format_is_reported_with_its_location() {
        let err = decode_value("/registry/x", &[9, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("/registry/x"), "{err}");
    }
}
