//! Counters and one histogram, rendered as Prometheus text at `GET /metrics`.
//!
//! A handful of series does not need a metrics crate: counters are keyed by name and label
//! values, and the registry renders them sorted, so the output is stable.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Formatter-call latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A series: metric name and label pairs.
type Series = (&'static str, Vec<(&'static str, String)>);

/// A gauge sampled at render time: name, help text, labels, value.
pub type Gauge<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, i64);

/// The daemon's metrics.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Series, u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Adds `n` to counter `name` with `labels`.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        *self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += n;
    }

    /// Records one formatter call's duration.
    pub fn observe_call(&self, formatter: &str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut all = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = all.entry(formatter.to_owned()).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition; `gauges` are sampled by the caller (outbox depth, …).
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = "";
        for ((name, labels), v) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels));
        }
        drop(counters);
        let latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        if !latency.is_empty() {
            let name = "tidings_formatter_call_seconds";
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (f, h) in latency.iter() {
                let f = escape(f);
                for (i, le) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{formatter=\"{f}\",le=\"{le}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{{formatter=\"{f}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{{formatter=\"{f}\"}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{formatter=\"{f}\"}} {}", h.count);
            }
        }
        let mut last = "";
        for (name, help, labels, v) in gauges {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                last = name;
            }
            let labels: Vec<(&str, String)> = labels.clone();
            let _ = writeln!(out, "{name}{} {v}", fmt_labels(&labels));
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_labels<K: AsRef<str>>(labels: &[(K, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", k.as_ref(), escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.add("tidings_events_total", &[("source", "http")], 2);
        m.add("tidings_events_total", &[("source", "http")], 1);
        m.add("tidings_events_total", &[("source", "a\"b")], 1);
        m.observe_call("short", Duration::from_micros(300));
        let text = m.render(&[(
            "tidings_outbox_deliveries",
            "Deliveries by state.",
            vec![("state", "dead".into())],
            4,
        )]);
        assert!(text.contains("tidings_events_total{source=\"http\"} 3\n"));
        assert!(text.contains("tidings_events_total{source=\"a\\\"b\"} 1\n"));
        assert!(text.contains(
            "tidings_formatter_call_seconds_bucket{formatter=\"short\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "tidings_formatter_call_seconds_bucket{formatter=\"short\",le=\"0.00025\"} 0\n"
        ));
        assert!(text.contains("tidings_formatter_call_seconds_count{formatter=\"short\"} 1\n"));
        assert!(text.contains("tidings_outbox_deliveries{state=\"dead\"} 4\n"));
        assert_eq!(
            text.matches("# TYPE tidings_events_total counter").count(),
            1
        );
    }
}
