//! `tidings events`, `tidings explain` and `tidings replay` against a running daemon: every
//! reason a reporter reports or does not, a replay with a changed formatter, `--deliver` once
//! and only once, and all of it beside a daemon under load.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;
use support::daemon::{Daemon, Peer, client, seen_on, settled, start_peer, wait_until};

/// A build of builder "runtests" (tags test, reporter; branch main) numbered `n`, with result
/// `results` (`None`: started, not finished).
fn build(n: i64, results: Option<i64>) -> Value {
    let text =
        std::fs::read_to_string(support::repo().join("tests/data/buildbot/success-full.json"))
            .unwrap();
    let mut b: Value = serde_json::from_str(&text).unwrap();
    b["buildid"] = (100 + n).into();
    b["number"] = n.into();
    b["buildrequestid"] = (100 + n).into();
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{n}").into();
    b["complete"] = results.is_some().into();
    b["results"] = results.map_or(Value::Null, Value::from);
    b
}

/// Writes `dir/<name>.wasm`, a formatter that prints `out` whatever it is asked.
fn constant(dir: &Path, name: &str, out: &str) {
    std::fs::write(
        dir.join(format!("{name}.wasm")),
        support::constant_formatter(out),
    )
    .unwrap();
}

fn tidings(args: &[&str], config: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tidings {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn explain(id: i64, config: &Path) -> Value {
    serde_json::from_str(&stdout(&tidings(
        &["explain", &id.to_string(), "--json"],
        config,
    )))
    .unwrap()
}

/// The decision of reporter `name` in an `explain --json` answer.
fn decision<'a>(explained: &'a Value, name: &str) -> &'a Value {
    explained["reporters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reporter"] == name)
        .unwrap_or_else(|| panic!("no reporter {name} in {explained:#}"))
}

fn push(name: &str, url: &str, extra: &str) -> String {
    format!("[[reporter.http_push]]\nname = \"{name}\"\nserver_url = \"{url}\"\n{extra}\n\n")
}

