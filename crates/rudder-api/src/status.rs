//! Kubernetes `Status` errors: one type, one JSON shape, the messages
//! kubectl prints (apimachinery pkg/api/errors).

use serde_json::{Value, json};

use crate::registry::Resource;

/// One field problem of an `Invalid` error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, …
    pub reason: &'static str,
    pub field: String,
    /// `Invalid value: "X": why`, as Kubernetes words it.
    pub message: String,
}

impl Cause {
    pub fn invalid(field: &str, value: &str, why: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {why}"),
        }
    }

    pub fn required(field: &str, why: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: if why.is_empty() {
                "Required value".into()
            } else {
                format!("Required value: {why}")
            },
        }
    }

    /// `Unsupported value: "x": supported values: "a", "b"`; `value` is
    /// the JSON of what was given.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
        }
    }

    pub fn too_long(field: &str, max: usize) -> Self {
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: must have at most {max} bytes"),
        }
    }

    pub fn forbidden(field: &str, why: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {why}"),
        }
    }

    pub fn unknown_field(field: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("unknown field \"{field}\""),
        }
    }
}

/// An API error as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel in every `Result` of the request path.
    pub details: Option<Box<Details>>,
}

/// `Status.details`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub name: String,
    pub group: String,
    /// A plural for most errors, the Kind for `Invalid`.
    pub kind: String,
    pub causes: Vec<Cause>,
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for StatusError {}

impl StatusError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, r: &Resource, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.into(),
            group: r.group.into(),
            kind: r.plural.into(),
            causes: vec![],
        }));
        self
    }

    pub fn not_found(r: &Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.qualified_plural()),
        )
        .about(r, name)
    }

    pub fn already_exists(r: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.qualified_plural()),
        )
        .about(r, name)
    }

    pub fn conflict(r: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply \
                 your changes to the latest version and try again",
                r.qualified_plural()
            ),
        )
        .about(r, name)
    }

    /// A conflict with a specific reason (`Operation cannot be fulfilled on
    /// pods/binding "x": pod x is already assigned to node "n"`).
    pub fn conflict_with(r: &Resource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                r.qualified_plural()
            ),
        )
        .about(r, name)
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    pub fn invalid(r: &Resource, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let detail = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {detail}", r.kind),
        );
        e.details = Some(Box::new(Details {
            name: name.into(),
            group: r.group.into(),
            kind: r.kind.into(),
            causes,
        }));
        e
    }

    /// 422 without field causes (a patch that cannot be applied).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 409 for a server-side apply that would change fields other
    /// managers own.
    pub fn apply_conflict(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(409, "Conflict", message);
        e.details = Some(Box::new(Details {
            causes,
            ..Details::default()
        }));
        e
    }

    /// 504 Timeout: the server could not answer in time; try again.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `metav1.Status` body.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            if !d.name.is_empty() {
                details.insert("name".into(), d.name.clone().into());
            }
            if !d.group.is_empty() {
                details.insert("group".into(), d.group.clone().into());
            }
            if !d.kind.is_empty() {
                details.insert("kind".into(), d.kind.clone().into());
            }
            if !d.causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), causes.into());
            }
            status["details"] = details.into();
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::by_kind;

    #[test]
    fn messages_match_kubernetes() {
        let d = by_kind("apps", "v1", "Deployment").unwrap();
        assert_eq!(
            StatusError::not_found(d, "web").message,
            "deployments.apps \"web\" not found"
        );
        let cm = by_kind("", "v1", "ConfigMap").unwrap();
        let e = StatusError::already_exists(cm, "x");
        assert_eq!(e.message, "configmaps \"x\" already exists");
        let j = e.to_json();
        assert_eq!(j["details"]["kind"], "configmaps");
        assert_eq!(j["code"], 409);
        assert!(j["details"].get("group").is_none());
        let inv = StatusError::invalid(
            cm,
            "X",
            vec![Cause::required("metadata.name", "name is required")],
        );
        assert_eq!(
            inv.message,
            "ConfigMap \"X\" is invalid: metadata.name: Required value: name is required"
        );
        assert_eq!(
            inv.to_json()["details"]["causes"][0]["field"],
            "metadata.name"
        );
    }
}
