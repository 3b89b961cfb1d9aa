//! `[[reporter.github]]` against a scripted HTTP peer (no GitHub can run here). Every request
//! is checked against GitHub's published OpenAPI description of the endpoint
//! (`../shared/reference/github-commit-status.openapi.json`, copied to
//! `tests/data/github-commit-status.openapi.json`).

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::daemon::{Daemon, Peer, attempts, config, seen_on, settled, start_peer, wait_until};

const TOKEN: &str = "ghp_t0ken-that-must-not-leak";

/// The request body schema of `POST /repos/{owner}/{repo}/statuses/{sha}`.
fn status_schema() -> jsonschema::Validator {
    let api: Value = serde_json::from_str(&support::read(
        "tests/data/github-commit-status.openapi.json",
    ))
    .unwrap();
    let schema = &api["paths"]["/repos/{owner}/{repo}/statuses/{sha}"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    jsonschema::validator_for(schema).unwrap()
}

fn github(addr: std::net::SocketAddr, rest: &str) -> String {
    format!(
        "[[reporter.github]]\nname = \"gh\"\ntoken = \"{TOKEN}\"\nbase_url = \"http://{addr}/\"\n\
         retry_delay = \"100ms\"\n{rest}\n"
    )
}

/// Source stamps: `octo/widget` at `sha` (by repository URL), and one naming no repository.
fn stamps(sha: &str) -> Value {
    json!({"bsid": 1, "sourcestamps": [
        {"ssid": 1, "codebase": "a", "repository": "git@github.com:octo/widget.git",
         "branch": "main", "revision": sha, "project": ""},
        {"ssid": 2, "codebase": "b", "repository": "/srv/not-a-forge", "branch": "main",
         "revision": "ffff", "project": ""}
    ]})
}

/// The failing sample as build `n` at `sha`, with result `results`.
fn build(n: i64, sha: &str, results: i64) -> Value {
    let mut b: Value = serde_json::from_slice(&support::sample("failure-full.json")).unwrap();
    b["buildid"] = n.into();
    b["number"] = n.into();
    b["buildrequestid"] = n.into();
    b["results"] = results.into();
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{n}").into();
    b["buildset"] = stamps(sha);
    b
}

fn request(kind: &str, n: i64, sha: &str) -> Value {
    let cancelled = kind == "buildrequest_cancelled";
    json!({"schema_version": 1, "type": kind, "master": "http://127.0.0.1:8010/",
           "build": {"buildrequestid": n, "builderid": 1, "builder": {"name": "runtests"},
                     "properties": {"buildername": ["runtests", "Builder"]},
                     "buildset": stamps(sha), "complete": cancelled,
                     "results": if cancelled { json!(6) } else { Value::Null },
                     "url": format!("http://127.0.0.1:8010/#/buildrequests/{n}")}})
}

fn path(sha: &str) -> String {
    format!("/repos/octo/widget/statuses/{sha}")
}

#[test]
fn statuses_follow_githubs_api_for_every_event_and_result() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let cfg = config(dir.path(), &github(addr, ""));
    let daemon = Daemon::start(&cfg);
    daemon.post_event(&request("buildrequest_new", 1, "aaa"));
    let mut started = build(1, "aaa", 0);
    started["complete"] = false.into();
    started["results"] = Value::Null;
    daemon.post(&started);
    daemon.post(&build(1, "aaa", 2));
    daemon.post_event(&request("buildrequest_cancelled", 9, "ccc"));
    // Every result, each at its own commit.
    for r in 0..7 {
        daemon.post(&build(10 + r, &format!("r{r}"), r));
    }
    wait_until("the statuses", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let schema = status_schema();
    let all: Vec<_> = peer.seen.lock().unwrap().clone();
    for s in &all {
        assert!(
            s.path.starts_with("/repos/octo/widget/statuses/"),
            "{}",
            s.path
        );
        assert!(schema.is_valid(&s.body), "invalid for GitHub: {}", s.body);
        assert_eq!(s.authorization, format!("token {TOKEN}"));
    }
    // The second source stamp names no repository: skipped, the first still reported.
    assert!(all.iter().all(|s| !s.path.ends_with("/ffff")));
    let lifecycle: Vec<(String, String)> = seen_on(&peer, &path("aaa"))
        .iter()
        .map(|s| {
            (
                s.body["state"].as_str().unwrap().to_owned(),
                s.body["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lifecycle,
        [
            ("pending".into(), "Build pending.".into()),
            ("pending".into(), "Build started.".into()),
            ("failure".into(), "Build done.".into()),
        ]
    );
    let first = &seen_on(&peer, &path("aaa"))[0].body;
    assert_eq!(first["context"], "buildbot/runtests");
    assert_eq!(
        first["target_url"],
        "http://127.0.0.1:8010/#/buildrequests/1"
    );
    // A cancelled request: Buildbot's pending text with a terminal state.
    let cancelled = &seen_on(&peer, &path("ccc"))[0].body;
    assert_eq!(
        (
            cancelled["state"].as_str(),
            cancelled["description"].as_str()
        ),
        (Some("error"), Some("Build pending."))
    );
    let states: Vec<String> = (0..7)
        .map(|r| {
            seen_on(&peer, &path(&format!("r{r}")))[0].body["state"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        states,
        [
            "success", "success", "failure", "success", "error", "pending", "error"
        ]
    );
    // The token is in no log, error or stored delivery.
    assert!(!daemon.log.contents().contains(TOKEN));
    drop(daemon);
    assert!(!attempts(&dir.path().join("data")).contains(TOKEN));
    let store = tidings::store::Store::open_shared(&dir.path().join("data")).unwrap();
    for d in store.list(None, 1000).unwrap() {
        let full = store.delivery(d.id).unwrap().unwrap();
        assert!(!full.payload.contains(TOKEN) && !full.explanation.contains(TOKEN));
    }
}

#[test]
fn answers_map_to_retry_classes_and_the_rate_limit_is_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    {
        let mut script = peer.script.lock().unwrap();
        script.insert(path("s422"), [(422, None)].into());
        script.insert(path("s403"), [(403, None), (201, None)].into());
        script.insert(path("s502"), [(502, None), (201, None)].into());
        script.insert(path("sforbidden"), [(403, None)].into());
    }
    peer.headers.lock().unwrap().insert(
        path("s403"),
        [vec![
            ("x-ratelimit-remaining".to_owned(), "0".to_owned()),
            ("x-ratelimit-reset".to_owned(), reset.to_string()),
        ]]
        .into(),
    );
    let cfg = config(dir.path(), &github(addr, ""));
    let daemon = Daemon::start(&cfg);
    let posted = Instant::now();
    for (n, sha) in ["s422", "s403", "s502", "sforbidden"].iter().enumerate() {
        daemon.post(&build(n as i64 + 1, sha, 0));
    }
    wait_until("every outcome", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let log = attempts(&dir.path().join("data"));
    assert_eq!(seen_on(&peer, &path("s422")).len(), 1, "422 is not retried");
    assert!(
        log.contains("octo/widget@s422 Dead") && log.contains("HTTP 422"),
        "{log}"
    );
    assert_eq!(seen_on(&peer, &path("sforbidden")).len(), 1);
    assert!(log.contains("octo/widget@sforbidden Dead"), "{log}");
    let limited = seen_on(&peer, &path("s403"));
    assert_eq!(limited.len(), 2, "403 rate-limited, then 201");
    assert!(
        limited[1].at.duration_since(limited[0].at) >= Duration::from_millis(900),
        "waited for the reset: {:?}",
        limited[1].at.duration_since(limited[0].at)
    );
    assert!(log.contains("octo/widget@s403 Delivered"), "{log}");
    assert_eq!(
        seen_on(&peer, &path("s502")).len(),
        2,
        "502, then 201: once more"
    );
    assert!(log.contains("octo/widget@s502 Delivered"), "{log}");
    assert!(posted.elapsed() < Duration::from_secs(60));
    drop(daemon);
}

#[test]
fn a_slow_pending_is_never_sent_after_the_success() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    // The pending status fails twice before it goes through.
    peer.script
        .lock()
        .unwrap()
        .insert(path("ord"), [(502, None), (502, None)].into());
    let cfg = config(dir.path(), &github(addr, ""));
    let daemon = Daemon::start(&cfg);
    daemon.post_event(&request("buildrequest_new", 5, "ord"));
    let mut started = build(5, "ord", 0);
    started["complete"] = false.into();
    started["results"] = Value::Null;
    daemon.post(&started);
    daemon.post(&build(5, "ord", 0));
    wait_until("the statuses", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let states: Vec<String> = seen_on(&peer, &path("ord"))
        .iter()
        .map(|s| s.body["description"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        states,
        [
            "Build pending.",
            "Build pending.",
            "Build pending.",
            "Build started.",
            "Build done."
        ]
    );
    drop(daemon);
}

/// GitHubCommentPush: one comment per finished build of a pull request (Buildbot posted one
/// per source stamp), none for a build of a branch.
#[test]
fn a_pull_request_build_gets_one_comment() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let cfg = config(
        dir.path(),
        &format!(
            "[[reporter.github_comment]]\nname = \"ghc\"\ntoken = \"{TOKEN}\"\n\
             base_url = \"http://{addr}\"\nretry_delay = \"100ms\"\n"
        ),
    );
    let daemon = Daemon::start(&cfg);
    let mut pr = build(1, "aaa", 2);
    pr["properties"]["branch"] = json!(["refs/pull/42/merge", "Build"]);
    pr["buildset"]["sourcestamps"][1]["repository"] = "https://github.com/octo/other".into();
    daemon.post(&pr);
    let mut branch = build(2, "bbb", 0);
    branch["properties"]["branch"] = json!(["main", "Build"]);
    daemon.post(&branch);
    wait_until("the comment", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let all: Vec<_> = peer.seen.lock().unwrap().clone();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].path, "/repos/octo/widget/issues/42/comments");
    assert_eq!(all[0].body, json!({"body": "Build done."}));
    assert_eq!(all[0].authorization, format!("token {TOKEN}"));
    drop(daemon);
}

/// A 300-character description of multi-byte characters is cut to GitHub's 140.
#[test]
fn a_long_description_is_cut_to_140_characters() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let long = "ünïcødé ✓ ".repeat(30);
    assert_eq!(long.chars().count(), 300);
    let cfg = config(
        dir.path(),
        &github(addr, &format!("end_description = {long:?}")),
    );
    let daemon = Daemon::start(&cfg);
    daemon.post(&build(1, "long", 0));
    wait_until("the status", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let sent = seen_on(&peer, &path("long"));
    let description = sent[0].body["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 140);
    assert!(long.starts_with(description.trim_end_matches('…')));
    assert!(status_schema().is_valid(&sent[0].body));
    drop(daemon);
}

/// Buildbot 0.8's overrides: one status per build at the repository and commit they name.
#[test]
fn legacy_repo_overrides_name_one_repository_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    let cfg = config(
        dir.path(),
        &github(
            addr,
            "repo_owner = \"octo\"\nrepo_name = \"%(prop:buildername)s-legacy\"\nsha = \"%(src:a:revision)s\"",
        ),
    );
    let daemon = Daemon::start(&cfg);
    daemon.post(&build(1, "aaa", 0));
    wait_until("the status", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let all: Vec<_> = peer.seen.lock().unwrap().clone();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].path, "/repos/octo/runtests-legacy/statuses/aaa");
    drop(daemon);
}