#[test]
fn explain_names_every_reason_a_reporter_reports_or_not() {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    constant(dir.path(), "nothing", "null");
    std::fs::write(
        dir.path().join("broken.wasm"),
        support::wat(
            r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
        ),
    )
    .unwrap();
    let url = format!("http://{p}/hook");
    let mut reporters = String::from(
        "[[formatter]]\nname = \"nothing\"\nmodule = \"nothing.wasm\"\n\n\
         [[formatter]]\nname = \"broken\"\nmodule = \"broken.wasm\"\n\n",
    );
    reporters += &push("by-builder", &url, "builders = [\"docs\"]");
    reporters += &push("by-tag", &url, "tags = [\"nightly\"]");
    reporters += &push("by-branch", &url, "branches = [\"release\"]");
    let words = [
        "change",
        "failing",
        "passing",
        "problem",
        "warnings",
        "exception",
        "cancelled",
    ];
    for w in words {
        reporters += &push(w, &url, &format!("mode = [\"{w}\"]\nreport_new = false"));
    }
    reporters += &push("starts", &url, "report_new = true");
    reporters += &push("null", &url, "message_formatter = \"nothing\"");
    reporters += &push("trap", &url, "message_formatter = \"broken\"");
    reporters += "[[reporter.mail]]\nname = \"nobody\"\ntransport = \"file\"\n\
                  fromaddr = \"ci@example.org\"\nsend_to_interested_users = false\nmode = \"all\"\n";
    let config = support::daemon::config(dir.path(), &reporters);
    let daemon = Daemon::start(&config);
    let data = dir.path().join("data");
    // #1 success, #2 failure, #3 failure, #4 warnings, #5 exception, #6 cancelled, #7 started.
    let sequence = [Some(0), Some(2), Some(2), Some(1), Some(4), Some(6), None];
    let ids: Vec<i64> = sequence
        .iter()
        .enumerate()
        .map(|(i, r)| {
            daemon.post(&build(i as i64 + 1, *r))["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    wait_until("the daemon to settle", Duration::from_secs(30), || {
        settled(&data)
    });
    let explained: Vec<Value> = ids.iter().map(|id| explain(*id, &config)).collect();

    // Filters: which one, what it wants, what the build has.
    let first = &explained[0];
    let d = decision(first, "by-builder");
    assert_eq!(d["decision"], "filtered");
    assert_eq!(d["filter"], "builders");
    assert_eq!(d["wanted"], json!(["docs"]));
    assert_eq!(d["value"], "runtests");
    let d = decision(first, "by-tag");
    assert_eq!(
        (&d["filter"], &d["value"]),
        (&json!("tags"), &json!("[test, reporter]"))
    );
    let d = decision(first, "by-branch");
    assert_eq!(
        (&d["filter"], &d["value"]),
        (&json!("branches"), &json!("main"))
    );

    // Every mode word: where it hits (with the previous build named) and where it misses.
    let hits: [(&str, usize, &str); 7] = [
        ("change", 1, "#1 success"),
        ("failing", 1, "#1 success"),
        ("passing", 0, "none"),
        ("problem", 1, "#1 success"),
        ("warnings", 3, "#3 failure"),
        ("exception", 4, "#4 warnings"),
        ("cancelled", 5, "#5 exception"),
    ];
    for (word, at, previous) in hits {
        let d = decision(&explained[at], word);
        assert_eq!(d["decision"], "reported", "{word}: {d:#}");
        let why = d["why"].as_str().unwrap();
        assert!(
            why.contains(&format!("matched by {word}")) && why.contains(previous),
            "{word}: {why}"
        );
        // Delivered, and the outbox row says so.
        assert_eq!(d["outbox"][0]["state"], "delivered", "{word}: {d:#}");
        assert_eq!(d["outbox"][0]["same_payload"], true, "{word}: {d:#}");
    }
    // Misses: `change` and `problem` on #3 (failure after failure), `passing` on #2, the
    // others on #1 — each naming the result and the previous build.
    let misses: [(&str, usize, &str, &str); 7] = [
        ("change", 2, "failure", "#2 failure"),
        ("problem", 2, "failure", "#2 failure"),
        ("failing", 0, "success", "none"),
        ("passing", 1, "failure", "#1 success"),
        ("warnings", 0, "success", "none"),
        ("exception", 1, "failure", "#1 success"),
        ("cancelled", 3, "warnings", "#3 failure"),
    ];
    for (word, at, result, previous) in misses {
        let d = decision(&explained[at], word);
        assert_eq!(d["decision"], "mode_missed", "{word}: {d:#}");
        assert_eq!(d["mode"], json!([word]));
        assert_eq!(
            (&d["result"], &d["previous"]),
            (&json!(result), &json!(previous))
        );
    }

    // report_new: a build start goes to "starts" only.
    let started = &explained[6];
    assert_eq!(decision(started, "starts")["decision"], "reported");
    let d = decision(started, "failing");
    assert_eq!(d["decision"], "not_asked");
    assert!(
        d["why"].as_str().unwrap().contains("report_new is off"),
        "{d}"
    );

    // A formatter that returns null; one that traps (degraded, the built-in payload sent).
    let d = decision(first, "null");
    assert_eq!(d["decision"], "nothing");
    assert!(d["why"].as_str().unwrap().contains("returned null"), "{d}");
    let d = decision(first, "trap");
    assert_eq!(d["decision"], "reported");
    assert!(
        d["formatter"]
            .as_str()
            .unwrap()
            .contains("DEGRADED: formatter \"broken\" failed (Trap)"),
        "{d}"
    );
    // A mail with no recipients: reported, but no delivery.
    let d = decision(first, "nobody");
    assert_eq!(d["decision"], "reported");
    assert_eq!(d["deliveries"], json!([]));

    // The same for people: one line per reporter, aligned, every reporter listed.
    let text = stdout(&tidings(&["explain", &ids[1].to_string()], &config));
    assert!(
        text.starts_with(&format!(
            "event {}: build_finished from http_buildbot,",
            ids[1]
        )),
        "{text}"
    );
    assert!(text.contains("builder \"runtests\" #2 failure"), "{text}");
    for line in [
        "by-builder (http_push)  filtered   builders [docs] does not take \"runtests\"",
        "passing (http_push)     mode miss  mode [passing] does not report a failure build after previous build #1 success",
        "failing (http_push)     reported   mode [failing] matched by failing (result failure, previous build #1 success)",
        "null (http_push)        nothing    formatter \"nothing\" (messageFormatter) returned null: nothing to send",
        "nobody (mail)           reported",
        "no delivery: the reporter found no destination",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(text.contains("delivery "), "{text}");
    // The event itself, and the list.
    let shown: Value = serde_json::from_str(&stdout(&tidings(
        &["events", "show", &ids[0].to_string()],
        &config,
    )))
    .unwrap();
    assert_eq!(shown["number"], 1);
    let list = stdout(&tidings(
        &["events", "list", "--kind", "build_started"],
        &config,
    ));
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("builder \"runtests\" #7"), "{list}");
    drop(daemon);
}

#[test]
fn replay_shows_exactly_what_a_new_formatter_changes_and_delivers_once() {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    // The deployed formatter says every build passed; `short` (the new build) tells the truth.
    constant(
        dir.path(),
        "optimist",
        r#"{"type": "plain", "body": "STATUS: Success"}"#,
    );
    let config = support::daemon::config(
        dir.path(),
        &format!(
            "[[formatter]]\nname = \"status\"\nmodule = \"optimist.wasm\"\n\n{}",
            push(
                "push",
                &format!("http://{p}/hook"),
                "message_formatter = \"status\"\nreport_new = false"
            )
        ),
    );
    let daemon = Daemon::start(&config);
    let data = dir.path().join("data");
    // A day of builds: successes and failures.
    let results = [0, 2, 0, 2, 2, 0];
    let ids: Vec<i64> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            daemon.post(&build(i as i64 + 1, Some(*r)))["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    wait_until("the daemon to settle", Duration::from_secs(30), || {
        settled(&data)
    });
    assert_eq!(seen_on(&peer, "/hook").len(), 6);
    let short = support::guest("short");
    let new = format!("status={}", short.display());

    // Load in the background while the commands run beside the daemon: nothing is disturbed.
    let addr = daemon.addr.clone();
    let load = std::thread::spawn(move || {
        (0..200)
            .map(|i| {
                let (status, _) = client::blocking_post(
                    &format!("{addr}/api/v1/buildbot"),
                    &build(1000 + i, Some(0)),
                );
                status
            })
            .collect::<Vec<u16>>()
    });

    let text = stdout(&tidings(
        &[
            "replay",
            "--formatter",
            &new,
            "--since",
            "1d",
            "--builder",
            "runtests",
        ],
        &config,
    ));
    // Exactly the failures changed, each with its diff; the successes are not printed.
    for (id, r) in ids.iter().zip(results) {
        let head = format!("event {id} build_finished");
        assert_eq!(text.contains(&head), r == 2, "event {id}:\n{text}");
    }
    assert_eq!(text.matches("-\"STATUS: Success\"").count(), 3, "{text}");
    assert_eq!(text.matches("+\"STATUS: Failure\"").count(), 3, "{text}");
    assert!(
        text.contains(": 3 changed, 0 new, 0 no longer sent,"),
        "{text}"
    );
    let _ = stdout(&tidings(&["explain", &ids[0].to_string()], &config));
    let _ = stdout(&tidings(&["events", "list", "--limit", "20"], &config));

    let statuses = load.join().unwrap();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    wait_until("the load to be delivered", Duration::from_secs(60), || {
        settled(&data)
    });
    assert_eq!(seen_on(&peer, "/hook").len(), 206);

    // --deliver: the six replayed payloads go out once each, under replay keys.
    // Replayed one event at a time, by id (the newest events are the load's).
    let deliver = || -> Vec<Output> {
        ids.iter()
            .map(|id| {
                let id = id.to_string();
                tidings(
                    &["replay", "--formatter", &new, "--event", &id, "--deliver"],
                    &config,
                )
            })
            .collect()
    };
    let first = deliver();
    assert!(
        String::from_utf8_lossy(&first[0].stderr).contains("enqueued 1 deliveries"),
        "{}",
        String::from_utf8_lossy(&first[0].stderr)
    );
    wait_until(
        "the replays to be delivered",
        Duration::from_secs(30),
        || seen_on(&peer, "/hook").len() == 212 && settled(&data),
    );
    // Under idempotency keys of their own (the sink sends a digest of the outbox key).
    let seen = seen_on(&peer, "/hook");
    let keys: std::collections::HashSet<&str> = seen.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys.len(), 212);
    let bodies: Vec<&Value> = seen[206..].iter().map(|s| &s.body).collect();
    assert_eq!(
        bodies.iter().filter(|b| **b == "STATUS: Failure").count(),
        3,
        "{bodies:?}"
    );
    // Again: nothing new is enqueued, nothing is sent twice.
    let again = deliver();
    assert!(
        String::from_utf8_lossy(&again[0].stderr).contains("enqueued 0 deliveries (1 already"),
        "{}",
        String::from_utf8_lossy(&again[0].stderr)
    );
    wait_until("the daemon to settle", Duration::from_secs(30), || {
        settled(&data)
    });
    assert_eq!(seen_on(&peer, "/hook").len(), 212);
    // explain shows the replay beside the original delivery.
    let text = stdout(&tidings(&["explain", &ids[1].to_string()], &config));
    assert!(text.contains("also in the outbox: delivery"), "{text}");
    drop(daemon);
}

