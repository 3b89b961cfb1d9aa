//! `[[reporter.gitlab]]` against a scripted HTTP peer (no GitLab can run here), checked against
//! the request shapes of Buildbot's GitLabStatusPush (the reference, §2.7): the project looked
//! up once by `owner%2Frepo`, or taken from `source_project_id`; `PRIVATE-TOKEN`; the states.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::daemon::{Daemon, Peer, attempts, config, seen_on, settled, start_peer, wait_until};

fn stamps(sha: &str) -> Value {
    json!({"bsid": 1, "sourcestamps": [
        {"ssid": 1, "codebase": "", "repository": "https://gitlab.com/octo/widget.git",
         "branch": "main", "revision": sha, "project": ""}]})
}

fn build(n: i64, sha: &str, results: Value, complete: bool) -> Value {
    let mut b: Value = serde_json::from_slice(&support::sample("failure-full.json")).unwrap();
    b["buildid"] = n.into();
    b["number"] = n.into();
    b["buildrequestid"] = n.into();
    b["results"] = results;
    b["complete"] = complete.into();
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{n}").into();
    b["buildset"] = stamps(sha);
    b
}

#[test]
fn statuses_follow_gitlabs_api() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    peer.bodies.lock().unwrap().insert(
        "/api/v4/projects/octo%2Fwidget".into(),
        json!({"id": 77, "path_with_namespace": "octo/widget"}).to_string(),
    );
    peer.script.lock().unwrap().insert(
        "/api/v4/projects/77/statuses/refused".into(),
        [(400, None)].into(),
    );
    peer.bodies.lock().unwrap().insert(
        "/api/v4/projects/77/statuses/refused".into(),
        json!({"message": "Cannot transition status via :run from :running"}).to_string(),
    );
    let cfg = config(
        dir.path(),
        &format!(
            "[[reporter.gitlab]]\nname = \"gl\"\ntoken = \"glpat-secret\"\nbase_url = \"http://{addr}/\"\n\
             retry_delay = \"100ms\"\n"
        ),
    );
    let daemon = Daemon::start(&cfg);
    daemon.post_event(&json!({"schema_version": 1, "type": "buildrequest_new",
        "master": "http://127.0.0.1:8010/",
        "build": {"buildrequestid": 1, "builderid": 1, "builder": {"name": "runtests"},
                  "properties": {"buildername": ["runtests", "Builder"]}, "buildset": stamps("aaa"),
                  "complete": false, "url": "http://127.0.0.1:8010/#/buildrequests/1"}}));
    daemon.post(&build(1, "aaa", Value::Null, false));
    daemon.post(&build(1, "aaa", json!(2), true));
    let mut own = build(2, "bbb", json!(6), true);
    own["properties"]["source_project_id"] = json!([99, "GitLab"]);
    own["properties"]["source_branch"] = json!(["feature", "GitLab"]);
    daemon.post(&own);
    daemon.post(&build(3, "refused", json!(0), true));
    wait_until("the statuses", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let all: Vec<_> = peer.seen.lock().unwrap().clone();
    for s in &all {
        assert_eq!(
            s.headers.get("private-token").and_then(|v| v.to_str().ok()),
            Some("glpat-secret")
        );
    }
    assert_eq!(
        seen_on(&peer, "/api/v4/projects/octo%2Fwidget").len(),
        1,
        "the project is looked up once"
    );
    let states: Vec<Value> = seen_on(&peer, "/api/v4/projects/77/statuses/aaa")
        .iter()
        .map(|s| s.body.clone())
        .collect();
    assert_eq!(
        states,
        [
            json!({"state": "pending", "ref": "main", "description": "Build pending.",
                   "name": "buildbot/runtests", "target_url": "http://127.0.0.1:8010/#/buildrequests/1"}),
            json!({"state": "running", "ref": "main", "description": "Build started.",
                   "name": "buildbot/runtests", "target_url": "http://127.0.0.1:8010/#/builders/1/builds/1"}),
            json!({"state": "failed", "ref": "main", "description": "Build done.",
                   "name": "buildbot/runtests", "target_url": "http://127.0.0.1:8010/#/builders/1/builds/1"}),
        ]
    );
    let own = seen_on(&peer, "/api/v4/projects/99/statuses/bbb");
    assert_eq!(own.len(), 1);
    assert_eq!(
        (own[0].body["state"].as_str(), own[0].body["ref"].as_str()),
        (Some("canceled"), Some("feature"))
    );
    let log = attempts(&dir.path().join("data"));
    assert!(
        log.contains("octo/widget@refused Dead") && log.contains("Cannot transition status"),
        "{log}"
    );
    drop(daemon);
}
