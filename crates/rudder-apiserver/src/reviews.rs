//! The review APIs `kubectl auth can-i` and `kubectl auth whoami` use.
//!
//! Until RBAC lands every authenticated user may do everything, so access
//! reviews answer "allowed" and rules reviews list `*`; the answers will
//! come from the authorizer once it exists.

use rudder_api::StatusError;
use serde_json::{Value, json};

use crate::auth::User;

/// (group, version, plural, kind) of the create-only review resources.
pub(crate) const REVIEWS: &[(&str, &str, &str, &str)] = &[
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
    // kubectl 1.27 and 1.28 `auth whoami` know only v1beta1 and v1alpha1.
    (
        "authentication.k8s.io",
        "v1beta1",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
];

/// Answers a review POST; `None` if `plural` is not one.
pub(crate) fn review(
    group: &str,
    version: &str,
    plural: &str,
    user: &User,
    body: &[u8],
) -> Option<Result<Value, StatusError>> {
    let &(g, v, _, kind) = REVIEWS
        .iter()
        .find(|(g, v, p, _)| *g == group && *v == version && *p == plural)?;
    let mut obj: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Some(Err(StatusError::bad_request(
                "the body of the request must be a JSON object",
            )));
        }
        Err(e) => {
            return Some(Err(StatusError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))));
        }
    };
    obj["apiVersion"] = format!("{g}/{v}").into();
    obj["kind"] = kind.into();
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    obj["status"] = match kind {
        "SelfSubjectAccessReview" => {
            json!({"allowed": true, "reason": "no authorizer yet: every authenticated user is allowed"})
        }
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => json!({"userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups}}),
    };
    Some(Ok(obj))
}
