//! `[[reporter.irc]]` against real IRC servers (Debian's, installed by `scripts/install-irc`),
//! started per test on ports of their own: ngIRCd with a keyed channel; Atheme services linked
//! to it (NickServ) and to InspIRCd 3 (SASL). A plain IRC client in the test reads what the bot
//! says and talks to it.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use support::daemon::{Daemon, attempts, config, settled, wait_until};
use support::irc::{Atheme, Client, Inspircd, Ngircd, Setup, logged_in, register};

const BOT: &str = "tidingsbot";

/// The bot on `port`, in `#builds` (key `sekrit`), plus `rest`.
fn irc(port: u16, rest: &str) -> String {
    format!(
        "[[reporter.irc]]\nname = \"irc\"\nhost = \"127.0.0.1\"\nport = {port}\nnick = \"{BOT}\"\n\
         channels = [{{ channel = \"#builds\", password = \"sekrit\" }}]\n\
         notify_events = [\"started\", \"finished\"]\nuse_colors = false\nlost_delay = \"1s\"\n{rest}"
    )
}

fn sample(name: &str) -> Value {
    serde_json::from_slice(&support::sample(name)).unwrap()
}

/// The failing sample as build `n`.
fn failing(n: i64) -> Value {
    let mut b = sample("failure-full.json");
    b["buildid"] = n.into();
    b["number"] = n.into();
    b["buildrequestid"] = n.into();
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{n}").into();
    b
}

/// ngIRCd with `#builds` (key `sekrit`).
fn server(dir: &Path) -> Ngircd {
    Ngircd::start(
        dir,
        Setup {
            channel: Some(("#builds", "sekrit")),
            ..Setup::default()
        },
    )
}

/// A client in `#builds` that has seen the bot join it.
fn watcher(server: &Ngircd, nick: &str) -> Client {
    let mut c = Client::connect(server.port, nick);
    c.join("#builds", Some("sekrit"));
    c
}

fn bot_joined(c: &mut Client) {
    c.expect("the bot to join #builds", Duration::from_secs(30), |l| {
        l.command == "JOIN" && l.from == BOT
    });
}

/// Asks the bot `command` on `#builds` and returns its first answer there.
fn ask(c: &mut Client, command: &str, answer: impl Fn(&str) -> bool) -> String {
    c.say("#builds", &format!("{BOT}: {command}"));
    c.expect_message(BOT, "#builds", command, answer)
}

