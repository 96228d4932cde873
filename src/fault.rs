//! Crash points for tests. With the `fault-injection` cargo feature (never in release builds),
//! `point(name)` aborts the process when `RN_FAULT_AT` equals `name`, so a test can kill a commit
//! at each step and check what a restart finds. Without the feature it compiles to nothing.

/// Aborts here if this is the crash point the test asked for.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    if std::env::var("RN_FAULT_AT").is_ok_and(|at| at == name) {
        eprintln!("rn: fault injection: crashing at {name}");
        std::process::abort();
    }
}

/// No-op in builds without fault injection.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Fails here with an I/O error if `RN_FAULT_FAIL` equals `name`: the errno is
/// `RN_FAULT_ERRNO` (default 28, ENOSPC), so a test can make one write hit a full or
/// read-only file system.
#[cfg(feature = "fault-injection")]
pub fn fail(name: &str) -> std::io::Result<()> {
    if std::env::var("RN_FAULT_FAIL").is_ok_and(|at| at == name) {
        let errno = std::env::var("RN_FAULT_ERRNO")
            .ok()
            .and_then(|e| e.parse().ok())
            .unwrap_or(28);
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    Ok(())
}

/// Never fails in builds without fault injection.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fail(_name: &str) -> std::io::Result<()> {
    Ok(())
}
