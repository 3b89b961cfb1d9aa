//! `tidings serve` as a real process: ingest → dispatch → outbox → HTTP push, against a scripted
//! HTTP peer on 127.0.0.1. Covers the retry classes, `kill -9` crash safety, SIGHUP reload and
//! SIGTERM.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::daemon::{Daemon, Peer, Seen, client, seen_on, settled, start_peer, wait_until};
use tidings::store::{State as DState, Store};

fn sample(buildid: i64) -> Value {
    let text =
        std::fs::read_to_string(support::repo().join("tests/data/buildbot/success-full.json"))
            .unwrap();
    let mut b: Value = serde_json::from_str(&text).unwrap();
    b["buildid"] = buildid.into();
    b["number"] = buildid.into();
    b["buildrequestid"] = buildid.into();
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{buildid}").into();
    b
}

fn write_config(dir: &Path, reporters: &str) -> PathBuf {
    let path = dir.join("tidings.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nshutdown_grace = \"2s\"\n\n{reporters}"
        ),
    )
    .unwrap();
    path
}

fn push(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[reporter.http_push]]\nname = \"{name}\"\nserver_url = \"{url}\"\nmode = [\"all\"]\nretry_delay = \"50ms\"\nretry_max_delay = \"200ms\"\n{extra}\n"
    )
}

#[test]
fn retry_classes_against_a_scripted_peer() {
    let peer = Arc::new(Peer::default());
    {
        let mut s = peer.script.lock().unwrap();
        s.insert("/a".into(), [(500, None), (500, None), (200, None)].into());
        s.insert("/b".into(), [(429, Some(2)), (200, None)].into());
        s.insert("/c".into(), [(400, None)].into());
    }
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &[
            push("a", &format!("http://{p}/a"), ""),
            push("b", &format!("http://{p}/b"), ""),
            push("c", &format!("http://{p}/c"), ""),
        ]
        .concat(),
    );
    let daemon = Daemon::start(&config);
    daemon.post(&sample(7));
    let seen = |path: &str| -> Vec<Seen> {
        peer.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    };
    wait_until(
        "3 requests on /a and 2 on /b",
        Duration::from_secs(20),
        || seen("/a").len() >= 3 && seen("/b").len() >= 2 && !seen("/c").is_empty(),
    );
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    let by_reporter = |name: &str| {
        let row = store
            .list(None, 100)
            .unwrap()
            .into_iter()
            .find(|d| d.reporter == name)
            .unwrap();
        store.delivery(row.id).unwrap().unwrap()
    };
    wait_until("all three settled", Duration::from_secs(10), || {
        ["a", "b", "c"]
            .iter()
            .all(|r| matches!(by_reporter(r).state, DState::Delivered | DState::Dead))
    });
    // 500, 500, 200: delivered on attempt 3, the same Idempotency-Key every time.
    let a = by_reporter("a");
    assert_eq!((a.state, a.attempts), (DState::Delivered, 3));
    let keys: Vec<String> = seen("/a").iter().map(|s| s.key.clone()).collect();
    assert!(keys[0].starts_with("tidings-") && keys.iter().all(|k| *k == keys[0]));
    let log = store.log(a.id).unwrap();
    assert_eq!(
        log.iter().map(|l| l.result.as_str()).collect::<Vec<_>>(),
        ["retry", "retry", "delivered"]
    );
    assert!(log[0].detail.starts_with("HTTP 500"), "{}", log[0].detail);
    // The body is the build dict as posted (Buildbot 4.x wire).
    assert_eq!(seen("/a")[2].body["buildid"], 7);
    // 429 with Retry-After: 2 waits two seconds, not the 50 ms backoff.
    let b = seen("/b");
    assert_eq!(by_reporter("b").state, DState::Delivered);
    let gap = b[1].at - b[0].at;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
    // 400: dead after one attempt, with the peer's answer.
    let c = by_reporter("c");
    assert_eq!((c.state, c.attempts), (DState::Dead, 1));
    assert!(
        c.last_error
            .as_deref()
            .unwrap()
            .starts_with("permanent failure: HTTP 400"),
        "{:?}",
        c.last_error
    );
    assert_eq!(seen("/c").len(), 1);
    // Why each delivery exists.
    assert!(
        a.explanation.contains("reporter \"a\" (http_push)"),
        "{}",
        a.explanation
    );
    assert!(
        a.explanation.contains("matched by passing"),
        "{}",
        a.explanation
    );

    // SIGTERM: a clean exit.
    let mut daemon = daemon;
    daemon.signal("-TERM");
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn kill_9_loses_nothing_and_repeats_nothing() {
    // Reserve a port for the peer, and keep it down for now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &push("d", &format!("http://{port}/d"), "max_attempts = 10000"),
    );
    let daemon = Daemon::start(&config);
    for id in 1..=200 {
        let r = daemon.post(&sample(id));
        assert_eq!(r["duplicate"], false);
    }
    // Every event was acknowledged: committed. Now the hard way down.
    daemon.signal("-KILL");
    drop(daemon);
    let daemon = Daemon::start(&config);
    // A repeat of an acknowledged event is recognised after the restart.
    assert_eq!(daemon.post(&sample(200))["duplicate"], true);
    let peer = Arc::new(Peer::default());
    start_peer(port, peer.clone());
    let unique = || {
        let seen = peer.seen.lock().unwrap();
        let mut keys: Vec<&str> = seen.iter().map(|s| s.key.as_str()).collect();
        keys.sort();
        keys.dedup();
        (keys.len(), seen.len())
    };
    wait_until("200 deliveries", Duration::from_secs(60), || {
        unique().0 >= 200
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let (distinct, total) = unique();
    assert_eq!((distinct, total), (200, 200), "every event once");
    let mut ids: Vec<i64> = peer
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.body["buildid"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
}

#[test]
fn sighup_reloads_a_valid_config_and_refuses_a_broken_one() {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &push("first", &format!("http://{p}/first"), ""));
    let daemon = Daemon::start(&config);
    daemon.post(&sample(1));
    let paths = || -> Vec<String> {
        peer.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.path.clone())
            .collect()
    };
    wait_until("the first delivery", Duration::from_secs(10), || {
        paths() == ["/first"]
    });
    // A broken config is refused; the running one keeps delivering.
    std::fs::write(&config, "[server]\nlisten = 5\n").unwrap();
    daemon.signal("-HUP");
    wait_until("the reload to be refused", Duration::from_secs(10), || {
        daemon.log.contents().contains("config reload refused")
    });
    daemon.post(&sample(2));
    wait_until(
        "delivery under the old config",
        Duration::from_secs(10),
        || paths().len() == 2,
    );
    assert_eq!(paths(), ["/first", "/first"]);
    // A valid one replaces it.
    write_config(
        dir.path(),
        &push("second", &format!("http://{p}/second"), ""),
    );
    daemon.signal("-HUP");
    wait_until("the reload", Duration::from_secs(10), || {
        daemon.log.contents().contains("config reloaded")
    });
    daemon.post(&sample(3));
    wait_until(
        "delivery under the new config",
        Duration::from_secs(10),
        || paths().len() == 3,
    );
    assert_eq!(paths()[2], "/second");
}

