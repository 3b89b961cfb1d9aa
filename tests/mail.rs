//! `[[reporter.mail]]` against a real SMTP server: aiosmtpd from PyPI
//! (`scripts/install-aiosmtpd`, `tests/support/smtpd.py`) with STARTTLS on a self-signed
//! certificate and AUTH, saving every message byte for byte. What arrives is parsed with a real
//! MIME parser (`mailparse`).

mod support;

use mailparse::{MailHeaderMap, ParsedMail};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use support::daemon::{Daemon, config, settled, spawn_until_first_line, wait_until};
use support::tls::{certificate, self_signed};
use tidings::store::{State, Store};

/// A running aiosmtpd; stopped when dropped.
struct Smtpd {
    child: Child,
    dir: PathBuf,
    _log: support::daemon::StderrLog,
}

impl Smtpd {
    fn start(port: u16, dir: &Path, args: &[&str]) -> Smtpd {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new(support::install("install-aiosmtpd").join("bin/python"));
        cmd.arg(support::repo().join("tests/support/smtpd.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir)
            .args(args);
        let (child, line, log) = spawn_until_first_line(&mut cmd, "smtpd");
        assert_eq!(line.trim(), "READY", "smtpd did not start");
        Smtpd {
            child,
            dir: dir.to_owned(),
            _log: log,
        }
    }

    /// A plain server (no TLS, no AUTH) on a free port, saving into `dir/received`.
    fn start_plain(dir: &Path) -> (Smtpd, u16) {
        let port = support::free_port();
        (Smtpd::start(port, &dir.join("received"), &[]), port)
    }

    /// A server with TLS on a certificate from a throw-away CA (in `dir`), and `args`; returns
    /// it, its port and the CA's certificate.
    fn start_tls(dir: &Path, args: &[&str]) -> (Smtpd, u16, PathBuf) {
        let (ca, cert, key) = certificate(dir);
        let port = support::free_port();
        let mut all = vec!["--tls", cert.to_str().unwrap(), key.to_str().unwrap()];
        all.extend_from_slice(args);
        (Smtpd::start(port, &dir.join("received"), &all), port, ca)
    }

    /// A server with STARTTLS required on `cert` and `key`; returns it and its port.
    fn start_with(dir: &Path, cert: &Path, key: &Path) -> (Smtpd, u16) {
        let port = support::free_port();
        let args = [
            "--tls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--require-tls",
        ];
        (Smtpd::start(port, &dir.join("received"), &args), port)
    }

    /// What it received, in order: (envelope and session, raw message).
    fn received(&self) -> Vec<(Value, Vec<u8>)> {
        let mut out = Vec::new();
        for n in 1.. {
            let eml = self.dir.join(format!("{n}.eml"));
            if !eml.exists() {
                break;
            }
            let env = std::fs::read_to_string(self.dir.join(format!("{n}.json"))).unwrap();
            out.push((
                serde_json::from_str(&env).unwrap(),
                std::fs::read(eml).unwrap(),
            ));
        }
        out
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A `[[reporter.mail]]` named `name` sending to the test server on `port`, plus `rest`.
fn mail(name: &str, port: u16, rest: &str) -> String {
    format!(
        "[[reporter.mail]]\nname = \"{name}\"\nfromaddr = \"ci@example.org\"\n\
         relayhost = \"127.0.0.1\"\nsmtp_port = {port}\n{rest}"
    )
}

/// The failing sample with a given build id.
fn failing(buildid: i64) -> Value {
    let mut b: Value = serde_json::from_slice(&support::sample("failure-full.json")).unwrap();
    b["buildid"] = buildid.into();
    b["number"] = buildid.into();
    b["buildrequestid"] = buildid.into();
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{buildid}").into();
    b
}

fn header(m: &ParsedMail<'_>, name: &str) -> Option<String> {
    m.headers.get_first_value(name)
}

/// Runs a daemon on `config`, posts the failing sample as build `buildid`, waits for its
/// delivery to be dead-lettered, and returns the reason in the delivery log.
fn dead_letter(config: &Path, buildid: i64) -> String {
    let daemon = Daemon::start(config);
    daemon.post(&failing(buildid));
    let data = config.parent().unwrap().join("data");
    // On a timeout the daemon's log (shown with the failure) says what happened instead.
    wait_until("a dead letter", Duration::from_secs(30), || {
        states(&data).iter().any(|(s, _)| *s == State::Dead)
    });
    states(&data).swap_remove(0).1
}

/// The outbox states of every delivery (read beside the running daemon).
fn states(data: &Path) -> Vec<(State, String)> {
    let store = Store::open_shared(data).unwrap();
    store
        .list(None, 100)
        .unwrap()
        .into_iter()
        .map(|s| {
            let log = store.log(s.id).unwrap();
            let last = log.last().map(|l| l.detail.clone()).unwrap_or_default();
            (s.state, last)
        })
        .collect()
}

#[test]
fn a_mail_over_starttls_with_auth_has_buildbots_layout_and_our_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port, ca) = Smtpd::start_tls(dir.path(), &["--require-tls", "--auth", "ci:s3cret"]);
    let html = support::guest("html-log-tail");
    let config = config(
        dir.path(),
        &format!(
            r#"[secrets]
team = "infra"

[[formatter]]
name = "html"
module = "{html}"

[[reporter.mail]]
name = "team-mail"
fromaddr = "Example CI <ci@example.org>"
relayhost = "127.0.0.1"
smtp_port = {port}
use_tls = true
tls_ca_file = "{ca}"
smtp_user = "ci"
smtp_password = "s3cret"
lookup = "example.org"
extra_recipients = ["ops@example.org"]
extra_headers = {{ "X-Branch" = "%(prop:branch)s", "X-Team" = "%(secret:team)s", "X-Missing" = "%(prop:nope:-none)s", "X-Revision" = "%(src::revision)s" }}
add_logs = ["run.stdio"]
mode = "all"
message_formatter = "html"
retry_delay = "100ms"
"#,
            html = html.display(),
            ca = ca.display(),
        ),
    );
    let daemon = Daemon::start(&config);
    let mut build = failing(7);
    // A change author without a domain (lookup adds it) and one no lookup can save.
    build["properties"]["owners"] = json!([["alice", "bob@localhost"], "test"]);
    daemon.post(&build);
    wait_until("the mail", Duration::from_secs(30), || {
        !smtpd.received().is_empty()
    });
    let received = smtpd.received();
    assert_eq!(received.len(), 1);
    let (env, raw) = &received[0];
    assert_eq!(env["tls"], true, "sent over STARTTLS");
    assert_eq!(env["auth"], true, "authenticated");
    assert_eq!(env["mail_from"], "ci@example.org");
    let mut rcpt: Vec<String> = serde_json::from_value(env["rcpt_tos"].clone()).unwrap();
    rcpt.sort();
    assert_eq!(
        rcpt,
        ["alice@example.org", "ops@example.org", "tester@example.org"]
    );

    let mail = mailparse::parse_mail(raw).unwrap();
    assert_eq!(
        header(&mail, "From").unwrap(),
        "\"Example CI\" <ci@example.org>"
    );
    let to = header(&mail, "To").unwrap();
    assert!(
        to.contains("alice@example.org") && to.contains("tester <tester@example.org>"),
        "{to}"
    );
    assert!(!to.contains("bob"), "an invalid address is dropped: {to}");
    assert_eq!(header(&mail, "Cc").unwrap(), "ops@example.org");
    assert_eq!(header(&mail, "X-Branch").unwrap(), "main");
    assert_eq!(header(&mail, "X-Team").unwrap(), "infra");
    assert_eq!(header(&mail, "X-Missing").unwrap(), "none");
    assert_eq!(
        header(&mail, "X-Revision").unwrap(),
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(header(&mail, "X-Tidings-Builder").unwrap(), "runtests");
    assert_eq!(header(&mail, "X-Tidings-Result").unwrap(), "failure");
    assert_eq!(
        header(&mail, "X-Tidings-Build-Url").unwrap(),
        "http://127.0.0.1:8010/#/builders/1/builds/7"
    );
    assert!(
        header(&mail, "Message-ID")
            .unwrap()
            .ends_with("@example.org>")
    );
    assert!(header(&mail, "Date").is_some());
    let subject = header(&mail, "Subject").unwrap();
    assert!(subject.contains("runtests"), "{subject}");
    // Buildbot's layout: multipart/mixed, the HTML body first, then the log as a base64
    // text/plain attachment named step.log, without the stream prefixes.
    assert_eq!(mail.ctype.mimetype, "multipart/mixed");
    assert_eq!(mail.subparts.len(), 2);
    let body = &mail.subparts[0];
    assert_eq!(body.ctype.mimetype, "text/html");
    assert_eq!(body.ctype.charset, "utf-8");
    let html_body = body.get_body().unwrap();
    assert!(
        html_body.contains("runtests") && html_body.contains("FAILURE"),
        "{html_body}"
    );
    let log = &mail.subparts[1];
    assert_eq!(log.ctype.mimetype, "text/plain");
    assert_eq!(
        header(log, "Content-Transfer-Encoding")
            .unwrap()
            .to_lowercase(),
        "base64"
    );
    let disposition = log.get_content_disposition();
    assert_eq!(disposition.params.get("filename").unwrap(), "run.stdio");
    let text = log.get_body().unwrap();
    assert!(text.lines().any(|l| l == "running"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("orunning")), "{text}");
}

#[test]
fn header_values_from_a_build_cannot_add_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port) = Smtpd::start_plain(dir.path());
    let config = config(
        dir.path(),
        &mail(
            "m",
            port,
            r#"send_to_interested_users = false
extra_recipients = ["ops@example.org"]
extra_headers = { "X-Branch" = "%(prop:branch)s" }
subject = "%(builder)s is %(result)s"
mode = "all"
"#,
        ),
    );
    let daemon = Daemon::start(&config);
    let mut build = failing(8);
    build["builder"]["name"] = "evil\r\nBcc: victim@example.org".into();
    build["properties"]["branch"] = json!(["main\r\nX-Injected: yes", "test"]);
    daemon.post(&build);
    wait_until("the mail", Duration::from_secs(30), || {
        !smtpd.received().is_empty()
    });
    let (env, raw) = &smtpd.received()[0];
    assert_eq!(env["rcpt_tos"], json!(["ops@example.org"]));
    let mail = mailparse::parse_mail(raw).unwrap();
    for h in &mail.headers {
        let key = h.get_key().to_lowercase();
        assert!(
            key != "bcc" && key != "x-injected",
            "an injected header: {}",
            h.get_key()
        );
    }
    assert!(header(&mail, "X-Branch").unwrap().starts_with("main"));
}

#[test]
fn starttls_required_but_not_offered_sends_nothing_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port) = Smtpd::start_plain(dir.path());
    let config = config(
        dir.path(),
        &mail(
            "m",
            port,
            r#"use_tls = true
extra_recipients = ["ops@example.org"]
mode = "all"
"#,
        ),
    );
    let why = dead_letter(&config, 9);
    assert!(why.contains("STARTTLS"), "{why}");
    assert!(smtpd.received().is_empty(), "nothing sent in clear");
}

