//! Against a real Buildbot 4.3 master and worker (from PyPI, in a venv that
//! `scripts/install-buildbot` makes once per machine): the master's HttpStatusPush posts to
//! tidings and `[source.buildbot]` follows the master's event stream. A passing and a failing
//! build reach the HTTP push peer once each, in order, formatted by the `short` WASM formatter;
//! buildset completion and build requests are seen; a build that ran while tidings was down is
//! caught up through REST after a restart.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::daemon::{Daemon, Peer, client, seen_on, settled, start_peer, wait_until};

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running master and worker; both stopped when dropped.
struct Master {
    venv: PathBuf,
    dir: PathBuf,
    www: u16,
    /// The master's environment (its ports, tidings' URL).
    env: Vec<(String, String)>,
}

impl Master {
    fn start(dir: &Path, tidings_url: &str) -> Master {
        Master::start_with(dir, tidings_url, &[])
    }

    /// As [`Master::start`], with more of `tests/data/buildbot-master.cfg`'s switches in its
    /// environment (`BB_LINT_BUILDER`).
    fn start_with(dir: &Path, tidings_url: &str, switches: &[(&str, &str)]) -> Master {
        let venv = support::install("install-buildbot");
        let (www, pb) = (support::free_port(), support::free_port());
        let bin = |b: &str| venv.join("bin").join(b);
        let run = |cmd: &mut Command, what: &str| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let master = dir.join("master");
        run(
            Command::new(bin("buildbot"))
                .args(["create-master", "-r"])
                .arg(&master),
            "buildbot create-master",
        );
        std::fs::copy(
            support::repo().join("tests/data/buildbot-master.cfg"),
            master.join("master.cfg"),
        )
        .unwrap();
        let worker = dir.join("worker");
        run(
            Command::new(bin("buildbot-worker"))
                .arg("create-worker")
                .arg(&worker)
                .arg(format!("127.0.0.1:{pb}"))
                .args(["local-worker", "pass"]),
            "buildbot-worker create-worker",
        );
        let m = Master {
            venv: venv.clone(),
            dir: dir.to_owned(),
            www,
            env: [
                ("BB_WWW_PORT".into(), www.to_string()),
                ("BB_PB_PORT".into(), pb.to_string()),
                ("BB_TIDINGS_URL".into(), tidings_url.to_owned()),
            ]
            .into_iter()
            .chain(
                switches
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
            .collect(),
        };
        run(
            Command::new(bin("buildbot"))
                .arg("start")
                .arg(&master)
                .envs(m.env.iter().map(|(k, v)| (k, v))),
            "buildbot start",
        );
        // A clean environment, so the machine's does not leak into build logs.
        run(
            Command::new(bin("buildbot-worker"))
                .arg("start")
                .arg(&worker)
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "buildbot-worker start",
        );
        m
    }

    /// Stops the master and starts it again (same ports, same database). The old process must
    /// be gone before the new one starts (`buildbot restart` gives up waiting after a while, and
    /// a new master beside a slowly stopping old one may die with it), and the new one must
    /// answer before the test goes on.
    fn restart(&self) {
        let buildbot = |action: &str| {
            let out = Command::new(self.venv.join("bin/buildbot"))
                .arg(action)
                .arg(self.dir.join("master"))
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .output()
                .unwrap();
            assert!(out.status.success(), "buildbot {action}: {out:?}");
        };
        buildbot("stop");
        let pid = self.dir.join("master/twistd.pid");
        wait_until("the old master to exit", Duration::from_secs(60), || {
            !pid.exists()
        });
        buildbot("start");
        let www = format!("127.0.0.1:{}", self.www);
        wait_until("the master's web server", Duration::from_secs(60), || {
            std::net::TcpStream::connect(&www).is_ok()
        });
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.www)
    }

    /// Forces a build of `runtests` whose `run` step exits with `exit_code`; returns the
    /// buildset id.
    ///
    /// Once, under a whole test run's load, the master reset the connection of a force: the
    /// force may or may not have been taken then. Each force has a reason of its own, so the
    /// buildset it made is looked up by it before the force is asked again.
    fn force(&self, exit_code: u8) -> i64 {
        self.force_as(exit_code, &Master::fresh_reason(exit_code))
    }

