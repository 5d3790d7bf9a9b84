//! Property tests: no input reachable from a request makes the parsers
//! (JSON, protobuf, selectors), patchers or printers panic (the stand-in
//! for fuzz targets, which need a nightly toolchain this project does not
//! have).

use proptest::prelude::*;
use rudder_api::patch::{json_patch, merge_patch, strategic_merge_patch};
use rudder_api::registry::RESOURCES;
use rudder_api::selector::{FieldSelector, LabelSelector, fields_of};
use rudder_api::table;
use rudder_api::time::{human_duration, parse_rfc3339};
use rudder_api::validation::{NameRule, validate_metadata};
use serde_json::Value;

/// Arbitrary JSON, biased towards Kubernetes-looking keys and directives.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("metadata".to_string()),
        Just("spec".to_string()),
        Just("status".to_string()),
        Just("containers".to_string()),
        Just("name".to_string()),
        Just("labels".to_string()),
        Just("$patch".to_string()),
        Just("$setElementOrder/containers".to_string()),
        Just("$deleteFromPrimitiveList/finalizers".to_string()),
        Just("$retainKeys".to_string()),
        Just("op".to_string()),
        Just("path".to_string()),
        Just("value".to_string()),
        "[a-z/~0-9$-]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("replace".to_string()),
            Just("delete".to_string()),
            Just("/spec/0".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn selectors_never_panic(input in ".{0,64}", labels in prop::collection::btree_map("[a-z./]{0,6}", "[a-z0-9]{0,4}", 0..4)) {
        let labels: serde_json::Map<String, Value> = labels.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        if let Ok(sel) = LabelSelector::parse(&input) {
            let _ = sel.matches(Some(&labels));
        }
        if let Ok(sel) = FieldSelector::parse(&input, fields_of("", "Pod")) {
            let _ = sel.matches(&Value::Object(labels));
        }
    }

    #[test]
    fn patches_never_panic(target in json_value(), patch in json_value()) {
        let _ = merge_patch(&target, &patch);
        let _ = json_patch(&target, &patch);
        for kind in ["Pod", "Deployment", "CronJob", "Service", "Node"] {
            let _ = strategic_merge_patch(kind, &target, &patch);
        }
    }

    #[test]
    fn json_patch_ops_never_panic(target in json_value(), op in "(add|remove|replace|move|copy|test)", path in "(/[a-z0-9~-]{0,4}){0,4}", from in "(/[a-z0-9~-]{0,4}){0,3}", value in json_value()) {
        let ops = serde_json::json!([{"op": op, "path": path, "from": from, "value": value}]);
        let _ = json_patch(&target, &ops);
    }

    #[test]
    fn printers_and_validation_never_panic(obj in json_value(), now in any::<i64>()) {
        for r in RESOURCES {
            let _ = table::cells(r.group, r.kind, &obj, now / 2);
        }
        let _ = validate_metadata(&obj, NameRule::Dns1123Subdomain);
    }

    #[test]
    fn protobuf_bodies_never_panic(
        kind in prop_oneof![Just("Deployment"), Just("Pod"), Just("Secret"), Just("ControllerRevision"), Just("PersistentVolume")],
        raw in prop::collection::vec(any::<u8>(), 0..256),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let api_version = if matches!(kind, "Deployment" | "ControllerRevision") { "apps/v1" } else { "v1" };
        // Envelope {1: {1: apiVersion, 2: kind}, 2: raw}, lengths < 128.
        let mut meta = vec![0x0a, api_version.len() as u8];
        meta.extend(api_version.as_bytes());
        meta.extend([0x12, kind.len() as u8]);
        meta.extend(kind.as_bytes());
        let mut body = b"k8s\0".to_vec();
        body.extend([0x0a, meta.len() as u8]);
        body.extend(meta);
        body.push(0x12);
        let mut len = raw.len();
        while len >= 0x80 {
            body.push((len as u8) | 0x80);
            len >>= 7;
        }
        body.push(len as u8);
        body.extend(&raw);
        let _ = rudder_api::protobuf::decode(&body);
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let _ = rudder_api::protobuf::decode(&body);
    }

    #[test]
    fn protobuf_encoding_never_panics(
        kind in prop_oneof![Just("Deployment"), Just("Pod"), Just("Secret"), Just("Status"), Just("Lease")],
        value in json_value(),
    ) {
        let api_version = match kind {
            "Deployment" => "apps/v1",
            "Lease" => "coordination.k8s.io/v1",
            _ => "v1",
        };
        let mut obj = serde_json::json!({"apiVersion": api_version, "kind": kind});
        for key in ["metadata", "spec", "status", "data", "code"] {
            obj[key] = value.clone();
        }
        // What encodes decodes.
        if let Ok(body) = rudder_api::protobuf::encode(&obj) {
            prop_assert!(rudder_api::protobuf::decode(&body).is_ok());
        }
        let event = serde_json::json!({"type": "ADDED", "object": obj});
        let _ = rudder_api::protobuf::watch_frame(&event);
    }

    #[test]
    fn times_never_panic(s in ".{0,32}", secs in any::<i64>()) {
        let _ = parse_rfc3339(&s);
        let _ = human_duration(secs);
    }
}