#[test]
fn a_wrong_password_is_dead_lettered_with_the_servers_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port, ca) = Smtpd::start_tls(dir.path(), &["--require-tls", "--auth", "ci:s3cret"]);
    let config = config(
        dir.path(),
        &format!(
            r#"[[reporter.mail]]
name = "m"
fromaddr = "ci@example.org"
relayhost = "127.0.0.1"
smtp_port = {port}
use_tls = true
tls_ca_file = "{ca}"
smtp_user = "ci"
smtp_password = "wrong"
extra_recipients = ["ops@example.org"]
mode = "all"
"#,
            ca = ca.display()
        ),
    );
    let why = dead_letter(&config, 10);
    assert!(why.contains("535"), "{why}");
    assert!(smtpd.received().is_empty());
}

#[test]
fn a_server_down_at_first_gets_the_mail_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let config = config(
        dir.path(),
        &format!(
            r#"[[reporter.mail]]
name = "m"
fromaddr = "ci@example.org"
relayhost = "127.0.0.1"
smtp_port = {port}
extra_recipients = ["ops@example.org"]
mode = "all"
retry_delay = "200ms"
retry_max_delay = "400ms"
"#
        ),
    );
    let daemon = Daemon::start(&config);
    daemon.post(&failing(11));
    let data = dir.path().join("data");
    let attempts = |data: &Path| {
        let store = Store::open_shared(data).unwrap();
        store
            .list(None, 10)
            .unwrap()
            .first()
            .map_or(0, |s| store.log(s.id).unwrap().len())
    };
    wait_until("two failed attempts", Duration::from_secs(30), || {
        attempts(&data) >= 2
    });
    let smtpd = Smtpd::start(port, &dir.path().join("received"), &[]);
    wait_until("the mail", Duration::from_secs(30), || {
        !smtpd.received().is_empty()
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    assert_eq!(smtpd.received().len(), 1, "exactly once");
    assert_eq!(states(&data)[0].0, State::Delivered);
}

#[test]
fn every_mode_mails_exactly_what_buildbot_reports() {
    let table: Value = serde_json::from_str(&support::read("tests/data/modes.json")).unwrap();
    let sequence: Vec<i64> = serde_json::from_value(table["sequence"].clone()).unwrap();
    let rows = table["modes"].as_array().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port) = Smtpd::start_plain(dir.path());
    let mut reporters = String::new();
    for (i, row) in rows.iter().enumerate() {
        reporters.push_str(&format!(
            "[[reporter.mail]]\nname = \"m{i}\"\nfromaddr = \"ci@example.org\"\nrelayhost = \"127.0.0.1\"\n\
             smtp_port = {port}\nsend_to_interested_users = false\nextra_recipients = [\"mode{i}@example.org\"]\n\
             mode = {}\n\n",
            row["mode"]
        ));
    }
    let config = config(dir.path(), &reporters);
    let daemon = Daemon::start(&config);
    for (i, results) in sequence.iter().enumerate() {
        let mut b = failing(100 + i as i64);
        b["number"] = (i as i64 + 1).into();
        b["results"] = (*results).into();
        daemon.post(&b);
    }
    let total: usize = rows
        .iter()
        .map(|r| r["reported"].as_array().unwrap().len())
        .sum();
    wait_until("every mail", Duration::from_secs(60), || {
        smtpd.received().len() >= total
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let received = smtpd.received();
    assert_eq!(received.len(), total);
    for (i, row) in rows.iter().enumerate() {
        let mut numbers: Vec<i64> = received
            .iter()
            .filter(|(env, _)| env["rcpt_tos"] == json!([format!("mode{i}@example.org")]))
            .map(|(_, raw)| {
                let m = mailparse::parse_mail(raw).unwrap();
                let url = header(&m, "X-Tidings-Build-Url").unwrap();
                url.rsplit('/').next().unwrap().parse::<i64>().unwrap() - 99
            })
            .collect();
        numbers.sort_unstable();
        let expected: Vec<i64> = serde_json::from_value(row["reported"].clone()).unwrap();
        assert_eq!(numbers, expected, "mode {}", row["mode"]);
    }
}

#[test]
fn buildset_summaries_and_missing_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port) = Smtpd::start_plain(dir.path());
    let config = config(
        dir.path(),
        &format!(
            r#"[[reporter.mail]]
name = "sets"
fromaddr = "ci@example.org"
relayhost = "127.0.0.1"
smtp_port = {port}
build_set_summary = true
mode = ["failing"]
workers = []

[[reporter.mail]]
name = "workers"
fromaddr = "ci@example.org"
relayhost = "127.0.0.1"
smtp_port = {port}
mode = ["exception"]
"#
        ),
    );
    let daemon = Daemon::start(&config);
    let (a, mut b) = (failing(20), failing(21));
    b["builder"]["name"] = "lint".into();
    daemon.post_event(&json!({"schema_version": 1, "type": "buildset_complete",
        "buildset": {"bsid": 5, "complete": true, "results": 2}, "builds": [a, b],
        "changes": [{"author": "Alice <alice@example.org>", "comments": "fix"}]}));
    daemon.post_event(&json!({"schema_version": 1, "type": "worker_missing",
        "master": "http://127.0.0.1:8010/",
        "worker": {"name": "w1", "notify": ["admin@example.org"],
                   "last_connection": "Mon Nov 23 10:00:00 2026", "workerinfo": {"admin": "Ada"}}}));
    wait_until("two mails", Duration::from_secs(30), || {
        smtpd.received().len() >= 2
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    let received = smtpd.received();
    assert_eq!(
        received.len(),
        2,
        "one mail per buildset, one per missing worker"
    );
    let find = |rcpt: &str| {
        received
            .iter()
            .find(|(env, _)| {
                env["rcpt_tos"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == rcpt)
            })
            .unwrap_or_else(|| panic!("no mail to {rcpt}"))
    };
    // The buildset: one mail to the owner and the changes' author (Buildbot's buildset
    // blamelist), both builds' default texts, "whole buildset".
    let (env, raw) = find("tester@example.org");
    assert_eq!(
        env["rcpt_tos"],
        json!(["alice@example.org", "tester@example.org"])
    );
    let m = mailparse::parse_mail(raw).unwrap();
    let body = m.get_body().unwrap();
    assert!(body.contains("runtests") && body.contains("lint"), "{body}");
    // The missing worker: to its notify list, no To header, Buildbot's text.
    let (env, raw) = find("admin@example.org");
    assert_eq!(env["rcpt_tos"], json!(["admin@example.org"]));
    let m = mailparse::parse_mail(raw).unwrap();
    assert!(header(&m, "To").is_none(), "no To header");
    assert_eq!(
        header(&m, "Subject").unwrap(),
        "Buildbot Example CI worker w1 missing"
    );
    let body = m.get_body().unwrap();
    assert!(
        body.starts_with("The Buildbot worker named w1 went away."),
        "{body}"
    );
    assert!(body.contains("It last disconnected at Mon Nov 23 10:00:00 2026."));
    assert!(body.contains("was Ada."));
}

#[test]
fn a_certificate_nobody_vouches_for_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port, _ca) = Smtpd::start_tls(dir.path(), &["--require-tls"]);
    // No tls_ca_file: the test CA is not trusted.
    let config = config(
        dir.path(),
        &mail(
            "m",
            port,
            r#"use_tls = true
extra_recipients = ["ops@example.org"]
mode = "all"
"#,
        ),
    );
    // A TLS failure is a dead letter at once, not an endless retry.
    let why = dead_letter(&config, 12);
    assert!(
        why.contains("the server's certificate is not signed by a CA tidings trusts"),
        "{why}"
    );
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    assert_eq!(store.log(1).unwrap().len(), 1, "one attempt");
    assert!(smtpd.received().is_empty());
}

