//! Records the commit the binary is built from, for `rn --version`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RN_BUILD_COMMIT={commit}");
    // Rebuilt when HEAD moves: a checkout changes .git/HEAD, a commit the branch it names.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(branch) = head.strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=.git/{}", branch.trim());
    }
    println!("cargo:rerun-if-changed=.git/packed-refs");
}
