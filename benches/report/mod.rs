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
        "ratio": ratio, "target": target, "meets": meets,
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
