//! Kubernetes' name and metadata validation, with its messages
//! (apimachinery pkg/util/validation and pkg/api/validation).

use serde_json::Value;

use crate::status::Cause;

mod kinds;
pub use kinds::{validate_spec, validate_update};

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters: a
/// label value, or the name part of a label key.
pub fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Which rule a kind's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
    /// An IP address in canonical form (IPAddress objects).
    Ip,
    /// A ConfigMap key (LeaseCandidates: `[-._a-zA-Z0-9]+`).
    ConfigMapKey,
    /// Anything (CertificateSigningRequests' names are not checked).
    Any,
}

pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Dns1123Label,
        ("", "Service") => NameRule::Dns1035Label,
        ("networking.k8s.io", "IPAddress") => NameRule::Ip,
        ("coordination.k8s.io", "LeaseCandidate") => NameRule::ConfigMapKey,
        ("certificates.k8s.io", "CertificateSigningRequest") => NameRule::Any,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Problems with a name, as messages (empty: valid).
pub fn check_name(rule: NameRule, name: &str) -> Vec<String> {
    let (ok, msg, max) = match rule {
        NameRule::Dns1123Subdomain => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_MSG, 253),
        NameRule::Dns1123Label => (is_dns1123_label(name), DNS1123_LABEL_MSG, 63),
        NameRule::Dns1035Label => (is_dns1035_label(name), DNS1035_LABEL_MSG, 63),
        NameRule::Ip => return check_ip(name),
        NameRule::ConfigMapKey => (
            !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')),
            CONFIG_MAP_KEY_MSG,
            253,
        ),
        NameRule::Any => return Vec::new(),
    };
    let mut out = Vec::new();
    if name.len() > max {
        out.push(format!("must be no more than {max} characters"));
    }
    if !ok && name.len() <= max {
        out.push(msg.to_string());
    }
    out
}

const CONFIG_MAP_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// An IP address as apimachinery's `IsValidIP` wants it: parseable, no
/// leading zeros, not IPv4-mapped, canonical.
fn check_ip(name: &str) -> Vec<String> {
    let Ok(ip) = name.parse::<std::net::IpAddr>() else {
        return vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()];
    };
    if let std::net::IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return vec!["must not be an IPv4-mapped IPv6 address".into()];
    }
    let canonical = ip.to_string();
    if canonical != name {
        return vec![format!("must be in canonical form ({canonical:?})")];
    }
    Vec::new()
}

fn quote(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("\"{v}\""))
}

/// Validates `metadata`: name, labels and annotations. `name` has been
/// filled from generateName already.
pub fn validate_metadata(object: &Value, rule: NameRule) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = object.get("metadata");
    match meta.and_then(|m| m.get("name")).and_then(Value::as_str) {
        None | Some("") => causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            for msg in check_name(rule, name) {
                causes.push(Cause::invalid("metadata.name", &quote(name), &msg));
            }
        }
    }
    if let Some(labels) = meta.and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(labels) => {
                for (k, v) in labels {
                    if let Some(msg) = check_qualified_key(k) {
                        causes.push(Cause::invalid("metadata.labels", &quote(k), &msg));
                    }
                    match v.as_str() {
                        Some(v) if v.is_empty() || is_qualified_name_part(v) => {}
                        Some(v) => causes.push(Cause::invalid(
                            "metadata.labels",
                            &quote(v),
                            LABEL_VALUE_MSG,
                        )),
                        None => causes.push(Cause::invalid(
                            "metadata.labels",
                            &v.to_string(),
                            "must be a string",
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(Cause::invalid(
                "metadata.labels",
                &labels.to_string(),
                "must be a map",
            )),
        }
    }
    if let Some(annotations) = meta.and_then(|m| m.get("annotations")) {
        let mut total = 0;
        if let Some(annotations) = annotations.as_object() {
            for (k, v) in annotations {
                if let Some(msg) = check_qualified_key(k) {
                    causes.push(Cause::invalid("metadata.annotations", &quote(k), &msg));
                }
                total += k.len() + v.as_str().map_or(0, str::len);
            }
        }
        if total > 256 * 1024 {
            causes.push(Cause::too_long("metadata.annotations", 256 * 1024));
        }
    }
    causes
}

/// A label or annotation key: `[prefix/]name`.
fn check_qualified_key(key: &str) -> Option<String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if !is_dns1123_subdomain(prefix) {
                return Some(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
            }
            name
        }
        None => key,
    };
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(name) {
        return Some(QUALIFIED_NAME_MSG.into());
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_their_kind_rule() {
        assert!(check_name(NameRule::Dns1123Subdomain, "web.example-1").is_empty());
        assert!(!check_name(NameRule::Dns1123Subdomain, "Web").is_empty());
        assert!(!check_name(NameRule::Dns1123Label, "a.b").is_empty());
        assert!(check_name(NameRule::Dns1123Label, "1abc").is_empty());
        assert!(!check_name(NameRule::Dns1035Label, "1abc").is_empty());
        assert!(!check_name(NameRule::Dns1123Subdomain, &"a".repeat(254)).is_empty());
        assert_eq!(name_rule("", "Service"), NameRule::Dns1035Label);
    }

    #[test]
    fn metadata_causes_name_the_field() {
        let obj = json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "v", "bad key": "x", "k": "bad value"}}});
        let causes = validate_metadata(&obj, NameRule::Dns1123Subdomain);
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["metadata.name", "metadata.labels", "metadata.labels"]
        );
        assert!(
            causes[0]
                .message
                .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
        );
        let missing = validate_metadata(&json!({"metadata": {}}), NameRule::Dns1123Subdomain);
        assert_eq!(
            missing[0].message,
            "Required value: name or generateName is required"
        );
    }
}
