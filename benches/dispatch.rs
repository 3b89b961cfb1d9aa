//! Dispatch alone, without formatters or delivery: the history step and every reporter's lane
//! over one batch (256) of stored `build_finished` events of the failing sample (~4 KiB), with
//! 1 and 4 HTTP push reporters (`mode = ["all"]`, so each event is a delivery per reporter).
//!
//! - `lanes-take-what-history-read/N`: as the daemon runs, each lane takes the events the
//!   history step read ([`tidings::dispatch::ReadEvents`]);
//! - `lanes-read-the-store/N`, the baseline in the same run: the same, with what the history
//!   step read dropped before the lanes go, so each lane reads each event from the store again
//!   (as after a restart, or when a lane lags).
//!
//! `cargo bench --bench dispatch`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::sync::Arc;
use tidings::dispatch::Dispatcher;
use tidings::event::BodyFormat;
use tidings::store::{Durability, NewEvent, Store};

const EVENTS: usize = 256;

/// A store with `EVENTS` finished builds and a dispatcher with `reporters` HTTP push
/// reporters over it, as `serve` builds them.
fn dispatcher(dir: &Path, reporters: usize) -> Dispatcher {
    let sample = include_str!("../tests/data/buildbot/failure-full.json");
    let build: serde_json::Value = serde_json::from_str(sample).unwrap();
    let store = Arc::new(Store::open(dir, Durability::Normal).unwrap());
    let bodies: Vec<(String, String)> = (0..EVENTS as i64)
        .map(|i| {
            let mut b = build.clone();
            b["buildid"] = (1000 + i).into();
            b["number"] = (1 + i).into();
            (format!("m/build/{}/finished", 1000 + i), b.to_string())
        })
        .collect();
    let events: Vec<NewEvent<'_>> = bodies
        .iter()
        .map(|(key, body)| NewEvent {
            key,
            kind: "build_finished",
            source: "bench",
            body,
            format: BodyFormat::Build,
        })
        .collect();
    store.insert_events(&events, 1).unwrap();
    let mut config = format!("[server]\ndata_dir = {:?}\n", dir.display().to_string());
    for r in 0..reporters {
        config += &format!(
            "\n[[reporter.http_push]]\nname = \"push{r}\"\n\
             server_url = \"http://127.0.0.1:9/\"\nmode = [\"all\"]\n"
        );
    }
    let config = tidings::config::Config::parse(&config).unwrap();
    let d = tidings::daemon::planner(&config, dir, store, &[], None).unwrap();
    d.open_lanes().unwrap();
    d
}

/// The history step, then every lane to the end; `keep`: whether the lanes get what the
/// history step read.
fn dispatch(mut d: Dispatcher, keep: bool) -> Dispatcher {
    assert_eq!(d.record_pending().unwrap(), EVENTS);
    if !keep {
        d.read = Default::default();
    }
    for lane in 0..d.routes.len() {
        while d.dispatch_lane(lane).unwrap() > 0 {}
    }
    assert!(d.read.is_empty());
    d
}

fn lanes(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    g.sample_size(20);
    for reporters in [1, 4] {
        for (name, keep) in [
            ("lanes-take-what-history-read", true),
            ("lanes-read-the-store", false),
        ] {
            g.bench_function(format!("{name}/{reporters}"), |b| {
                b.iter_batched(
                    || {
                        let dir = tempfile::tempdir().unwrap();
                        let d = dispatcher(dir.path(), reporters);
                        (dir, d)
                    },
                    |(dir, d)| (dir, dispatch(d, keep)),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, lanes);
criterion_main!(benches);
