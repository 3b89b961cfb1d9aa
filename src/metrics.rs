//! The daemon's metrics, in the Prometheus project's own client (`prometheus-client`), served
//! as OpenMetrics text at `GET /metrics`.
//!
//! Every series is a typed family here, so a caller cannot misspell a name or a label: ingest
//! counts events ([`Metrics::event`]), sources count connections, dispatch counts formatter
//! calls and their latency, the outbox counts attempts by result; the outbox depth by state is
//! sampled from the store when `/metrics` is read.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Formatter-call latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    source: String,
    r#type: String,
    duplicate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    reporter: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    formatter: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatterLabels {
    formatter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoadLabels {
    formatter: String,
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WarmLabels {
    formatter: String,
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The daemon's metrics (one per process, shared by every task).
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    connections: Family<SourceLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    latency: Family<FormatterLabels, Histogram, fn() -> Histogram>,
    loads: Family<LoadLabels, Counter>,
    warm: Family<WarmLabels, Counter>,
    /// Each formatter's warm-instance totals as last counted into `warm`.
    warm_seen: std::sync::Mutex<std::collections::HashMap<String, crate::formatter::WarmStats>>,
    outbox: Family<StateLabels, Gauge>,
    unreadable_now: Gauge,
    unreadable_seen: Counter,
    http_open: Gauge,
    http_shed: Family<ShedLabels, Counter>,
    store_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "tidings_events",
            "Events accepted, by source and type; duplicate = already stored",
            events.clone(),
        );
        let connections = Family::<SourceLabels, Counter>::default();
        registry.register(
            "tidings_source_connections",
            "Connections made to a followed master's event stream",
            connections.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "tidings_deliveries",
            "Delivery attempts by reporter and result (delivered, retry, dead)",
            deliveries.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tidings_formatter_calls",
            "Formatter calls by result: ok, nothing, or the failure kind",
            calls.clone(),
        );
        let latency = Family::<FormatterLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "tidings_formatter_call_seconds",
            "Formatter call duration",
            latency.clone(),
        );
        let loads = Family::<LoadLabels, Counter>::default();
        registry.register(
            "tidings_formatter_loads",
            "Formatter modules loaded (at start and reload), by origin: cached (a compiled artifact, from this daemon's cache or the user's) or compiled",
            loads.clone(),
        );
        let warm = Family::<WarmLabels, Counter>::default();
        registry.register(
            "tidings_formatter_warm_instances",
            "Warm formatter instances by event: created, reused (a call answered by an instance that answered one before), discarded (after a trap, a limit, an error or an exit), retired (dropped after max_idle without a call; counted at the formatter's next call)",
            warm.clone(),
        );
        let outbox = Family::<StateLabels, Gauge>::default();
        registry.register(
            "tidings_outbox_deliveries",
            "Deliveries in the outbox by state (dead = dead letters)",
            outbox.clone(),
        );
        let unreadable_now = Gauge::default();
        registry.register(
            "tidings_events_unreadable",
            "Stored events dispatch cannot read, kept and tried again at the next start (tidings outbox unreadable)",
            unreadable_now.clone(),
        );
        let unreadable_seen = Counter::default();
        registry.register(
            "tidings_events_unreadable_found",
            "Times dispatch found a stored event it cannot read",
            unreadable_seen.clone(),
        );
        let http_open = Gauge::default();
        registry.register(
            "tidings_http_connections",
            "HTTP connections open now",
            http_open.clone(),
        );
        let http_shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "tidings_http_connections_shed",
            "HTTP connections closed by the listener: header_timeout (headers too slow), evicted (an idle or slow one making way at the cap), refused (every slot serving a request)",
            http_shed.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register(
            "tidings_store_bytes",
            "Bytes the store takes on disk: the database and its WAL",
            store_bytes.clone(),
        );
        Metrics {
            registry,
            store_bytes,
            http_open,
            http_shed,
            unreadable_now,
            unreadable_seen,
            events,
            connections,
            deliveries,
            calls,
            latency,
            loads,
            warm,
            warm_seen: Default::default(),
            outbox,
        }
    }
}

impl Metrics {
    /// An event was accepted from `source` (`http_buildbot`, `http_events`, `buildbot`).
    pub fn event(&self, source: &str, kind: &str, duplicate: bool) {
        self.events
            .get_or_create(&EventLabels {
                source: source.into(),
                r#type: kind.into(),
                duplicate: duplicate.to_string(),
            })
            .inc();
    }

    /// A source (re)connected to its master.
    pub fn source_connected(&self, source: &str) {
        self.connections
            .get_or_create(&SourceLabels {
                source: source.into(),
            })
            .inc();
    }

