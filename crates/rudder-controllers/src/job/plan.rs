//! What a Job needs done, from what is (kube-controller-manager's job
//! controller as a pure function): which pods to create (and with which
//! completion index), which to delete, which pods' tracking finalizer to
//! remove once the status is written, the status, and the events.
//!
//! Counting follows kube's protocol, so that no pod is counted twice or
//! lost when pods go away: a finished pod still holding
//! [`TRACKING_FINALIZER`] goes into `status.uncountedTerminatedPods` (one
//! status write), then its finalizer is removed, and once it is gone the
//! pod moves from there into `succeeded`/`failed`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobStatus, PodFailurePolicyRule, UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rudder_runtime::events::Kind;

use super::indexes;
use crate::pods::{deletion_rank, has_finalizer, is_terminal, phase, ready_since};

/// The finalizer on every pod a Job creates, removed once it is counted.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The completion index of an Indexed Job's pod (label and annotation).
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// An index's failures so far (backoffLimitPerIndex), on its pods.
pub const INDEX_FAILURES: &str = "batch.kubernetes.io/job-index-failure-count";
/// Pods created or deleted in one reconcile at the most (kube's
/// `MaxPodCreateDeletePerSync`).
pub const BURST: usize = 500;
/// The first back-off after a failure, doubled per failure up to
/// [`MAX_BACKOFF`] (kube's `DefaultJobPodFailureBackOff`).
pub const BACKOFF: i64 = 10;
pub const MAX_BACKOFF: i64 = 600;

/// An event to record on the Job.
pub type Event = (Kind, &'static str, String);

/// The decisions for one Job.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create: `Some(index)` for an Indexed Job's.
    pub create: Vec<Option<i32>>,
    /// Pods to delete (names), the first to go first.
    pub delete: Vec<String>,
    /// Whether the pods to delete let go of their finalizer first, so
    /// that they are not counted (scaling down, suspending), or are
    /// counted once they end (the Job is finishing).
    pub uncount_deleted: bool,
    /// Pods (names) whose tracking finalizer goes, after the status write.
    pub finalize: Vec<String>,
    pub status: JobStatus,
    pub events: Vec<Event>,
    /// Seconds until something is due (a back-off, a deadline).
    pub recheck_in: Option<i64>,
}

impl Plan {
    fn recheck(&mut self, secs: i64) {
        let secs = secs.max(1);
        self.recheck_in = Some(self.recheck_in.map_or(secs, |r| r.min(secs)));
    }
}

