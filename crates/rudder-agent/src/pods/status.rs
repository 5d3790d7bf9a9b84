//! A pod's status from what the runtime reports, computed as the kubelet
//! computes it (`getPhase`, the pod conditions, container states with the
//! standard reasons).

use k8s_openapi::api::core::v1::{Container, Pod};
use rudder_cri::api;
use serde_json::{Value, json};

/// What is known about one container of the pod.
#[derive(Debug, Default, Clone)]
pub(crate) struct Observed {
    /// The latest instance, and the one before it (for `lastState`).
    pub(crate) latest: Option<api::ContainerStatus>,
    pub(crate) previous: Option<api::ContainerStatus>,
    /// Why the container is waiting, when the agent knows better than
    /// the runtime (back-off, image pull and configuration errors).
    pub(crate) waiting: Option<(String, String)>,
    /// The termination message of the latest and previous instances.
    pub(crate) messages: [Option<String>; 2],
    /// For a running instance: its startup probe passed (or it has none),
    /// and it is ready (readiness probe).
    pub(crate) started: bool,
    pub(crate) ready: bool,
}

impl Observed {
    pub(crate) fn running(&self) -> bool {
        self.latest
            .as_ref()
            .is_some_and(|s| s.state == api::ContainerState::ContainerRunning as i32)
    }

    pub(crate) fn exited(&self) -> Option<&api::ContainerStatus> {
        self.latest
            .as_ref()
            .filter(|s| s.state == api::ContainerState::ContainerExited as i32)
    }
}

/// The terminated state of an exited instance.
fn terminated(s: &api::ContainerStatus, message: Option<&String>) -> Value {
    let reason = match s.reason.as_str() {
        "" | "Completed" | "Error" if s.exit_code == 0 => "Completed",
        "" | "Error" | "Completed" => "Error",
        other => other,
    };
    let mut t = json!({
        "exitCode": s.exit_code,
        "reason": reason,
        "startedAt": time(s.started_at),
        "finishedAt": time(s.finished_at),
        "containerID": format!("containerd://{}", s.id),
    });
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        t["message"] = json!(m);
    } else if !s.message.is_empty() && s.exit_code != 0 {
        t["message"] = json!(s.message);
    }
    t
}

/// One entry of `containerStatuses` / `initContainerStatuses`. `blocked`
/// is the waiting reason of a container that cannot start yet
/// (`PodInitializing` while init containers run).
pub(crate) fn container_status(c: &Container, o: &Observed, blocked: &str) -> Value {
    let image = c.image.clone().unwrap_or_default();
    let mut entry = json!({
        "name": c.name,
        "image": image,
        "imageID": "",
        "ready": false,
        "started": false,
        "restartCount": o.latest.as_ref().and_then(|s| s.metadata.as_ref()).map_or(0, |m| m.attempt),
    });
    let last = |s: Option<&api::ContainerStatus>, m: Option<&String>| match s {
        Some(s) => json!({"terminated": terminated(s, m)}),
        None => json!({}),
    };
    if let Some(s) = &o.latest {
        entry["imageID"] = json!(s.image_ref);
        entry["containerID"] = json!(format!("containerd://{}", s.id));
    }
    match (&o.waiting, &o.latest) {
        (Some((reason, message)), latest) => {
            let mut waiting = json!({"reason": reason});
            if !message.is_empty() {
                waiting["message"] = json!(message);
            }
            entry["state"] = json!({"waiting": waiting});
            entry["lastState"] = match latest {
                Some(s) if s.state == api::ContainerState::ContainerExited as i32 => {
                    last(Some(s), o.messages[0].as_ref())
                }
                _ => last(o.previous.as_ref(), o.messages[1].as_ref()),
            };
        }
        (None, Some(s)) if s.state == api::ContainerState::ContainerRunning as i32 => {
            entry["state"] = json!({"running": {"startedAt": time(s.started_at)}});
            entry["ready"] = json!(o.ready);
            entry["started"] = json!(o.started);
            entry["lastState"] = last(o.previous.as_ref(), o.messages[1].as_ref());
        }
        (None, Some(s)) if s.state == api::ContainerState::ContainerExited as i32 => {
            entry["state"] = json!({"terminated": terminated(s, o.messages[0].as_ref())});
            entry["lastState"] = last(o.previous.as_ref(), o.messages[1].as_ref());
        }
        _ => {
            entry["state"] = json!({"waiting": {"reason": blocked}});
            entry["lastState"] = last(o.previous.as_ref(), o.messages[1].as_ref());
        }
    }
    entry
}

