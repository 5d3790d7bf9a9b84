//! Authentication: who sent a request.
//!
//! Client certificates signed by the cluster CA (CN = user, O = groups) and
//! bearer tokens from `--token-auth-file` (kube-apiserver's CSV format:
//! `token,user,uid,"group1,group2"`). Everything else is anonymous, which
//! the server refuses with 401.

use std::collections::HashMap;
use std::path::Path;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    fn new(name: String, uid: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        Self { name, uid, groups }
    }
}

/// The user a verified client certificate names.
pub(crate) fn user_from_cert(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(User::new(name, String::new(), groups))
}

/// Bearer tokens from a token file.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    by_token: HashMap<String, User>,
}

impl Tokens {
    /// Reads kube-apiserver's `--token-auth-file` CSV.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_token = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                return Err(format!(
                    "line {}: expected token,user,uid[,\"group1,group2\"]",
                    n + 1
                ));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let user = User::new(fields[1].clone(), fields[2].clone(), groups);
            by_token.insert(fields[0].clone(), user);
        }
        Ok(Self { by_token })
    }

    /// Adds a token for `user` in `groups`.
    pub fn insert(&mut self, token: &str, user: &str, groups: &[&str]) {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        let user = User::new(user.to_string(), user.to_string(), groups);
        self.by_token.insert(token.to_string(), user);
    }

    pub fn user(&self, authorization: &str) -> Option<User> {
        let token = authorization.strip_prefix("Bearer ")?.trim();
        self.by_token.get(token).cloned()
    }
}

/// Splits one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("starts with one field").push(c),
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_map_to_users_and_groups() {
        let t =
            Tokens::parse("# comment\nsecret1,alice,1001,\"dev,ops\"\nsecret2,bob,1002\n").unwrap();
        let alice = t.user("Bearer secret1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(
            t.user("Bearer secret2").unwrap().groups,
            ["system:authenticated"]
        );
        assert_eq!(t.user("Bearer nope"), None);
        assert_eq!(t.user("Basic secret1"), None);
        assert!(Tokens::parse("only-a-token\n").is_err());
    }
}
