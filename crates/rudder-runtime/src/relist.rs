//! Following a watch through its relists. kube-runtime's `watcher`
//! starts (and, after a watch gap, restarts) with `Init`, the whole
//! current list as `InitApply`, then `InitDone`; a consumer that keeps its
//! own copy of the objects must drop, at `InitDone`, whatever it holds that
//! the list did not name: those objects were deleted while the watch was
//! down, and no `Delete` will ever say so.

use std::collections::HashSet;
use std::hash::Hash;

use kube::runtime::watcher::Event;

/// The keys a relist named, between its `Init` and its `InitDone`.
#[derive(Debug)]
pub struct Relist<K> {
    seen: Option<HashSet<K>>,
}

impl<K> Default for Relist<K> {
    fn default() -> Self {
        Self { seen: None }
    }
}

/// What one watch event means for a consumer's copy.
#[derive(Debug, PartialEq, Eq)]
pub enum Change<T, K> {
    /// Add or replace this object.
    Upsert(T),
    /// Remove this object.
    Remove(T),
    /// A relist ended: remove these keys, which it did not name.
    Gone(Vec<K>),
    /// A relist began: nothing to do yet.
    Nothing,
}

impl<K: Hash + Eq + Clone> Relist<K> {
    /// Follows one event: `key` names an object, `held` lists the keys the
    /// consumer holds (asked for only at the end of a relist).
    pub fn follow<T, I>(
        &mut self,
        event: Event<T>,
        key: impl Fn(&T) -> K,
        held: impl FnOnce() -> I,
    ) -> Change<T, K>
    where
        I: IntoIterator<Item = K>,
    {
        match event {
            Event::Apply(obj) => Change::Upsert(obj),
            Event::Delete(obj) => Change::Remove(obj),
            Event::Init => {
                self.seen = Some(HashSet::new());
                Change::Nothing
            }
            Event::InitApply(obj) => {
                if let Some(seen) = &mut self.seen {
                    seen.insert(key(&obj));
                }
                Change::Upsert(obj)
            }
            Event::InitDone => {
                let seen = self.seen.take().unwrap_or_default();
                Change::Gone(held().into_iter().filter(|k| !seen.contains(k)).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer's copy, following events.
    fn follow_all(
        events: Vec<Event<&'static str>>,
        mut held: Vec<&'static str>,
    ) -> Vec<&'static str> {
        let mut relist = Relist::default();
        for e in events {
            let snapshot = held.clone();
            match relist.follow(e, |s: &&str| *s, || snapshot) {
                Change::Upsert(o) => {
                    if !held.contains(&o) {
                        held.push(o);
                    }
                }
                Change::Remove(o) => held.retain(|h| *h != o),
                Change::Gone(keys) => held.retain(|h| !keys.contains(h)),
                Change::Nothing => {}
            }
        }
        held.sort_unstable();
        held
    }

    #[test]
    fn a_relist_drops_what_was_deleted_during_the_gap() {
        // Held a, b, c; during the gap b was deleted and d created.
        let events = vec![
            Event::Init,
            Event::InitApply("a"),
            Event::InitApply("c"),
            Event::InitApply("d"),
            Event::InitDone,
        ];
        assert_eq!(follow_all(events, vec!["a", "b", "c"]), ["a", "c", "d"]);
    }

    #[test]
    fn events_outside_a_relist_apply_as_they_come() {
        let events = vec![Event::Apply("x"), Event::Delete("a"), Event::InitDone];
        // An InitDone without its Init names nothing: everything held goes,
        // as the empty list it stands for says.
        assert_eq!(follow_all(events, vec!["a"]), Vec::<&str>::new());
        let events = vec![Event::Apply("x"), Event::Delete("a")];
        assert_eq!(follow_all(events, vec!["a"]), ["x"]);
    }

    #[test]
    fn an_empty_relist_drops_everything() {
        assert_eq!(
            follow_all(vec![Event::Init, Event::InitDone], vec!["a", "b"]),
            Vec::<&str>::new()
        );
    }
}