#[test]
fn a_failing_formatter_degrades_or_skips_as_configured() {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    // A valid WASI command that traps at once.
    let broken = wat::parse_str(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") unreachable))"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("broken.wasm"), broken).unwrap();
    let formatter = "[[formatter]]\nname = \"broken\"\nmodule = \"broken.wasm\"\n\n";
    let config = write_config(
        dir.path(),
        &[
            formatter.to_owned(),
            push(
                "degraded",
                &format!("http://{p}/degraded"),
                "message_formatter = \"broken\"",
            ),
            push(
                "skipped",
                &format!("http://{p}/skipped"),
                "message_formatter = \"broken\"\non_error = \"skip\"",
            ),
        ]
        .concat(),
    );
    let daemon = Daemon::start(&config);
    daemon.post(&sample(5));
    wait_until("the degraded delivery", Duration::from_secs(10), || {
        !peer.seen.lock().unwrap().is_empty()
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let seen = peer.seen.lock().unwrap().clone();
    // on_error = "default": the built-in payload (the build dict) goes out; "skip": nothing.
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/degraded");
    assert_eq!(seen[0].body["buildid"], 5);
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    let rows = store.list(None, 10).unwrap();
    assert_eq!(rows.len(), 1);
    let d = store.delivery(rows[0].id).unwrap().unwrap();
    assert!(
        d.explanation
            .contains("DEGRADED: formatter \"broken\" failed (Trap)"),
        "{}",
        d.explanation
    );
    // Counted by kind in /metrics.
    let metrics = client::get(&format!("{}/metrics", daemon.addr));
    assert!(
        metrics.contains("tidings_formatter_calls_total{formatter=\"broken\",result=\"Trap\"} 2"),
        "{metrics}"
    );
    // `outbox list` marks it too.
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["outbox", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("/degraded  DEGRADED (the formatter failed: outbox show)"),
        "{list}"
    );
}

#[test]
fn every_mode_and_filter_reports_through_the_daemon_exactly_what_buildbot_reports() {
    // The sequence (success, failure, failure, success, exception, retry, cancelled, skipped,
    // warnings, failure) and each mode's reported builds come from Buildbot 4.3's own generator
    // (scripts/buildbot-mode-table.py). Each mode is one reporter with a path of its own.
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(support::repo().join("tests/data/modes.json")).unwrap(),
    )
    .unwrap();
    let sequence: Vec<i64> = serde_json::from_value(table["sequence"].clone()).unwrap();
    let all = table["modes"][0]["reported"].clone();
    assert_eq!(table["modes"][0]["mode"], "all");
    let mut cases: Vec<(String, String, Value)> = Vec::new(); // (path, settings, expected)
    for (i, row) in table["modes"].as_array().unwrap().iter().enumerate() {
        cases.push((
            format!("/mode-{i}"),
            format!("mode = {}", row["mode"]),
            row["reported"].clone(),
        ));
    }
    // The filters (the samples are builder "runtests", tags test+reporter, branch main,
    // scheduler force).
    for (name, settings, expected) in [
        (
            "builders-other",
            "builders = [\"other\"]",
            Value::Array(vec![]),
        ),
        (
            "builders-runtests",
            "builders = [\"runtests\"]",
            all.clone(),
        ),
        ("tags", "tags = [\"nope\", \"reporter\"]", all.clone()),
        (
            "branch-release",
            "branches = [\"release\"]",
            Value::Array(vec![]),
        ),
        ("scheduler-force", "schedulers = [\"force\"]", all.clone()),
    ] {
        cases.push((
            format!("/filter-{name}"),
            format!("mode = \"all\"\n{settings}"),
            expected,
        ));
    }
    let peer = Arc::new(Peer::default());
    let peer_addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut reporters = String::new();
    for (i, (path, settings, _)) in cases.iter().enumerate() {
        reporters.push_str(&format!(
            "[[reporter.http_push]]\nname = \"r{i}\"\nserver_url = \"http://{peer_addr}{path}\"\nreport_new = false\n{settings}\n\n"
        ));
    }
    let config = write_config(dir.path(), &reporters);
    let daemon = Daemon::start(&config);
    for (i, results) in sequence.iter().enumerate() {
        let n = i as i64 + 1;
        let mut b = sample(n);
        b["results"] = (*results).into();
        daemon.post(&b);
    }
    let total: usize = cases.iter().map(|c| c.2.as_array().unwrap().len()).sum();
    wait_until("every notification", Duration::from_secs(30), || {
        peer.seen.lock().unwrap().len() >= total
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    assert_eq!(peer.seen.lock().unwrap().len(), total);
    for (path, settings, expected) in &cases {
        let mut got: Vec<i64> = seen_on(&peer, path)
            .iter()
            .map(|s| s.body["number"].as_i64().unwrap())
            .collect();
        got.sort_unstable();
        let expected: Vec<i64> = serde_json::from_value(expected.clone()).unwrap();
        assert_eq!(got, expected, "{settings}");
    }
}

#[test]
fn buildsets_requests_and_workers_reach_the_reporters_that_ask_for_them() {
    let peer = Arc::new(Peer::default());
    let peer_addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let url = |path: &str| format!("http://{peer_addr}{path}");
    // Like push(), with the mode left to `extra`.
    let push = |name: &str, url: &str, extra: &str| {
        push(name, url, extra).replace("mode = [\"all\"]\n", "")
    };
    let config = write_config(
        dir.path(),
        &[
            push("builds", &url("/builds"), "mode = \"all\""),
            push(
                "sets",
                &url("/sets"),
                "build_set_summary = true\nmode = [\"failing\"]",
            ),
            push(
                "sets-passing",
                &url("/sets-passing"),
                "build_set_summary = true\nmode = [\"passing\"]",
            ),
            push(
                "requests",
                &url("/requests"),
                "report_requests = true\nreport_new = false\nmode = [\"passing\"]",
            ),
            push(
                "workers",
                &url("/workers"),
                "workers = [\"w1\", \"w2\"]\nreport_new = false\nmode = [\"passing\"]",
            ),
        ]
        .concat(),
    );
    let daemon = Daemon::start(&config);
    let master = "http://127.0.0.1:8010/";
    let request = |brid: i64| {
        let mut b = sample(brid);
        for k in [
            "buildid",
            "number",
            "results",
            "complete_at",
            "started_at",
            "state_string",
        ] {
            b.as_object_mut().unwrap().remove(k);
        }
        b["complete"] = false.into();
        b["url"] = format!("{master}#/buildrequests/{brid}").into();
        b
    };
    let ev = |kind: &str, extra: Value| {
        let mut e = serde_json::json!({"schema_version": 1, "type": kind, "master": master});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    let mut started = sample(50);
    started["complete"] = false.into();
    started["results"] = Value::Null;
    let mut failed = sample(50);
    failed["results"] = 2.into();
    let mut cancelled = request(51);
    cancelled["complete"] = true.into();
    cancelled["results"] = 6.into();
    for e in [
        ev(
            "buildrequest_new",
            serde_json::json!({"build": request(50)}),
        ),
        ev("build_started", serde_json::json!({"build": started})),
        ev("build_finished", serde_json::json!({"build": failed})),
        ev(
            "buildrequest_new",
            serde_json::json!({"build": request(51)}),
        ),
        ev(
            "buildrequest_cancelled",
            serde_json::json!({"build": cancelled}),
        ),
        ev(
            "buildset_complete",
            serde_json::json!({
            "buildset": {"bsid": 9, "complete": true, "results": 2},
            "builds": [failed]}),
        ),
        ev(
            "worker_missing",
            serde_json::json!({"worker": {"name": "w1", "notify": ["ops@example.org"], "last_connection": "Mon"}}),
        ),
        ev(
            "worker_missing",
            serde_json::json!({"worker": {"name": "w2", "last_connection": "Mon"}}),
        ),
        ev(
            "worker_missing",
            serde_json::json!({"worker": {"name": "w3", "notify": ["ops@example.org"], "last_connection": "Mon"}}),
        ),
        ev(
            "worker_connected",
            serde_json::json!({"id": "c1", "worker": {"name": "w1"}}),
        ),
    ] {
        assert_eq!(daemon.post_event(&e)["duplicate"], false, "{e}");
    }
    wait_until("every notification", Duration::from_secs(20), || {
        peer.seen.lock().unwrap().len() >= 7
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let seen = peer.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 7, "{seen:#?}");

    // Build start and finish, as HttpStatusPush would post them.
    let builds = seen_on(&peer, "/builds");
    let phases: Vec<_> = builds
        .iter()
        .map(|s| (s.body["buildid"].as_i64(), s.body["complete"].as_bool()))
        .collect();
    assert_eq!(phases, [(Some(50), Some(false)), (Some(50), Some(true))]);
    // One summary for the buildset, with the build the mode kept; none where the mode kept none.
    let sets = seen_on(&peer, "/sets");
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].body["buildset"]["bsid"], 9);
    assert_eq!(sets[0].body["builds"][0]["buildid"], 50);
    assert!(seen_on(&peer, "/sets-passing").is_empty());
    // The requests, each request's in order, with no buildid.
    let requests: Vec<_> = seen_on(&peer, "/requests")
        .iter()
        .map(|s| {
            (
                s.body["buildrequestid"].as_i64().unwrap(),
                s.body["complete"].as_bool().unwrap(),
                s.body.get("buildid").is_some(),
            )
        })
        .collect();
    let mut for_51: Vec<_> = requests.iter().filter(|r| r.0 == 51).collect();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.contains(&(50, false, false)));
    assert_eq!(
        for_51.drain(..).copied().collect::<Vec<_>>(),
        [(51, false, false), (51, true, false)]
    );
    // Only the listed worker that has someone to notify.
    let workers = seen_on(&peer, "/workers");
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].body["name"], "w1");
    assert_eq!(workers[0].body["notify"][0], "ops@example.org");
}