#[test]
fn the_embedded_default_config_mails_into_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        tidings::daemon::DEFAULT_CONFIG.replace("127.0.0.1:8411", "127.0.0.1:0"),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    daemon.post(&failing(1));
    let maildir = dir.path().join("tidings-data/mail");
    let emls = || -> Vec<PathBuf> {
        std::fs::read_dir(&maildir)
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until("a mail file", Duration::from_secs(30), || {
        !emls().is_empty()
    });
    let raw = std::fs::read(&emls()[0]).unwrap();
    let m = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(header(&m, "To").unwrap(), "tester <tester@example.org>");
    assert_eq!(header(&m, "Cc").unwrap(), "you@example.org");
    // Buildbot's default mail, from the built-in formatter.
    let body = m.get_body().unwrap();
    assert!(
        body.starts_with("A failed build has been detected on builder runtests"),
        "{body}"
    );
    assert!(header(&m, "Subject").unwrap().contains("runtests"));
}

#[test]
fn a_json_formatter_for_mail_is_a_bad_output_and_the_default_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port) = Smtpd::start_plain(dir.path());
    let json = r#"{"body":{"a":1},"type":"json"}"#;
    let module = support::constant_formatter(json);
    std::fs::write(dir.path().join("json.wasm"), module).unwrap();
    let config = config(
        dir.path(),
        &format!(
            r#"[[formatter]]
name = "json"
module = "json.wasm"

[[reporter.mail]]
name = "m"
fromaddr = "ci@example.org"
relayhost = "127.0.0.1"
smtp_port = {port}
send_to_interested_users = false
extra_recipients = ["ops@example.org"]
mode = "all"
message_formatter = "json"
"#
        ),
    );
    let daemon = Daemon::start(&config);
    daemon.post(&failing(13));
    wait_until("the mail", Duration::from_secs(30), || {
        !smtpd.received().is_empty()
    });
    let (_, raw) = &smtpd.received()[0];
    let body = mailparse::parse_mail(raw).unwrap().get_body().unwrap();
    assert!(
        body.starts_with("A failed build has been detected"),
        "{body}"
    );
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    let d = store.delivery(1).unwrap().unwrap();
    assert!(
        d.explanation.contains("DEGRADED") && d.explanation.contains("BadOutput"),
        "{}",
        d.explanation
    );
}