    /// A delivery attempt of `reporter` ended with `result` (delivered, retry, dead).
    pub fn delivery(&self, reporter: &str, result: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                reporter: reporter.into(),
                result: result.into(),
            })
            .inc();
    }

    /// A call of `formatter` ended with `result` (ok, nothing, or a failure kind).
    pub fn formatter_call(&self, formatter: &str, result: &str) {
        self.calls
            .get_or_create(&CallLabels {
                formatter: formatter.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Counts the loads of `formatters` (at start or reload) by where their code came from.
    pub fn formatters_loaded(
        &self,
        formatters: &std::collections::HashMap<String, std::sync::Arc<crate::formatter::Formatter>>,
    ) {
        for (name, f) in formatters {
            let origin = match f.origin() {
                crate::formatter::Origin::Cached => "cached",
                crate::formatter::Origin::Compiled => "compiled",
            };
            self.loads
                .get_or_create(&LoadLabels {
                    formatter: name.clone(),
                    origin: origin.into(),
                })
                .inc();
        }
    }

    /// Brings the counts of `formatter`'s warm instances up to `totals` (its
    /// [`crate::formatter::Formatter::warm_stats`], read after a call). Calls made at once
    /// from several threads each add what is new since the last count, so the counters stay
    /// exact however calls interleave.
    pub fn warm_instances(&self, formatter: &str, totals: crate::formatter::WarmStats) {
        let delta = {
            let mut seen = self.warm_seen.lock().unwrap_or_else(|e| e.into_inner());
            let last = seen.entry(formatter.to_owned()).or_default();
            let delta = totals.since(*last);
            // A thread that read its totals earlier may come second: never count backwards.
            last.created = last.created.max(totals.created);
            last.reused = last.reused.max(totals.reused);
            last.discarded = last.discarded.max(totals.discarded);
            last.retired = last.retired.max(totals.retired);
            delta
        };
        for (event, n) in [
            ("created", delta.created),
            ("reused", delta.reused),
            ("discarded", delta.discarded),
            ("retired", delta.retired),
        ] {
            if n > 0 {
                self.warm
                    .get_or_create(&WarmLabels {
                        formatter: formatter.into(),
                        event: event.into(),
                    })
                    .inc_by(n);
            }
        }
    }

    /// Records one formatter call's duration.
    pub fn observe_call(&self, formatter: &str, took: Duration) {
        self.latency
            .get_or_create(&FormatterLabels {
                formatter: formatter.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// The store's size on disk, as sampled when `/metrics` is read.
    pub fn store_bytes(&self, bytes: u64) {
        self.store_bytes.set(bytes as i64);
    }

    /// The number of open HTTP connections.
    pub fn http_connections(&self, open: usize) {
        self.http_open.set(open as i64);
    }

    /// The listener closed a connection (`header_timeout`, `evicted`, `refused`).
    pub fn http_connection_shed(&self, reason: &str) {
        self.http_shed
            .get_or_create(&ShedLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// Dispatch found a stored event it cannot read.
    pub fn unreadable_event(&self) {
        self.unreadable_seen.inc();
    }

    /// The OpenMetrics text exposition, with the outbox depth by state (`pending`, …) and the
    /// number of unreadable stored events, as sampled by the caller.
    pub fn render(&self, outbox: &[(&str, i64)], unreadable: i64) -> String {
        self.unreadable_now.set(unreadable);
        for (state, n) in outbox {
            self.outbox
                .get_or_create(&StateLabels {
                    state: (*state).into(),
                })
                .set(*n);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.event("http", "build_finished", false);
        m.event("http", "build_finished", false);
        m.event("http", "build_finished", true);
        m.formatter_call("a\"b", "ok");
        m.observe_call("short", Duration::from_micros(300));
        let text = m.render(&[("dead", 4)], 2);
        for want in [
            "tidings_events_total{source=\"http\",type=\"build_finished\",duplicate=\"false\"} 2\n",
            "tidings_events_total{source=\"http\",type=\"build_finished\",duplicate=\"true\"} 1\n",
            "tidings_formatter_calls_total{formatter=\"a\\\"b\",result=\"ok\"} 1\n",
            "tidings_formatter_call_seconds_bucket{le=\"0.0005\",formatter=\"short\"} 1\n",
            "tidings_formatter_call_seconds_bucket{le=\"0.00025\",formatter=\"short\"} 0\n",
            "tidings_formatter_call_seconds_count{formatter=\"short\"} 1\n",
            "tidings_outbox_deliveries{state=\"dead\"} 4\n",
            "tidings_events_unreadable 2\n",
            "# TYPE tidings_events counter\n",
            "# EOF\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }
}
