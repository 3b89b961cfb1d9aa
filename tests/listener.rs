//! The HTTP listener against clients that hold connections: thousands of connections that
//! trickle their headers cannot keep a real client out, as `tidings serve` runs them.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::daemon::{Daemon, client, wait_until};
use tokio::io::AsyncWriteExt;

/// Raises this process's soft limit of open files to its hard limit; returns it.
fn raise_own_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls only read and write `lim`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// "Max open files" of a process: (soft, hard).
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let mut words = line.split_whitespace().skip(3);
    (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    )
}

/// One client that opens a connection, sends a request line and then one header byte a second,
/// and opens another when the daemon closes it, until `stop`.
async fn trickle(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, opened: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Relaxed) {
        // A refused connect (the backlog is full) is tried again at once: the pressure is the
        // point.
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::task::yield_now().await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        if s.write_all(b"POST /api/v1/buildbot HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .is_err()
        {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            // The trickle itself: one header byte a second.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if s.write_all(b"a").await.is_err() {
                break;
            }
        }
    }
}

#[test]
fn five_thousand_trickling_connections_cannot_keep_a_client_out() {
    let ours = raise_own_fd_limit();
    // 5,000 client sockets here and a few more for the test itself.
    let clients = 5_000.min(ours.saturating_sub(200) as usize);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\ningest_token = \"t0ken\"\n",
    )
    .unwrap();
    // A daemon started with a soft limit of 1,024 open files under a hard one of 4,096 (fewer
    // than the clients below): it raises the soft limit, and its connection cap keeps it under.
    let daemon = Daemon::start_after(&config, Some("ulimit -Sn 1024 && ulimit -Hn 4096"));
    assert_eq!(
        open_files_limit(daemon.child.id()),
        ("4096".to_owned(), "4096".to_owned()),
        "the soft limit is raised to the hard one"
    );
    let addr: std::net::SocketAddr = daemon.addr.trim_start_matches("http://").parse().unwrap();

    // The slow clients on a runtime of their own, as if on another machine: on the client's
    // runtime, 5,000 tasks would hold its request back between its connect and its write
    // (long enough, on a busy machine, for the table to turn over and evict it).
    let flood = tokio::runtime::Runtime::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    for _ in 0..clients {
        flood.spawn(trickle(addr, stop.clone(), opened.clone()));
    }
    wait_until(
        "the slow clients to connect",
        Duration::from_secs(60),
        || opened.load(Ordering::Relaxed) >= clients,
    );
    // The daemon is under pressure once it has had to close slow connections to make room.
    wait_until(
        "slow connections to be shed",
        Duration::from_secs(60),
        || {
            client::get(&format!("{}/metrics", daemon.addr))
                .contains("tidings_http_connections_shed_total{reason=\"evicted\"}")
        },
    );

    let build =
        std::fs::read_to_string(support::repo().join("tests/data/buildbot/success-full.json"))
            .unwrap();
    let mut took = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (status, body) = rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/api/v1/buildbot", daemon.addr))
                .bearer_auth("t0ken")
                .header("content-type", "application/json")
                .body(build.clone())
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("the post reaches the daemon");
            (r.status().as_u16(), r.text().await.unwrap())
        });
        took.push(start.elapsed());
        assert_eq!(status, 202, "{body}");
        let health = rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}/healthz", daemon.addr))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("/healthz answers")
                .text()
                .await
                .unwrap()
        });
        assert_eq!(health, "ok\n");
    }
    // The figure, for the record (timing is a benchmark's business, not a test's).
    took.sort();
    eprintln!(
        "with {clients} slow clients: an authenticated post answered in {:?} (median of 5), {:?} at most",
        took[2], took[4]
    );
    stop.store(true, Ordering::Relaxed);
    flood.shutdown_timeout(Duration::from_secs(1));
}