#[test]
fn implicit_tls_and_a_refused_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port, ca) = Smtpd::start_tls(
        dir.path(),
        &[
            "--smtps",
            "--auth",
            "ci:s3cret",
            "--reject-rcpt",
            "nobody@example.org",
        ],
    );
    let reporter = |name: &str, to: &str| {
        format!(
            r#"[[reporter.mail]]
name = "{name}"
fromaddr = "ci@example.org"
relayhost = "127.0.0.1"
smtp_port = {port}
use_smtps = true
tls_ca_file = "{ca}"
smtp_user = "ci"
smtp_password = "s3cret"
send_to_interested_users = false
extra_recipients = ["{to}"]
mode = "all"

"#,
            ca = ca.display()
        )
    };
    let config = config(
        dir.path(),
        &[
            reporter("good", "ops@example.org"),
            reporter("bad", "nobody@example.org"),
        ]
        .concat(),
    );
    let daemon = Daemon::start(&config);
    daemon.post(&failing(14));
    let data = dir.path().join("data");
    wait_until(
        "one mail and one dead letter",
        Duration::from_secs(30),
        || !smtpd.received().is_empty() && states(&data).iter().any(|(s, _)| *s == State::Dead),
    );
    let received = smtpd.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0["tls"], true, "implicit TLS");
    assert_eq!(received[0].0["rcpt_tos"], json!(["ops@example.org"]));
    let dead: Vec<String> = states(&data)
        .into_iter()
        .filter(|(s, _)| *s == State::Dead)
        .map(|(_, why)| why)
        .collect();
    assert!(dead[0].contains("550"), "the server's reply: {dead:?}");
}

