//! What a CronJob needs done, from what is (kube-controller-manager's
//! cronjob controller v2 as a pure function): which finished Jobs go by
//! the history limits, which active ones are done or gone, whether a Job
//! is due now (the most recent missed schedule only, within
//! startingDeadlineSeconds, by the concurrency policy) and when to look
//! again.

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rudder_api::cron::{Schedule, Zone};
use rudder_runtime::events::Kind;

/// The annotation with the time a CronJob's Job was scheduled for.
pub const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed start times past which a warning is given.
const TOO_MANY_MISSED: usize = 100;

/// An event to record on the CronJob.
pub type Event = (Kind, &'static str, String);

/// The decisions for one CronJob.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Jobs to delete (Background): past the history limits, or replaced.
    pub delete: Vec<String>,
    /// A Job to create: its name and the time it is scheduled for.
    pub create: Option<(String, i64)>,
    pub status: CronJobStatus,
    pub events: Vec<Event>,
    /// Seconds until the next schedule (plus kube's 100 ms).
    pub requeue_in: Option<f64>,
}

/// The finished condition of a Job: `Complete` or `Failed`.
pub fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"].into_iter().find(|t| {
        conditions
            .iter()
            .any(|c| c.type_ == *t && c.status == "True")
    })
}

/// The decisions for `cj`, given the Jobs it controls, its parsed
/// schedule and time zone, at `now`.
pub fn plan(cj: &CronJob, jobs: &[Job], schedule: &Schedule, zone: &Zone, now: i64) -> Plan {
    let mut plan = Plan::default();
    let name = cj.metadata.name.clone().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut active: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
    let time =
        |secs: i64| Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default());
    let secs = |t: &Option<Time>| t.as_ref().map(|t| t.0.as_second());

    // History: the oldest finished Jobs past the limits go.
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        done.sort_by_key(|j| {
            let start = j.status.as_ref().and_then(|s| secs(&s.start_time));
            (start.is_none(), start, j.metadata.name.clone())
        });
        let extra = done
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        plan.delete.extend(
            done.iter()
                .take(extra)
                .filter_map(|j| j.metadata.name.clone()),
        );
    }
    // Active Jobs that finished or went missing leave the list.
    active.retain(|r| {
        let Some(job) = jobs.iter().find(|j| j.metadata.name == r.name) else {
            plan.events.push((
                Kind::Normal,
                "MissingJob",
                format!(
                    "Active job went missing: {}",
                    r.name.as_deref().unwrap_or_default()
                ),
            ));
            return false;
        };
        match finished(job) {
            Some(how) => {
                plan.events.push((
                    Kind::Normal,
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, status: {how}",
                        r.name.as_deref().unwrap_or_default()
                    ),
                ));
                false
            }
            None => true,
        }
    });
    let succeeded = jobs
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref().and_then(|s| secs(&s.completion_time)))
        .max();
    if let Some(t) = succeeded
        && secs(&status.last_successful_time).is_none_or(|last| last < t)
    {
        status.last_successful_time = Some(time(t));
    }
    let deleted_now =
        |plan: &Plan, r: &ObjectReference| r.name.as_ref().is_some_and(|n| plan.delete.contains(n));
    active.retain(|r| !deleted_now(&plan, r));

    let finish = |mut plan: Plan, mut status: CronJobStatus, active: Vec<ObjectReference>| {
        status.active = (!active.is_empty()).then_some(active);
        plan.status = status;
        plan
    };
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        return finish(plan, status, active);
    }

    // The most recent start time that is due.
    let created = secs(&cj.metadata.creation_timestamp).unwrap_or(now);
    let mut earliest = secs(&status.last_schedule_time).unwrap_or(created);
    if let Some(deadline) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - deadline);
    }
    let next = |t: i64| schedule.next_after(t, zone);
    let requeue = |from: i64| next(from).map(|t| (t - now) as f64 + 0.1);
    let Some(t1) = next(earliest) else {
        return finish(plan, status, active);
    };
    if now < t1 {
        plan.requeue_in = Some((t1 - now) as f64 + 0.1);
        return finish(plan, status, active);
    }
    let mut scheduled = t1;
    let mut missed = 1;
    while let Some(t) = next(scheduled).filter(|t| *t <= now) {
        scheduled = t;
        missed += 1;
        if missed > 1_000_000 {
            break;
        }
    }
    if missed > TOO_MANY_MISSED {
        plan.events.push((
            Kind::Warning,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        ));
    }
    plan.requeue_in = requeue(scheduled);
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled + deadline < now
    {
        plan.events.push((
            Kind::Warning,
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                rfc1123z(scheduled)
            ),
        ));
        return finish(plan, status, active);
    }
    let job_name = format!("{name}-{}", scheduled.div_euclid(60));
    if active.iter().any(|r| r.name.as_deref() == Some(&job_name))
        || secs(&status.last_schedule_time) == Some(scheduled)
    {
        return finish(plan, status, active);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            plan.events.push((
                Kind::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return finish(plan, status, active);
        }
        Some("Replace") => {
            plan.delete
                .extend(active.iter().filter_map(|r| r.name.clone()));
            active.clear();
        }
        _ => {}
    }
    plan.create = Some((job_name, scheduled));
    finish(plan, status, active)
}

