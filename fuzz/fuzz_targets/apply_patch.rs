//! Patch application: the input is two JSON documents separated by a NUL
//! byte, an object and a patch, applied as JSON patch, merge patch and
//! strategic merge patch for kinds with merge keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudder_api::patch::{json_patch, merge_patch, strategic_merge_patch};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(target), Ok(patch)) = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) else {
        return;
    };
    let _ = merge_patch(&target, &patch);
    let _ = json_patch(&target, &patch);
    for kind in ["Pod", "Deployment", "Service", "Node", "ConfigMap"] {
        let _ = strategic_merge_patch(kind, &target, &patch);
    }
});