#[test]
fn a_full_store_answers_503_and_loses_nothing() {
    // `max_store_size` makes SQLite fail exactly as on a full disk ("database or disk is full").
    let peer = Arc::new(Peer::default());
    let peer_addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let reporter = push("p", &format!("http://{peer_addr}/hook"), "");
    let full = write_config(dir.path(), &reporter);
    let text = std::fs::read_to_string(&full)
        .unwrap()
        .replace("[server]\n", "[server]\nmax_store_size = \"160KiB\"\n");
    std::fs::write(&full, text).unwrap();
    let daemon = Daemon::start(&full);
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for id in 1..=300 {
        let (status, body) =
            client::blocking_post(&format!("{}/api/v1/buildbot", daemon.addr), &sample(id));
        match status {
            202 => acked.push(id),
            503 => {
                assert!(
                    body.contains("max_store_size") || body.contains("database or disk is full"),
                    "{body}"
                );
                refused.push(id);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        !acked.is_empty() && !refused.is_empty(),
        "acked {acked:?}, refused {refused:?}"
    );
    // While full, /healthz says so (a load balancer or a probe sees it), with the reason.
    let (status, health) = client::get_with_status(&format!("{}/healthz", daemon.addr));
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("the store is full"), "{health}");
    let metrics = client::get(&format!("{}/metrics", daemon.addr));
    assert!(metrics.contains("tidings_store_bytes "), "{metrics}");
    drop(daemon); // whatever was in flight: kill -9

    // Room again: everything acknowledged is delivered; what was refused can be sent again.
    let roomy = write_config(dir.path(), &reporter);
    let daemon = Daemon::start(&roomy);
    for id in &refused {
        assert_eq!(daemon.post(&sample(*id))["duplicate"], false);
    }
    wait_until("every event delivered", Duration::from_secs(60), || {
        peer.seen.lock().unwrap().len() >= 300
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    // A delivery whose outcome could not be recorded (the store was full) is sent again after
    // the restart, with the same Idempotency-Key: the peer sees every event, and can drop the
    // repeat.
    let seen = peer.seen.lock().unwrap();
    let mut keys = std::collections::HashMap::new();
    for s in seen.iter() {
        let id = s.body["buildid"].as_i64().unwrap();
        let first = keys.entry(id).or_insert_with(|| s.key.clone());
        assert_eq!(*first, s.key, "a repeat of {id} has another key");
    }
    let mut ids: Vec<i64> = keys.into_keys().collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=300).collect::<Vec<_>>(), "every event delivered");
    assert!(
        seen.len() - 300 <= 8,
        "at most the deliveries in flight repeat: {}",
        seen.len()
    );
}

#[test]
fn outbox_list_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    {
        let store =
            Store::open(&dir.path().join("data"), tidings::store::Durability::Normal).unwrap();
        let ev = store
            .insert_events(
                &[tidings::store::NewEvent {
                    key: "e",
                    kind: "build_finished",
                    source: "test",
                    body: "{}",
                    format: tidings::event::BodyFormat::Build,
                }],
                1,
            )
            .unwrap()[0]
            .id;
        let keys: Vec<String> = (0..2000).map(|i| format!("d{i}")).collect();
        let rows: Vec<tidings::store::NewDelivery<'_>> = keys
            .iter()
            .map(|k| tidings::store::NewDelivery {
                key: k,
                event_id: ev,
                reporter: "push",
                destination: "http://x/",
                order_key: None,
                payload: "{}",
                explanation: "",
            })
            .collect();
        store.enqueue(&rows, 1).unwrap();
    }
    // `tidings outbox list | head -3`: the reader goes away after a few lines.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["outbox", "--config"])
        .arg(&config)
        .args(["list", "--limit", "2000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        result.status.success() || result.status.signal() == Some(13),
        "{:?}: {stderr}",
        result.status
    );
}

/// What ingest accepted is dispatched as ingest read it: a build dict that happens to carry a
/// `schema_version` key used to be acknowledged, then read back as an envelope and skipped.
#[test]
fn an_acknowledged_build_dict_with_a_schema_version_key_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let config = write_config(dir.path(), &push("p", &format!("http://{p}/p"), ""));
    let daemon = Daemon::start(&config);
    let body = serde_json::json!({"buildid": 400010, "masterid": 1, "complete": true,
                                  "results": 2, "schema_version": 1});
    daemon.post(&body);
    wait_until("the delivery", Duration::from_secs(20), || {
        !seen_on(&peer, "/p").is_empty()
    });
    assert_eq!(seen_on(&peer, "/p")[0].body, body, "the dict as received");
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    assert_eq!(store.unreadable_count().unwrap(), 0);
}

