//! `[[reporter.bitbucket_server]]` and `[[reporter.bitbucket_server_pr_comment]]` against a
//! scripted HTTP peer (no Bitbucket Server can run here), checked against the request shapes of
//! Buildbot's reporters (the reference, §2.6).

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::daemon::{Daemon, Peer, attempts, config, seen_on, settled, start_peer, wait_until};

fn build(n: i64, sha: &str, results: Value, complete: bool) -> Value {
    let mut b: Value = serde_json::from_slice(&support::sample("failure-full.json")).unwrap();
    b["buildid"] = n.into();
    b["number"] = n.into();
    b["buildrequestid"] = n.into();
    b["results"] = results;
    b["complete"] = complete.into();
    b["started_at"] = 1_795_476_438.into();
    b["complete_at"] = if complete {
        json!(1_795_476_440)
    } else {
        Value::Null
    };
    b["url"] = format!("http://127.0.0.1:8010/#/builders/1/builds/{n}").into();
    b["buildset"] = json!({"bsid": n, "sourcestamps": [
        {"ssid": 1, "codebase": "", "repository": "https://bb.example.org/scm/PROJ/widget.git",
         "branch": "main", "revision": sha, "project": ""}]});
    b
}

fn peer() -> (Arc<Peer>, std::net::SocketAddr) {
    let peer = Arc::new(Peer::default());
    let addr = start_peer("127.0.0.1:0".parse().unwrap(), peer.clone());
    (peer, addr)
}

/// Answers `n` requests on `path` with `status`.
fn answer(peer: &Peer, path: &str, status: u16, n: usize) {
    peer.script.lock().unwrap().insert(
        path.into(),
        std::iter::repeat_n((status, None), n).collect(),
    );
}

#[test]
fn build_statuses_with_the_build_status_api() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, addr) = peer();
    answer(&peer, "/rest/build-status/1.0/commits/aaa", 204, 2);
    answer(&peer, "/rest/build-status/1.0/commits/bbb", 204, 2);
    answer(&peer, "/rest/build-status/1.0/commits/ccc", 200, 1);
    let cfg = config(
        dir.path(),
        &format!(
            "[[reporter.bitbucket_server]]\nname = \"bbs\"\nbase_url = \"http://{addr}\"\n\
             user = \"ci\"\npassword = \"s3cret\"\nretry_delay = \"100ms\"\n"
        ),
    );
    let daemon = Daemon::start(&cfg);
    daemon.post(&build(1, "aaa", Value::Null, false));
    daemon.post(&build(1, "aaa", json!(0), true));
    daemon.post(&build(2, "bbb", json!(1), true));
    // Anything but 204 is not success (Buildbot's rule): a dead letter.
    daemon.post(&build(3, "ccc", json!(0), true));
    wait_until("the statuses", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let aaa: Vec<Value> = seen_on(&peer, "/rest/build-status/1.0/commits/aaa")
        .iter()
        .map(|s| s.body.clone())
        .collect();
    let url = |n: i64| format!("http://127.0.0.1:8010/#/builders/1/builds/{n}");
    assert_eq!(
        aaa,
        [
            json!({"state": "INPROGRESS", "key": "runtests", "url": url(1), "description": "Build started."}),
            json!({"state": "SUCCESSFUL", "key": "runtests", "url": url(1), "description": "Build done."}),
        ]
    );
    let bbb = seen_on(&peer, "/rest/build-status/1.0/commits/bbb");
    assert_eq!(
        bbb[0].body["state"], "FAILED",
        "warnings are FAILED for Bitbucket"
    );
    assert_eq!(bbb[0].authorization, "Basic Y2k6czNjcmV0");
    let log = attempts(&dir.path().join("data"));
    assert!(
        log.contains("ccc runtests Dead") && log.contains("HTTP 200"),
        "{log}"
    );
    drop(daemon);
}