#[test]
fn a_4xx_reply_is_retried_and_the_mail_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let smtpd = Smtpd::start(port, &dir.path().join("received"), &["--tempfail", "2"]);
    let config = config(
        dir.path(),
        &mail(
            "m",
            port,
            r#"extra_recipients = ["ops@example.org"]
mode = "all"
retry_delay = "100ms"
retry_max_delay = "200ms"
"#,
        ),
    );
    let daemon = Daemon::start(&config);
    daemon.post(&failing(15));
    wait_until("the mail", Duration::from_secs(30), || {
        !smtpd.received().is_empty()
    });
    wait_until("the outbox to settle", Duration::from_secs(30), || {
        settled(&dir.path().join("data"))
    });
    assert_eq!(smtpd.received().len(), 1);
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    let log = store.log(1).unwrap();
    let results: Vec<&str> = log.iter().map(|l| l.result.as_str()).collect();
    assert_eq!(results, ["retry", "retry", "delivered"], "{log:?}");
    assert!(log[0].detail.contains("451"), "{}", log[0].detail);
}

#[test]
fn a_timeout_is_not_repeated_blindly() {
    // A server that takes the whole mail and never answers after the data: it may have it.
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for conn in sink.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut lines = std::io::BufReader::new(conn.try_clone().unwrap());
            let _ = conn.write_all(b"220 sink ESMTP\r\n");
            let mut line = String::new();
            let mut in_data = false;
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                let reply: &[u8] = match line.to_ascii_uppercase() {
                    _ if in_data => b"",
                    l if l.starts_with("EHLO") => b"250 sink\r\n",
                    l if l.starts_with("DATA") => {
                        in_data = true;
                        b"354 go on\r\n"
                    }
                    _ => b"250 ok\r\n",
                };
                let _ = conn.write_all(reply);
                line.clear();
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &mail(
            "m",
            port,
            r#"extra_recipients = ["ops@example.org"]
mode = "all"
timeout = "1s"
"#,
        ),
    );
    let why = dead_letter(&config, 16);
    assert!(
        why.contains("may have been delivered") && why.contains("timed out"),
        "{why}"
    );
}