/// Runs `tidings ARGS --config CONFIG`, which must fail; its stderr.
fn tidings_fails(args: &[&str], config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "tidings {args:?} must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn explain_and_replay_say_what_is_wrong_with_what_they_were_asked() {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer);
    let dir = tempfile::tempdir().unwrap();
    let config = support::daemon::config(
        dir.path(),
        &push("push", &format!("http://{p}/hook"), "report_new = false"),
    );
    // No daemon has run with this data_dir yet.
    let err = tidings_fails(&["explain", "1"], &config);
    assert!(
        err.contains("no tidings.db here") && err.contains("--config"),
        "{err}"
    );
    let daemon = Daemon::start(&config);
    let id = daemon.post(&build(1, Some(0)))["id"].as_i64().unwrap();
    let data = dir.path().join("data");
    wait_until("the daemon to settle", Duration::from_secs(30), || {
        settled(&data)
    });
    let missing = (id + 100).to_string();
    let err = tidings_fails(&["explain", &missing], &config);
    assert!(err.contains(&format!("no stored event {missing}")), "{err}");
    let err = tidings_fails(
        &["replay", "--formatter", "nope=x.wasm", "--last", "1"],
        &config,
    );
    assert!(
        err.contains("the config has no [[formatter]] named \"nope\""),
        "{err}"
    );
    let err = tidings_fails(&["replay", "--formatter", "nope", "--last", "1"], &config);
    assert!(err.contains("--formatter takes NAME=PATH"), "{err}");
    let err = tidings_fails(&["replay"], &config);
    assert!(err.contains("say which events"), "{err}");
    let err = tidings_fails(&["events", "list", "--kind", "build_done"], &config);
    assert!(
        err.contains("--kind \"build_done\": use one of build_started"),
        "{err}"
    );
    let err = tidings_fails(&["events", "list", "--since", "yesterday"], &config);
    assert!(err.contains("--since: bad duration"), "{err}");
    drop(daemon);
}

