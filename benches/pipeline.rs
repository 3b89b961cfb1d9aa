//! End-to-end throughput and latency of `tidings serve`: HTTP ingest → committed event →
//! dispatch (the `short` WASM formatter) → committed outbox row → HTTP push to a peer on
//! loopback. Baseline, in the same run: the same clients posting straight to the same peer (a
//! plain HTTP echo), which is the floor of any HTTP-in/HTTP-out relay on this machine.
//!
//! Prints sustained events/s (events over the time from the first post to the last arrival),
//! the p50/p99 of per-event latency (post sent → push received) and the CPU time the daemon
//! and the bench itself spent per event, for: the clients posting as fast as they can, posting
//! at 2,000 events/s, and (tidings only) posting builds that all belong to one build request,
//! whose deliveries go out one at a time in order. `cargo bench --bench pipeline`
//! (build the guests first with `cargo test`, which puts `short.wasm` in `<target>/guests`).
//! Every phase runs in each of three rounds, the phases in turn, and each row is the round
//! with the median events/s (p99 for the paced rows), every round's figure beside it. Set `TIDINGS_BENCH_EVENTS` to
//! change the event count (default 4000), `TIDINGS_BENCH_ROUNDS` the rounds (default 3),
//! `TIDINGS_BIN` to measure another `tidings` binary.

mod support;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const CLIENTS: usize = 16;

/// Build ids each round of a phase has to itself.
const ROUND_IDS: i64 = 100_000;

#[derive(Default)]
struct Peer {
    arrivals: Mutex<HashMap<String, Instant>>,
    done: Notify,
    expect: Mutex<usize>,
}

async fn receive(State(peer): State<Arc<Peer>>, headers: HeaderMap, body: String) -> &'static str {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_str::<Value>(&body)
                .ok()
                .map(|v| format!("direct-{}", v["buildid"]))
        })
        .unwrap_or_default();
    let n = {
        let mut a = peer.arrivals.lock().unwrap();
        a.entry(key).or_insert_with(Instant::now);
        a.len()
    };
    if n >= *peer.expect.lock().unwrap() {
        peer.done.notify_one();
    }
    "ok"
}

fn sample(id: i64) -> String {
    sample_of(id, id)
}

/// The sample as build `id` of build request `request`.
fn sample_of(id: i64, request: i64) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/buildbot/failure-full.json"),
    )
    .unwrap();
    let mut b: Value = serde_json::from_str(&text).unwrap();
    b["buildid"] = id.into();
    b["number"] = id.into();
    b["buildrequestid"] = request.into();
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{id}").into();
    b.to_string()
}

struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time the daemon spent per event (zero for the baseline, which has no daemon).
    daemon_cpu: Duration,
    /// CPU time this process (clients and peer) spent per event.
    bench_cpu: Duration,
}