#[test]
fn a_server_that_never_greets_is_tried_again() {
    // It takes the connection and says nothing: no mail was sent, so this is an ordinary retry.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &mail(
            "m",
            port,
            r#"extra_recipients = ["ops@example.org"]
mode = "all"
timeout = "1s"
retry_delay = "100ms"
"#,
        ),
    );
    let daemon = Daemon::start(&config);
    daemon.post(&failing(17));
    let data = dir.path().join("data");
    wait_until("two attempts", Duration::from_secs(30), || {
        Store::open_shared(&data)
            .and_then(|s| s.log(1))
            .is_ok_and(|log| log.len() >= 2)
    });
    let store = Store::open_shared(&data).unwrap();
    let log = store.log(1).unwrap();
    assert!(log.iter().all(|l| l.result == "retry"), "{log:?}");
    assert!(log[0].detail.contains("no ready connection"), "{log:?}");
    drop(silent);
}

#[test]
fn a_missing_worker_mail_can_come_from_a_formatter() {
    let dir = tempfile::tempdir().unwrap();
    let (smtpd, port) = Smtpd::start_plain(dir.path());
    let config = config(
        dir.path(),
        &format!(
            r#"[[formatter]]
name = "dm"
module = "{}"
hooks = ["messageFormatter", "messageFormatterMissingWorker"]

{}"#,
            support::guest("default-mail").display(),
            mail("m", port, "message_formatter_missing_worker = \"dm\"\n"),
        ),
    );
    let case: Value = serde_json::from_str(&support::read(
        "formatters/default-mail/tests/missing-worker.input.json",
    ))
    .unwrap();
    let expected: Value = serde_json::from_str(&support::read(
        "formatters/default-mail/tests/missing-worker.expected.json",
    ))
    .unwrap();
    let daemon = Daemon::start(&config);
    daemon.post_event(&json!({"schema_version": 1, "type": "worker_missing",
        "master": "http://127.0.0.1:8010/", "worker": case["worker"]}));
    wait_until("the mail", Duration::from_secs(30), || {
        !smtpd.received().is_empty()
    });
    let (env, raw) = &smtpd.received()[0];
    assert_eq!(env["rcpt_tos"], json!(["admin@example.org"]));
    let m = mailparse::parse_mail(raw).unwrap();
    // Buildbot's own MessageFormatterMissingWorker text, from the WASM formatter (the mail's
    // CRLF line ends and trailing blank lines aside).
    let body = m.get_body().unwrap().replace("\r\n", "\n");
    assert_eq!(
        body.trim_end(),
        expected["body"].as_str().unwrap().trim_end()
    );
    assert_eq!(
        header(&m, "Subject").unwrap(),
        "Buildbot Example CI worker w1 missing"
    );
    let store = Store::open_shared(&dir.path().join("data")).unwrap();
    let why = store.delivery(1).unwrap().unwrap().explanation;
    assert!(
        why.contains("messageFormatterMissingWorker by formatter \"dm\""),
        "{why}"
    );
}

