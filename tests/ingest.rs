//! The HTTP ingest source against real HTTP on 127.0.0.1, with the bodies a real Buildbot 4.3
//! master's HttpStatusPush sent.

mod support;

use std::sync::Arc;
use tidings::config::Secret;
use tidings::source::http::{Ingest, IngestAuth, router};
use tidings::store::Committer;
use tidings::store::{Durability, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running ingest server; stopped when the test's runtime ends.
struct Server {
    addr: std::net::SocketAddr,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

async fn start(auth: IngestAuth, max_body: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Durability::Normal).unwrap());
    let ingest = Ingest {
        committer: Committer::start(store.clone()),
        store: store.clone(),
        metrics: Default::default(),
        auth,
        max_body,
        body_timeout: std::time::Duration::from_secs(2),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(ingest)).await.unwrap() });
    Server {
        addr,
        store,
        _dir: dir,
    }
}

/// POSTs `body` to `/api/v1/buildbot` with raw HTTP/1.1; returns the status and the body.
async fn post(addr: std::net::SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    post_to(addr, "/api/v1/buildbot", headers, body).await
}

/// POSTs `body` to `path` with raw HTTP/1.1 and returns the status code and the response body.
async fn post_to(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // A server may answer (413) before reading all of a large body; ignore a reset here.
    let _ = s.write_all(body).await;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let dir = support::repo().join("tests/data/buildbot");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn httpstatuspush_bodies_are_stored_once_and_acknowledged_after_commit() {
    let server = start(IngestAuth::default(), 1 << 20).await;
    let mut ids = std::collections::HashSet::new();
    for (name, body) in samples() {
        let (status, resp) = post(server.addr, &[], &body).await;
        assert_eq!(status, 202, "{name}: {resp}");
        let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
        let id = v["id"].as_i64().unwrap();
        // Acknowledged means committed: the event is readable at once. A duplicate (the same
        // build's phase from the other HttpStatusPush) keeps the body stored first.
        let stored = server.store.event_body(id).unwrap().expect("committed");
        if v["duplicate"] == false {
            assert!(
                stored.as_bytes() == body.as_slice(),
                "{name}: stored body differs"
            );
        }
        ids.insert(id);
    }
    // The samples hold the same builds in two reports (default and full HttpStatusPush):
    // started/finished of builds 1, 2, 4 and 3's start, i.e. fewer distinct events than posts.
    let n = server.store.event_count().unwrap();
    assert_eq!(n as usize, ids.len());
    // Posting everything again stores nothing new.
    for (name, body) in samples() {
        let (status, resp) = post(server.addr, &[], &body).await;
        assert_eq!(status, 202, "{name}");
        assert!(resp.contains("\"duplicate\":true"), "{name}: {resp}");
    }
    assert_eq!(server.store.event_count().unwrap(), n);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_required_when_configured() {
    let auth = IngestAuth {
        token: Some(Secret::resolve("t0ken").unwrap()),
        basic: Some(("bbuser".into(), Secret::resolve("bbpass").unwrap())),
    };
    let server = start(auth, 1 << 20).await;
    let body = support::sample("failure-default.json");
    let refused = [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic YmJ1c2VyOndyb25n")], // bbuser:wrong
        vec![("Authorization", "Basic !!!")],
        vec![("Authorization", "Digest x")],
    ];
    for headers in refused {
        let (status, _) = post(server.addr, &headers, &body).await;
        assert_eq!(status, 401, "{headers:?}");
    }
    assert_eq!(server.store.event_count().unwrap(), 0);
    // What Buildbot's HttpStatusPush(auth=("bbuser", "bbpass")) sends, as captured.
    let (status, _) = post(
        server.addr,
        &[("Authorization", "Basic YmJ1c2VyOmJicGFzcw==")],
        &body,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = post(server.addr, &[("Authorization", "Bearer t0ken")], &body).await;
    assert_eq!(status, 202);
    // Schemes are case-insensitive (RFC 9110): what some clients send.
    for value in [
        "bearer t0ken",
        "BEARER t0ken",
        "basic YmJ1c2VyOmJicGFzcw==",
        "BASIC YmJ1c2VyOmJicGFzcw==",
    ] {
        let (status, _) = post(server.addr, &[("Authorization", value)], &body).await;
        assert_eq!(status, 202, "{value}");
    }
    let (status, _) = post(server.addr, &[("Authorization", "bearer wrong")], &body).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversize_bodies_are_refused_with_a_reason() {
    let server = start(IngestAuth::default(), 8 << 10).await;
    let cases: [(&[u8], u16, &str); 5] = [
        (b"not json", 400, "must be a JSON object"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (
            b"{\"complete\": true, \"url\": \"http://x/#/builders/1/builds/1\"}",
            400,
            "no buildid",
        ),
        (b"{\"buildid\": 1}", 400, "neither a url nor a masterid"),
        (b"{\"buildid\": \"one\"}", 400, "not a Buildbot build dict"),
    ];
    for (body, want, reason) in cases {
        let (status, resp) = post(server.addr, &[], body).await;
        assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
        assert!(resp.contains(reason), "{resp}");
    }
    let big = vec![b' '; 64 << 10];
    let (status, _) = post(server.addr, &[], &big).await;
    assert_eq!(status, 413);
    assert_eq!(server.store.event_count().unwrap(), 0, "nothing stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn random_and_truncated_bodies_never_crash_or_store() {
    let server = start(IngestAuth::default(), 1 << 20).await;
    let body = support::sample("failure-full.json");
    // Every 37th truncation of a real body, then pseudo-random bytes (a fixed LCG: repeatable).
    let mut bodies: Vec<Vec<u8>> = (1..body.len())
        .step_by(37)
        .map(|n| body[..n].to_vec())
        .collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for len in [1usize, 7, 64, 300, 2048] {
        for _ in 0..20 {
            bodies.push(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 24) as u8
                    })
                    .collect(),
            );
        }
    }
    // The same sample inside a native envelope, truncated the same way.
    let envelope = format!(
        "{{\"schema_version\": 1, \"type\": \"build_finished\", \"build\": {}}}",
        String::from_utf8_lossy(&body)
    )
    .into_bytes();
    let truncated: Vec<Vec<u8>> = (1..envelope.len())
        .step_by(37)
        .map(|n| envelope[..n].to_vec())
        .collect();
    for path in ["/api/v1/buildbot", "/api/v1/events"] {
        for b in bodies.iter().chain(&truncated) {
            let (status, _) = post_to(server.addr, path, &[], b).await;
            assert_eq!(
                status,
                400,
                "{path} {:?}",
                String::from_utf8_lossy(&b[..b.len().min(60)])
            );
        }
    }
    assert_eq!(server.store.event_count().unwrap(), 0);
    let (status, _) = post(server.addr, &[], &body).await;
    assert_eq!(status, 202, "still serving");
    let (status, resp) = post_to(server.addr, "/api/v1/events", &[], &envelope).await;
    assert_eq!(status, 202, "still serving");
    assert!(
        resp.contains("\"duplicate\":true"),
        "same build, same key: {resp}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_posts_are_all_committed() {
    let server = start(IngestAuth::default(), 1 << 20).await;
    let template: serde_json::Value =
        serde_json::from_slice(&support::sample("failure-default.json")).unwrap();
    let posts: Vec<_> = (0..100)
        .map(|i| {
            let mut b = template.clone();
            b["buildid"] = (1000 + i).into();
            let addr = server.addr;
            tokio::spawn(async move { post(addr, &[], b.to_string().as_bytes()).await.0 })
        })
        .collect();
    for p in posts {
        assert_eq!(p.await.unwrap(), 202);
    }
    assert_eq!(server.store.event_count().unwrap(), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn native_envelopes_are_checked_as_the_schema_says_and_stored_once() {
    let server = start(IngestAuth::default(), 1 << 20).await;
    let schema = support::load_schema("event.schema.json");
    let v = support::validator("event.schema.json");
    let examples = schema["examples"].as_array().unwrap();
    assert!(examples.len() >= 4);
    for e in examples {
        assert!(v.is_valid(e), "schema example {e}");
        let (status, resp) =
            post_to(server.addr, "/api/v1/events", &[], e.to_string().as_bytes()).await;
        assert_eq!(status, 202, "{e}: {resp}");
        assert!(resp.contains("\"duplicate\":false"), "{resp}");
    }
    // A real HttpStatusPush body inside an envelope: valid, and one event with the bare body.
    let sample: serde_json::Value =
        serde_json::from_slice(&support::sample("failure-full.json")).unwrap();
    let wrapped =
        serde_json::json!({"schema_version": 1, "type": "build_finished", "build": sample});
    assert!(v.is_valid(&wrapped));
    let (status, _) = post(server.addr, &[], sample.to_string().as_bytes()).await;
    assert_eq!(status, 202);
    let (status, resp) = post_to(
        server.addr,
        "/api/v1/events",
        &[],
        wrapped.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (status, resp.contains("\"duplicate\":true")),
        (202, true),
        "{resp}"
    );
    let stored = server.store.event_count().unwrap();

    // What the schema refuses, the endpoint refuses, with a reason.
    let bad = [
        (
            serde_json::json!({"schema_version": 2, "type": "build_started"}),
            "schema_version 2",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "build_done"}),
            "unknown event type",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "build_finished", "master": "m"}),
            "needs `build`",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "build_started", "master": "m",
                               "build": {"buildid": 3, "complete": true}}),
            "must have",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "buildset_complete", "master": "m", "buildset": {}}),
            "bsid",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "buildrequest_new", "master": "m", "build": {"builderid": 1}}),
            "buildrequestid",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "worker_missing", "worker": {"name": "w"}}),
            "master",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "worker_connected", "master": "m", "worker": {"name": ""}}),
            "worker.name",
        ),
        (
            // A sequence would deserialize into the envelope's fields, in order: refused.
            serde_json::json!([1, "build_finished", "m", null, {"buildid": 1, "complete": true}]),
            "must be a JSON object",
        ),
        (
            serde_json::json!({"schema_version": 1, "type": "worker_missing", "master": "m", "worker": {"name": "w"}, "color": 1}),
            "unknown field `color`",
        ),
    ];
    for (doc, reason) in bad {
        assert!(!v.is_valid(&doc), "the schema accepts {doc}");
        let (status, resp) = post_to(
            server.addr,
            "/api/v1/events",
            &[],
            doc.to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 400, "{doc}");
        assert!(resp.contains(reason), "{doc}: {resp}");
    }
    assert_eq!(
        server.store.event_count().unwrap(),
        stored,
        "nothing more stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_nothing_is_stored() {
    let server = start(IngestAuth::default(), 1 << 20).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Headers promise 100 bytes; 10 arrive and then nothing (body_timeout is 2 s here).
    s.write_all(
        b"POST /api/v1/buildbot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"buildid\"",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            resp.extend_from_slice(&buf[..n]);
            if n == 0 || resp.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(server.store.event_count().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_a_body_is_refused_before_it_is_read() {
    let server = start(
        IngestAuth {
            token: Some(Secret::resolve("t0ken").unwrap()),
            basic: None,
        },
        1 << 20,
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // A body that never comes: the 401 must not wait for it.
    s.write_all(b"POST /api/v1/buildbot HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(1), s.read(&mut buf))
        .await
        .expect("answered at once")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}