#[test]
fn a_formatter_that_keeps_timing_out_does_not_slow_other_reporters() {
    // Two daemons in one run: one with only a fast reporter (the baseline), one where another
    // reporter's formatter times out on every call. The fast reporter's lane does not wait for
    // the slow one's, and after TRIP_AFTER timeouts the formatter is short-circuited (its
    // reporter gets the built-in payload at once, marked degraded), so the slow reporter's own
    // builds do not take builds × the time limit either.
    let builds = 100;
    let run = |with_slow: bool| -> (Duration, Arc<Peer>, String) {
        let peer = Arc::new(Peer::default());
        let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("loop.wasm"),
            support::wat(
                r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
            ),
        )
        .unwrap();
        let mut reporters = push("fast", &format!("http://{p}/fast"), "report_new = false");
        if with_slow {
            reporters = format!(
                "[[formatter]]\nname = \"loop\"\nmodule = \"loop.wasm\"\ntimeout = \"100ms\"\n\n{reporters}{}",
                push(
                    "slow",
                    &format!("http://{p}/slow"),
                    "report_new = false\nmessage_formatter = \"loop\""
                )
            );
        }
        let config = write_config(dir.path(), &reporters);
        let daemon = Daemon::start(&config);
        let started = std::time::Instant::now();
        for n in 1..=builds {
            daemon.post(&sample(n));
        }
        wait_until(
            "the fast reporter's builds",
            Duration::from_secs(120),
            || seen_on(&peer, "/fast").len() == builds as usize,
        );
        let took = started.elapsed();
        if with_slow {
            wait_until(
                "the slow reporter's builds",
                Duration::from_secs(30),
                || seen_on(&peer, "/slow").len() == builds as usize,
            );
        }
        let metrics = client::get(&format!("{}/metrics", daemon.addr));
        drop(daemon);
        (took, peer, metrics)
    };
    let (baseline, _, _) = run(false);
    let (took, peer, metrics) = run(true);
    eprintln!(
        "{builds} builds to the fast reporter: {baseline:?} alone, {took:?} beside a timing-out formatter"
    );
    // Without the breaker the timeouts alone take builds × 100 ms = 10 s.
    assert!(
        took < baseline * 4 + Duration::from_secs(2),
        "{took:?} with a timing-out formatter beside it, {baseline:?} without"
    );
    // Five timeouts open the breaker; calls already running on other dispatch threads when it
    // opens still end (one per core at most).
    let count = |result: &str| -> u64 {
        let line =
            format!("tidings_formatter_calls_total{{formatter=\"loop\",result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {result} calls in {metrics}"))
            .parse()
            .unwrap()
    };
    let timeouts = count("Timeout");
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    assert!(
        (5..5 + cores).contains(&timeouts),
        "{timeouts} timeouts: {metrics}"
    );
    assert_eq!(
        count("short_circuited"),
        builds as u64 - timeouts,
        "{metrics}"
    );
    // The slow reporter still delivered every build (the built-in payload, degraded).
    assert_eq!(seen_on(&peer, "/slow").len(), builds as usize);
}

