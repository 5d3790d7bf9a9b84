//! Label and field selector parsing, and matching what parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudder_api::selector::{FieldSelector, LabelSelector, supported_fields};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let labels = json!({"app": "web", "tier": "", "a.b/c": "d"});
    if let Ok(sel) = LabelSelector::parse(text) {
        let _ = sel.matches(labels.as_object());
    }
    let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
    for (group, kind) in [("", "Pod"), ("", "Event"), ("", "Secret"), ("apps", "ReplicaSet")] {
        if let Ok(sel) = FieldSelector::parse(text, supported_fields(group, kind)) {
            let _ = sel.matches(&pod);
        }
    }
});