#[test]
fn builds_are_announced_and_every_command_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let mut c = watcher(&server, "watcher");
    let cfg = config(
        dir.path(),
        &irc(
            server.port,
            "authz = { force = [\"trusted\"], mute = [\"watcher\"] }\nflood_interval = \"200ms\"\n",
        ),
    );
    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);

    // A started and a finished build, with the build URL, as Buildbot words them.
    daemon.post(&sample("started-full.json"));
    let started = c.expect_message(BOT, "#builds", "the start", |t| t.contains("started"));
    assert_eq!(
        started,
        "Build [#1](http://127.0.0.1:8010/#/builders/1/builds/1) of `runtests` started."
    );
    daemon.post(&failing(2));
    let finished = c.expect_message(BOT, "#builds", "the failure", |t| t.contains("failed"));
    assert_eq!(
        finished,
        "Build [#2](http://127.0.0.1:8010/#/builders/1/builds/2) of `runtests` failed: failed 'sh -c ...' (failure)  blamelist: tester <tester@example.org>"
    );

    // Every command's reply.
    assert!(!ask(&mut c, "hello", |_| true).is_empty());
    assert_eq!(
        ask(&mut c, "version", |_| true),
        format!(
            "This is tidings-{} at your service",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(ask(&mut c, "source", |_| true).contains("tidings"));
    assert_eq!(
        ask(&mut c, "commands", |_| true),
        "Buildbot commands: commands, force, hello, help, join, last, leave, list, mute, notify, shutdown, source, status, stop, unmute, version, watch"
    );
    assert_eq!(
        ask(&mut c, "help", |t| t.starts_with("commands")),
        "commands - list available commands"
    );
    c.expect_message(BOT, "#builds", "the end of help", |t| {
        t == "watch - announce the completion of an active build"
    });
    assert_eq!(
        ask(&mut c, "help stop", |_| true),
        "Usage: stop build _which_ _reason_ - Stop a running build"
    );
    assert_eq!(
        ask(&mut c, "help nope", |_| true),
        "There is no such command 'nope'."
    );
    assert_eq!(
        ask(&mut c, "list builders", |_| true),
        "I found the following builders: runtests"
    );
    assert_eq!(
        ask(&mut c, "list", |_| true),
        "Try 'list [all|N] builders|workers|changes'."
    );
    // Build 1 started and has not finished.
    assert_eq!(
        ask(&mut c, "status runtests", |_| true),
        "`runtests`: running: build [#1](http://127.0.0.1:8010/#/builders/1/builds/1) (starting)"
    );
    let last = ask(&mut c, "last runtests", |_| true);
    assert!(
        last.starts_with("`runtests`: last build failed (")
            && last.ends_with(" ago): failed 'sh -c ...' (failure)"),
        "{last}"
    );
    assert_eq!(
        ask(&mut c, "last nosuch", |_| true),
        "no such builder 'nosuch'"
    );
    // Watched in private: the nick asks for no events, and is told of this build's end.
    c.say(BOT, "watch runtests");
    c.expect_message(BOT, "watcher", "the watch", |t| {
        t == "Watching build [#1](http://127.0.0.1:8010/#/builders/1/builds/1) of `runtests` until it finishes..."
    });
    assert_eq!(
        ask(&mut c, "watch nosuch", |_| true),
        "no such builder 'nosuch'"
    );
    assert_eq!(
        ask(&mut c, "notify list", |_| true),
        "The following events are being notified: finished, started."
    );
    // Nobody is a channel operator of a predefined channel: changing its events is refused.
    assert_eq!(
        ask(&mut c, "notify on failure", |_| true),
        "Only channel operators can change notified events for this channel. And you, watcher, are neither!"
    );
    c.say(BOT, "notify on bogus");
    c.expect_message(BOT, "watcher", "the usage, in private", |t| {
        t == "Try 'notify on|off _EVENT_'."
    });
    // Unknown words, and dangerous commands for nicks authz does not name.
    assert_eq!(ask(&mut c, "wow!", |_| true), "What you say!");
    assert_eq!(
        ask(&mut c, "frobnicate", |_| true),
        "I don't get this 'frobnicate'..."
    );
    c.expect_message(BOT, "#builds", "the command list", |t| {
        t.starts_with("Buildbot commands:")
    });
    assert_eq!(
        ask(&mut c, "force build runtests please", |_| true),
        "Thou shall not pass, watcher!!!"
    );
    assert_eq!(
        ask(&mut c, "shutdown now", |_| true),
        "Thou shall not pass, watcher!!!"
    );
    let mut trusted = watcher(&server, "trusted");
    trusted.say(
        "#builds",
        &format!("{BOT}: force build --branch=x;y runtests go"),
    );
    trusted.expect_message(BOT, "#builds", "the refusal", |t| {
        t == "Sorry, bad branch 'x;y'"
    });
    trusted.say("#builds", &format!("{BOT}, force build runtests go"));
    trusted.expect_message(BOT, "#builds", "no master", |t| {
        t.starts_with("Sorry, forcing builds is not configured")
    });
    trusted.say(BOT, "stop build runtests enough");
    trusted.expect_message(BOT, "trusted", "stop, in private", |t| {
        t == "Thou shall not pass, trusted!!!"
    });

    // A state string and an owner carrying IRC commands arrive as one harmless line each.
    let mut hostile = failing(3);
    hostile["state_string"] = "x\r\nQUIT :x\r\nPRIVMSG #builds :injected".into();
    hostile["properties"]["owner"] = json!(["evil\r\nJOIN #owned", "Force Build Form"]);
    daemon.post(&hostile);
    let said = c.expect_message(BOT, "#builds", "the hostile build", |t| t.contains("[#3]"));
    assert_eq!(
        said,
        "Build [#3](http://127.0.0.1:8010/#/builders/1/builds/3) of `runtests` failed: x  QUIT :x  PRIVMSG #builds :injected  blamelist: evil  JOIN #owned, tester <tester@example.org>"
    );
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let after = c.messages_until_reply(BOT);
    assert!(after.is_empty(), "{after:?}");
    assert!(
        !c.seen
            .iter()
            .any(|l| l.from == BOT && (l.command == "QUIT" || l.text() == "injected")),
        "the bot was made to do something"
    );

    // mute (authz names watcher for it) silences the channel; unmute brings it back.
    assert_eq!(ask(&mut c, "mute", |_| true), "Shutting up for now.");
    daemon.post(&failing(4));
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let quiet = c.messages_until_reply(BOT);
    assert!(quiet.is_empty(), "said while muted: {quiet:?}");
    let log = attempts(&dir.path().join("data"));
    assert_eq!(log.matches("Delivered").count(), 3, "{log}");
    c.say("#builds", &format!("{BOT}: unmute"));
    c.expect_message(BOT, "#builds", "unmute", |t| t == "I'm baaaaaaaaaaack!");
    // The watched build ends: announced on the channel (`finished`) and to the watcher, once.
    let mut done = sample("success-full.json");
    done["buildrequestid"] = 1.into();
    daemon.post(&done);
    let ended = |t: &str| t.starts_with("Build [#1](") && t.ends_with("completed successfully.");
    c.expect_each(
        "the build's end on #builds and to the watcher",
        Duration::from_secs(30),
        &[&|l| l.is_message(BOT, "#builds") && ended(l.text()), &|l| {
            l.is_message(BOT, "watcher") && ended(l.text())
        }],
    );
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let after = c.messages_until_reply(BOT);
    assert!(after.is_empty(), "{after:?}");
    drop(daemon);
}

#[test]
fn notify_settings_in_private_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let mut c = watcher(&server, "alice");
    let cfg = config(dir.path(), &irc(server.port, ""));
    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    c.say(BOT, "notify on recovery worse");
    c.expect_message(BOT, "alice", "the events", |t| {
        t == "The following events are being notified: recovery, worse."
    });
    // The quiet forms say nothing.
    c.say(BOT, "notify on-quiet failure");
    c.say(BOT, "notify off-quiet recovery");
    assert!(c.messages_until_reply(BOT).is_empty());
    c.say(BOT, "notify list");
    c.expect_message(BOT, "alice", "the changed events", |t| {
        t == "The following events are being notified: failure, worse."
    });
    c.say(BOT, "notify off failure");
    c.expect_message(BOT, "alice", "one off", |t| {
        t == "The following events are being notified: worse."
    });
    c.say(BOT, "notify on-quiet recovery");
    // Commands run in order: once this is answered, the one before is done.
    assert!(c.messages_until_reply(BOT).is_empty());
    drop(daemon);
    c.expect("the bot to quit", Duration::from_secs(30), |l| {
        l.command == "QUIT" && l.from == BOT
    });

    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    c.say(BOT, "notify list");
    c.expect_message(BOT, "alice", "the events again", |t| {
        t == "The following events are being notified: recovery, worse."
    });
    // A success after a failure is a recovery: alice is told in private, the channel (started,
    // finished) too.
    daemon.post(&failing(1));
    let mut ok = sample("success-full.json");
    ok["buildid"] = 2.into();
    ok["number"] = 2.into();
    ok["buildrequestid"] = 2.into();
    daemon.post(&ok);
    let private = c.expect_message(BOT, "alice", "the recovery", |t| t.contains("[#2]"));
    assert!(
        private.ends_with("of `runtests` completed successfully."),
        "{private}"
    );
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    // The failure before it was neither worse (no previous build) nor a recovery.
    let said: Vec<String> = c
        .seen
        .iter()
        .filter(|l| l.is_message(BOT, "alice") && l.text().starts_with("Build"))
        .map(|l| l.text().to_owned())
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
}