#[test]
fn a_slow_formatter_holds_up_only_its_own_reporter() {
    // A formatter that answers (`null`: send nothing) after a long computation never trips the
    // breaker: what keeps the other reporter going is that each reporter is dispatched on its
    // own lane, and that one formatter may hold only some of the host's call slots. Two
    // daemons in one run: the fast reporter alone (the baseline), then beside a reporter whose
    // formatter takes ~100 ms per call.
    let builds = 100;
    let run = |with_slow: bool| -> (Duration, Option<Duration>, String) {
        let peer = Arc::new(Peer::default());
        let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("slow.wasm"),
            support::wat(
                r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "null")
  (func (export "_start") (local $i i32)
    (local.set $i (i32.const 300000000))
    (loop $l
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (local.get $i)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
            ),
        )
        .unwrap();
        // The fast reporter's formatter competes with the slow one for the host's call slots.
        let mut reporters = format!(
            "[[formatter]]\nname = \"short\"\nmodule = \"{}\"\n\n{}",
            support::guest("short").display(),
            push(
                "fast",
                &format!("http://{p}/fast"),
                "report_new = false\nmessage_formatter = \"short\""
            )
        );
        if with_slow {
            reporters = format!(
                "[[formatter]]\nname = \"slow\"\nmodule = \"slow.wasm\"\ntimeout = \"20s\"\n\n{reporters}{}",
                push(
                    "slow",
                    &format!("http://{p}/slow"),
                    "report_new = false\nmessage_formatter = \"slow\""
                )
            );
        }
        let config = write_config(dir.path(), &reporters);
        let daemon = Daemon::start(&config);
        let started = std::time::Instant::now();
        for n in 1..=builds {
            daemon.post(&sample(n));
        }
        wait_until(
            "the fast reporter's builds",
            Duration::from_secs(300),
            || seen_on(&peer, "/fast").len() == builds as usize,
        );
        let fast = started.elapsed();
        let calls = format!(
            "tidings_formatter_calls_total{{formatter=\"slow\",result=\"nothing\"}} {builds}"
        );
        let slow = with_slow.then(|| {
            wait_until(
                "the slow formatter's calls",
                Duration::from_secs(300),
                || {
                    client::get(&format!("{}/metrics", daemon.addr))
                        .lines()
                        .any(|l| l == calls)
                },
            );
            started.elapsed()
        });
        let metrics = client::get(&format!("{}/metrics", daemon.addr));
        drop(daemon);
        (fast, slow, metrics)
    };
    let (baseline, _, _) = run(false);
    let (fast, slow, metrics) = run(true);
    let slow = slow.unwrap();
    eprintln!(
        "{builds} builds to the fast reporter: {baseline:?} alone, {fast:?} beside a slow formatter, whose own {builds} calls took {slow:?}"
    );
    // One lane for all would deliver the fast reporter's last build only after the slow
    // formatter's last call.
    assert!(
        fast < slow / 2,
        "the fast reporter waited for the slow one: {fast:?}, slow {slow:?}"
    );
    assert!(
        fast < baseline * 3 + Duration::from_secs(1),
        "{fast:?} beside a slow formatter, {baseline:?} without"
    );
    assert!(
        !metrics.contains("short_circuited"),
        "the slow formatter never failed: {metrics}"
    );
}

