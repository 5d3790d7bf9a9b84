//! A fast, non-cryptographic hasher for the maps a scheduling cycle fills
//! for every node (domain counts keyed by label values). Keys come from
//! node labels the cluster's admins set, not from untrusted input, so
//! SipHash's flooding resistance buys nothing there. The mixing is
//! rustc's FxHasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_distinct_keys_apart() {
        let mut m: FxHashMap<String, i64> = FxHashMap::default();
        for i in 0..1000 {
            *m.entry(format!("zone-{i}")).or_default() += 1;
        }
        *m.entry("zone-7".into()).or_default() += 1;
        assert_eq!(m.len(), 1000);
        assert_eq!(m["zone-7"], 2);
        assert_eq!(m["zone-999"], 1);
        // Keys that differ only past the first word, or by length.
        let h = |s: &str| {
            let mut x = FxHasher::default();
            x.write(s.as_bytes());
            x.finish()
        };
        assert_ne!(h("abcdefgh-1"), h("abcdefgh-2"));
        assert_ne!(h("abcdefgh"), h("abcdefgh\0"));
    }
}
