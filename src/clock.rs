//! The wall clock, read in one place: unix seconds, and their UTC calendar form for people.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current unix time in seconds (0 if the clock reads before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-12-01 02:17:07 UTC` for unix seconds.
pub fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's public-domain algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A span of time as a person reads it: the two largest units, rounded down ("59m 59s",
/// "6d 23h", "45s").
pub fn show_span(secs: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let first = UNITS
        .iter()
        .position(|&(_, n)| secs >= n)
        .unwrap_or(UNITS.len() - 1);
    let (unit, n) = UNITS[first];
    let mut text = format!("{}{unit}", secs / n);
    if let Some(&(next, m)) = UNITS.get(first + 1) {
        let rest = secs % n / m;
        if rest > 0 {
            text.push_str(&format!(" {rest}{next}"));
        }
    }
    text
}

/// A unix time as UTC and relative to `now`: "2026-12-02 12:00:00 UTC (in 59m 59s)" or "(…
/// ago)".
pub fn when(at: u64, now: u64) -> String {
    if at == now {
        format!("{} (now)", utc(at))
    } else if at > now {
        format!("{} (in {})", utc(at), show_span(at - now))
    } else {
        format!("{} ({} ago)", utc(at), show_span(now - at))
    }
}
