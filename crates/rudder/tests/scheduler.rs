//! The scheduler, end to end: `rudder server` with simulated nodes
//! (`rudder agent --simulated`), pods created with the real kubectl, and
//! what users see of the decisions (nodes, conditions, events, describe).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Cluster, SimNodes};

/// Waits until the pod is bound and returns its node.
fn node_of(c: &Cluster, pod: &str) -> String {
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=PodScheduled",
            &format!("pod/{pod}"),
            "--timeout=60s",
        ],
    );
    c.ok(27, &["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
}

/// Waits until the scheduler has said why the pod fits nowhere and
/// returns what it said.
fn unschedulable(c: &Cluster, pod: &str) -> String {
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=PodScheduled=false",
            &format!("pod/{pod}"),
            "--timeout=60s",
        ],
    );
    c.ok(
        33,
        &[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}: {.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ],
    )
}

fn pod(name: &str, labels: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n{spec}---\n"
    )
}

#[test]
fn pods_land_where_selectors_affinity_spread_and_taints_allow() {
    let c = Cluster::start(&[]);
    // sim-0 and sim-2 are in zone-0, sim-1 and sim-3 in zone-1.
    let _nodes = SimNodes::join(&c, &["--nodes", "4", "--sim-cpu", "4", "--sim-zones", "2"]);
    let out = c.ok(
        27,
        &[
            "get",
            "nodes",
            "-l",
            "rudder.dev/simulated=true",
            "-o",
            "name",
        ],
    );
    assert_eq!(out.lines().count(), 4, "{out}");
    c.ok(33, &["label", "node", "sim-1", "disk=ssd"]);

    // nodeSelector.
    c.apply(33, &pod("ssd", "", "  nodeSelector: {disk: ssd}\n"));
    assert_eq!(node_of(&c, "ssd"), "sim-1");
    let events = c.ok(
        27,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=ssd",
        ],
    );
    assert!(
        events.contains("Scheduled")
            && events.contains("Successfully assigned default/ssd to sim-1"),
        "{events}"
    );

    // Required anti-affinity on the host name: one replica per node.
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n        topologyKey: kubernetes.io/hostname\n";
    let web: String = (0..3)
        .map(|i| pod(&format!("web-{i}"), "app: web", anti))
        .collect();
    c.apply(33, &web);
    let mut hosts: Vec<String> = (0..3).map(|i| node_of(&c, &format!("web-{i}"))).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 3, "{hosts:?}");

    // Topology spread over zones: 4 pods, at most one apart.
    let spread = "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {app: spread}}\n";
    let pods: String = (0..4)
        .map(|i| pod(&format!("spread-{i}"), "app: spread", spread))
        .collect();
    c.apply(27, &pods);
    let zone0 = (0..4)
        .map(|i| node_of(&c, &format!("spread-{i}")))
        .filter(|n| n == "sim-0" || n == "sim-2")
        .count();
    assert_eq!(zone0, 2);

    // Taints, cordons and resources: Pending, and users see why.
    c.ok(33, &["taint", "nodes", "sim-3", "dedicated=x:NoSchedule"]);
    c.ok(27, &["cordon", "sim-2"]);
    c.apply(
        33,
        &pod("huge", "", "    resources: {requests: {cpu: \"100\"}}\n"),
    );
    let why = "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, \
               1 node(s) were unschedulable, 2 Insufficient cpu. preemption: 0/4 nodes are \
               available: 2 No preemption victims found for incoming pod, 2 Preemption is \
               not helpful for scheduling.";
    assert_eq!(unschedulable(&c, "huge"), format!("Unschedulable: {why}"));
    let describe = c.ok(27, &["describe", "pod", "huge"]);
    assert!(
        describe.contains("FailedScheduling")
            && describe.contains("default-scheduler")
            && describe.contains(why),
        "{describe}"
    );
    let events = c.ok(
        33,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
        ],
    );
    assert!(events.contains("pod/huge"), "{events}");

    // A pod that tolerates the taint may go there.
    let tolerant = "  nodeSelector: {kubernetes.io/hostname: sim-3}\n  tolerations:\n  - {key: dedicated, operator: Equal, value: x, effect: NoSchedule}\n";
    c.apply(33, &pod("tolerant", "", tolerant));
    assert_eq!(node_of(&c, "tolerant"), "sim-3");

    // A pod for the cordoned node waits, then goes when it is uncordoned.
    c.apply(
        33,
        &pod(
            "cordoned",
            "",
            "  nodeSelector: {kubernetes.io/hostname: sim-2}\n",
        ),
    );
    assert_eq!(
        unschedulable(&c, "cordoned"),
        // Filters run in order: NodeUnschedulable, TaintToleration, NodeAffinity.
        "Unschedulable: 0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, \
         1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    );
    c.ok(33, &["uncordon", "sim-2"]);
    assert_eq!(node_of(&c, "cordoned"), "sim-2");

    // Simulated pods report Running and Ready.
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/cordoned",
            "--timeout=60s",
        ],
    );

    // Another scheduler's pods are left alone.
    c.apply(27, &pod("other", "", "  schedulerName: my-scheduler\n"));
    c.apply(27, &pod("after", "", ""));
    node_of(&c, "after");
    let other = c.ok(
        33,
        &[
            "get",
            "pod",
            "other",
            "-o",
            "jsonpath={.spec.nodeName}|{.status.conditions}",
        ],
    );
    assert_eq!(other, "|", "{other}");
}