/// CPU time (user + system) process `pid` has used so far, from `/proc/<pid>/stat` (Linux).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// Posts `n` events to `url` from `CLIENTS` clients; `key(id)` is how the peer will know each.
async fn run(
    url: &str,
    n: usize,
    peer: &Arc<Peer>,
    key: impl Fn(i64) -> String,
    first_id: i64,
    rate: Option<f64>,
    daemon: Option<u32>,
) -> Figures {
    let daemon_cpu = || daemon.map_or(Duration::ZERO, |p| cpu_time(&p.to_string()));
    let (daemon_before, bench_before) = (daemon_cpu(), cpu_time("self"));
    peer.arrivals.lock().unwrap().clear();
    *peer.expect.lock().unwrap() = n;
    let bodies: Vec<(i64, String)> = (0..n as i64)
        .map(|i| {
            let id = first_id + i;
            // From 7,000,000 on, every build belongs to one build request.
            let request = if first_id >= 7_000_000 { first_id } else { id };
            (id, sample_of(id, request))
        })
        .collect();
    let sent: Arc<Mutex<HashMap<i64, Instant>>> = Default::default();
    let client = reqwest::Client::new();
    let start = Instant::now();
    let total = bodies.len();
    let queue = Arc::new(Mutex::new(bodies));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (queue, sent, client, url) =
            (queue.clone(), sent.clone(), client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let (id, body, left) = {
                    let mut q = queue.lock().unwrap();
                    let Some((id, body)) = q.pop() else {
                        break;
                    };
                    (id, body, q.len())
                };
                if let Some(rate) = rate {
                    // Paced: the i-th event is due at start + i / rate.
                    let i = (total - 1 - left) as f64;
                    tokio::time::sleep_until((start + Duration::from_secs_f64(i / rate)).into())
                        .await;
                }
                sent.lock().unwrap().insert(id, Instant::now());
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        while peer.arrivals.lock().unwrap().len() < n {
            peer.done.notified().await;
        }
    })
    .await
    .expect("every event arrives");
    let arrivals = peer.arrivals.lock().unwrap().clone();
    let sent = sent.lock().unwrap();
    let last = arrivals.values().max().copied().unwrap();
    let mut lat: Vec<Duration> = sent
        .iter()
        .map(|(id, at)| arrivals[&key(*id)].duration_since(*at))
        .collect();
    lat.sort();
    Figures {
        daemon_cpu: daemon_cpu().saturating_sub(daemon_before) / n as u32,
        bench_cpu: cpu_time("self").saturating_sub(bench_before) / n as u32,
        per_sec: n as f64 / last.duration_since(start).as_secs_f64(),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("pipeline: bench");
        return;
    }
    let n: usize = std::env::var("TIDINGS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    assert!(n as i64 <= ROUND_IDS, "at most {ROUND_IDS} events a run");
    let rounds: usize = std::env::var("TIDINGS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let peer = Arc::new(Peer::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let peer_addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(receive).with_state(peer.clone());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let hook = format!("http://{peer_addr}/hook");
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n\
             [[formatter]]\nname = \"short\"\nmodule = {:?}\n\n\
             [[reporter.http_push]]\nname = \"push\"\nserver_url = \"{hook}\"\nmode = [\"all\"]\n\
             message_formatter = \"short\"\nconcurrency = 32\n",
            support::guest("short")
        ),
    )
    .unwrap();
    let daemon = support::serve(&config);
    let addr = daemon.addr.clone();
    let ingest = format!("{addr}/api/v1/buildbot");
    let key = |id: i64| {
        tidings::reporters::http_push::idempotency_key([format!(
            "http://127.0.0.1:8010/|build/{id}/build_finished|push|{hook}"
        )
        .as_str()])
    };

    // Warm up both paths (connections, the formatter's compiled module, SQLite pages).
    let direct = |id| format!("direct-{id}");
    let pid = Some(daemon.child.id());
    rt.block_on(run(&hook, 200, &peer, direct, 1_000_000, None, None));
    rt.block_on(run(&ingest, 200, &peer, key, 2_000_000, None, pid));
    // Rounds, each phase in turn, so that a slow minute of the machine weighs on one round of
    // each rather than on one phase; each row is its median round.
    let mut rows: [Vec<Figures>; 5] = Default::default();
    let paced = 2000.0;
    for round in 0..rounds as i64 {
        let at = |base: i64| base + round * ROUND_IDS;
        rows[0].push(rt.block_on(run(&hook, n, &peer, direct, at(3_000_000), None, None)));
        rows[1].push(rt.block_on(run(&ingest, n, &peer, key, at(4_000_000), None, pid)));
        // Latency at a sustained offered rate below saturation, for both.
        rows[2].push(rt.block_on(run(
            &hook,
            n,
            &peer,
            direct,
            at(5_000_000),
            Some(paced),
            None,
        )));
        rows[3].push(rt.block_on(run(&ingest, n, &peer, key, at(6_000_000), Some(paced), pid)));
        // Every delivery under one build request: they go out one after another, in order.
        rows[4].push(rt.block_on(run(&ingest, n, &peer, key, at(7_000_000), None, pid)));
    }
    drop(daemon);
    println!(
        "{n} events, {CLIENTS} concurrent clients, payload: the failing sample build (~{} KiB); \
         the median of {rounds} round(s), every round's figure in brackets",
        sample(1).len() / 1024
    );
    let names = [
        "saturated, baseline: plain HTTP echo",
        "saturated, tidings: ingest → outbox → push",
        "2000/s offered, baseline: plain HTTP echo",
        "2000/s offered, tidings: ingest → outbox → push",
        "one build request, tidings: in order, one at a time",
    ];
    let mut medians = Vec::new();
    for (row, (name, mut all)) in names.into_iter().zip(rows).enumerate() {
        // A paced row's figure is its p99 (its events/s is the rate offered); the others'
        // their events/s.
        let each: Vec<String> = if row == 2 || row == 3 {
            all.sort_by_key(|f| f.p99);
            all.iter()
                .map(|f| format!("p99 {:.2} ms", f.p99.as_secs_f64() * 1e3))
                .collect()
        } else {
            all.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
            all.iter().map(|f| format!("{:.0}/s", f.per_sec)).collect()
        };
        let f = all.swap_remove(all.len() / 2);
        println!(
            "{name:<50} {:>8.0} events/s   p50 {:>7.2} ms   p99 {:>7.2} ms   CPU/event: daemon {:>4} µs, clients+peer {:>4} µs   [{}]",
            f.per_sec,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.daemon_cpu.as_micros(),
            f.bench_cpu.as_micros(),
            each.join(", "),
        );
        medians.push(f);
    }
    let (base, ours) = (&medians[0], &medians[1]);
    println!(
        "ratio: {:.2}× the baseline's time per event",
        base.per_sec / ours.per_sec
    );
}
