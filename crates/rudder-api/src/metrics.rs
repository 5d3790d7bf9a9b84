//! Prometheus metrics shared by the API server and the components that
//! run in its process: a histogram of seconds, and the metrics that those
//! components add to the server's `/metrics` ([`set_extra`]).

use std::fmt::Write;
use std::sync::OnceLock;

/// Histogram bucket bounds in seconds (kube-apiserver's, trimmed).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus histogram of seconds.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    /// Its `_bucket`, `_sum` and `_count` lines, with `labels`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// What the components in the API server's process add to `/metrics`.
type Extra = Box<dyn Fn(&mut String) + Send + Sync>;

static EXTRA: OnceLock<Extra> = OnceLock::new();

/// Adds `render` to the server's `/metrics` (once per process: the
/// controllers' metrics).
pub fn set_extra(render: Extra) {
    let _ = EXTRA.set(render);
}

/// Writes what [`set_extra`] added.
pub fn render_extra(out: &mut String) {
    if let Some(render) = EXTRA.get() {
        render(out);
    }
}
