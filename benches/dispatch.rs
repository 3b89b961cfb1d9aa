//! Dispatch alone, without formatters or delivery: the history step and every reporter's lane
//! over one batch (256) of stored `build_finished` events of the failing sample (~4 KiB), with
//! 1 and 4 HTTP push reporters (`mode = ["all"]`, so each event is a delivery per reporter).
//! Three ways, same run:
//!
//! - `parsed-once/N`, as the daemon runs: ingest hands each event it parsed to the history
//!   step, and each lane takes what the history step read ([`tidings::dispatch::ReadEvents`]);
//! - `parsed-by-history/N`: nothing handed over by ingest (an event that came another way),
//!   so the history step parses each stored body, and the lanes take what it read;
//! - `parsed-by-every-step/N`, the baseline: the history step and every lane parse each stored
//!   body (as after a restart, or when a lane lags).
//!
//! `cargo bench --bench dispatch`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::sync::Arc;
use tidings::dispatch::{Dispatcher, ReadEvent};
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

/// How many steps parse each event (see the module's comment).
#[derive(Clone, Copy)]
enum Parsed {
    Once,
    ByHistory,
    ByEveryStep,
}

/// What ingest would have handed over for each stored event.
fn hand_over(d: &Dispatcher) {
    let events = d.store.snapshot().unwrap().events_after(0, EVENTS).unwrap();
    for ev in events {
        let build: tidings::event::Build = serde_json::from_str(&ev.body).unwrap();
        let event = tidings::event::Event::from_build(build).unwrap();
        let read = ReadEvent::new(event, BodyFormat::Build, &ev.body);
        d.read.hand_over(ev.id, Arc::new(read));
    }
}

/// The history step, then every lane to the end.
fn dispatch(mut d: Dispatcher, parsed: Parsed) -> Dispatcher {
    assert_eq!(d.record_pending().unwrap(), EVENTS);
    if let Parsed::ByEveryStep = parsed {
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
        for (name, parsed) in [
            ("parsed-once", Parsed::Once),
            ("parsed-by-history", Parsed::ByHistory),
            ("parsed-by-every-step", Parsed::ByEveryStep),
        ] {
            g.bench_function(format!("{name}/{reporters}"), |b| {
                b.iter_batched(
                    || {
                        let dir = tempfile::tempdir().unwrap();
                        let d = dispatcher(dir.path(), reporters);
                        if let Parsed::Once = parsed {
                            hand_over(&d);
                        }
                        (dir, d)
                    },
                    |(dir, d)| (dir, dispatch(d, parsed)),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, lanes);
criterion_main!(benches);