    /// A force's reason no other force of this process has.
    fn fresh_reason(exit_code: u8) -> String {
        static FORCES: AtomicUsize = AtomicUsize::new(0);
        format!(
            "exit {exit_code} (force {})",
            FORCES.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// [`Master::force`] with `reason`.
    fn force_as(&self, exit_code: u8, reason: &str) -> i64 {
        let request = json!({"jsonrpc": "2.0", "method": "force", "id": 1, "params": {
            "builderid": "1", "username": "tester <tester@example.org>",
            "reason": reason, "exit_code": exit_code.to_string()}});
        let url = format!("{}api/v2/forceschedulers/force", self.url());
        for _ in 0..3 {
            match client::try_post_raw(&url, "application/json", request.to_string()) {
                Ok((status, body)) => {
                    assert_eq!(status, 200, "{body}");
                    let v: Value = serde_json::from_str(&body).unwrap();
                    return v["result"][0]
                        .as_i64()
                        .unwrap_or_else(|| panic!("no buildset id in {body}"));
                }
                Err(e) => {
                    eprintln!("forcing a build ({reason}) failed: {e:?}; looking for its buildset");
                    // A force the master took has its buildset by the time it answers; give a
                    // reset in the middle of that a moment to settle.
                    let settled = std::time::Instant::now() + Duration::from_secs(2);
                    loop {
                        if let Some(bsid) = self.buildset_with_reason(reason) {
                            return bsid;
                        }
                        if std::time::Instant::now() >= settled {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        panic!("the master did not take the force ({reason}) in three tries")
    }

    /// The id of a recent buildset whose reason ends with `reason` (Buildbot's force scheduler
    /// puts who forced it before).
    fn buildset_with_reason(&self, reason: &str) -> Option<i64> {
        let (status, body) = client::get_with_status(&format!(
            "{}api/v2/buildsets?order=-bsid&limit=50",
            self.url()
        ));
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["buildsets"].as_array()?.iter().find_map(|b| {
            b["reason"]
                .as_str()
                .is_some_and(|r| r.ends_with(reason))
                .then(|| b["bsid"].as_i64())
                .flatten()
        })
    }

    /// Posts a change by `author` to the master's base change hook (a form post).
    fn change(&self, author: &str) {
        self.change_with(author, "{}");
    }

    /// As [`Master::change`], with change `properties` (a JSON object), which its builds get.
    fn change_with(&self, author: &str, properties: &str) {
        self.post_change(author, properties, "https://example.org/repo.git");
    }

    /// As [`Master::change`], to `repository`.
    fn change_with_repository(&self, author: &str, repository: &str) {
        self.post_change(author, "{}", repository);
    }

    fn post_change(&self, author: &str, properties: &str, repository: &str) {
        let form: String = [
            ("author", author),
            ("comments", "fix the flaky test"),
            ("branch", "main"),
            ("revision", "0123abcd"),
            ("repository", repository),
            ("project", "demo"),
            ("properties", properties),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let (status, body) = client::blocking_post_raw(
            &format!("{}change_hook/base", self.url()),
            "application/x-www-form-urlencoded",
            form,
        );
        assert_eq!(status, 200, "change hook: {body}");
    }

    /// The build `number` of `runtests` as the master's REST API has it.
    fn build(&self, number: i64) -> Option<Value> {
        let body = client::get(&format!("{}api/v2/builders/1/builds/{number}", self.url()));
        let v: Value = serde_json::from_str(&body).ok()?;
        v["builds"].get(0).cloned()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        for (bin, dir) in [("buildbot-worker", "worker"), ("buildbot", "master")] {
            let _ = Command::new(self.venv.join("bin").join(bin))
                .arg("stop")
                .arg(self.dir.join(dir))
                .output();
        }
    }
}

/// A tidings config in `dir` listening on `port` (where the master's HttpStatusPush posts),
/// following `master` (`[source.buildbot]`), with `reporters`.
fn following(dir: &Path, port: u16, master: &Master, reporters: &str) -> PathBuf {
    let config = dir.join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\ningest_user = \"buildbot\"\n\
             ingest_password = \"s3cret\"\nshutdown_grace = \"2s\"\n\n\
             [source.buildbot]\nurl = \"{}\"\n\n{reporters}",
            master.url()
        ),
    )
    .unwrap();
    config
}

/// The sum of the `/metrics` samples whose line contains every one of `parts` (0 if none).
fn metric(daemon: &Daemon, parts: &[&str]) -> u64 {
    client::get(&format!("{}/metrics", daemon.addr))
        .lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_real_master_reports_through_tidings_once_in_order_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let peer_addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let tidings_port = support::free_port();
    let tidings_url = format!("http://127.0.0.1:{tidings_port}");
    let master = Master::start(dir.path(), &tidings_url);

    let short = support::guest("short");
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:{tidings_port}"
data_dir = "data"
ingest_user = "buildbot"
ingest_password = "s3cret"
shutdown_grace = "2s"

[master]
title = "reporter-test"
buildbot_url = "{url}"

[source.buildbot]
url = "{url}"

[[formatter]]
name = "html"
module = "{html}"
# The test is about reporting, not the time limit: room for a loaded machine.
timeout = "5s"

# Only this reporter's formatter gets the run step's output (fetched from the master's REST).
[[reporter.http_push]]
name = "html"
server_url = "http://{peer_addr}/html"
mode = ["failing"]
report_new = false
message_formatter = "html"
want_logs_content = ["run.stdio"]
retry_delay = "100ms"

[[formatter]]
name = "short"
module = "{short}"
# The test is about reporting, not the time limit: room for a loaded machine.
timeout = "5s"

[[formatter]]
name = "default-mail"
module = "{mail}"
# The test is about reporting, not the time limit: room for a loaded machine.
timeout = "5s"

[[reporter.http_push]]
name = "push"
server_url = "http://{peer_addr}/push"
mode = "all"
report_new = false
message_formatter = "short"
retry_delay = "100ms"

[[reporter.http_push]]
name = "sets"
server_url = "http://{peer_addr}/sets"
mode = "all"
build_set_summary = true
retry_delay = "100ms"

[[reporter.http_push]]
name = "mail"
server_url = "http://{peer_addr}/mail"
mode = "all"
report_new = false
schedulers = ["on-change"]
message_formatter = "default-mail"
retry_delay = "100ms"

[[reporter.http_push]]
name = "requests"
server_url = "http://{peer_addr}/requests"
mode = ["exception"]
report_new = false
report_requests = true
retry_delay = "100ms"
"#,
            url = master.url(),
            short = short.display(),
            mail = support::guest("default-mail").display(),
            html = support::guest("html-log-tail").display(),
        ),
    )
    .unwrap();
    let connections = ["tidings_source_connections_total{source=\"buildbot\"}"];
    let mut daemon = Daemon::start(&config);
    wait_until(
        "the source to follow the master",
        Duration::from_secs(60),
        || metric(&daemon, &connections) >= 1,
    );

    // A passing build, then a failing one.
    let reason = Master::fresh_reason(0);
    let bs_pass = master.force_as(0, &reason);
    // What `force` falls back on when the master resets its connection finds this buildset.
    assert_eq!(master.buildset_with_reason(&reason), Some(bs_pass));
    wait_until(
        "the passing build's report",
        Duration::from_secs(90),
        || !seen_on(&peer, "/push").is_empty(),
    );
    let bs_fail = master.force(1);
    wait_until(
        "the failing build's report",
        Duration::from_secs(90),
        || seen_on(&peer, "/push").len() >= 2,
    );
    wait_until("both buildsets' summaries", Duration::from_secs(30), || {
        seen_on(&peer, "/sets").len() >= 2
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let bodies: Vec<Value> = seen_on(&peer, "/push")
        .iter()
        .map(|s| s.body.clone())
        .collect();
    assert_eq!(
        bodies,
        [json!("STATUS: Success"), json!("STATUS: Failure")],
        "each build once, in order, formatted by the WASM formatter"
    );
    // Both HttpStatusPush and the stream reported the builds; the store kept one of each.
    let duplicates = metric(
        &daemon,
        &[
            "tidings_events_total{",
            "type=\"build_finished\"",
            "duplicate=\"true\"",
        ],
    );
    assert!(
        duplicates >= 2,
        "{}",
        client::get(&format!("{}/metrics", daemon.addr))
    );
    // The failing build's log tail, fetched from the master for the one reporter that wants it
    // (want_logs_content; neither HttpStatusPush nor the stream sent steps), in the
    // html-log-tail formatter's mail.
    wait_until(
        "the failing build's HTML report",
        Duration::from_secs(30),
        || !seen_on(&peer, "/html").is_empty(),
    );
    let html = seen_on(&peer, "/html")[0].body.as_str().unwrap().to_owned();
    assert!(html.contains("running"), "{html}");
    assert!(
        !html.contains("orunning"),
        "stream prefixes stripped: {html}"
    );

    // Buildset completion, from the stream: one summary per buildset, with its build.
    let sets = seen_on(&peer, "/sets");
    let summary: Vec<(i64, i64)> = sets
        .iter()
        .map(|s| {
            (
                s.body["buildset"]["bsid"].as_i64().unwrap(),
                s.body["builds"][0]["results"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(bs_pass, 0), (bs_fail, 2)]);
    assert_eq!(sets[1].body["buildset"]["results"], 2);
    assert_eq!(
        sets[1].body["builds"][0]["builder"]["name"], "runtests",
        "builds are enriched like HttpStatusPush's"
    );
    // Build requests, from the stream: partial build dicts, no build id.
    let requests = seen_on(&peer, "/requests");
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for r in &requests {
        assert!(r.body.get("buildid").is_none());
        assert_eq!(r.body["builder"]["name"], "runtests");
        assert!(r.body["url"].as_str().unwrap().contains("#/buildrequests/"));
    }

    // tidings goes away; a build runs; after a restart the source catches up through REST.
    daemon.signal("-TERM");
    assert!(daemon.child.wait().unwrap().success());
    master.force(0);
    wait_until(
        "build 3 to finish on the master",
        Duration::from_secs(90),
        || {
            master
                .build(3)
                .is_some_and(|b| b["complete"] == json!(true))
        },
    );
    // Restarted on another port, so that HttpStatusPush (Buildbot 4.3 does try again) cannot
    // bring the build: only the catch-up can.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("127.0.0.1:{tidings_port}"),
        &format!("127.0.0.1:{}", support::free_port()),
    );
    std::fs::write(&config, text).unwrap();
    daemon = Daemon::start(&config);
    wait_until(
        "the caught-up build's report",
        Duration::from_secs(60),
        || seen_on(&peer, "/push").len() >= 3,
    );
    let third = &seen_on(&peer, "/push")[2];
    assert_eq!(third.body, json!("STATUS: Success"));
    assert_eq!(
        metric(
            &daemon,
            &[
                "tidings_events_total{",
                "source=\"buildbot\"",
                "type=\"build_finished\"",
                "duplicate=\"false\""
            ]
        ),
        1,
        "the build came from the catch-up: {}",
        client::get(&format!("{}/metrics", daemon.addr))
    );
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    assert_eq!(seen_on(&peer, "/push").len(), 3, "nothing reported twice");

    // The master restarts: the stream drops, the source reconnects (with backoff) and goes on.
    master.restart();
    wait_until("the source to reconnect", Duration::from_secs(90), || {
        metric(&daemon, &connections) >= 2
    });
    master.force(1);
    wait_until(
        "the report after the reconnection",
        Duration::from_secs(90),
        || seen_on(&peer, "/push").len() >= 4,
    );
    assert_eq!(seen_on(&peer, "/push")[3].body, json!("STATUS: Failure"));

    // A change by alice builds: her name is in the blamelist the formatter gets (the change
    // comes from the master's REST API), beside the owner.
    master.change("alice <alice@example.org>");
    wait_until("the change's build report", Duration::from_secs(90), || {
        !seen_on(&peer, "/mail").is_empty()
    });
    let mail = seen_on(&peer, "/mail")[0].body.as_str().unwrap().to_owned();
    assert!(mail.contains("alice <alice@example.org>"), "{mail}");

    // A tidings with no history of its own: `problem` needs the previous build, which only
    // the master knows.
    daemon.signal("-TERM");
    assert!(daemon.child.wait().unwrap().success());
    let fresh = dir.path().join("fresh.toml");
    std::fs::write(
        &fresh,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
data_dir = "fresh-data"

[source.buildbot]
url = "{url}"

[[reporter.http_push]]
name = "problem"
server_url = "http://{peer_addr}/problem"
mode = ["problem"]
report_new = false
retry_delay = "100ms"
"#,
            url = master.url()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&fresh);
    wait_until(
        "the fresh source to follow the master",
        Duration::from_secs(60),
        || metric(&daemon, &connections) >= 1,
    );
    master.force(1);
    wait_until("the problem report", Duration::from_secs(90), || {
        !seen_on(&peer, "/problem").is_empty()
    });
    assert_eq!(seen_on(&peer, "/problem")[0].body["results"], 2);
}

/// The IRC bot (against ngIRCd) acts on the real master: `force build` starts a build whose
/// start and finish it then announces, `stop build` stops a running one, and `list workers`
/// and `status` answer from the master's REST API.
#[test]
fn the_irc_bot_forces_and_stops_builds_on_the_master() {
    use support::irc::{Client, Ngircd, Setup};
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(
        dir.path(),
        Setup {
            channel: Some(("#builds", "sekrit")),
            ..Setup::default()
        },
    );
    let tidings_port = support::free_port();
    let master = Master::start(dir.path(), &format!("http://127.0.0.1:{tidings_port}"));
    let config = following(
        dir.path(),
        tidings_port,
        &master,
        &format!(
            r##"[[reporter.irc]]
name = "irc"
host = "127.0.0.1"
port = {irc}
nick = "ci"
channels = [{{ channel = "#builds", password = "sekrit" }}]
notify_events = ["started", "finished"]
use_colors = false
flood_interval = "200ms"
authz = {{ force = ["trusted"], stop = ["trusted"] }}
"##,
            irc = server.port,
        ),
    );
    let mut c = Client::connect(server.port, "trusted");
    c.join("#builds", Some("sekrit"));
    let _daemon = Daemon::start(&config);
    c.expect("the bot to join", Duration::from_secs(30), |l| {
        l.command == "JOIN" && l.from == "ci"
    });
    let ask = |c: &mut Client, command: &str, answer: &dyn Fn(&str) -> bool| -> String {
        c.say("#builds", &format!("ci: {command}"));
        c.expect_message("ci", "#builds", command, answer)
    };

    assert_eq!(
        ask(&mut c, "list workers", &|_| true),
        "I found the following workers: local-worker"
    );
    assert_eq!(
        ask(
            &mut c,
            "force build --branch=main --props=exit_code=1 runtests from irc",
            &|_| true
        ),
        "Force build successfully requested."
    );
    let url = master.url();
    let started = c.expect_message("ci", "#builds", "the forced build's start", |t| {
        t.ends_with("started.")
    });
    assert_eq!(
        started,
        format!("Build [#1]({url}#/builders/1/builds/1) of `runtests` started.")
    );
    let finished = c.expect_message("ci", "#builds", "the forced build's end", |t| {
        t.contains("[#1]") && t.contains(" failed")
    });
    assert!(
        finished.starts_with(&format!(
            "Build [#1]({url}#/builders/1/builds/1) of `runtests` failed: "
        )),
        "{finished}"
    );
    let build = master.build(1).unwrap();
    let reason = client::get(&format!("{url}api/v2/buildsets?order=-bsid&limit=1"));
    assert!(
        reason.contains("forced: by trusted on #builds: from irc"),
        "{reason}"
    );
    assert_eq!(build["results"], 2);

    // A long build, stopped.
    assert_eq!(
        ask(
            &mut c,
            "force build --props=sleep_secs=300 runtests long",
            &|_| true
        ),
        "Force build successfully requested."
    );
    c.expect_message("ci", "#builds", "the long build's start", |t| {
        t.contains("[#2]") && t.ends_with("started.")
    });
    let status = ask(&mut c, "status runtests", &|_| true);
    assert!(
        status.starts_with(&format!(
            "`runtests`: running: build [#2]({url}#/builders/1/builds/2)"
        )),
        "{status}"
    );
    assert_eq!(
        ask(&mut c, "stop build runtests enough", &|_| true),
        format!("Build [#2]({url}#/builders/1/builds/2) of `runtests` interrupted.")
    );
    let stopped = c.expect_message("ci", "#builds", "the stopped build's end", |t| {
        t.contains("[#2]") && !t.ends_with("started.")
    });
    assert!(
        stopped.contains("was cancelled") || stopped.contains("stopped with exception"),
        "{stopped}"
    );
    assert_eq!(
        ask(&mut c, "stop build runtests again", &|_| true),
        "Sorry, no build is currently running."
    );

    // The master's changes.
    master.change("alice <alice@example.org>");
    c.say("#builds", "ci: list 1 changes");
    for want in [
        "I found the following recent changes:",
        "fix the flaky test)",
        "Author: alice <alice@example.org>",
        "Repository: https://example.org/repo.git",
        "Branch: main",
        "Revision: 0123abcd",
    ] {
        c.expect_message("ci", "#builds", want, |t| t == want);
    }
}

/// GerritStatusPush with its default summary: a change from Gerrit (its event properties on the
/// change) builds on two builders; when the buildset completes, one summary review with both
/// builds reaches the fake gerrit (a real sshd), once.
#[test]
fn a_buildset_of_two_builders_gets_one_gerrit_summary() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = support::sshd::Sshd::start(&dir.path().join("ssh"), "3.9.1");
    let tidings_port = support::free_port();
    let master = Master::start_with(
        dir.path(),
        &format!("http://127.0.0.1:{tidings_port}"),
        &[("BB_LINT_BUILDER", "1")],
    );
    let config = following(
        dir.path(),
        tidings_port,
        &master,
        &format!(
            r#"[[reporter.gerrit]]
name = "gerrit"
server = "127.0.0.1"
port = {port}
username = "{user}"
identity_file = {identity:?}
known_hosts = {known_hosts:?}
"#,
            port = sshd.port,
            user = sshd.user,
            identity = sshd.identity.display().to_string(),
            known_hosts = sshd.known_hosts.display().to_string(),
        ),
    );
    let daemon = Daemon::start(&config);
    wait_until(
        "the source to follow the master",
        Duration::from_secs(60),
        || {
            metric(
                &daemon,
                &["tidings_source_connections_total{source=\"buildbot\"}"],
            ) >= 1
        },
    );
    master.change_with(
        "alice <alice@example.org>",
        r#"{"event.change.id": "I0123", "event.change.project": "demo", "event.change.number": 7, "event.patchSet.revision": "0123abcd"}"#,
    );
    let reviews = || {
        sshd.commands()
            .into_iter()
            .filter(|c| c != "gerrit version")
            .collect::<Vec<_>>()
    };
    wait_until("the summary review", Duration::from_secs(120), || {
        !reviews().is_empty()
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let got = reviews();
    assert_eq!(got.len(), 1, "one summary: {got:?}");
    let args = tidings::reporters::gerrit::ssh::split_like_gerrit(&got[0]);
    let at = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(at("--project"), "demo");
    assert_eq!(args.last().map(String::as_str), Some("0123abcd"));
    assert_eq!(at("--label"), "Verified=1");
    let url = master.url();
    let message = at("--message");
    let lines: Vec<&str> = message.split("\n\n").collect();
    assert_eq!(lines.len(), 2, "{message}");
    assert!(
        lines[0].starts_with("Builder lint succeeded (build successful) - ")
            && lines[0].contains(&format!("{url}#/builders/"))
            && lines[1].starts_with("Builder runtests succeeded (build successful) - "),
        "sorted by builder: {message}"
    );
}

/// GitHubStatusPush end to end: a change to a GitHub repository on the real master builds, and
/// its commit gets pending (the request), pending (the start) and success (the end), in order,
/// at the GitHub API (a scripted peer).
#[test]
fn a_real_build_of_a_github_repository_gets_its_commit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let peer_addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let tidings_port = support::free_port();
    let master = Master::start(dir.path(), &format!("http://127.0.0.1:{tidings_port}"));
    let config = following(
        dir.path(),
        tidings_port,
        &master,
        &format!(
            "[[reporter.github]]\nname = \"gh\"\ntoken = \"t\"\nbase_url = \"http://{peer_addr}\"\n\
             retry_delay = \"100ms\"\n"
        ),
    );
    let daemon = Daemon::start(&config);
    wait_until(
        "the source to follow the master",
        Duration::from_secs(60),
        || {
            metric(
                &daemon,
                &["tidings_source_connections_total{source=\"buildbot\"}"],
            ) >= 1
        },
    );
    // Master::change names https://example.org/repo.git; this one is on GitHub.
    master.change_with_repository(
        "alice <alice@example.org>",
        "https://github.com/octo/widget.git",
    );
    let path = "/repos/octo/widget/statuses/0123abcd";
    wait_until("the end status", Duration::from_secs(120), || {
        seen_on(&peer, path)
            .iter()
            .any(|s| s.body["state"] == "success")
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let seen: Vec<(String, String)> = seen_on(&peer, path)
        .iter()
        .map(|s| {
            (
                s.body["state"].as_str().unwrap().to_owned(),
                s.body["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("pending".into(), "Build pending.".into()),
            ("pending".into(), "Build started.".into()),
            ("success".into(), "Build done.".into()),
        ]
    );
    assert_eq!(seen_on(&peer, path)[2].body["context"], "buildbot/runtests");
}
