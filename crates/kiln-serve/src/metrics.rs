//! Prometheus metrics, in the text exposition format, without a metrics library: a handful of
//! counters, two gauges and a latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A latency histogram.
#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    total: u64,
    sum: f64,
}

/// Everything `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    /// Requests by (endpoint, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Prompt tokens processed.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Prompt tokens taken from a slot's KV cache instead of being processed.
    pub cached_tokens: AtomicU64,
    /// Requests waiting for a slot.
    pub queued: AtomicU64,
    /// Requests generating.
    pub active: AtomicU64,
    latency: Mutex<BTreeMap<String, Histogram>>,
    first_token: Mutex<Histogram>,
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()).entry((endpoint.to_string(), status)).or_default() += 1;
        let mut lat = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        observe(lat.entry(endpoint.to_string()).or_default(), seconds);
    }

    /// Records a time to first token.
    pub fn first_token(&self, seconds: f64) {
        observe(&mut self.first_token.lock().unwrap_or_else(|e| e.into_inner()), seconds);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP kiln_requests_total HTTP requests by endpoint and status.\n# TYPE kiln_requests_total counter\n");
        for ((endpoint, status), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "kiln_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
        }
        for (name, help, v) in [
            ("kiln_prompt_tokens_total", "Prompt tokens processed.", &self.prompt_tokens),
            ("kiln_generated_tokens_total", "Tokens generated.", &self.generated_tokens),
            ("kiln_prompt_cache_hit_tokens_total", "Prompt tokens reused from a slot's KV cache.", &self.cached_tokens),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        for (name, help, v) in [
            ("kiln_queue_depth", "Requests waiting for a generation slot.", &self.queued),
            ("kiln_active_requests", "Requests generating now.", &self.active),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", v.load(Ordering::Relaxed));
        }
        out.push_str(
            "# HELP kiln_request_duration_seconds Time from request to full response.\n# TYPE kiln_request_duration_seconds histogram\n",
        );
        for (endpoint, h) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            write_histogram(&mut out, "kiln_request_duration_seconds", &format!("endpoint=\"{endpoint}\""), h);
        }
        out.push_str("# HELP kiln_time_to_first_token_seconds Time from request to the first generated token.\n# TYPE kiln_time_to_first_token_seconds histogram\n");
        write_histogram(&mut out, "kiln_time_to_first_token_seconds", "", &self.first_token.lock().unwrap_or_else(|e| e.into_inner()));
        out
    }
}

fn observe(h: &mut Histogram, seconds: f64) {
    for (c, &b) in h.counts.iter_mut().zip(&BUCKETS) {
        if seconds <= b {
            *c += 1;
        }
    }
    h.total += 1;
    h.sum += seconds;
}

fn write_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (c, b) in h.counts.iter().zip(BUCKETS) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.total);
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {}\n{name}_count{braces} {}", h.sum, h.total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/v1/completions", 200, 0.2);
        m.request("/v1/completions", 200, 3.0);
        m.request("/infill", 400, 0.01);
        let text = m.render();
        assert!(text.contains("kiln_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("kiln_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"0.25\"} 1"), "{text}");
        assert!(text.contains("kiln_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"5\"} 2"), "{text}");
        assert!(text.contains("kiln_request_duration_seconds_count{endpoint=\"/infill\"} 1"), "{text}");
    }
}
