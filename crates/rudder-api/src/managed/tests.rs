use super::*;
use crate::patch::strategic_merge_patch;

fn mgr(name: &str) -> Manager<'_> {
    Manager {
        name,
        api_version: "apps/v1".into(),
        subresource: None,
        time: "2026-01-01T00:00:00Z".into(),
    }
}

fn merge(live: &Value, config: &Value) -> Result<Value, String> {
    strategic_merge_patch("Deployment", live, config)
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}
    })
}

#[test]
fn fields_v1_encodes_fields_keys_and_items() {
    let set = FieldSet::of("Deployment", &deployment(2, "nginx"), false);
    let v1 = set.to_fields_v1();
    assert_eq!(
        v1,
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}
        })
    );
    assert_eq!(FieldSet::from_fields_v1(&v1), set);
}

#[test]
fn apply_owns_conflicts_and_removes_what_it_no_longer_applies() {
    // An apply creates the object and owns its fields.
    let obj = apply(
        "Deployment",
        None,
        &deployment(2, "nginx:1"),
        &mgr("a"),
        false,
        merge,
    )
    .unwrap();
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "a");
    assert_eq!(obj["metadata"]["managedFields"][0]["operation"], "Apply");

    // Another manager changes replicas with an update and takes it over.
    let mut scaled = obj.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update("Deployment", Some(&obj), &mut scaled, &mgr("scaler"));
    let owners: Vec<&str> = scaled["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["a", "scaler"]);

    // Applying replicas 2 again conflicts with the scaler...
    let err = apply(
        "Deployment",
        Some(&scaled),
        &deployment(2, "nginx:1"),
        &mgr("a"),
        false,
        merge,
    )
    .unwrap_err();
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        conflicts,
        [Conflict {
            manager: "scaler".into(),
            api_version: "apps/v1".into(),
            field: ".spec.replicas".into()
        }]
    );
    assert_eq!(
        conflict_message(&conflicts),
        "Apply failed with 1 conflict: conflict with \"scaler\" using apps/v1: .spec.replicas"
    );
    // ... applying the live value does not, and forcing takes it back.
    apply(
        "Deployment",
        Some(&scaled),
        &deployment(5, "nginx:1"),
        &mgr("a"),
        false,
        merge,
    )
    .unwrap();
    let forced = apply(
        "Deployment",
        Some(&scaled),
        &deployment(2, "nginx:1"),
        &mgr("a"),
        true,
        merge,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 2);
    assert_eq!(
        forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Dropping a field from the configuration removes it.
    let mut config = deployment(2, "nginx:2");
    config["metadata"].as_object_mut().unwrap().remove("labels");
    let after = apply(
        "Deployment",
        Some(&forced),
        &config,
        &mgr("a"),
        false,
        merge,
    )
    .unwrap();
    assert!(after["metadata"].get("labels").is_none(), "{after}");
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
}

#[test]
fn removed_list_items_go_and_shared_fields_stay() {
    let two = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}});
    let obj = apply("Deployment", None, &two, &mgr("m"), false, merge).unwrap();
    // Another manager also sets b's image: b's image stays when m drops b,
    // the rest of b goes with m's ownership of it.
    let one = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
    let after = apply("Deployment", Some(&obj), &one, &mgr("m"), false, merge).unwrap();
    let names: Vec<&str> = after["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn updates_take_changed_fields_and_drop_removed_ones() {
    let mut created = deployment(1, "nginx:1");
    created["metadata"]["labels"]["team"] = json!("x");
    record_update("Deployment", None, &mut created, &mgr("a"));
    let mut changed = created.clone();
    changed["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("team");
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    record_update("Deployment", Some(&created), &mut changed, &mgr("b"));
    let entries = changed["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let a = &entries[0]["fieldsV1"];
    assert!(a["f:metadata"]["f:labels"].get("f:team").is_none(), "{a}");
    assert!(a["f:metadata"]["f:labels"]["f:app"].is_object(), "{a}");
    let container = &a["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
    assert!(
        container.get("f:image").is_none() && container["f:name"].is_object(),
        "{a}"
    );
    assert_eq!(
        entries[1]["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}})
    );
    // A write that changes nothing records nothing.
    let mut same = changed.clone();
    record_update("Deployment", Some(&changed), &mut same, &mgr("c"));
    assert_eq!(
        same["metadata"]["managedFields"],
        changed["metadata"]["managedFields"]
    );
}

#[test]
fn client_side_applied_fields_pass_to_server_side_apply() {
    let mut live = deployment(2, "nginx:1");
    live["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": deployment(2, "nginx:1").to_string()
    });
    record_update(
        "Deployment",
        None,
        &mut live,
        &mgr("kubectl-client-side-apply"),
    );
    // Fields the client-side apply set change hands without a conflict...
    let applied = apply(
        "Deployment",
        Some(&live),
        &deployment(3, "nginx:2"),
        &mgr("kubectl"),
        false,
        merge,
    )
    .unwrap();
    assert_eq!(applied["spec"]["replicas"], 3);
    // ... but fields another manager set still conflict.
    let mut scaled = applied.clone();
    scaled["spec"]["replicas"] = json!(9);
    record_update("Deployment", Some(&applied), &mut scaled, &mgr("hpa"));
    assert!(
        apply(
            "Deployment",
            Some(&scaled),
            &deployment(3, "nginx:2"),
            &mgr("kubectl"),
            false,
            merge
        )
        .is_err()
    );
}

#[test]
fn updates_keep_untouched_entries_and_start_from_the_written_managed_fields() {
    let mut created = deployment(2, "nginx:1");
    record_update("Deployment", None, &mut created, &mgr("a"));
    // An entry nothing in this write touches is kept as it was written,
    // even with a field this server would not render itself.
    created["metadata"]["managedFields"][0]["extra"] = json!("kept");
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(3);
    record_update("Deployment", Some(&created), &mut scaled, &mgr("b"));
    let entries = scaled["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["manager"], "a");
    // "a" lost spec.replicas to "b": its entry is rendered again.
    assert_eq!(entries[0].get("extra"), None);
    assert_eq!(entries[1]["manager"], "b");

    let mut relabelled = scaled.clone();
    relabelled["metadata"]["managedFields"][1]["extra"] = json!("kept");
    relabelled["metadata"]["labels"]["tier"] = json!("front");
    record_update("Deployment", Some(&scaled), &mut relabelled, &mgr("c"));
    let entries = relabelled["metadata"]["managedFields"].as_array().unwrap();
    let b = entries.iter().find(|e| e["manager"] == "b").unwrap();
    // The written managedFields (with "b"'s change) are the starting point.
    assert_eq!(b["extra"], "kept");
    assert!(entries.iter().any(|e| e["manager"] == "c"));
}