/// The pod's phase as the kubelet's `getPhase` decides it.
pub(crate) fn phase(
    restart_policy: &str,
    init: &[Observed],
    containers: &[Observed],
    initialized: bool,
) -> &'static str {
    if !initialized {
        let init_failed = init
            .iter()
            .any(|o| o.exited().is_some_and(|s| s.exit_code != 0) && o.waiting.is_none());
        return if init_failed && restart_policy == "Never" {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut running, mut stopped, mut succeeded, mut waiting) = (0, 0, 0, 0);
    for o in containers {
        if o.running() && o.waiting.is_none() {
            running += 1;
        } else if let Some(s) = o.exited().filter(|_| o.waiting.is_none()) {
            stopped += 1;
            if s.exit_code == 0 {
                succeeded += 1;
            }
        } else if o.waiting.is_some() && o.exited().is_some() {
            // Waiting to restart after a termination.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if restart_policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// The pod's conditions, keeping each one's lastTransitionTime while its
/// status stays the same.
pub(crate) fn conditions(
    pod: &Pod,
    sandbox_ready: bool,
    not_initialized: &[String],
    not_ready: &[String],
    phase: &str,
) -> Value {
    let now = rudder_api::time::rfc3339_now();
    let previous = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let cond = |kind: &str, ok: bool, reason: Option<(&str, String)>| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or_else(|| json!(now));
        let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some((reason, message)) = reason.filter(|_| !ok) {
            c["reason"] = json!(reason);
            if !message.is_empty() {
                c["message"] = json!(message);
            }
        }
        c
    };
    let list = |names: &[String], what: &str| {
        format!("containers with {what} status: [{}]", names.join(" "))
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let ready_reason = if completed {
        ("PodCompleted", String::new())
    } else {
        ("ContainersNotReady", list(not_ready, "unready"))
    };
    let init_reason = if completed && not_initialized.is_empty() {
        ("PodCompleted", String::new())
    } else {
        (
            "ContainersNotInitialized",
            list(not_initialized, "incomplete"),
        )
    };
    let ready = not_ready.is_empty() && !completed;
    json!([
        cond("PodReadyToStartContainers", sandbox_ready, None),
        cond("Initialized", not_initialized.is_empty(), Some(init_reason)),
        cond("Ready", ready, Some(ready_reason.clone())),
        cond("ContainersReady", ready, Some(ready_reason)),
        cond("PodScheduled", true, None),
    ])
}

/// CRI timestamps (nanoseconds) as RFC 3339.
pub(crate) fn time(nanos: i64) -> Value {
    if nanos <= 0 {
        return Value::Null;
    }
    json!(rudder_api::time::rfc3339(nanos / 1_000_000_000))
}

/// The status without its times, to tell real changes from a rewrite.
pub(crate) fn comparable(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conditions) = s["conditions"].as_array_mut() {
        for c in conditions {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastTransitionTime");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> Observed {
        Observed {
            latest: Some(api::ContainerStatus {
                state: api::ContainerState::ContainerExited as i32,
                exit_code: code,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running() -> Observed {
        Observed {
            latest: Some(api::ContainerStatus {
                state: api::ContainerState::ContainerRunning as i32,
                ..Default::default()
            }),
            started: true,
            ready: true,
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_the_kubelets_rules() {
        assert_eq!(
            phase("Never", &[], &[exited(0), exited(0)], true),
            "Succeeded"
        );
        assert_eq!(phase("Never", &[], &[exited(0), exited(1)], true), "Failed");
        assert_eq!(phase("OnFailure", &[], &[exited(1)], true), "Running");
        assert_eq!(phase("Always", &[], &[exited(0)], true), "Running");
        assert_eq!(
            phase("Never", &[], &[running(), exited(1)], true),
            "Running"
        );
        assert_eq!(
            phase("Always", &[], &[running(), Observed::default()], true),
            "Pending"
        );
        let mut backing_off = exited(1);
        backing_off.waiting = Some(("CrashLoopBackOff".into(), String::new()));
        assert_eq!(phase("Always", &[], &[backing_off], true), "Running");
        assert_eq!(
            phase("Never", &[exited(1)], &[Observed::default()], false),
            "Failed"
        );
        assert_eq!(
            phase("Always", &[exited(1)], &[Observed::default()], false),
            "Pending"
        );
    }

    #[test]
    fn a_container_backing_off_shows_its_last_termination() {
        let c = Container {
            name: "c".into(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        let mut o = exited(2);
        o.waiting = Some(("CrashLoopBackOff".into(), "back-off 10s".into()));
        let s = container_status(&c, &o, "ContainerCreating");
        assert_eq!(s["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(s["lastState"]["terminated"]["exitCode"], 2);
        assert_eq!(s["lastState"]["terminated"]["reason"], "Error");
    }
}
