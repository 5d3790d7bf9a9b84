//! The scheduling queue, as kube-scheduler's `PriorityQueue`: an active
//! queue ordered by priority then arrival (PrioritySort), a back-off queue
//! for pods that failed recently, an unschedulable set for pods no node
//! fits until the cluster changes, and the gated pods PreEnqueue holds
//! back.
//!
//! # Guarantees
//! A pod moves from unschedulable to back-off or active only on a cluster
//! event one of the plugins that rejected it registered for (or after
//! [`UNSCHEDULABLE_TIMEOUT`]), never by polling. A pod that failed while an
//! event arrived during its cycle goes to back-off, not unschedulable, so
//! the event is not lost.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::framework::{ClusterEvent, PodInfo};

/// The first back-off (kube-scheduler's `podInitialBackoffSeconds`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off (`podMaxBackoffSeconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried after this even without an event
/// (`podMaxInUnschedulablePodsDuration`).
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A pod in the queue and what its attempts so far found.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    pub attempts: u32,
    /// When it first entered the queue.
    pub initial: Instant,
    /// The plugins that rejected it last.
    pub unschedulable_plugins: HashSet<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    Gated,
    /// Popped and being scheduled.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: QueuedPod,
    place: Place,
    /// Tells current heap entries from stale ones.
    seq: u64,
    /// When it entered the back-off or unschedulable set; its back-off end.
    since: Instant,
    backoff_until: Instant,
    /// The cycle it was popped in.
    cycle: u64,
}

/// Active heap order: higher priority, then earlier arrival.
type ActiveKey = (i32, Reverse<Instant>, Reverse<u64>, String);

#[derive(Debug)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    cycle: u64,
    move_request_cycle: u64,
    /// The events each plugin retries its rejected pods on.
    events: HashMap<&'static str, &'static [ClusterEvent]>,
}

impl Queue {
    pub fn new(events: HashMap<&'static str, &'static [ClusterEvent]>) -> Self {
        Self {
            entries: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            seq: 0,
            cycle: 0,
            move_request_cycle: 0,
            events,
        }
    }

    fn push_active(&mut self, uid: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(uid) {
            e.place = Place::Active;
            e.seq = seq;
            let key = (
                e.pod.info.priority,
                Reverse(e.pod.initial),
                Reverse(seq),
                uid.to_string(),
            );
            self.active.push(key);
        }
    }

    fn push_backoff(&mut self, uid: &str, now: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(uid) {
            if e.backoff_until <= now {
                self.push_active(uid);
                return;
            }
            e.place = Place::Backoff;
            e.seq = seq;
            e.since = now;
            self.backoff
                .push(Reverse((e.backoff_until, seq, uid.to_string())));
        }
    }

    /// A new pod to schedule; `gated` if PreEnqueue holds it back.
    pub fn add(&mut self, info: Arc<PodInfo>, gated: bool, now: Instant) {
        if self.entries.contains_key(&info.uid) {
            return self.update(info, gated, now);
        }
        let uid = info.uid.clone();
        self.entries.insert(
            uid.clone(),
            Entry {
                pod: QueuedPod {
                    info,
                    attempts: 0,
                    initial: now,
                    unschedulable_plugins: HashSet::new(),
                },
                place: Place::Gated,
                seq: 0,
                since: now,
                backoff_until: now,
                cycle: 0,
            },
        );
        if !gated {
            self.push_active(&uid);
        }
    }

    /// A queued pod changed. A change to its spec or labels may make it
    /// fit, so an unschedulable pod is tried again; its own status updates
    /// are not such a change.
    pub fn update(&mut self, info: Arc<PodInfo>, gated: bool, now: Instant) {
        let uid = info.uid.clone();
        let Some(e) = self.entries.get_mut(&uid) else {
            return self.add(info, gated, now);
        };
        let changed = e.pod.info.pod.spec != info.pod.spec || e.pod.info.labels != info.labels;
        e.pod.info = info;
        match e.place {
            Place::Gated if !gated => self.push_active(&uid),
            Place::Unschedulable if changed => {
                if gated {
                    e.place = Place::Gated;
                } else {
                    self.push_backoff(&uid, now);
                }
            }
            Place::Active | Place::Backoff if gated && changed => e.place = Place::Gated,
            _ => {}
        }
    }

