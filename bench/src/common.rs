//! What every benchmark binary shares: run length and row selection.

use std::time::Duration;

/// How long each timed row runs: `BENCH_SECONDS` (default 3).
pub(crate) fn seconds() -> Duration {
    let secs = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// `BENCH_ROWS=write_64,watch` runs only the rows whose names contain one
/// of the words.
pub(crate) fn selected(name: &str) -> bool {
    match std::env::var("BENCH_ROWS") {
        Ok(rows) => rows.split(',').any(|r| name.contains(r.trim())),
        Err(_) => true,
    }
}