/// Why a Job fails: the condition's reason and message.
type Failure = (&'static str, String);

/// The decisions for `job`, given the pods it controls, at `now`
/// (seconds since the epoch).
pub fn plan(job: &Job, pods: &[Pod], now: i64) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut plan = Plan::default();
    let mut status = old.clone();
    let finished = condition_true(&old, "Complete") || condition_true(&old, "Failed");
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let per_index = spec.backoff_limit_per_index;
    let only_failed_replaced = spec.pod_replacement_policy.as_deref() == Some("Failed")
        || spec.pod_failure_policy.is_some();
    let is_failed = |p: &Pod| {
        phase(p) == Some("Failed")
            || (!only_failed_replaced
                && p.metadata.deletion_timestamp.is_some()
                && phase(p) != Some("Succeeded"))
    };

    // Counting: uncounted pods whose finalizer is gone are counted now;
    // newly finished pods become uncounted.
    let uncounted = old.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut uncounted_ok: BTreeSet<String> = uncounted.succeeded.into_iter().flatten().collect();
    let mut uncounted_failed: BTreeSet<String> = uncounted.failed.into_iter().flatten().collect();
    let mut succeeded = old.succeeded.unwrap_or(0);
    let mut failed = old.failed.unwrap_or(0);
    let tracked = |uid: &str| {
        pods.iter()
            .any(|p| p.metadata.uid.as_deref() == Some(uid) && has_finalizer(p, TRACKING_FINALIZER))
    };
    let before = uncounted_ok.len();
    uncounted_ok.retain(|uid| tracked(uid));
    succeeded += count(before - uncounted_ok.len());
    let before = uncounted_failed.len();
    uncounted_failed.retain(|uid| tracked(uid));
    failed += count(before - uncounted_failed.len());

    let mut completed = indexes::parse(old.completed_indexes.as_deref());
    let mut failed_indexes = indexes::parse(old.failed_indexes.as_deref());
    let mut failure: Option<Failure> = None;
    let mut last_failure: Option<i64> = None;
    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !has_finalizer(pod, TRACKING_FINALIZER) {
            continue;
        }
        if uncounted_ok.contains(&uid) || uncounted_failed.contains(&uid) {
            plan.finalize.push(name);
        } else if phase(pod) == Some("Succeeded") {
            // An Indexed Job counts its indexes, not pods.
            if !indexed {
                uncounted_ok.insert(uid);
            } else if let Some(i) = index_of(pod).filter(|i| in_range(*i, completions)) {
                completed.insert(i);
            }
            plan.finalize.push(name);
        } else if is_failed(pod) {
            let action = spec
                .pod_failure_policy
                .as_ref()
                .and_then(|p| matching_rule(&p.rules, pod));
            if !matches!(action, Some((_, "Ignore"))) {
                last_failure = Some(finished_at(pod).unwrap_or(now));
            }
            match action {
                Some((_, "Ignore")) => {}
                Some((i, "FailJob")) => {
                    failure.get_or_insert(("PodFailurePolicy", fail_job_message(pod, i)));
                    uncounted_failed.insert(uid);
                }
                Some((_, "FailIndex")) => {
                    failed_indexes.extend(index_of(pod));
                    uncounted_failed.insert(uid);
                }
                _ => {
                    if per_index.is_some()
                        && let Some(i) = index_of(pod)
                        && index_failures(pod) + 1 > per_index.unwrap_or(0)
                    {
                        failed_indexes.insert(i);
                    }
                    uncounted_failed.insert(uid);
                }
            }
            plan.finalize.push(name);
        } else if finished || job.metadata.deletion_timestamp.is_some() {
            // A finished Job's pods are not counted again.
            plan.finalize.push(name);
        }
    }
    if indexed {
        succeeded = count(completed.len());
    }
    let total_ok = succeeded + count(uncounted_ok.len());
    let total_failed = failed + count(uncounted_failed.len());

    let active: Vec<&Pod> = pods
        .iter()
        .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_none())
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_some())
        .count();
    let ready = active.iter().filter(|p| ready_since(p).is_some()).count();

    let time =
        |secs: i64| Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default());
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let mut delete_all = false;
    let mut want: Vec<Option<i32>> = Vec::new();
    let mut extra: Vec<&Pod> = Vec::new();
    if !finished {
        let suspended = spec.suspend == Some(true);
        let was_suspended = condition_true(&old, "Suspended");
        if let Some((reason, message)) = condition_of(&old, "FailureTarget") {
            failure = Some((reason, message));
        }
        let start = status.start_time.as_ref().map(|t| t.0.as_second());
        let success = condition_of(&old, "SuccessCriteriaMet");
        if failure.is_none() && success.is_none() {
            failure = failure_of(&spec, total_failed, &failed_indexes, &completed, start, now)
                .or_else(|| restarts_past_limit(&spec, &active));
        }
        let success = success.or_else(|| {
            failure
                .is_none()
                .then(|| success_of(&spec, total_ok, &completed, active.len()))
                .flatten()
        });
        // The final condition waits for every pod to end and be counted.
        let settled = active.is_empty()
            && terminating == 0
            && uncounted_ok.is_empty()
            && uncounted_failed.is_empty();
        if let Some((reason, message)) = success {
            set_condition(&mut conditions, "SuccessCriteriaMet", reason, &message, now);
            delete_all = true;
            if settled {
                set_condition(&mut conditions, "Complete", reason, &message, now);
                status.completion_time = Some(time(now));
                plan.events
                    .push((Kind::Normal, "Completed", "Job completed".into()));
            }
        } else if let Some((reason, message)) = failure.clone() {
            set_condition(&mut conditions, "FailureTarget", reason, &message, now);
            delete_all = true;
            if settled && set_condition(&mut conditions, "Failed", reason, &message, now) {
                plan.events.push((Kind::Warning, reason, message.clone()));
            }
        } else if suspended {
            delete_all = true;
            plan.uncount_deleted = true;
            if !was_suspended {
                set_condition_to(
                    &mut conditions,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                );
                plan.events
                    .push((Kind::Normal, "Suspended", "Job suspended".into()));
            }
        } else {
            if was_suspended {
                set_condition_to(
                    &mut conditions,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                );
                plan.events
                    .push((Kind::Normal, "Resumed", "Job resumed".into()));
                status.start_time = Some(time(now));
            } else if status.start_time.is_none() {
                status.start_time = Some(time(now));
            }
            if let (Some(deadline), Some(start)) = (spec.active_deadline_seconds, start) {
                plan.recheck(start + deadline - now);
            }
            let backoff_left = last_failure
                .filter(|_| total_failed > 0)
                .or_else(|| (total_failed > 0).then(|| newest_failure(pods)).flatten())
                .map(|at| at + backoff(total_failed) - now)
                .filter(|left| *left > 0);
            let occupying: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    !is_terminal(p)
                        && (p.metadata.deletion_timestamp.is_none() || only_failed_replaced)
                })
                .collect();
            if indexed {
                plan.uncount_deleted = true;
                let (missing, surplus) = indexed_work(
                    &active,
                    &occupying,
                    completions,
                    &completed,
                    &failed_indexes,
                );
                extra = surplus;
                let room = usize::try_from(parallelism)
                    .unwrap_or(0)
                    .saturating_sub(occupying.len() - extra.len());
                want = missing.into_iter().take(room).map(Some).collect();
            } else {
                let target = match completions {
                    Some(c) => parallelism.min((c - total_ok).max(0)),
                    None if total_ok > 0 => 0,
                    None => parallelism,
                };
                let target = usize::try_from(target).unwrap_or(0);
                plan.uncount_deleted = true;
                if active.len() > target && (completions.is_some() || total_ok == 0) {
                    let mut ranked = active.clone();
                    ranked.sort_by_key(|p| deletion_rank(p));
                    extra = ranked.into_iter().take(active.len() - target).collect();
                }
                want = vec![None; target.saturating_sub(occupying.len())];
            }
            if let Some(left) = backoff_left
                && !want.is_empty()
            {
                want.clear();
                plan.recheck(left);
            }
        }
    } else {
        delete_all = true;
    }
    if delete_all {
        extra = active.clone();
    }
    // Never deleting and creating in one pass (as kube's manageJob).
    if !extra.is_empty() {
        want.clear();
    }
    plan.create = want.into_iter().take(BURST).collect();
    plan.delete = extra
        .iter()
        .take(BURST)
        .filter_map(|p| p.metadata.name.clone())
        .collect();

    let active_after = count(active.len()) - count(extra.len().min(active.len()));
    status.active = Some(active_after);
    status.ready = Some(count(ready));
    status.terminating = Some(count(terminating));
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(uncounted_ok.into_iter().collect()),
        failed: Some(uncounted_failed.into_iter().collect()),
    });
    if indexed {
        status.completed_indexes = Some(indexes::format(&completed));
        if per_index.is_some() {
            status.failed_indexes = Some(indexes::format(&failed_indexes));
        }
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    // Kubernetes leaves empty counts out of a Job's status.
    for n in [
        &mut status.active,
        &mut status.succeeded,
        &mut status.failed,
    ] {
        if *n == Some(0) {
            *n = None;
        }
    }
    if status.ready.is_none() {
        status.ready = Some(0);
    }
    plan.status = status;
    plan
}

