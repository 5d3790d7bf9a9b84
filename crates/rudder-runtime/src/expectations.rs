//! Expectations (kube's `ControllerExpectations`, by name): what a
//! controller created or deleted that its cache may not show yet. A
//! reconcile reading a shared informer's store adds the pods it made and
//! takes away the ones it deleted, so a stale cache cannot make it create
//! or delete twice. An expectation ends when the cache shows it, or after
//! [`TTL`] (kube's five minutes), whichever comes first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an expectation the cache never shows is kept.
pub const TTL: Duration = Duration::from_secs(300);

/// One owner's expectations: names created and names deleted, with when.
#[derive(Debug, Default)]
struct Owner {
    created: HashMap<String, Instant>,
    deleted: HashMap<String, Instant>,
}

/// The expectations of one controller, by owner key (its uid).
#[derive(Debug, Default)]
pub struct Expectations {
    owners: Mutex<HashMap<String, Owner>>,
}

/// What an owner is waiting for the cache to show.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Created, not in the cache yet.
    pub created: Vec<String>,
    /// Deleted, still in the cache.
    pub deleted: Vec<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.deleted.is_empty()
    }
}

impl Expectations {
    /// `name` was created for `owner`.
    pub fn created(&self, owner: &str, name: &str) {
        if let Ok(mut owners) = self.owners.lock() {
            let o = owners.entry(owner.to_string()).or_default();
            o.created.insert(name.to_string(), Instant::now());
        }
    }

    /// `name` was deleted for `owner`.
    pub fn deleted(&self, owner: &str, name: &str) {
        if let Ok(mut owners) = self.owners.lock() {
            let o = owners.entry(owner.to_string()).or_default();
            o.deleted.insert(name.to_string(), Instant::now());
        }
    }

    /// What `owner` still waits for: created names the cache does not
    /// hold (`cached`), deleted ones it still shows as live (`live`); what
    /// the cache shows, or what is older than [`TTL`], is forgotten.
    pub fn pending(
        &self,
        owner: &str,
        cached: impl Fn(&str) -> bool,
        live: impl Fn(&str) -> bool,
    ) -> Pending {
        let Ok(mut owners) = self.owners.lock() else {
            return Pending::default();
        };
        let Some(o) = owners.get_mut(owner) else {
            return Pending::default();
        };
        let fresh = |at: &Instant| at.elapsed() < TTL;
        o.created.retain(|name, at| fresh(at) && !cached(name));
        o.deleted.retain(|name, at| fresh(at) && live(name));
        let mut pending = Pending {
            created: o.created.keys().cloned().collect(),
            deleted: o.deleted.keys().cloned().collect(),
        };
        pending.created.sort();
        pending.deleted.sort();
        if o.created.is_empty() && o.deleted.is_empty() {
            owners.remove(owner);
        }
        pending
    }

    /// Forgets an owner (it was deleted).
    pub fn forget(&self, owner: &str) {
        if let Ok(mut owners) = self.owners.lock() {
            owners.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_last_until_the_cache_shows_them() {
        let e = Expectations::default();
        e.created("rs", "a");
        e.created("rs", "b");
        e.deleted("rs", "old");
        let seen = |n: &str| n == "a" || n == "old";
        assert_eq!(
            e.pending("rs", seen, seen),
            Pending {
                created: vec!["b".into()],
                deleted: vec!["old".into()]
            }
        );
        // b shows up, old goes away: nothing is pending any more.
        let seen = |n: &str| n == "a" || n == "b";
        assert_eq!(e.pending("rs", seen, seen), Pending::default());
        assert_eq!(e.pending("other", |_| false, |_| false), Pending::default());
        e.created("rs", "c");
        e.forget("rs");
        assert_eq!(e.pending("rs", |_| false, |_| false), Pending::default());
    }
}