#[test]
fn scheduling_gates_hold_pods_until_removed() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "1"]);
    c.apply(
        33,
        &pod(
            "gated",
            "",
            "  schedulingGates:\n  - name: example.com/wait\n",
        ),
    );
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=PodScheduled=false",
            "pod/gated",
            "--timeout=60s",
        ],
    );
    let reason = c.ok(
        33,
        &[
            "get",
            "pod",
            "gated",
            "-o",
            "jsonpath={.status.conditions[0].reason}",
        ],
    );
    assert_eq!(reason, "SchedulingGated");
    let out = c.ok(27, &["get", "pod", "gated"]);
    assert!(out.contains("SchedulingGated"), "{out}");
    c.ok(
        33,
        &[
            "patch",
            "pod",
            "gated",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#,
        ],
    );
    assert_eq!(node_of(&c, "gated"), "sim-0");
}

#[test]
fn a_higher_priority_pod_preempts_a_lower_one() {
    let c = Cluster::start(&[]);
    let _nodes = SimNodes::join(&c, &["--nodes", "1", "--sim-cpu", "2"]);
    c.apply(
        33,
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\nvalue: 10\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high-polite}\nvalue: 1000\npreemptionPolicy: Never\n",
    );
    let requests = "    resources: {requests: {cpu: 1500m}}\n";
    c.apply(
        33,
        &pod(
            "victim",
            "",
            &format!("{requests}  priorityClassName: low\n"),
        ),
    );
    assert_eq!(node_of(&c, "victim"), "sim-0");
    c.ok(
        33,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/victim",
            "--timeout=60s",
        ],
    );
    let priority = c.ok(
        27,
        &["get", "pod", "victim", "-o", "jsonpath={.spec.priority}"],
    );
    assert_eq!(priority, "10");

    // A pod may not pick a preemption policy of its own: it comes from
    // its class (kube's Priority admission).
    let manifest = c.dir.path().join("rude.yaml");
    std::fs::write(
        &manifest,
        pod(
            "rude",
            "",
            &format!("{requests}  priorityClassName: high\n  preemptionPolicy: Never\n"),
        ),
    )
    .unwrap();
    let refused = c.fails(33, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        refused.contains("the string value of PreemptionPolicy (Never) must not be provided in pod spec; priority admission controller computed PreemptLowerPriority from the given PriorityClass name"),
        "{refused}"
    );
    // Preemption: Never waits instead of evicting.
    c.apply(
        33,
        &pod(
            "polite",
            "",
            &format!("{requests}  priorityClassName: high-polite\n"),
        ),
    );
    let why = unschedulable(&c, "polite");
    assert!(
        why.ends_with("preemption: not eligible due to preemptionPolicy=Never."),
        "{why}"
    );
    c.ok(27, &["delete", "pod", "polite"]);

    c.apply(
        33,
        &pod(
            "urgent",
            "",
            &format!("{requests}  priorityClassName: high\n"),
        ),
    );
    assert_eq!(node_of(&c, "urgent"), "sim-0");
    c.ok(33, &["wait", "--for=delete", "pod/victim", "--timeout=60s"]);
    let events = c.ok(
        27,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=victim",
        ],
    );
    assert!(
        events.contains("Preempted") && events.contains("on node sim-0"),
        "{events}"
    );
    let nominated = c.ok(
        33,
        &[
            "get",
            "pod",
            "urgent",
            "-o",
            "jsonpath={.status.nominatedNodeName}",
        ],
    );
    assert_eq!(nominated, "sim-0");

    // An unknown class is refused, as the Priority admission plugin does.
    let err = c.fails(
        33,
        &[
            "run",
            "nope",
            "--image=busybox",
            "--overrides",
            r#"{"spec":{"priorityClassName":"missing"}}"#,
        ],
    );
    assert!(
        err.contains("pods \"nope\" is forbidden: no PriorityClass with name missing was found"),
        "{err}"
    );
}

/// Two servers on one etcd: one scheduler holds the `kube-scheduler`
/// Lease and schedules for both; when its server dies (SIGKILL), the
/// other takes the Lease over and schedules.
#[test]
fn another_server_takes_over_scheduling_when_the_leader_dies() {
    let etcd = rudder_testing::EtcdServer::start().unwrap();
    let identity = |c: &Cluster| {
        std::fs::read_to_string(c.dir.path().join("data/server/identity"))
            .unwrap()
            .trim()
            .to_string()
    };
    let lease_field = |c: &Cluster, field: &str| {
        c.ok(
            27,
            &[
                "get",
                "lease",
                "-n",
                "kube-system",
                "kube-scheduler",
                "-o",
                &format!("jsonpath={{.spec.{field}}}"),
            ],
        )
    };
    let holder_is = |c: &Cluster, id: &str| {
        c.ok(
            33,
            &[
                "wait",
                "-n",
                "kube-system",
                "lease/kube-scheduler",
                &format!("--for=jsonpath={{.spec.holderIdentity}}={}", holder(id)),
                "--timeout=60s",
            ],
        );
    };
    let mut a = Cluster::start(&["--datastore-endpoint", etcd.endpoint()]);
    let a_id = identity(&a);
    holder_is(&a, &a_id);
    let b = Cluster::start(&["--datastore-endpoint", etcd.endpoint()]);
    let b_id = identity(&b);
    let _nodes = SimNodes::join(&b, &["--nodes", "1"]);
    // B's scheduler waits: A's schedules what is created through B.
    b.apply(33, &pod("first", "", ""));
    assert_eq!(node_of(&b, "first"), "sim-0");
    let lease = lease_field(&b, "holderIdentity");
    assert!(lease.ends_with(&a_id), "{lease}");

    a.server.kill();
    b.apply(33, &pod("second", "", ""));
    holder_is(&b, &b_id);
    assert_eq!(node_of(&b, "second"), "sim-0");
    let transitions = lease_field(&b, "leaseTransitions");
    assert_eq!(transitions, "1");
}

/// The holder identity a server with this id writes: `<host>_<id>`.
fn holder(id: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    format!("{}_{id}", host.trim())
}