#[test]
fn replay_deliver_of_many_asks_for_confirmation() {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = support::daemon::config(
        dir.path(),
        &push("push", &format!("http://{p}/hook"), "report_new = false"),
    );
    let daemon = Daemon::start(&config);
    for n in 1..=101 {
        daemon.post(&build(n, Some(0)));
    }
    let data = dir.path().join("data");
    wait_until("the daemon to settle", Duration::from_secs(60), || {
        settled(&data)
    });
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["replay", "--last", "101", "--deliver", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--deliver would enqueue 101 deliveries (more than 100); add --yes to confirm"
        ),
        "{err}"
    );
    let store = tidings::store::Store::open_shared(&data).unwrap();
    assert_eq!(
        store.list(None, 1000).unwrap().len(),
        101,
        "nothing enqueued"
    );
    drop(daemon);
}

#[test]
fn the_daemon_says_what_it_does_at_the_default_level() {
    let peer = Arc::new(Peer::default());
    let p = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    peer.script
        .lock()
        .unwrap()
        .insert("/flaky".into(), [(503, None)].into());
    let dir = tempfile::tempdir().unwrap();
    let config = support::daemon::config(
        dir.path(),
        &format!(
            "{}{}",
            push("ok", &format!("http://{p}/hook"), "report_new = false"),
            push(
                "flaky",
                &format!("http://{p}/flaky"),
                "report_new = false\nretry_delay = \"50ms\""
            ),
        ),
    );
    let daemon = Daemon::start_with_default_log(&config);
    let id = daemon.post(&build(3, Some(2)))["id"].as_i64().unwrap();
    let (status, _) = client::blocking_post_raw(
        &format!("{}/api/v1/buildbot", daemon.addr),
        "application/json",
        "[1]".into(),
    );
    assert_eq!(status, 400);
    let data = dir.path().join("data");
    wait_until("both deliveries", Duration::from_secs(30), || {
        settled(&data) && seen_on(&peer, "/flaky").len() == 2
    });
    // Each reporter has its own dispatch lane, so which of the two deliveries is enqueued
    // first (and gets id 1) is not fixed; the log is written by its own thread, so it may
    // trail the deliveries a little.
    let lines = [
        format!("INFO tidings::source: event accepted: builder \"runtests\" #3 failure id={id} kind=\"build_finished\" source=\"http_buildbot\""),
        "WARN tidings::source::http: ingest refused a request: the body must be a JSON object (one event) status=400".into(),
        "INFO tidings::outbox: delivered: HTTP 200 OK reporter=ok id=".into(),
        "WARN tidings::outbox: delivery failed, will retry: HTTP 503 Service Unavailable".into(),
        "INFO tidings::outbox: delivered: HTTP 200 OK reporter=flaky id=".into(),
        "attempt=2".into(),
    ];
    let said_all = || {
        let log = daemon.log.contents();
        lines.iter().all(|line| log.contains(line))
    };
    // A timeout fails the test, and the daemon's log is printed with the failure.
    wait_until(
        "the log to say every line",
        Duration::from_secs(10),
        said_all,
    );
    let log = daemon.log.contents();
    for (reporter, destination) in [("ok", "/hook"), ("flaky", "/flaky")] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("delivered: HTTP 200 OK reporter={reporter} id=")))
            .unwrap();
        assert!(
            line.contains(" event=1 ")
                && line.contains(&format!("destination=http://{p}{destination}")),
            "{line}"
        );
    }
}
