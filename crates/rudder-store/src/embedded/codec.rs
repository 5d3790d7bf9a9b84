//! Binary layout of the revision records the embedded store keeps in redb.
//!
//! A record starts with a format byte so the layout can evolve. Decoding
//! never panics: a short or malformed record is [`Error::Corrupt`].

use bytes::Bytes;

use crate::{Error, EventKind, KeyValue, Result, Revision};

const FORMAT_V1: u8 = 1;

/// Where a record lives in the `rev` table: (revision, index in revision).
pub(super) type RevKey = (Revision, u32);

/// One change, as the `rev` table holds it under its [`RevKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) kind: EventKind,
    pub(super) key: String,
    /// For a put: the key's create revision and version after it.
    pub(super) create_revision: Revision,
    pub(super) version: i64,
    /// The record of the key's previous version, if it existed.
    pub(super) prev: Option<RevKey>,
    /// For a put: the new value.
    pub(super) value: Bytes,
}

impl Record {
    /// The key-value this record stands for, at `revision` (etcd's
    /// tombstone shape for a delete).
    pub(super) fn into_kv(self, revision: Revision) -> KeyValue {
        match self.kind {
            EventKind::Put => KeyValue {
                key: self.key,
                value: self.value,
                create_revision: self.create_revision,
                mod_revision: revision,
                version: self.version,
            },
            EventKind::Delete => KeyValue {
                key: self.key,
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
            },
        }
    }
}

pub(super) fn encode(rec: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(42 + rec.key.len() + rec.value.len());
    out.push(FORMAT_V1);
    out.push(match rec.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    // Keys are capped far below 4 GiB by MAX_REQUEST_BYTES.
    let key_len = u32::try_from(rec.key.len()).expect("keys are below 4 GiB");
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(rec.key.as_bytes());
    out.extend_from_slice(&rec.create_revision.to_le_bytes());
    out.extend_from_slice(&rec.version.to_le_bytes());
    match rec.prev {
        None => out.push(0),
        Some((rev, sub)) => {
            out.push(1);
            out.extend_from_slice(&rev.to_le_bytes());
            out.extend_from_slice(&sub.to_le_bytes());
        }
    }
    out.extend_from_slice(&rec.value);
    out
}

pub(super) fn decode(at: RevKey, raw: &[u8]) -> Result<Record> {
    let what = format!("revision record {}.{}", at.0, at.1);
    let mut r = Reader {
        buf: raw,
        what: &what,
    };
    match r.u8()? {
        FORMAT_V1 => {}
        other => return Err(r.corrupt(&format!("unknown record format {other}"))),
    }
    let kind = match r.u8()? {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        other => return Err(r.corrupt(&format!("unknown event kind {other}"))),
    };
    let key_len = r.u32()? as usize;
    let key =
        String::from_utf8(r.take(key_len)?.to_vec()).map_err(|_| r.corrupt("key is not UTF-8"))?;
    let create_revision = r.i64()?;
    let version = r.i64()?;
    let prev = match r.u8()? {
        0 => None,
        1 => Some((r.i64()?, r.u32()?)),
        other => return Err(r.corrupt(&format!("bad prev marker {other}"))),
    };
    Ok(Record {
        kind,
        key,
        create_revision,
        version,
        prev,
        value: Bytes::copy_from_slice(r.buf),
    })
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

    fn u32(&mut self) -> Result<u32> {
        let raw: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| self.corrupt("bad integer"))?;
        Ok(u32::from_le_bytes(raw))
    }

    fn i64(&mut self) -> Result<i64> {
        let raw: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| self.corrupt("bad integer"))?;
        Ok(i64::from_le_bytes(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(prev: Option<RevKey>) -> Record {
        Record {
            kind: EventKind::Put,
            key: "/registry/pods/a".into(),
            create_revision: 3,
            version: 4,
            prev,
            value: Bytes::from_static(b"new"),
        }
    }

    #[test]
    fn records_round_trip_with_and_without_prev() {
        for prev in [None, Some((7, 2))] {
            let rec = sample(prev);
            assert_eq!(decode((9, 0), &encode(&rec)).unwrap(), rec);
        }
    }

    #[test]
    fn every_truncation_before_the_value_is_an_error_not_a_panic() {
        let raw = encode(&sample(Some((1, 0))));
        // The value is the record's tail, so only cuts before it fail.
        for cut in 0..raw.len() - 3 {
            assert!(decode((1, 0), &raw[..cut]).is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn unknown_format_is_reported_with_its_location() {
        let err = decode((42, 1), &[9, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("42.1"), "{err}");
    }

    #[test]
    fn deletes_read_as_tombstones() {
        let rec = Record {
            kind: EventKind::Delete,
            value: Bytes::new(),
            ..sample(Some((2, 0)))
        };
        let kv = rec.into_kv(11);
        assert_eq!(
            (kv.mod_revision, kv.create_revision, kv.version),
            (11, 0, 0)
        );
    }
}
