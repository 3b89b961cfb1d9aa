//! Resident memory of an idle `tidings serve`: with ten formatters loaded (the `short` example
//! in all seven guest languages, Python and JavaScript components among them, plus
//! `default-mail`, `html-log-tail` and `gerrit`), each the formatter of an HTTP push reporter,
//! beside the same daemon with one reporter and no formatter (the anchor), in the same run.
//!
//! Each daemon is started once to fill its compiled-module cache, then again and read four
//! times (and the ten formatters once more on a new data directory, compiling them on start):
//! after start-up, after one build went through every
//! reporter (every formatter called once, its delivery received by a peer on loopback), two
//! seconds later, and idle: once the warm instances (the components') have waited out their
//! `max_idle` (10 s) and been dropped. Peak is the daemon's own: it compiles in child
//! processes, whose memory is theirs. `cargo bench --bench memory` (build the guests first with
//! `cargo test`, which puts them in `<target>/guests`). Set `TIDINGS_BIN` to measure another
//! `tidings` binary (to compare two builds in one sitting: copy both the same way, since how a
//! binary was written changes how much of it is resident).

mod support;

use axum::Router;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The ten formatters: (name, module file in `<target>/guests`).
const FORMATTERS: [(&str, &str); 10] = [
    ("rust", "short-rust"),
    ("c", "short-c"),
    ("zig", "short-zig"),
    ("go", "short-go"),
    ("assemblyscript", "short-assemblyscript"),
    ("javascript", "short-javascript"),
    ("python", "short-python"),
    ("default_mail", "default-mail"),
    ("html_log_tail", "html-log-tail"),
    ("gerrit", "gerrit"),
];

/// `VmRSS` and `VmHWM` (peak) of process `pid`, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let m = status_fields(pid, ["VmRSS:", "VmHWM:"]);
    (m[0], m[1])
}

/// Fields of `/proc/<pid>/status` (values in KiB), 0 for one that is missing.
fn status_fields<const N: usize>(pid: u32, names: [&str; N]) -> [u64; N] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    names.map(field)
}

/// `tidings serve` with `reporters`, its data directory in `dir`.
fn start(reporters: &str, dir: &Path) -> support::Daemon {
    let config = dir.join("tidings.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n{reporters}"),
    )
    .unwrap();
    // An empty user cache: what the daemon does not find in its own it compiles, never copies.
    let user_cache = dir.join("user-cache");
    support::serve_with(&config, &[("TIDINGS_CACHE_DIR", user_cache.as_os_str())])
}

fn push(name: &str, hook: &str, formatter: Option<&str>) -> String {
    let formatter = formatter.map_or(String::new(), |f| format!("message_formatter = \"{f}\"\n"));
    format!(
        "[[reporter.http_push]]\nname = \"{name}\"\nserver_url = \"{hook}\"\nmode = [\"all\"]\n{formatter}\n"
    )
}

fn sample() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/buildbot/failure-full.json"),
    )
    .unwrap()
}

/// Memory after start, after one build through every reporter, two seconds later, and idle
/// (past the warm instances' `max_idle`). With `cached`, the daemon is started once before,
/// on the same data directory, so that the one measured loads its formatters from the
/// compiled-module cache, as every start but a new machine's first does; without, the one
/// measured compiles them (a new machine, a new tidings version).
fn measure(
    rt: &tokio::runtime::Runtime,
    reporters: &str,
    count: usize,
    seen: &AtomicUsize,
    cached: bool,
) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    if cached {
        drop(start(reporters, dir.path()));
    }
    let began = Instant::now();
    let daemon = start(reporters, dir.path());
    let ready = began.elapsed();
    let pid = daemon.child.id();
    std::thread::sleep(Duration::from_secs(1));
    let started = memory(pid);
    seen.store(0, Ordering::SeqCst);
    let url = format!("{}/api/v1/buildbot", daemon.addr);
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .body(sample())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.load(Ordering::SeqCst) < count {
        assert!(Instant::now() < deadline, "every delivery arrives");
        std::thread::sleep(Duration::from_millis(20));
    }
    let worked = memory(pid);
    std::thread::sleep(Duration::from_secs(2));
    let later = memory(pid);
    // The epoch ticker drops warm instances idle for max_idle, looking every second.
    std::thread::sleep(tidings::formatter::DEFAULT_MAX_IDLE + Duration::from_secs(2));
    let [anon, file] = status_fields(pid, ["RssAnon:", "RssFile:"]);
    let idle = memory(pid);
    Measured {
        rss: [started, worked, later, idle],
        anon,
        file,
        ready,
    }
}

/// VmRSS and VmHWM after start, after one build, two seconds later and idle; the idle VmRSS
/// split into anonymous memory and pages of mapped files (the binary, the compiled modules),
/// in KiB.
struct Measured {
    rss: [(u64, u64); 4],
    anon: u64,
    file: u64,
    /// From spawning the daemon to its listening line (formatters loaded).
    ready: Duration,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("memory: bench");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().fallback({
        let seen = seen.clone();
        move || async move {
            seen.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    });
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let anchor = measure(&rt, &push("plain", &hook, None), 1, &seen, true);
    let mut ten = String::new();
    for (name, file) in FORMATTERS {
        ten.push_str(&format!(
            "[[formatter]]\nname = \"{name}\"\nmodule = {:?}\n\n",
            support::guest(file)
        ));
    }
    for (name, _) in FORMATTERS {
        ten.push_str(&push(&format!("push_{name}"), &hook, Some(name)));
    }
    let loaded = measure(&rt, &ten, FORMATTERS.len(), &seen, true);
    let compiled = measure(&rt, &ten, FORMATTERS.len(), &seen, false);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "resident memory of `tidings serve` (VmRSS; peak VmHWM; idle: RssAnon + RssFile), MiB; ready: from spawn to listening"
    );
    for (name, m) in [
        ("one reporter, no formatter (anchor)", &anchor),
        ("ten formatters, each with a reporter", &loaded),
        ("the same, compiled on start", &compiled),
    ] {
        println!(
            "{name:<40} started {:>6.1}   after one build {:>6.1}   2 s later {:>6.1}   \
             idle {:>6.1} (anonymous {:.1}, file pages {:.1})   peak {:>6.1}   ready in {:.2} s",
            mib(m.rss[0].0),
            mib(m.rss[1].0),
            mib(m.rss[2].0),
            mib(m.rss[3].0),
            mib(m.anon),
            mib(m.file),
            mib(m.rss[3].1),
            m.ready.as_secs_f64()
        );
    }
    println!(
        "ten formatters cost {:.1} MiB idle over the anchor",
        mib(loaded.rss[3].0.saturating_sub(anchor.rss[3].0))
    );
}
