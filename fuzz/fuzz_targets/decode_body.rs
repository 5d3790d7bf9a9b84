//! Request body decoding: JSON, YAML and Kubernetes protobuf, as the API
//! server decodes bodies before anything else sees them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Value>(data);
    let _ = rudder_api::protobuf::decode(data);
    // The protobuf decoder behind the magic prefix, whatever follows.
    let mut body = rudder_api::protobuf::MAGIC.to_vec();
    body.extend_from_slice(data);
    let _ = rudder_api::protobuf::decode(&body);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_saphyr::from_str::<Value>(text);
    }
});