/// Posts `builds` builds to `daemon` and waits until `peer` got each on `/push`, as `short`
/// answers it.
fn short_answers_every_build(daemon: &Daemon, peer: &Peer, builds: i64) {
    for n in 1..=builds {
        daemon.post(&sample(n));
    }
    wait_until("every build", Duration::from_secs(60), || {
        seen_on(peer, "/push").len() == builds as usize
    });
    assert!(
        seen_on(peer, "/push")
            .iter()
            .all(|b| b.body.to_string().contains("STATUS: Success")),
        "{:?}",
        seen_on(peer, "/push")
    );
}

/// A daemon with one HTTP push reporter whose formatter is `short` kept warm (`extra`: more
/// lines of its `[[formatter]]` entry), logging the formatter host's debug lines, and the peer
/// it pushes to (dropped in reverse order: the daemon first).
fn warm_short(extra: &str) -> (Arc<Peer>, tempfile::TempDir, Daemon) {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let reporters = format!(
        "[[formatter]]\nname = \"short\"\nmodule = \"{}\"\ninstances = \"warm\"\n{extra}\n{}",
        support::guest("short").display(),
        push(
            "push",
            &format!("http://{p}/push"),
            "report_new = false\nmessage_formatter = \"short\""
        )
    );
    let daemon = Daemon::start_with(
        &write_config(dir.path(), &reporters),
        "warn,tidings::outbox=error,tidings::formatter=debug",
        &[],
    );
    (peer, dir, daemon)
}