    pub fn delete(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// Every queued pod's uid.
    pub fn uids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// The next pod to schedule, if one is active.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        while let Some((_, _, Reverse(seq), uid)) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&uid) else {
                continue;
            };
            if e.place != Place::Active || e.seq != seq {
                continue;
            }
            self.cycle += 1;
            e.place = Place::InFlight;
            e.cycle = self.cycle;
            e.pod.attempts += 1;
            return Some(e.pod.clone());
        }
        None
    }

    fn backoff_for(attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(16);
        (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
    }

    /// The pod fits nowhere: it waits for an event one of `plugins`
    /// registered for (or back-off, if one came during its cycle).
    pub fn unschedulable(&mut self, uid: &str, plugins: HashSet<&'static str>, now: Instant) {
        let move_request_cycle = self.move_request_cycle;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        e.pod.unschedulable_plugins = plugins;
        e.backoff_until = now + Self::backoff_for(e.pod.attempts);
        if move_request_cycle >= e.cycle {
            self.push_backoff(uid, now);
        } else {
            e.place = Place::Unschedulable;
            e.since = now;
        }
    }

    /// Scheduling or binding failed for another reason: back-off.
    pub fn retry(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.backoff_until = now + Self::backoff_for(e.pod.attempts);
        self.push_backoff(uid, now);
    }

    /// The pod is bound (or being bound): it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// A cluster event: unschedulable pods it may help move on.
    pub fn on_event(&mut self, event: ClusterEvent, now: Instant) {
        self.move_request_cycle = self.cycle;
        let moved: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.place == Place::Unschedulable)
            .filter(|(_, e)| {
                e.pod.unschedulable_plugins.is_empty()
                    || e.pod
                        .unschedulable_plugins
                        .iter()
                        .any(|p| self.events.get(p).is_none_or(|evs| evs.contains(&event)))
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in moved {
            self.push_backoff(&uid, now);
        }
    }

    /// Moves pods whose back-off ended to active, and pods unschedulable
    /// for too long to back-off.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((until, seq, uid))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if self
                .entries
                .get(&uid)
                .is_some_and(|e| e.place == Place::Backoff && e.seq == seq)
            {
                self.push_active(&uid);
            }
        }
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.place == Place::Unschedulable && e.since + UNSCHEDULABLE_TIMEOUT <= now
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            self.push_backoff(&uid, now);
        }
    }

    /// When the next back-off ends.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Pods waiting to be tried now.
    pub fn active_len(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.place == Place::Active)
            .count()
    }

    /// Pods in the queue, in any state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the pod waits for an event (not active, not backing off).
    pub fn is_unschedulable(&self, uid: &str) -> bool {
        self.entries
            .get(uid)
            .is_some_and(|e| e.place == Place::Unschedulable)
    }

    /// Whether PreEnqueue holds the pod back.
    pub fn is_gated(&self, uid: &str) -> bool {
        self.entries
            .get(uid)
            .is_some_and(|e| e.place == Place::Gated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;

    fn queue() -> Queue {
        let mut events: HashMap<&'static str, &'static [ClusterEvent]> = HashMap::new();
        events.insert(
            "NodeResourcesFit",
            &[ClusterEvent::NodeAdd, ClusterEvent::AssignedPodDelete],
        );
        events.insert("TaintToleration", &[ClusterEvent::NodeTaintChange]);
        Queue::new(events)
    }

    fn info(name: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(pod(name).priority(priority).info())
    }

    #[test]
    fn higher_priority_first_then_arrival_order() {
        let mut q = queue();
        let t = Instant::now();
        q.add(info("low", 0), false, t);
        q.add(info("high", 100), false, t + Duration::from_millis(1));
        q.add(info("low2", 0), false, t + Duration::from_millis(2));
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.info.key.name.clone())
            .collect();
        assert_eq!(order, ["high", "low", "low2"]);
    }

    #[test]
    fn unschedulable_pods_move_only_on_events_their_plugins_registered() {
        let mut q = queue();
        let t = Instant::now();
        q.add(info("p", 0), false, t);
        let p = q.pop().expect("active");
        // An event that arrived before the pod was popped does not count.
        q.unschedulable(&p.info.uid, ["TaintToleration"].into(), t);
        assert!(q.is_unschedulable(&p.info.uid));
        q.on_event(ClusterEvent::NodeAdd, t);
        assert!(
            q.is_unschedulable(&p.info.uid),
            "NodeAdd is not TaintToleration's event"
        );
        q.on_event(ClusterEvent::NodeTaintChange, t);
        assert!(!q.is_unschedulable(&p.info.uid));
        // In back-off (1 s after one attempt): not active yet.
        assert!(q.pop().is_none());
        q.flush(t + Duration::from_millis(999));
        assert!(q.pop().is_none());
        q.flush(t + Duration::from_secs(1));
        assert_eq!(q.pop().map(|p| p.attempts), Some(2));
    }

    #[test]
    fn an_event_during_the_cycle_sends_the_pod_to_backoff() {
        let mut q = queue();
        let t = Instant::now();
        q.add(info("p", 0), false, t);
        let p = q.pop().expect("active");
        q.on_event(ClusterEvent::AssignedPodDelete, t);
        q.unschedulable(&p.info.uid, ["NodeResourcesFit"].into(), t);
        assert!(!q.is_unschedulable(&p.info.uid));
        assert_eq!(q.next_backoff(), Some(t + INITIAL_BACKOFF));
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        assert_eq!(Queue::backoff_for(1), Duration::from_secs(1));
        assert_eq!(Queue::backoff_for(2), Duration::from_secs(2));
        assert_eq!(Queue::backoff_for(4), Duration::from_secs(8));
        assert_eq!(Queue::backoff_for(5), Duration::from_secs(10));
        assert_eq!(Queue::backoff_for(60), Duration::from_secs(10));
    }

    #[test]
    fn gated_pods_wait_until_their_gates_go() {
        let mut q = queue();
        let t = Instant::now();
        let p = info("p", 0);
        q.add(p.clone(), true, t);
        assert!(q.is_gated(&p.uid));
        assert!(q.pop().is_none());
        q.update(p.clone(), false, t);
        assert_eq!(q.pop().map(|p| p.info.key.name.clone()), Some("p".into()));
    }

    #[test]
    fn status_only_updates_do_not_wake_unschedulable_pods() {
        let mut q = queue();
        let t = Instant::now();
        let p = info("p", 0);
        q.add(p.clone(), false, t);
        q.pop();
        q.unschedulable(&p.uid, ["TaintToleration"].into(), t);
        q.update(p.clone(), false, t);
        assert!(q.is_unschedulable(&p.uid));
        q.update(
            Arc::new(pod("p").priority(0).label("x", "y").info()),
            false,
            t,
        );
        assert!(!q.is_unschedulable(&p.uid));
    }

    #[test]
    fn unschedulable_pods_are_retried_after_five_minutes() {
        let mut q = queue();
        let t = Instant::now();
        let p = info("p", 0);
        q.add(p.clone(), false, t);
        q.pop();
        q.unschedulable(&p.uid, ["TaintToleration"].into(), t);
        q.flush(t + UNSCHEDULABLE_TIMEOUT - Duration::from_secs(1));
        assert!(q.is_unschedulable(&p.uid));
        q.flush(t + UNSCHEDULABLE_TIMEOUT);
        assert!(q.pop().is_some());
    }
}