/// An Indexed Job's indexes with no pod yet (lowest first) and its
/// surplus pods: a second pod of an index, or one of an index done.
fn indexed_work<'a>(
    active: &[&'a Pod],
    occupying: &[&'a Pod],
    completions: Option<i32>,
    completed: &BTreeSet<i32>,
    failed: &BTreeSet<i32>,
) -> (Vec<i32>, Vec<&'a Pod>) {
    let mut seen: BTreeMap<i32, usize> = BTreeMap::new();
    let mut surplus = Vec::new();
    for pod in occupying {
        match index_of(pod) {
            Some(i)
                if in_range(i, completions) && !completed.contains(&i) && !failed.contains(&i) =>
            {
                let n = seen.entry(i).or_default();
                *n += 1;
                if *n > 1 && active.iter().any(|a| std::ptr::eq(*a, *pod)) {
                    surplus.push(*pod);
                }
            }
            _ if active.iter().any(|a| std::ptr::eq(*a, *pod)) => surplus.push(*pod),
            _ => {}
        }
    }
    let missing = (0..completions.unwrap_or(0))
        .filter(|i| !completed.contains(i) && !failed.contains(i) && !seen.contains_key(i))
        .collect();
    (missing, surplus)
}

/// Why the Job fails now, if it does.
fn failure_of(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    failed: i32,
    failed_indexes: &BTreeSet<i32>,
    completed: &BTreeSet<i32>,
    start: Option<i64>,
    now: i64,
) -> Option<Failure> {
    if let Some(per_index) = spec.backoff_limit_per_index {
        let _ = per_index;
        if let Some(max) = spec.max_failed_indexes
            && count(failed_indexes.len()) > max
        {
            return Some((
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes".into(),
            ));
        }
        let c = spec.completions.unwrap_or(0);
        if !failed_indexes.is_empty() && count(failed_indexes.len() + completed.len()) >= c {
            return Some(("FailedIndexes", "Job has failed indexes".into()));
        }
    } else if failed > spec.backoff_limit.unwrap_or(6) {
        return Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        ));
    }
    if let (Some(deadline), Some(start)) = (spec.active_deadline_seconds, start)
        && now - start >= deadline
        && spec.suspend != Some(true)
    {
        return Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline".into(),
        ));
    }
    None
}

