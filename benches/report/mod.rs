//! One row of `bench/results.json` per measured figure: `bench/run.sh` names a file in
//! `RN_BENCH_ROWS` and each bench appends its rows to it as JSON lines. Without the variable
//! the rows are only printed.

/// Records a row: `ratio = rn / reference` and `meets = ratio <= target`; without a reference
/// the target is absolute, in `unit`, and `meets = rn <= target`.
pub fn row(name: &str, unit: &str, rn: f64, reference: Option<f64>, target: f64) {
    use std::io::Write;
    let ratio = reference.map(|r| rn / r);
    let meets = ratio.unwrap_or(rn) <= target;
    let line = serde_json::json!({
        "name": name, "unit": unit, "rn": rn, "reference": reference,
        "ratio": ratio, "target": target, "meets": meets, "sha256": sha256(),
    });
    println!("row: {line}");
    if let Some(path) = std::env::var_os("RN_BENCH_ROWS") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("RN_BENCH_ROWS is writable");
        writeln!(f, "{line}").expect("RN_BENCH_ROWS is writable");
    }
}

/// How SHA-256 runs in this build on this CPU: `"sha-ni"` when the CPU has SHA extensions and
/// the `sha2` crate uses them, else `"software"` (no extensions, or the build asked for the
/// portable code with `RUSTFLAGS='--cfg sha2_256_backend="soft"'`, which measures a CPU without them).
#[allow(unexpected_cfgs)]
pub fn sha256() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    let hardware =
        std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1");
    #[cfg(not(target_arch = "x86_64"))]
    let hardware = false;
    if hardware && !cfg!(sha2_256_backend = "soft") {
        "sha-ni"
    } else {
        "software"
    }
}