#[test]
fn build_statuses_with_the_core_api_and_a_refused_token() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, addr) = peer();
    let path = "/rest/api/1.0/projects/PROJ/repos/widget/commits/aaa/builds";
    answer(&peer, path, 204, 3);
    answer(
        &peer,
        "/rest/api/1.0/projects/PROJ/repos/widget/commits/bad/builds",
        401,
        1,
    );
    let cfg = config(
        dir.path(),
        &format!(
            "[[reporter.bitbucket_server]]\nname = \"core\"\napi = \"core\"\nbase_url = \"http://{addr}\"\n\
             token = \"bbs-token\"\nstatus_suffix = \" (tidings)\"\nretry_delay = \"100ms\"\n"
        ),
    );
    let daemon = Daemon::start(&cfg);
    daemon.post_event(&json!({"schema_version": 1, "type": "buildrequest_new",
        "master": "http://127.0.0.1:8010/",
        "build": {"buildrequestid": 1, "builderid": 1, "builder": {"name": "runtests"},
                  "properties": {"buildername": ["runtests", "Builder"]},
                  "buildset": build(1, "aaa", Value::Null, false)["buildset"].clone(),
                  "complete": false, "url": "http://127.0.0.1:8010/#/buildrequests/1"}}));
    daemon.post(&build(1, "aaa", Value::Null, false));
    let mut done = build(1, "aaa", json!(2), true);
    done["properties"]["tests_failed"] = json!([3, "Test"]);
    done["properties"]["tests_successful"] = json!([97, "Test"]);
    daemon.post(&done);
    daemon.post(&build(2, "bad", json!(0), true));
    wait_until("the statuses", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let got: Vec<Value> = seen_on(&peer, path)
        .iter()
        .map(|s| s.body.clone())
        .collect();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(
        got[0],
        json!({"state": "INPROGRESS", "url": "http://127.0.0.1:8010/#/buildrequests/1",
               "key": "runtests", "parent": "runtests", "ref": "refs/heads/main",
               "buildNumber": "", "description": "Build pending.",
               "name": "runtests #(build request) (tidings)", "duration": null,
               "testResults": null})
    );
    assert_eq!(got[1]["description"], "Build started.");
    assert_eq!(got[1]["buildNumber"], "1");
    assert_eq!(
        got[2],
        json!({"state": "FAILED", "url": "http://127.0.0.1:8010/#/builders/1/builds/1",
               "key": "runtests", "parent": "runtests", "ref": "refs/heads/main",
               "buildNumber": "1", "description": "Build done.",
               "name": "runtests #1 (tidings)", "duration": 2000,
               "testResults": {"failed": 3, "skipped": 0, "successful": 97}})
    );
    assert_eq!(seen_on(&peer, path)[0].authorization, "Bearer bbs-token");
    let log = attempts(&dir.path().join("data"));
    assert!(
        log.contains("bad runtests Dead") && log.contains("HTTP 401"),
        "{log}"
    );
    drop(daemon);
}

#[test]
fn a_pull_request_gets_a_comment() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, addr) = peer();
    let path = "/rest/api/1.0/projects/PROJ/repos/widget/pull-requests/7/comments";
    answer(&peer, path, 201, 1);
    let cfg = config(
        dir.path(),
        &format!(
            "[[reporter.bitbucket_server_pr_comment]]\nname = \"prc\"\nbase_url = \"http://{addr}\"\n\
             user = \"ci\"\npassword = \"s3cret\"\nretry_delay = \"100ms\"\n"
        ),
    );
    let daemon = Daemon::start(&cfg);
    let mut b = build(1, "aaa", json!(2), true);
    b["properties"]["pullrequesturl"] = json!([
        "https://bb.example.org/projects/PROJ/repos/widget/pull-requests/7",
        "Bitbucket"
    ]);
    daemon.post(&b);
    // No pull request: no comment.
    daemon.post(&build(2, "bbb", json!(2), true));
    wait_until("the comment", Duration::from_secs(60), || {
        settled(&dir.path().join("data"))
    });
    let all: Vec<_> = peer.seen.lock().unwrap().clone();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].path, path);
    assert_eq!(all[0].body, json!({"text": "Build done."}));
    drop(daemon);
}
