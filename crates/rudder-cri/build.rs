//! Builds the static `pause` program for the agent's sandbox image
//! (gcc, from Debian's `gcc`, a build package already).
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=pause/pause.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .args(["-Os", "-static", "-s", "-o"])
        .arg(&out)
        .arg("pause/pause.c")
        .status()
        .expect("running gcc to build pause (install the Debian package gcc)");
    assert!(status.success(), "gcc failed to build pause/pause.c");
}