#[test]
fn thirty_notifications_at_once_arrive_without_a_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let mut c = watcher(&server, "reader");
    let cfg = config(
        dir.path(),
        &irc(server.port, "").replace("[\"started\", \"finished\"]", "[\"failure\"]"),
    );
    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    for n in 1..=30 {
        daemon.post(&failing(n));
    }
    // At the default pace (a burst of 4, then one line per 2 s): about a minute.
    let mut said = std::collections::BTreeSet::new();
    while said.len() < 30 {
        let l = c.expect("thirty notifications", Duration::from_secs(120), |l| {
            l.is_message(BOT, "#builds")
        });
        let n: i64 = l.text()["Build [#".len()..]
            .split(']')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(said.insert(n), "build {n} said twice");
    }
    assert_eq!(said, (1..=30).collect());
    let joins = c
        .seen
        .iter()
        .filter(|l| l.from == BOT && matches!(l.command.as_str(), "JOIN" | "QUIT"))
        .count();
    assert_eq!(joins, 1, "the bot joined once and never quit");
    assert!(!server.log().contains("Excess Flood"), "{}", server.log());
}

#[test]
fn the_bot_reconnects_rejoins_and_says_what_waited() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(dir.path());
    let mut c = watcher(&server, "patient");
    let cfg = config(dir.path(), &irc(server.port, ""));
    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    server.kill();
    daemon.post(&failing(7));
    // The delivery waits for the server: it is tried, and fails, at least once.
    let data = dir.path().join("data");
    wait_until("a failed attempt", Duration::from_secs(60), || {
        attempts(&data).contains("not connected to 127.0.0.1")
    });
    server.restart();
    let mut c = watcher(&server, "patient");
    bot_joined(&mut c);
    c.expect_message(BOT, "#builds", "the queued notification", |t| {
        t.contains("[#7](")
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&data)
    });
    let again = c.messages_until_reply(BOT);
    assert!(again.is_empty(), "said twice: {again:?}");
    drop(daemon);
}