/// Go's `time.RFC1123Z` of a UTC instant: `Mon, 02 Jan 2006 15:04:05 +0000`.
fn rfc1123z(secs: i64) -> String {
    let w = Zone::utc().wall_clock(secs);
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[w.weekday as usize % 7],
        w.day,
        MONTHS[(w.month as usize + 11) % 12],
        w.year,
        w.hour,
        w.minute,
        w.second
    )
}

/// RFC 3339 of an instant on `zone`'s wall clock (Go's `time.RFC3339` of
/// `t.In(zone)`): `Z` for UTC, else the offset.
pub fn rfc3339_in(secs: i64, zone: &Zone) -> String {
    let w = zone.wall_clock(secs);
    let offset = if w.offset == 0 {
        "Z".to_string()
    } else {
        let sign = if w.offset < 0 { '-' } else { '+' };
        let o = w.offset.unsigned_abs();
        format!("{sign}{:02}:{:02}", o / 3600, o % 3600 / 60)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{offset}",
        w.year, w.month, w.day, w.hour, w.minute, w.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    // 2023-11-14T22:13:20Z.
    const NOW: i64 = 1_700_000_000;

    fn cron(spec: Value, status: Value) -> CronJob {
        let mut spec = spec;
        spec["jobTemplate"] =
            json!({"spec": {"template": {"spec": {"containers": [], "restartPolicy": "Never"}}}});
        serde_json::from_value(json!({
            "metadata": {"name": "tick", "namespace": "default", "creationTimestamp": "2023-11-14T22:00:00Z"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    fn job(name: &str, finished: Option<&str>, start: &str) -> Job {
        let conditions: Vec<Value> = finished
            .map(|t| json!({"type": t, "status": "True"}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": conditions, "startTime": start, "completionTime": start},
        }))
        .unwrap()
    }

    fn every_minute() -> Schedule {
        rudder_api::cron::parse("* * * * *").unwrap()
    }

    #[test]
    fn the_most_recent_missed_time_starts_once() {
        let plan1 = plan(
            &cron(json!({}), json!({})),
            &[],
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        // 22:13 is the latest minute due.
        let at = NOW - 20;
        assert_eq!(plan1.create, Some((format!("tick-{}", at / 60), at)));
        assert_eq!(plan1.requeue_in, Some(40.1));
        // Already started: nothing more until the next minute.
        let status = json!({"lastScheduleTime": rudder_api::time::rfc3339(at)});
        let again = plan(
            &cron(json!({}), status),
            &[],
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        assert_eq!(again.create, None);
    }

    #[test]
    fn a_start_past_its_deadline_is_not_made_up_for() {
        // 22:13 was 20 s ago, past a 10 s deadline: the next is 22:14.
        let plan = plan(
            &cron(json!({"startingDeadlineSeconds": 10}), json!({})),
            &[],
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        assert_eq!(plan.create, None);
        assert_eq!(plan.requeue_in, Some(40.1));
        let within = super::plan(
            &cron(json!({"startingDeadlineSeconds": 30}), json!({})),
            &[],
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        assert!(within.create.is_some());
    }

    #[test]
    fn forbid_waits_and_replace_deletes_the_running_job() {
        let status = json!({"active": [{"name": "tick-1", "kind": "Job"}], "lastScheduleTime": "2023-11-14T22:05:00Z"});
        let running = [job("tick-1", None, "2023-11-14T22:05:00Z")];
        let forbid = plan(
            &cron(json!({"concurrencyPolicy": "Forbid"}), status.clone()),
            &running,
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        assert_eq!(forbid.create, None);
        assert_eq!(forbid.events[0].1, "JobAlreadyActive");
        let replace = plan(
            &cron(json!({"concurrencyPolicy": "Replace"}), status),
            &running,
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        assert_eq!(replace.delete, vec!["tick-1".to_string()]);
        assert!(replace.create.is_some());
        assert_eq!(replace.status.active, None);
    }

    #[test]
    fn finished_jobs_leave_the_active_list_and_the_history_keeps_its_limits() {
        let status = json!({"active": [{"name": "c", "kind": "Job"}, {"name": "gone", "kind": "Job"}],
                            "lastScheduleTime": rudder_api::time::rfc3339(NOW - 20)});
        let jobs = [
            job("a", Some("Complete"), "2023-11-14T22:01:00Z"),
            job("b", Some("Complete"), "2023-11-14T22:02:00Z"),
            job("c", Some("Complete"), "2023-11-14T22:03:00Z"),
            job("f1", Some("Failed"), "2023-11-14T22:04:00Z"),
            job("f2", Some("Failed"), "2023-11-14T22:05:00Z"),
        ];
        let plan = plan(
            &cron(json!({"successfulJobsHistoryLimit": 2}), status),
            &jobs,
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        assert_eq!(plan.delete, vec!["a".to_string(), "f1".to_string()]);
        assert_eq!(plan.status.active, None);
        let reasons: Vec<&str> = plan.events.iter().map(|e| e.1).collect();
        assert_eq!(reasons, ["SawCompletedJob", "MissingJob"]);
        assert_eq!(plan.events[0].2, "Saw completed job: c, status: Complete");
        assert_eq!(
            plan.status.last_successful_time.map(|t| t.0.as_second()),
            rudder_api::time::parse_rfc3339("2023-11-14T22:03:00Z")
        );
    }

    #[test]
    fn a_suspended_cron_job_starts_nothing() {
        let plan = plan(
            &cron(json!({"suspend": true}), json!({})),
            &[],
            &every_minute(),
            &Zone::utc(),
            NOW,
        );
        assert_eq!(plan.create, None);
        assert_eq!(plan.requeue_in, None);
    }

    #[test]
    fn scheduled_times_read_on_the_zone_s_clock() {
        assert_eq!(rfc3339_in(NOW - 20, &Zone::utc()), "2023-11-14T22:13:00Z");
        let Ok(berlin) = Zone::load("Europe/Berlin") else {
            return;
        };
        assert_eq!(rfc3339_in(NOW - 20, &berlin), "2023-11-14T23:13:00+01:00");
        // 23:10 on Berlin's clock is 22:10 UTC: due at 22:13 UTC.
        let daily = rudder_api::cron::parse("10 23 * * *").unwrap();
        let plan = plan(&cron(json!({}), json!({})), &[], &daily, &berlin, NOW);
        assert_eq!(
            plan.create.map(|(_, at)| rfc3339_in(at, &Zone::utc())),
            Some("2023-11-14T22:10:00Z".to_string())
        );
    }
}
