//! Names the commit the binary is built from, for `rudder --version`:
//! `git rev-parse HEAD` when building from a checkout, else `RUDDER_GIT_COMMIT` from the environment (a
//! source tarball), else `unknown`.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=RUDDER_GIT_COMMIT");
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            // A new commit or a change of branch moves HEAD or its ref.
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            if let Some(p) = git(&["symbolic-ref", "-q", "HEAD"])
                .and_then(|r| git(&["rev-parse", "--path-format=absolute", "--git-path", &r]))
            {
                println!("cargo:rerun-if-changed={p}");
            }
            commit
        }
        None => std::env::var("RUDDER_GIT_COMMIT").unwrap_or_else(|_| "unknown".into()),
    };
    println!("cargo:rustc-env=RUDDER_GIT_COMMIT={commit}");
}