#[test]
fn tls_is_verified_with_a_private_ca_and_an_unknown_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::tls::certificate(dir.path());
    let server = Ngircd::start(
        dir.path(),
        Setup {
            channel: Some(("#builds", "sekrit")),
            tls: Some((&cert, &key)),
            ..Setup::default()
        },
    );
    let tls_port = server.tls_port.unwrap();
    let mut c = watcher(&server, "secure");
    let trusted = irc(
        tls_port,
        &format!("use_ssl = true\ntls_ca_file = {:?}\n", ca),
    );
    let untrusted = irc(tls_port, "use_ssl = true\n")
        .replace("name = \"irc\"", "name = \"doubtful\"")
        .replace(&format!("nick = \"{BOT}\""), "nick = \"doubtful\"");
    let cfg = config(dir.path(), &format!("{trusted}\n{untrusted}"));
    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    daemon.post(&failing(1));
    c.expect_message(BOT, "#builds", "the notification over TLS", |t| {
        t.contains("[#1](")
    });
    wait_until("the refusal in the log", Duration::from_secs(30), || {
        let log = daemon.log.contents();
        log.contains("doubtful")
            && log.contains("TLS with 127.0.0.1")
            && log.contains("certificate")
    });
    assert!(
        !c.seen.iter().any(|l| l.from == "doubtful"),
        "the bot that does not trust the certificate got in"
    );
}