/// A mail reporter sending every build over STARTTLS to `port`, trusting `ca_file`.
fn starttls_mail(port: u16, ca_file: &Path) -> String {
    mail(
        "m",
        port,
        &format!(
            "use_tls = true\ntls_ca_file = \"{}\"\nextra_recipients = [\"ops@example.org\"]\n\
             mode = \"all\"\n",
            ca_file.display()
        ),
    )
}

#[test]
fn a_self_signed_relay_in_tls_ca_file_is_trusted_as_python_and_curl_trust_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "relay", "IP:127.0.0.1", false);
    let (smtpd, port) = Smtpd::start_with(dir.path(), &cert, &key);
    let config = config(dir.path(), &starttls_mail(port, &cert));
    let daemon = Daemon::start(&config);
    daemon.post(&failing(31));
    wait_until("the mail", Duration::from_secs(30), || {
        !smtpd.received().is_empty()
    });
    assert_eq!(smtpd.received()[0].0["tls"], true);
}

#[test]
fn certificate_failures_are_dead_letters_said_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, _, _) = certificate(d);
    let (expired, expired_key) = self_signed(d, "expired", "IP:127.0.0.1", true);
    let (elsewhere, elsewhere_key) = self_signed(d, "elsewhere", "DNS:elsewhere.example", false);
    let (unknown, unknown_key) = self_signed(d, "unknown", "IP:127.0.0.1", false);
    // (server certificate and key, tls_ca_file, what the operator reads)
    let cases = [
        (
            &expired,
            &expired_key,
            &expired,
            "the server's certificate expired on 2020-01-02T00:00:00Z",
        ),
        (
            &elsewhere,
            &elsewhere_key,
            &elsewhere,
            "the server's certificate is for elsewhere.example, not for 127.0.0.1, the host name tidings connected to",
        ),
        (
            &unknown,
            &unknown_key,
            &ca,
            "the server presents a CA certificate as its own and that certificate is not in the CA file: to trust a self-signed server, put its certificate in the CA file",
        ),
    ];
    for (i, (cert, key, trusted, sentence)) in cases.into_iter().enumerate() {
        let case = d.join(format!("case{i}"));
        std::fs::create_dir_all(&case).unwrap();
        let (smtpd, port) = Smtpd::start_with(&case, cert, key);
        let config = config(&case, &starttls_mail(port, trusted));
        let why = dead_letter(&config, 40 + i as i64);
        assert!(why.contains(sentence), "case {i}: {why}");
        assert_eq!(
            why.matches(sentence).count(),
            1,
            "case {i}: said once: {why}"
        );
        assert!(
            !why.contains("InvalidCertificate"),
            "case {i}: no jargon: {why}"
        );
        let store = Store::open_shared(&case.join("data")).unwrap();
        assert_eq!(store.log(1).unwrap().len(), 1, "case {i}: one attempt");
        assert!(smtpd.received().is_empty());
    }
}