/// A `restartPolicy: OnFailure` Job fails when its running pods'
/// containers restarted `backoffLimit` times (kube's
/// `pastBackoffLimitOnFailure`).
fn restarts_past_limit(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    active: &[&Pod],
) -> Option<Failure> {
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return None;
    }
    let restarts: i32 = active
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let limit = spec.backoff_limit.unwrap_or(6);
    let past = if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    };
    past.then(|| {
        (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        )
    })
}

/// Whether the Job has succeeded now: its success policy matched, or
/// its completions (or, with none set, one pod and no more running).
fn success_of(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    succeeded: i32,
    completed: &BTreeSet<i32>,
    active: usize,
) -> Option<Failure> {
    let reached = || {
        Some((
            "CompletionsReached",
            "Reached expected number of succeeded pods".to_string(),
        ))
    };
    if spec.completion_mode.as_deref() == Some("Indexed") {
        if let Some(policy) = &spec.success_policy {
            for (i, rule) in policy.rules.iter().enumerate() {
                let wanted = rule
                    .succeeded_indexes
                    .as_deref()
                    .map(|s| indexes::parse(Some(s)));
                let matching = match &wanted {
                    Some(w) => completed.intersection(w).count(),
                    None => completed.len(),
                };
                let enough = match rule.succeeded_count {
                    Some(n) => count(matching) >= n,
                    None => wanted.as_ref().is_some_and(|w| w.is_subset(completed)),
                };
                if enough {
                    return Some(("SuccessPolicy", format!("Matched rules at index {i}")));
                }
            }
        }
        return (count(completed.len()) >= spec.completions.unwrap_or(0))
            .then(reached)
            .flatten();
    }
    match spec.completions {
        Some(c) if succeeded >= c => reached(),
        None if succeeded > 0 && active == 0 => reached(),
        _ => None,
    }
}

/// The first pod failure policy rule `pod` matches: its index and action.
fn matching_rule<'r>(rules: &'r [PodFailurePolicyRule], pod: &Pod) -> Option<(usize, &'r str)> {
    let status = pod.status.as_ref();
    rules.iter().enumerate().find_map(|(i, rule)| {
        let hit = if let Some(codes) = &rule.on_exit_codes {
            status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
                .filter(|c| codes.container_name.as_ref().is_none_or(|n| *n == c.name))
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
                .filter(|code| *code != 0)
                .any(|code| {
                    let listed = codes.values.contains(&code);
                    if codes.operator == "In" {
                        listed
                    } else {
                        !listed
                    }
                })
        } else {
            rule.on_pod_conditions.iter().flatten().any(|want| {
                status
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == want.type_ && c.status == want.status)
            })
        };
        hit.then_some((i, rule.action.as_str()))
    })
}

/// The message of a FailJob rule's failure, as kube's.
fn fail_job_message(pod: &Pod, rule: usize) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let exit = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| (c.name.clone(), t.exit_code))
        });
    match exit {
        Some((container, code)) => format!(
            "Container {container} for pod {ns}/{name} failed with exit code {code} matching FailJob rule at index {rule}"
        ),
        None => format!("Pod {ns}/{name} has condition matching FailJob rule at index {rule}"),
    }
}

/// How often index `i` failed so far, from its failed pods still there
/// (the count a new pod of the index carries in [`INDEX_FAILURES`]).
pub fn failures_of_index(pods: &[Pod], i: i32) -> i32 {
    pods.iter()
        .filter(|p| phase(p) == Some("Failed") && index_of(p) == Some(i))
        .map(|p| index_failures(p) + 1)
        .max()
        .unwrap_or(0)
}