#[test]
fn a_reload_keeps_the_connection_and_operator_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let mut c = watcher(&server, "boss");
    let body = irc(
        server.port,
        "authz = { join = [\"boss\"], leave = [\"boss\"], shutdown = [\"boss\"] }\n\
         flood_interval = \"200ms\"\n",
    )
    .replace(
        "[\"started\", \"finished\"]",
        "[\"started\", \"finished\", \"worker\"]",
    );
    let dead_peer = "[[reporter.http_push]]\nname = \"dead\"\nserver_url = \"http://127.0.0.1:9/\"\n\
                     report_new = false\nretry_delay = \"5s\"\n";
    let cfg = config(dir.path(), &format!("{body}\n{dead_peer}"));
    let mut daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    let bot_lines = |c: &Client, command: &str| {
        c.seen
            .iter()
            .filter(|l| l.from == BOT && l.command == command)
            .count()
    };

    // SIGHUP with the same table: the connection stays.
    daemon.signal("-HUP");
    wait_until("the reload", Duration::from_secs(30), || {
        daemon.log.contents().contains("config reloaded")
    });
    assert!(c.messages_until_reply(BOT).is_empty());
    assert_eq!((bot_lines(&c, "JOIN"), bot_lines(&c, "QUIT")), (1, 0));

    // A worker goes missing, and comes back.
    let worker = |kind: &str| {
        json!({"schema_version": 1, "type": kind, "master": "http://127.0.0.1:8010/",
               "worker": {"name": "w1", "notify": ["ops@example.org"],
                          "last_connection": "Mon Nov 23 10:00:00 2026"}})
    };
    daemon.post_event(&worker("worker_missing"));
    c.expect_message(BOT, "#builds", "the missing worker", |t| {
        t == "Worker `w1` is missing. It was seen last on Mon Nov 23 10:00:00 2026."
    });
    daemon.post_event(&worker("worker_connected"));
    c.expect_message(BOT, "#builds", "the worker back", |t| {
        t == "Worker `w1` is back online."
    });

    // join and leave.
    c.join("#other", None);
    c.say("#builds", &format!("{BOT}: join #other"));
    c.expect("the bot in #other", Duration::from_secs(30), |l| {
        l.from == BOT && l.command == "JOIN" && l.params[0] == "#other"
    });
    c.say("#builds", &format!("{BOT}: leave #other"));
    c.expect("the bot to leave #other", Duration::from_secs(30), |l| {
        l.from == BOT && l.command == "PART" && l.params[0] == "#other"
    });

    // A changed table: the bot leaves and a new one comes, with the same nick.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("\"worker\"]", "\"worker\", \"failure\"]"),
    )
    .unwrap();
    daemon.signal("-HUP");
    c.expect("the old bot to quit", Duration::from_secs(30), |l| {
        l.from == BOT && l.command == "QUIT"
    });
    bot_joined(&mut c);
    assert_eq!(
        ask(&mut c, "notify list", |_| true),
        "The following events are being notified: failure, finished, started, worker."
    );

    // A clean shutdown waits for the outbox, which a dead HTTP peer keeps busy; it can be
    // called off; `now` stops at once.
    assert_eq!(
        ask(&mut c, "shutdown check", |_| true),
        "Status: tidings is running."
    );
    daemon.post(&failing(1));
    c.expect_message(BOT, "#builds", "the failure", |t| t.contains("[#1]("));
    wait_until("a pending delivery", Duration::from_secs(30), || {
        attempts(&dir.path().join("data")).contains("Pending")
    });
    assert_eq!(
        ask(&mut c, "shutdown start", |_| true),
        "Starting clean shutdown."
    );
    assert_eq!(
        ask(&mut c, "shutdown check", |_| true),
        "Status: tidings is shutting down."
    );
    assert_eq!(
        ask(&mut c, "shutdown start", |_| true),
        "Shutdown already started."
    );
    assert_eq!(
        ask(&mut c, "shutdown stop", |_| true),
        "Stopping clean shutdown."
    );
    assert_eq!(
        ask(&mut c, "shutdown check", |_| true),
        "Status: tidings is running."
    );
    assert!(daemon.child.try_wait().unwrap().is_none());
    assert_eq!(ask(&mut c, "shutdown now", |_| true), "Stopping tidings.");
    assert!(daemon.child.wait().unwrap().success());
    c.expect("the bot to quit", Duration::from_secs(30), |l| {
        l.from == BOT && l.command == "QUIT"
    });
}