#[test]
fn a_warm_formatter_answers_every_build_from_its_kept_instances() {
    let (peer, _dir, daemon) = warm_short("");
    let builds = 20;
    short_answers_every_build(&daemon, &peer, builds);
    // At most one instance per dispatch thread (one per core); every other call reuses one.
    let metrics = client::get(&format!("{}/metrics", daemon.addr));
    let count = |event: &str| -> u64 {
        let line = format!(
            "tidings_formatter_warm_instances_total{{formatter=\"short\",event=\"{event}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0, |n| n.parse().unwrap())
    };
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    let created = count("created");
    assert!(
        (1..=cores).contains(&created),
        "{created} created: {metrics}"
    );
    assert_eq!(created + count("reused"), builds as u64, "{metrics}");
    assert!(!metrics.contains("event=\"discarded\""), "{metrics}");
}

#[test]
fn a_warm_instance_idle_past_max_idle_is_dropped_and_the_next_build_gets_a_new_one() {
    let (peer, _dir, daemon) = warm_short("max_idle = \"300ms\"\n");
    short_answers_every_build(&daemon, &peer, 1);
    // The epoch ticker drops the instance within a second or so of max_idle, and says so; the
    // next build is answered by a new instance, and the metrics count both.
    wait_until("the idle instance dropped", Duration::from_secs(30), || {
        daemon
            .log
            .contents()
            .contains("dropped warm instances idle past max_idle")
    });
    daemon.post(&sample(2));
    wait_until("the second build", Duration::from_secs(60), || {
        seen_on(&peer, "/push").len() == 2
    });
    let metrics = client::get(&format!("{}/metrics", daemon.addr));
    for event in ["created\"} 2", "retired\"} 1"] {
        let line =
            format!("tidings_formatter_warm_instances_total{{formatter=\"short\",event=\"{event}");
        assert!(metrics.contains(&line), "{line}: {metrics}");
    }
}

#[test]
fn a_component_that_exports_format_runs_warm_unless_the_config_says_fresh() {
    // short-javascript is in the world tidings:formatter/warm. Unset, `instances` is warm for
    // it; the same component with `instances = "fresh"` keeps no instance.
    let built = std::process::Command::new(support::repo().join("guest-sdk/build.sh"))
        .arg("javascript")
        .env("CARGO_TARGET_DIR", support::target_dir())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = String::from_utf8(built.stdout).unwrap().trim().to_owned();
    for (instances, warm) in [("", true), ("instances = \"fresh\"\n", false)] {
        let peer = Arc::new(Peer::default());
        let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
        let dir = tempfile::tempdir().unwrap();
        let reporters = format!(
            "[[formatter]]\nname = \"js\"\nmodule = \"{wasm}\"\n{instances}\n{}",
            push(
                "push",
                &format!("http://{p}/push"),
                "report_new = false\nmessage_formatter = \"js\""
            )
        );
        let daemon = Daemon::start(&write_config(dir.path(), &reporters));
        short_answers_every_build(&daemon, &peer, 5);
        let metrics = client::get(&format!("{}/metrics", daemon.addr));
        let created = "tidings_formatter_warm_instances_total{formatter=\"js\",event=\"created\"}";
        assert_eq!(metrics.contains(created), warm, "{instances:?}: {metrics}");
    }
}

#[test]
fn four_thousand_builds_of_one_build_request_are_delivered_in_order() {
    // One build request's deliveries go out one at a time, each after the one before it was
    // recorded: the outbox worker, its recorder and the claim of the next head in the queue,
    // end to end against a real HTTP peer.
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let reporters = push("push", &format!("http://{p}/push"), "report_new = false");
    let daemon = Daemon::start(&write_config(dir.path(), &reporters));
    let builds = 4000;
    for n in 1..=builds {
        let mut b = sample(n);
        b["buildrequestid"] = 1.into();
        daemon.post(&b);
    }
    wait_until("every build", Duration::from_secs(120), || {
        seen_on(&peer, "/push").len() >= builds as usize
    });
    let order: Vec<i64> = seen_on(&peer, "/push")
        .iter()
        .map(|s| s.body["buildid"].as_i64().unwrap())
        .collect();
    assert_eq!(order, (1..=builds).collect::<Vec<_>>());
}

#[test]
fn an_attempt_that_ends_during_shutdown_is_recorded_before_the_daemon_exits() {
    // The peer holds its answer until the daemon is shutting down and waiting for the attempt;
    // the outcome then goes through the worker's recorder, which must write it before the
    // process ends (else the row stays in flight and is sent again at the next start).
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (arrived, on_arrival) = std::sync::mpsc::channel();
    let (release, on_release) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        // The whole request: headers, then as many body bytes as Content-Length says.
        loop {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "the daemon closed the connection");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + 4 + length {
                    break;
                }
            }
        }
        arrived.send(()).unwrap();
        on_release.recv().unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &push(
            "p",
            &format!("http://127.0.0.1:{port}/hook"),
            "report_new = false",
        ),
    );
    let mut daemon = Daemon::start_with(&config, "warn,tidings::outbox=info", &[]);
    daemon.post(&sample(1));
    on_arrival
        .recv_timeout(Duration::from_secs(30))
        .expect("the delivery reaches the peer");
    daemon.signal("-TERM");
    wait_until(
        "the daemon waits for the attempt",
        Duration::from_secs(30),
        || {
            daemon
                .log
                .contents()
                .contains("waiting for deliveries in flight")
        },
    );
    release.send(()).unwrap();
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", daemon.log.contents());
    peer.join().unwrap();
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    let d = store.delivery(1).unwrap().expect("the delivery");
    assert_eq!((d.state, d.attempts), (DState::Delivered, 1));
    let log: Vec<String> = store
        .log(1)
        .unwrap()
        .into_iter()
        .map(|l| l.result)
        .collect();
    assert_eq!(log, ["delivered"]);
}