/// The completion index of an Indexed Job's pod.
pub fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX))
        .or_else(|| pod.metadata.labels.as_ref().and_then(|l| l.get(INDEX)))
        .and_then(|i| i.parse().ok())
        .filter(|i| *i >= 0)
}

/// How often the pod's index had failed before this pod.
pub fn index_failures(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_FAILURES))
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

fn in_range(i: i32, completions: Option<i32>) -> bool {
    completions.is_none_or(|c| i < c)
}

/// The back-off before the next pod after `failures` failures.
pub fn backoff(failures: i32) -> i64 {
    let exp = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    (BACKOFF << exp).min(MAX_BACKOFF)
}

/// When the pod's last container ended (or its deletion began).
fn finished_at(pod: &Pod) -> Option<i64> {
    let ended = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0.as_second())
        .max();
    ended.or_else(|| {
        pod.metadata
            .deletion_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
    })
}

/// The newest failure among the pods still there.
fn newest_failure(pods: &[Pod]) -> Option<i64> {
    pods.iter()
        .filter(|p| phase(p) == Some("Failed"))
        .filter_map(finished_at)
        .max()
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn condition_true(status: &JobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// A True condition's reason and message (as `&'static` reasons: the
/// ones this controller writes).
fn condition_of(status: &JobStatus, type_: &str) -> Option<Failure> {
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")?;
    let reason = KNOWN_REASONS
        .iter()
        .find(|r| Some(**r) == c.reason.as_deref())
        .copied()
        .unwrap_or("Unknown");
    Some((reason, c.message.clone().unwrap_or_default()))
}

const KNOWN_REASONS: &[&str] = &[
    "BackoffLimitExceeded",
    "DeadlineExceeded",
    "PodFailurePolicy",
    "MaxFailedIndexesExceeded",
    "FailedIndexes",
    "CompletionsReached",
    "SuccessPolicy",
];

/// Sets a True condition; whether it is new.
fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    reason: &str,
    message: &str,
    now: i64,
) -> bool {
    set_condition_to(conditions, type_, "True", reason, message, now)
}

/// Sets a condition to `status`, keeping its transition time when the
/// status does not change; whether it changed.
fn set_condition_to(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: i64,
) -> bool {
    let time = Time(k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default());
    let new = JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(time.clone()),
        last_transition_time: Some(time),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => false,
        Some(c) => {
            *c = new;
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_700_000_000;

    fn job(spec: Value, status: Value) -> Job {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"containers": [{"name": "main", "image": "i"}]}});
        serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    /// A pod of the Job: `phase`, with its tracking finalizer unless
    /// `counted`, and the given annotations.
    fn pod(name: &str, phase: &str, counted: bool, annotations: Value) -> Pod {
        let finalizers: Vec<&str> = if counted {
            vec![]
        } else {
            vec![TRACKING_FINALIZER]
        };
        let mut status = json!({"phase": phase});
        if phase == "Failed" {
            status["containerStatuses"] = json!([{"name": "main", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 42,
                "finishedAt": rudder_api::time::rfc3339(NOW)}}}]);
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("{name}-uid"), "finalizers": finalizers,
                         "annotations": annotations, "creationTimestamp": "2023-11-14T00:00:00Z"},
            "spec": {"containers": []},
            "status": status,
        }))
        .unwrap()
    }

    fn types(plan: &Plan) -> Vec<(String, String)> {
        plan.status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_new_job_starts_parallelism_pods() {
        let plan = plan(
            &job(json!({"completions": 3, "parallelism": 2}), json!({})),
            &[],
            NOW,
        );
        assert_eq!(plan.create, vec![None, None]);
        assert_eq!(
            plan.status.start_time.as_ref().map(|t| t.0.as_second()),
            Some(NOW)
        );
        assert_eq!(plan.status.ready, Some(0));
        assert!(types(&plan).is_empty());
    }

    #[test]
    fn a_finished_pod_is_uncounted_then_counted_once_its_finalizer_is_gone() {
        let j = job(
            json!({"completions": 3, "parallelism": 2}),
            json!({"startTime": "2023-11-14T00:00:00Z"}),
        );
        let pods = [
            pod("a", "Succeeded", false, json!({})),
            pod("b", "Running", false, json!({})),
        ];
        let first = plan(&j, &pods, NOW);
        assert_eq!(first.finalize, vec!["a".to_string()]);
        let uncounted = first.status.uncounted_terminated_pods.clone().unwrap();
        assert_eq!(uncounted.succeeded, Some(vec!["a-uid".to_string()]));
        assert_eq!(
            first.status.succeeded, None,
            "not counted before its finalizer goes"
        );
        assert_eq!(
            first.create,
            vec![None],
            "one more: two running for the three left"
        );
        assert_eq!(first.status.active, Some(1));

        // The finalizer removed: counted, and no longer uncounted.
        let j = job(
            json!({"completions": 3, "parallelism": 2}),
            serde_json::to_value(&first.status).unwrap(),
        );
        let pods = [
            pod("a", "Succeeded", true, json!({})),
            pod("b", "Running", false, json!({})),
        ];
        let second = plan(&j, &pods, NOW);
        assert_eq!(second.status.succeeded, Some(1));
        assert_eq!(
            second.status.uncounted_terminated_pods.unwrap().succeeded,
            Some(vec![])
        );
        assert!(second.finalize.is_empty());
    }

    #[test]
    fn a_job_completes_once_its_pods_are_counted() {
        let j = job(
            json!({"completions": 2}),
            json!({"succeeded": 1, "startTime": "2023-11-14T00:00:00Z"}),
        );
        let waiting = plan(&j, &[pod("b", "Succeeded", false, json!({}))], NOW);
        assert_eq!(
            types(&waiting),
            [("SuccessCriteriaMet".into(), "CompletionsReached".into())]
        );
        assert!(
            waiting.status.completion_time.is_none(),
            "its last pod is not counted yet"
        );

        let j = job(
            json!({"completions": 2}),
            json!({"succeeded": 2, "startTime": "2023-11-14T00:00:00Z"}),
        );
        let done = plan(&j, &[], NOW);
        assert_eq!(
            types(&done),
            [
                ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
                ("Complete".into(), "CompletionsReached".into())
            ]
        );
        assert_eq!(
            done.status.completion_time.map(|t| t.0.as_second()),
            Some(NOW)
        );
        assert_eq!(
            done.events,
            vec![(Kind::Normal, "Completed", "Job completed".to_string())]
        );
        assert!(done.create.is_empty());
    }

    #[test]
    fn too_many_failures_fail_the_job_and_stop_its_pods() {
        let j = job(
            json!({"completions": 5, "backoffLimit": 1}),
            json!({"failed": 2, "startTime": "2023-11-14T00:00:00Z"}),
        );
        let failing = plan(&j, &[pod("r", "Running", false, json!({}))], NOW);
        assert_eq!(failing.delete, vec!["r".to_string()]);
        assert_eq!(
            types(&failing),
            [("FailureTarget".into(), "BackoffLimitExceeded".into())]
        );
        assert!(failing.events.is_empty(), "told once the Job has failed");
        assert!(failing.create.is_empty());

        let j = job(
            json!({"completions": 5, "backoffLimit": 1}),
            serde_json::to_value(&failing.status).unwrap(),
        );
        let failed = plan(&j, &[], NOW);
        assert_eq!(
            types(&failed),
            [
                ("FailureTarget".into(), "BackoffLimitExceeded".into()),
                ("Failed".into(), "BackoffLimitExceeded".into())
            ]
        );
        assert_eq!(
            failed.events,
            vec![(
                Kind::Warning,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_string()
            )]
        );
    }

    #[test]
    fn a_failure_backs_off_before_the_next_pod() {
        let j = job(
            json!({"completions": 1, "backoffLimit": 3}),
            json!({"failed": 1, "startTime": "2023-11-14T00:00:00Z"}),
        );
        let pods = [pod("f", "Failed", true, json!({}))];
        let plan1 = plan(&j, &pods, NOW + 4);
        assert!(plan1.create.is_empty());
        assert_eq!(plan1.recheck_in, Some(6));
        let later = plan(&j, &pods, NOW + 10);
        assert_eq!(later.create, vec![None]);
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(3), 40);
        assert_eq!(backoff(20), MAX_BACKOFF);
    }

    #[test]
    fn an_indexed_job_runs_the_missing_indexes() {
        let j = job(
            json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"}),
            json!({}),
        );
        let pods = [
            pod("pi-0", "Succeeded", false, json!({INDEX: "0"})),
            pod("pi-1", "Running", false, json!({INDEX: "1"})),
            pod("pi-1b", "Running", false, json!({INDEX: "1"})),
        ];
        let plan = plan(&j, &pods, NOW);
        assert_eq!(plan.status.completed_indexes.as_deref(), Some("0"));
        assert_eq!(plan.delete, vec!["pi-1b".to_string()], "one pod per index");
        assert!(plan.create.is_empty(), "no creating in a pass that deletes");
        let plan = super::plan(&j, &pods[..2], NOW);
        assert_eq!(plan.create, vec![Some(2)]);
        assert_eq!(
            plan.status.succeeded,
            Some(1),
            "an Indexed Job counts indexes"
        );
    }

    #[test]
    fn suspending_stops_the_pods_and_resuming_restarts_the_clock() {
        let j = job(
            json!({"completions": 2, "suspend": true}),
            json!({"startTime": "2023-11-14T00:00:00Z"}),
        );
        let suspended = plan(&j, &[pod("r", "Running", false, json!({}))], NOW);
        assert_eq!(suspended.delete, vec!["r".to_string()]);
        assert_eq!(
            types(&suspended),
            [("Suspended".into(), "JobSuspended".into())]
        );
        assert_eq!(suspended.events[0].1, "Suspended");

        let mut status = serde_json::to_value(&suspended.status).unwrap();
        status["startTime"] = json!("2023-11-14T00:00:00Z");
        let resumed = plan(&job(json!({"completions": 2}), status), &[], NOW);
        assert_eq!(types(&resumed), [("Suspended".into(), "JobResumed".into())]);
        assert_eq!(
            resumed.status.start_time.map(|t| t.0.as_second()),
            Some(NOW)
        );
        assert_eq!(resumed.create.len(), 1);
    }

    #[test]
    fn a_deadline_fails_the_job() {
        let start = rudder_api::time::rfc3339(NOW - 30);
        let j = job(
            json!({"activeDeadlineSeconds": 30}),
            json!({"startTime": start}),
        );
        let plan = plan(&j, &[pod("r", "Running", false, json!({}))], NOW);
        assert_eq!(
            types(&plan),
            [("FailureTarget".into(), "DeadlineExceeded".into())]
        );
        assert_eq!(plan.delete, vec!["r".to_string()]);
        let early = job(
            json!({"activeDeadlineSeconds": 60}),
            json!({"startTime": start}),
        );
        assert_eq!(
            super::plan(&early, &[pod("r", "Running", false, json!({}))], NOW).recheck_in,
            Some(30)
        );
    }

    #[test]
    fn pod_failure_policy_fails_the_job_or_ignores_the_pod() {
        let rules = |action: &str| json!({"rules": [{"action": action, "onExitCodes": {"operator": "In", "values": [42]}}]});
        let j = job(
            json!({"podFailurePolicy": rules("FailJob")}),
            json!({"startTime": "2023-11-14T00:00:00Z"}),
        );
        let plan1 = plan(&j, &[pod("f", "Failed", false, json!({}))], NOW);
        let target = &plan1.status.conditions.as_ref().unwrap()[0];
        assert_eq!(target.reason.as_deref(), Some("PodFailurePolicy"));
        assert_eq!(
            target.message.as_deref(),
            Some(
                "Container main for pod /f failed with exit code 42 matching FailJob rule at index 0"
            )
        );

        let j = job(
            json!({"podFailurePolicy": rules("Ignore")}),
            json!({"startTime": "2023-11-14T00:00:00Z"}),
        );
        let ignored = plan(&j, &[pod("f", "Failed", false, json!({}))], NOW);
        assert_eq!(ignored.finalize, vec!["f".to_string()]);
        assert_eq!(
            ignored.status.uncounted_terminated_pods.unwrap().failed,
            Some(vec![])
        );
        assert_eq!(
            ignored.create,
            vec![None],
            "an ignored failure is replaced at once"
        );
    }

    #[test]
    fn a_work_queue_job_ends_when_one_pod_succeeded_and_none_runs() {
        let j = job(
            json!({"parallelism": 2}),
            json!({"succeeded": 1, "startTime": "2023-11-14T00:00:00Z"}),
        );
        let running = plan(&j, &[pod("r", "Running", false, json!({}))], NOW);
        assert!(running.create.is_empty() && running.delete.is_empty());
        assert!(types(&running).is_empty());
        let done = plan(&j, &[], NOW);
        assert_eq!(types(&done).last().unwrap().0, "Complete");
    }
}