/// A WASM formatter's plain body replaces the text (at most 5 lines); channel lines go as
/// NOTICE with `notice_on_channel`.
#[test]
fn a_formatter_replaces_the_text_and_notices_go_to_channels() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let mut c = watcher(&server, "reader");
    let short = support::guest("short");
    let body = format!(
        "[[formatter]]\nname = \"short\"\nmodule = {:?}\ntimeout = \"5s\"\n\n{}",
        short.display().to_string(),
        irc(
            server.port,
            "message_formatter = \"short\"\nnotice_on_channel = true\npm_to_nicks = [\"reader\"]\n"
        )
    );
    let cfg = config(dir.path(), &body);
    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    daemon.post(&failing(5));
    let l = c.expect("the formatted notice", Duration::from_secs(30), |l| {
        l.is_message(BOT, "#builds")
    });
    assert_eq!(
        (l.command.as_str(), l.text()),
        ("NOTICE", "STATUS: Failure")
    );
    // pm_to_nicks: told in private too, as PRIVMSG.
    let l = c.expect("the private notification", Duration::from_secs(30), |l| {
        l.is_message(BOT, "reader")
    });
    assert_eq!(
        (l.command.as_str(), l.text()),
        ("PRIVMSG", "STATUS: Failure")
    );
}

#[test]
fn the_bot_identifies_to_nickserv_through_ngircd_and_atheme() {
    let dir = tempfile::tempdir().unwrap();
    let server = Ngircd::start(
        dir.path(),
        Setup {
            channel: Some(("#builds", "sekrit")),
            services: true,
            ..Setup::default()
        },
    );
    let _services = Atheme::start(dir.path(), "ngircd", server.port);
    register(server.port, BOT, "bot-secret");
    let mut c = watcher(&server, "checker");
    assert!(!logged_in(&mut c, "checker"));
    // As Buildbot, the password goes as PASS too, which ngIRCd (no server password) refuses:
    // the log says what to do.
    let cfg = config(dir.path(), &irc(server.port, "password = \"bot-secret\"\n"));
    let daemon = Daemon::start(&cfg);
    wait_until("the refusal explained", Duration::from_secs(30), || {
        daemon.log.contents().contains("set send_pass = false")
    });
    drop(daemon);
    let cfg = config(
        dir.path(),
        &irc(
            server.port,
            "password = \"bot-secret\"\nsend_pass = false\n",
        ),
    );
    let _daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    wait_until(
        "NickServ to log the bot in",
        Duration::from_secs(30),
        || logged_in(&mut c, BOT),
    );
}

#[test]
fn sasl_plain_through_inspircd_and_atheme_and_a_refused_login() {
    let dir = tempfile::tempdir().unwrap();
    let ircd = Inspircd::start(dir.path());
    let _services = Atheme::start(dir.path(), "inspircd", ircd.server_port);
    register(ircd.port, BOT, "bot-secret");
    register(ircd.port, "intruder", "the-real-one");
    let mut c = Client::connect(ircd.port, "checker");
    c.join("#builds", None);
    let good = irc(ircd.port, "password = \"bot-secret\"\nuse_sasl = true\n").replace(
        "{ channel = \"#builds\", password = \"sekrit\" }",
        "\"#builds\"",
    );
    let bad = good
        .replace("name = \"irc\"", "name = \"intruder\"")
        .replace(&format!("nick = \"{BOT}\""), "nick = \"intruder\"")
        .replace("bot-secret", "a-guess");
    let cfg = config(dir.path(), &format!("{good}\n{bad}"));
    let daemon = Daemon::start(&cfg);
    bot_joined(&mut c);
    // SASL logs in before registration ends: logged in from the first line.
    assert!(logged_in(&mut c, BOT));
    daemon.post(&failing(1));
    c.expect_message(BOT, "#builds", "the notification", |t| t.contains("[#1]("));
    wait_until(
        "the refused login in the log",
        Duration::from_secs(30),
        || {
            daemon
                .log
                .contents()
                .contains("SASL login as \"intruder\" failed")
        },
    );
    assert!(!c.seen.iter().any(|l| l.from == "intruder"));
}
