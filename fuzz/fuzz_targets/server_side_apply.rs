//! Field ownership: managedFields parsing and server-side apply of an
//! arbitrary configuration to an arbitrary live object (two JSON
//! documents separated by a NUL byte).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudder_api::managed::{FieldSet, Manager, apply, record_update};
use rudder_api::patch::strategic_merge_patch;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(live), Ok(config)) = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) else {
        return;
    };
    let _ = FieldSet::from_fields_v1(&live).to_fields_v1();
    let m = Manager {
        name: "fuzz",
        api_version: "apps/v1".into(),
        subresource: None,
        time: "2026-01-01T00:00:00Z".into(),
    };
    let merge = |l: &Value, c: &Value| strategic_merge_patch("Deployment", l, c);
    for force in [false, true] {
        let _ = apply("Deployment", Some(&live), &config, &m, force, merge);
    }
    let mut new = config.clone();
    record_update("Deployment", Some(&live), &mut new, &m);
});
