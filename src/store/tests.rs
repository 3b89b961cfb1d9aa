use super::*;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    (dir, store)
}

fn event<'a>(key: &'a str) -> NewEvent<'a> {
    NewEvent {
        key,
        kind: "build_finished",
        source: "http",
        body: "{}",
        format: crate::event::BodyFormat::Build,
    }
}

fn delivery<'a>(key: &'a str, event_id: i64, order_key: Option<&'a str>) -> NewDelivery<'a> {
    NewDelivery {
        key,
        event_id,
        reporter: "push",
        destination: "http://127.0.0.1:9/",
        order_key,
        payload: "{\"body\":1}",
        explanation: "reporter push, mode failing, builders [runtests]",
    }
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let (dir, _store) = open();
    match Store::open(dir.path(), Durability::Normal) {
        Err(StoreError::Locked(p)) => assert_eq!(p, dir.path()),
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

#[test]
fn the_same_event_is_stored_once_whoever_sends_it() {
    let (_dir, store) = open();
    let first = store
        .insert_events(
            &[event("m1/build/7/finished"), event("m1/build/8/finished")],
            1,
        )
        .unwrap();
    assert!(first.iter().all(|s| !s.duplicate));
    let again = store
        .insert_events(
            &[
                NewEvent {
                    source: "buildbot",
                    ..event("m1/build/7/finished")
                },
                event("m1/build/9/finished"),
                event("m1/build/9/finished"),
            ],
            2,
        )
        .unwrap();
    assert_eq!(
        again[0],
        Stored {
            id: first[0].id,
            duplicate: true
        }
    );
    assert!(!again[1].duplicate);
    assert_eq!(
        again[2],
        Stored {
            id: again[1].id,
            duplicate: true
        }
    );
}

#[test]
fn what_was_committed_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path(), Durability::Full).unwrap();
        let id = store.insert_events(&[event("k")], 1).unwrap()[0].id;
        store.enqueue(&[delivery("k/push", id, None)], 1).unwrap();
        id
    };
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    assert_eq!(store.event_body(id).unwrap().as_deref(), Some("{}"));
    assert_eq!(store.counts().unwrap(), [(State::Pending, 1)]);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Durability::Normal).unwrap());
    let conn = Connection::open(dir.path().join("tidings.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match Store::open(dir.path(), Durability::Normal) {
        Err(StoreError::Schema { found: 99 }) => {}
        other => panic!("expected Schema, got {:?}", other.err()),
    }
}

fn build(buildid: i64, number: i64, complete: bool, results: Option<i64>) -> BuildRecord {
    BuildRecord {
        master: "m1".into(),
        buildid,
        builderid: 3,
        number,
        complete,
        results,
        body: format!("{{\"number\":{number}}}"),
        event_id: 0,
    }
}

#[test]
fn the_previous_build_is_finished_and_not_a_retry() {
    let (_dir, store) = open();
    for b in [
        build(10, 1, true, Some(0)),
        build(11, 2, true, Some(2)),
        build(12, 3, true, Some(5)), // RETRY: looked through
        build(13, 4, false, None),   // still running: not previous (Buildbot's #9067)
        build(14, 5, true, Some(0)),
    ] {
        store.record_build(&b).unwrap();
    }
    let prev = |n| store.previous_build("m1", 3, n).unwrap().map(|b| b.number);
    assert_eq!(prev(5), Some(2));
    assert_eq!(prev(3), Some(2));
    assert_eq!(prev(2), Some(1));
    assert_eq!(prev(1), None);
    assert_eq!(
        store.previous_build("m1", 4, 5).unwrap(),
        None,
        "other builder"
    );
    assert_eq!(
        store.previous_build("m2", 3, 5).unwrap(),
        None,
        "other master"
    );
    // The running build finishes: now it is the previous one.
    store.record_build(&build(13, 4, true, Some(2))).unwrap();
    assert_eq!(prev(5), Some(4));
}

#[test]
fn a_delivery_is_enqueued_once_per_key() {
    let (_dir, store) = open();
    let ev = store.insert_events(&[event("e")], 1).unwrap()[0].id;
    let a = store.enqueue(&[delivery("e/push/x", ev, None)], 1).unwrap();
    let b = store.enqueue(&[delivery("e/push/x", ev, None)], 2).unwrap();
    assert_eq!(
        b[0],
        Stored {
            id: a[0].id,
            duplicate: true
        }
    );
    assert_eq!(store.counts().unwrap(), [(State::Pending, 1)]);
}

#[test]
fn deliveries_of_one_build_request_go_out_in_order() {
    let (_dir, store) = open();
    let ev = store.insert_events(&[event("e")], 1).unwrap()[0].id;
    store
        .enqueue(
            &[
                delivery("started", ev, Some("br-1")),
                delivery("finished", ev, Some("br-1")),
                delivery("other", ev, Some("br-2")),
                delivery("unordered", ev, None),
            ],
            1,
        )
        .unwrap();
    let keys = |ds: Vec<Delivery>| ds.into_iter().map(|d| d.key).collect::<Vec<_>>();
    // br-1's second waits for its first; br-2 and the unordered one go at once.
    assert_eq!(
        keys(store.claim_due("push", 1, 10).unwrap()),
        ["started", "other", "unordered"]
    );
    assert!(
        store.claim_due("push", 1, 10).unwrap().is_empty(),
        "first still in flight"
    );
    let started = store.delivery(1).unwrap().unwrap();
    store
        .finish(
            started.id,
            &Outcome::Retry {
                at: 100,
                error: "HTTP 500".into(),
            },
            2,
        )
        .unwrap();
    // Retrying, not due yet: the second still waits behind it.
    assert!(store.claim_due("push", 50, 10).unwrap().is_empty());
    assert_eq!(keys(store.claim_due("push", 100, 10).unwrap()), ["started"]);
    store
        .finish(
            started.id,
            &Outcome::Delivered {
                detail: "HTTP 200".into(),
            },
            101,
        )
        .unwrap();
    assert_eq!(
        keys(store.claim_due("push", 101, 10).unwrap()),
        ["finished"]
    );
}

#[test]
fn attempts_retries_and_dead_letters_are_logged() {
    let (_dir, store) = open();
    let ev = store.insert_events(&[event("e")], 1).unwrap()[0].id;
    let id = store.enqueue(&[delivery("d", ev, None)], 1).unwrap()[0].id;
    assert_eq!(store.claim_due("push", 1, 1).unwrap()[0].attempts, 1);
    store
        .finish(
            id,
            &Outcome::Retry {
                at: 10,
                error: "connection refused".into(),
            },
            2,
        )
        .unwrap();
    assert_eq!(store.claim_due("push", 10, 1).unwrap()[0].attempts, 2);
    store
        .finish(
            id,
            &Outcome::Dead {
                error: "HTTP 400: bad request".into(),
            },
            11,
        )
        .unwrap();
    let d = store.delivery(id).unwrap().unwrap();
    assert_eq!(d.state, State::Dead);
    assert_eq!(d.last_error.as_deref(), Some("HTTP 400: bad request"));
    assert_eq!(
        d.explanation,
        "reporter push, mode failing, builders [runtests]"
    );
    let log = store.log(id).unwrap();
    assert_eq!(
        log.iter()
            .map(|e| (e.attempt, e.result.as_str()))
            .collect::<Vec<_>>(),
        [(1, "retry"), (2, "dead")]
    );
    assert!(
        store.claim_due("push", 1000, 1).unwrap().is_empty(),
        "dead is never claimed"
    );

    // By hand: retry brings it back; drop gives it up again, keeping the original error.
    store.retry(id, 2000).unwrap();
    assert_eq!(store.claim_due("push", 2000, 1).unwrap()[0].id, id);
    store.drop_delivery(id, 2001).unwrap();
    assert_eq!(
        store.delivery(id).unwrap().unwrap().last_error.as_deref(),
        Some("HTTP 400: bad request")
    );
    // The attempt that was in flight when it was dropped ends: logged, but the drop stands.
    store
        .finish(
            id,
            &Outcome::Retry {
                at: 3000,
                error: "HTTP 503".into(),
            },
            2002,
        )
        .unwrap();
    let d = store.delivery(id).unwrap().unwrap();
    assert_eq!(d.state, State::Dead, "a dropped delivery stays dropped");
    let results: Vec<String> = store
        .log(id)
        .unwrap()
        .into_iter()
        .map(|e| e.result)
        .collect();
    assert_eq!(results, ["retry", "dead", "requeued", "dropped", "retry"]);
    assert!(matches!(
        store.retry(999, 1),
        Err(StoreError::NoSuchDelivery(999))
    ));
}

#[test]
fn by_hand_actions_say_why_they_are_refused() {
    let (_dir, store) = open();
    let ev = store.insert_events(&[event("e")], 1).unwrap()[0].id;
    let id = store.enqueue(&[delivery("d", ev, None)], 1).unwrap()[0].id;
    store.claim_due("push", 1, 1).unwrap();
    store
        .finish(
            id,
            &Outcome::Delivered {
                detail: "HTTP 200".into(),
            },
            2,
        )
        .unwrap();
    let e = store.retry(id, 3).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("delivery {id} is delivered: only a pending or dead delivery can be retried")
    );
    let e = store.drop_delivery(id, 3).unwrap_err().to_string();
    assert!(
        e.contains("is delivered") && e.contains("nothing to drop"),
        "{e}"
    );
    assert_eq!(store.delivery(id).unwrap().unwrap().state, State::Delivered);
    // A dropped pending delivery without an error says why it is dead.
    let other = store.enqueue(&[delivery("d2", ev, None)], 1).unwrap()[0].id;
    store.drop_delivery(other, 4).unwrap();
    let d = store.delivery(other).unwrap().unwrap();
    assert_eq!(
        (d.state, d.last_error.as_deref()),
        (State::Dead, Some("dropped by hand"))
    );
}

#[test]
fn in_flight_deliveries_are_pending_again_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Durability::Normal).unwrap();
        let ev = store.insert_events(&[event("e")], 1).unwrap()[0].id;
        store.enqueue(&[delivery("d", ev, None)], 1).unwrap();
        assert_eq!(store.claim_due("push", 1, 1).unwrap().len(), 1);
        // The process dies here, mid-delivery.
    }
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    assert!(store.claim_due("push", 5, 1).unwrap().is_empty());
    assert_eq!(store.recover_in_flight().unwrap(), 1);
    let again = store.claim_due("push", 5, 1).unwrap();
    assert_eq!(again[0].attempts, 2, "the interrupted attempt counts");
}

/// An event dispatch cannot read is kept with its reason, counted, and dispatched when a later
/// start can read it — never passed over.
#[test]
fn an_unreadable_event_is_kept_and_tried_again() {
    use crate::event::BodyFormat;
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    let build = r#"{"buildid":400010,"masterid":1,"complete":true,"results":2}"#;
    // Stored as an envelope, which it is not (as a bug or a downgrade could leave it).
    store
        .insert_events(
            &[NewEvent {
                format: BodyFormat::Envelope,
                body: build,
                ..event("m/build/400010/finished")
            }],
            1,
        )
        .unwrap();
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    let mut dispatcher = no_reporters(&store, Default::default());
    dispatcher.metrics = metrics.clone();
    assert_eq!(dispatcher.dispatch_pending().unwrap(), 1);
    let kept = store.unreadable().unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].1.contains("not an event envelope"), "{}", kept[0].1);
    assert_eq!(store.unreadable_count().unwrap(), 1);
    assert!(
        metrics
            .render(&[], 1)
            .contains("tidings_events_unreadable_found_total 1")
    );
    // Still unreadable at the next start: kept.
    assert_eq!(dispatcher.retry_unreadable().unwrap(), 0);
    assert_eq!(store.unreadable_count().unwrap(), 1);
    // After an "upgrade" that reads it (here: the row's form corrected), it is dispatched.
    store
        .conn()
        .execute("UPDATE events SET format = 'build'", [])
        .unwrap();
    assert_eq!(dispatcher.retry_unreadable().unwrap(), 1);
    assert_eq!(store.unreadable_count().unwrap(), 0);
}

/// The history step takes an event as ingest parsed it, once committed, rather than parsing
/// the stored body again; and forgets what ingest handed over for events it has passed.
#[test]
fn the_history_step_takes_what_ingest_handed_over_and_forgets_what_it_passed() {
    use crate::dispatch::ReadEvent;
    use crate::event::{BodyFormat, Build, Event};
    use std::sync::Arc;
    let (_dir, store) = open();
    let store = Arc::new(store);
    let body =
        r#"{"buildid":400010,"builderid":7,"number":3,"masterid":1,"complete":true,"results":2}"#;
    let parsed = || Event::from_build(serde_json::from_str::<Build>(body).unwrap()).unwrap();
    let stored = |key: &str| {
        store
            .insert_events(&[NewEvent { body, ..event(key) }], 1)
            .unwrap()[0]
            .id
    };
    let dispatcher = no_reporters(&store, Default::default());
    // What ingest handed over is what the history step records: here a result that differs
    // from the stored body's, which reading the stored body could not give.
    let id = stored("m/build/400010/finished");
    let other = body.replace(r#""results":2"#, r#""results":3"#);
    let handed = Event::from_build(serde_json::from_str::<Build>(&other).unwrap()).unwrap();
    dispatcher.read.hand_over(
        id,
        Arc::new(ReadEvent::new(handed, BodyFormat::Build, body)),
    );
    assert_eq!(dispatcher.read.len(), 1);
    assert_eq!(dispatcher.record_pending().unwrap(), 1);
    let (results, recorded): (i64, String) = store
        .conn()
        .query_row("SELECT results, body FROM builds", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(results, 3);
    // The event's body is the build dict: the row refers to it instead of a copy, and reads
    // back as it.
    assert_eq!(recorded, "");
    let back = store.latest_builds().unwrap();
    assert_eq!(
        back.iter()
            .map(|b| (b.body.as_str(), b.event_id))
            .collect::<Vec<_>>(),
        [(body, id)]
    );
    // As the previous build of the builder's next build, as dispatch asks for it.
    let prev = store
        .snapshot()
        .unwrap()
        .previous_build_before(&back[0].master, 7, 4, i64::MAX)
        .unwrap()
        .unwrap();
    assert_eq!((prev.number, prev.body.as_str()), (3, body));
    // No lanes to keep it for, and nothing left over.
    assert!(dispatcher.read.is_empty());
    // Handed over only after the history step read the event from the store: forgotten when
    // the history step passes it, never kept.
    let late = stored("m/build/400010/finished-again");
    assert_eq!(dispatcher.record_pending().unwrap(), 1);
    dispatcher.read.hand_over(
        late,
        Arc::new(ReadEvent::new(parsed(), BodyFormat::Build, body)),
    );
    let after = stored("m/build/400010/finished-once-more");
    assert_eq!(dispatcher.record_pending().unwrap(), 1);
    assert!(after > late);
    assert!(dispatcher.read.is_empty(), "what it passed is forgotten");
}

/// Version 4's schema: today's without `builds_by_event` (every build's row has its body) and
/// with `outbox_due`.
fn schema_4() -> String {
    let v4 = SCHEMA
        .replace(
            "CREATE INDEX builds_by_event ON builds (event_id) WHERE body = '';\n",
            "",
        )
        .replace(
            "CREATE INDEX outbox_order ON outbox (reporter, order_key, state)\n    WHERE state IN ('pending', 'inflight');",
            "CREATE INDEX outbox_due ON outbox (reporter, state, next_attempt_at);\n\
             CREATE INDEX outbox_order ON outbox (reporter, order_key, state);",
        );
    assert_ne!(v4, SCHEMA);
    v4
}

/// Version 3's schema: version 4's without `builds.event_id`, and so with the history's index
/// of then.
fn schema_before_build_events() -> String {
    schema_4()
        .replace(",\n    event_id     INTEGER NOT NULL DEFAULT 0", "")
        .replace(
            "builds_by_builder_event ON builds (master, builderid, number, event_id)",
            "builds_by_builder ON builds (master, builderid, number)",
        )
}

#[test]
fn a_version_1_store_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("tidings.db")).unwrap();
        // Version 1: today's tables without events.format and without `unreadable`.
        let v3 = schema_before_build_events();
        let v1 = v3[..v3.find("CREATE TABLE unreadable").unwrap()]
            .replace(",\n    format      TEXT NOT NULL DEFAULT ''", "")
            .replace(",\n    blocked         INTEGER NOT NULL DEFAULT 0", "");
        assert!(!v1.contains("blocked"));
        assert!(!v1.contains("format"));
        conn.execute_batch(&v1).unwrap();
        conn.execute_batch(
            "INSERT INTO events (key, kind, source, received_at, body)
             VALUES ('k', 'build_finished', 'http_buildbot', 1, '{}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    let ev = &store.events_after(0, 10).unwrap()[0];
    assert_eq!((ev.key.as_str(), ev.format), ("k", None));
    assert_eq!(store.unreadable_count().unwrap(), 0);
}

#[test]
fn retention_deletes_only_what_is_old_delivered_and_dispatched() {
    let (_dir, store) = open();
    let day = 86_400_000;
    let r = Retention {
        keep_ms: 30 * day,
        dead_ms: None,
    };
    // Six events received on day 0; dispatch has passed the first five.
    let keys = [
        "delivered",
        "dead",
        "pending",
        "none",
        "unreadable",
        "later",
    ];
    let ids: Vec<i64> = store
        .insert_events(&keys.map(event), 0)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    let deliveries: Vec<i64> = store
        .enqueue(
            &[
                delivery("d-delivered", ids[0], None),
                delivery("d-dead", ids[1], None),
                delivery("d-pending", ids[2], None),
            ],
            0,
        )
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    store.claim_due("push", 0, 3).unwrap();
    store
        .finish(
            deliveries[0],
            &Outcome::Delivered {
                detail: "HTTP 200".into(),
            },
            day,
        )
        .unwrap();
    store
        .finish(
            deliveries[1],
            &Outcome::Dead {
                error: "HTTP 400".into(),
            },
            day,
        )
        .unwrap();
    store
        .finish(
            deliveries[2],
            &Outcome::Retry {
                at: 40 * day,
                error: "HTTP 503".into(),
            },
            day,
        )
        .unwrap();
    store
        .enqueue_and_advance(&[], &[], &[(ids[4], "a bug")], 0, "dispatch", 0, ids[4])
        .unwrap();
    for n in 1..=60 {
        store.record_build(&build(n, n, true, Some(0))).unwrap();
    }

    // Within retention nothing goes, whatever the batch size.
    let p = store.prune(r, 30 * day, ids[4], 1000, 0).unwrap();
    assert_eq!((p.deliveries, p.events), (0, 0));
    assert_eq!(
        p.builds, 10,
        "only the newest 50 builds of a builder are kept"
    );

    // Past it, in batches of one: the delivered delivery (with its log) and the event nothing
    // refers to any more; never the dead letter, the pending delivery, an undispatched event
    // or an unreadable one.
    let mut total = Pruned::default();
    loop {
        let p = store
            .prune(r, 32 * day, ids[4], 1, total.events_after)
            .unwrap();
        total.events_after = p.events_after;
        assert!(p.deliveries <= 1 && p.events <= 1 && p.builds <= 1);
        if !p.any() {
            break;
        }
        total.deliveries += p.deliveries;
        total.events += p.events;
    }
    assert_eq!((total.deliveries, total.events), (1, 2));
    assert!(store.delivery(deliveries[0]).unwrap().is_none());
    assert!(store.log(deliveries[0]).unwrap().is_empty());
    assert_eq!(store.event_body(ids[0]).unwrap(), None);
    assert_eq!(store.event_body(ids[3]).unwrap(), None);
    for kept in [ids[1], ids[2], ids[4], ids[5]] {
        assert!(store.event_body(kept).unwrap().is_some(), "event {kept}");
    }
    assert_eq!(
        store.delivery(deliveries[1]).unwrap().unwrap().state,
        State::Dead
    );
    assert_eq!(
        store.delivery(deliveries[2]).unwrap().unwrap().state,
        State::Pending
    );

    // With dead_retention, an old dead letter goes too (and then its event).
    let r = Retention {
        dead_ms: Some(7 * day),
        ..r
    };
    let p = store.prune(r, 32 * day, ids[4], 100, 0).unwrap();
    assert_eq!((p.deliveries, p.events), (1, 1));
    assert!(store.delivery(deliveries[1]).unwrap().is_none());
}

/// A build's row that refers to its event's body keeps that event past retention, as long as
/// the row is kept and still refers to it.
#[test]
fn retention_keeps_an_event_whose_body_a_kept_build_refers_to() {
    let (_dir, store) = open();
    let day = 86_400_000;
    let r = Retention {
        keep_ms: day,
        dead_ms: None,
    };
    let bodies = [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#];
    let events = ["first", "second", "third"]
        .into_iter()
        .zip(bodies)
        .map(|(key, body)| NewEvent { body, ..event(key) })
        .collect::<Vec<_>>();
    let ids: Vec<i64> = store
        .insert_events(&events, 0)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    let refer = |buildid: i64, event_id: i64| BuildRecord {
        body: String::new(),
        event_id,
        ..build(buildid, buildid, true, Some(0))
    };
    // Build 1's row refers to the first event, build 2's to the second, and the third event
    // (a later version of build 2) takes build 2's row over.
    store.record_build(&refer(1, ids[0])).unwrap();
    store.record_build(&refer(2, ids[1])).unwrap();
    store.record_build(&refer(2, ids[2])).unwrap();
    let prune = || {
        let p = store.prune(r, 2 * day, ids[2], 100, 0).unwrap();
        (p.events, p.builds)
    };
    assert_eq!(prune(), (1, 0), "only the event no row refers to goes");
    assert_eq!(store.event_body(ids[1]).unwrap(), None);
    for kept in [ids[0], ids[2]] {
        assert!(store.event_body(kept).unwrap().is_some(), "event {kept}");
    }
    // Each row reads back with its event's body.
    let read: Vec<(i64, String)> = store
        .builds_of("m1", 3, 10)
        .unwrap()
        .into_iter()
        .map(|b| (b.number, b.body))
        .collect();
    assert_eq!(read, [(2, bodies[2].into()), (1, bodies[0].into())]);
    // Once build 1's row is pruned (50 builds of its builder are newer), its event goes too,
    // at the next pass (events are looked at before builds).
    for n in 3..=51 {
        store.record_build(&build(n, n, true, Some(0))).unwrap();
    }
    assert_eq!(prune(), (0, 1));
    assert!(store.event_body(ids[0]).unwrap().is_some());
    assert_eq!(prune(), (1, 0));
    assert_eq!(store.event_body(ids[0]).unwrap(), None);
    assert!(store.event_body(ids[2]).unwrap().is_some());
}

#[test]
fn max_store_size_counts_the_wal_and_refuses_new_events_with_the_reason() {
    let (dir, store) = open();
    let body = "x".repeat(4000);
    let keys: Vec<String> = (0..200).map(|n| format!("e{n}")).collect();
    let big = |n: usize| NewEvent {
        body: &body,
        ..event(&keys[n])
    };
    store.insert_events(&[big(0)], 0).unwrap();
    store.checkpoint().unwrap();
    let start = store.bytes_used().unwrap();
    store.limit_size(start + 256 * 1024).unwrap();
    // A reader beside the daemon (`tidings outbox list`) holds a snapshot, so checkpoints
    // cannot empty the WAL: it grows, and it counts.
    let reader = Connection::open(dir.path().join("tidings.db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    let mut refused = None;
    for n in 1..200 {
        match store.insert_events(&[big(n)], 0) {
            Ok(_) => {}
            Err(StoreError::Full(why)) => {
                refused = Some(why);
                break;
            }
            Err(e) => panic!("expected Full, got {e}"),
        }
    }
    let why = refused.expect("refused before 200 events of 4 kB");
    assert!(why.contains("max_store_size"), "{why}");
    let wal = std::fs::metadata(dir.path().join("tidings.db-wal"))
        .unwrap()
        .len();
    let used = store.bytes_used().unwrap();
    assert!(
        used - wal < start + 256 * 1024,
        "refused for the WAL's part: {used} used, {wal} of it WAL"
    );
    assert!(store.full().unwrap().is_some(), "/healthz says so too");
    // The reader is gone: a checkpoint empties the WAL and there is room again.
    drop(reader);
    assert_eq!(store.full().unwrap(), None);
    store.insert_events(&[big(199)], 0).unwrap();
}

#[test]
fn four_thousand_deliveries_under_one_order_key_drain_in_order_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    store
        .insert_events(&[event("m/build/1/finished")], 1)
        .unwrap();
    let keys: Vec<String> = (0..4000).map(|i| format!("k{i}")).collect();
    let rows: Vec<NewDelivery> = keys
        .iter()
        .map(|k| delivery(k, 1, Some("m|buildrequest/1")))
        .collect();
    store.enqueue(&rows, 1).unwrap();
    // Another queue and a delivery without an order key go out beside it.
    store
        .enqueue(
            &[
                delivery("other", 1, Some("m|buildrequest/2")),
                delivery("free", 1, None),
            ],
            1,
        )
        .unwrap();
    let first = store.claim_due("push", 1, 10).unwrap();
    assert_eq!(
        first.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        ["k0", "other", "free"]
    );
    for d in &first[1..] {
        store
            .finish(
                d.id,
                &Outcome::Delivered {
                    detail: String::new(),
                },
                2,
            )
            .unwrap();
    }
    let mut head = first[0].clone();
    for i in 0..4000 {
        assert_eq!(head.key, format!("k{i}"));
        // While the head is in flight, nothing else of its queue can be claimed.
        assert!(store.claim_due("push", 2, 10).unwrap().is_empty());
        store
            .finish(
                head.id,
                &Outcome::Delivered {
                    detail: String::new(),
                },
                2,
            )
            .unwrap();
        let next = store.claim_due("push", 2, 10).unwrap();
        if i == 3999 {
            assert!(next.is_empty());
            break;
        }
        assert_eq!(next.len(), 1);
        head = next.into_iter().next().unwrap();
    }
}

#[test]
fn a_retried_dead_delivery_goes_back_to_its_place_in_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    store
        .insert_events(&[event("m/build/1/finished")], 1)
        .unwrap();
    let q = Some("m|buildrequest/1");
    store
        .enqueue(
            &[
                delivery("a", 1, q),
                delivery("b", 1, q),
                delivery("c", 1, q),
            ],
            1,
        )
        .unwrap();
    let a = store.claim_due("push", 1, 10).unwrap().remove(0);
    store
        .finish(
            a.id,
            &Outcome::Dead {
                error: "gone".into(),
            },
            2,
        )
        .unwrap();
    // b is the head now; a retried by hand is older: it goes first, b waits behind it.
    let b = store.claim_due("push", 2, 10).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].key, "b");
    store
        .finish(
            b[0].id,
            &Outcome::Retry {
                at: 2,
                error: "busy".into(),
            },
            2,
        )
        .unwrap();
    store.retry(a.id, 3).unwrap();
    let next = store.claim_due("push", 3, 10).unwrap();
    assert_eq!(
        next.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
    store
        .finish(
            next[0].id,
            &Outcome::Delivered {
                detail: String::new(),
            },
            3,
        )
        .unwrap();
    let b = store.claim_due("push", 3, 10).unwrap().remove(0);
    assert_eq!(b.key, "b");
    assert!(
        store.claim_due("push", 3, 10).unwrap().is_empty(),
        "c waits behind b in flight"
    );
    // Dropping a queue's head lets the next one go.
    store.drop_delivery(b.id, 4).unwrap();
    assert_eq!(store.claim_due("push", 4, 10).unwrap()[0].key, "c");
}

#[test]
fn a_version_2_store_marks_its_waiting_deliveries_when_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("tidings.db")).unwrap();
        let v2 = schema_before_build_events()
            .replace(",\n    blocked         INTEGER NOT NULL DEFAULT 0", "");
        assert!(!v2.contains("event_id     INTEGER NOT NULL DEFAULT 0"));
        conn.execute_batch(&v2).unwrap();
        conn.execute_batch(
            "INSERT INTO events (key, kind, source, received_at, body)
             VALUES ('e', 'build_finished', 'http_buildbot', 1, '{}');
             INSERT INTO outbox (key, event_id, reporter, destination, order_key, payload,
                                 explanation, state, created_at, next_attempt_at)
             VALUES ('a', 1, 'push', 'd', 'q', '{}', '', 'pending', 1, 1),
                    ('b', 1, 'push', 'd', 'q', '{}', '', 'pending', 1, 1),
                    ('c', 1, 'push', 'd', NULL, '{}', '', 'pending', 1, 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    let claimed = store.claim_due("push", 5, 10).unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        ["a", "c"]
    );
}

#[test]
fn a_version_3_store_keeps_its_build_history_when_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("tidings.db")).unwrap();
        let v3 = schema_before_build_events();
        assert!(!v3.contains("event_id     INTEGER NOT NULL DEFAULT 0"));
        conn.execute_batch(&v3).unwrap();
        conn.execute_batch(
            "INSERT INTO builds (master, buildid, builderid, number, complete, results, body)
             VALUES ('m1', 7, 3, 1, 1, 2, '{}');
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    // Rows from before the column count as written before every event.
    let prev = store
        .snapshot()
        .unwrap()
        .previous_build_before("m1", 3, 2, 1)
        .unwrap();
    assert_eq!(prev.map(|b| (b.number, b.event_id)), Some((1, 0)));
    // The history's index now carries the event.
    let indexes: Vec<String> = store
        .conn()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'builds'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        indexes.contains(&"builds_by_builder_event".to_string())
            && !indexes.contains(&"builds_by_builder".to_string()),
        "{indexes:?}"
    );
}

#[test]
fn a_version_4_store_keeps_the_bodies_of_its_builds_when_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("tidings.db")).unwrap();
        conn.execute_batch(&schema_4()).unwrap();
        conn.execute_batch(
            r#"CREATE INDEX outbox_heads ON outbox (reporter, state, blocked, next_attempt_at);
               INSERT INTO events (id, key, kind, source, received_at, body, format)
               VALUES (5, 'k', 'build_finished', 'http', 0, '{"event":"body"}', 'build');
               INSERT INTO builds
                 (master, buildid, builderid, number, complete, results, body, event_id)
               VALUES ('m1', 7, 3, 1, 1, 2, '{"row":"body"}', 5);
               PRAGMA user_version = 4;"#,
        )
        .unwrap();
    }
    let store = Store::open(dir.path(), Durability::Normal).unwrap();
    // A row written before version 5 has its own body, and is read with it.
    let builds = store.builds_of("m1", 3, 5).unwrap();
    assert_eq!(
        builds.iter().map(|b| b.body.as_str()).collect::<Vec<_>>(),
        [r#"{"row":"body"}"#]
    );
    let version: i64 = store
        .conn()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let index = |name: &str| -> i64 {
        store
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(index("builds_by_event"), 1);
    assert_eq!(index("outbox_due"), 0, "an index no query uses is dropped");
    // The queues' indexes keep only what their queries look for.
    let definition = |name: &str| -> String {
        store
            .conn()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(definition("outbox_heads").ends_with("WHERE state = 'pending'"));
    assert!(definition("outbox_order").ends_with("WHERE state IN ('pending', 'inflight')"));
}

#[test]
fn build_history_a_lagging_lane_still_needs_is_not_pruned() {
    let (_dir, store) = open();
    let r = Retention {
        keep_ms: 1000,
        dead_ms: None,
    };
    // 80 builds of one builder, build n recorded by event n; the slowest lane has passed
    // event 20 only.
    for n in 1..=80 {
        let mut b = build(n, n, true, Some(0));
        b.event_id = n;
        store.record_build(&b).unwrap();
    }
    let prev = |n, event| {
        let snapshot = store.snapshot().unwrap();
        let prev = snapshot.previous_build_before("m1", 3, n, event).unwrap();
        prev.map(|b| b.number)
    };
    let p = store.prune(r, 0, 20, 1000, 0).unwrap();
    assert_eq!(
        p.builds, 0,
        "nothing a lane before event 21 may look up goes"
    );
    assert_eq!(prev(21, 21), Some(20));
    // Once every lane has passed event 70, the newest 50 of the builds it passed stay: 21..=70
    // (and 71..=80, newer than the cursor).
    let p = store.prune(r, 0, 70, 1000, 0).unwrap();
    assert_eq!(p.builds, 20);
    assert_eq!(prev(71, 71), Some(70));
    assert_eq!(prev(22, 22), Some(21));
    assert_eq!(prev(21, 21), None, "build 20 is gone");
}

#[test]
fn build_history_is_pruned_builder_by_builder_across_masters_and_batches() {
    let (_dir, store) = open();
    let r = Retention {
        keep_ms: 1000,
        dead_ms: None,
    };
    // Builders of two masters, some with fewer builds than are kept.
    let builders = [("m1", 3, 55), ("m1", 9, 49), ("m1", 40, 120), ("m2", 3, 51)];
    let mut id = 0;
    for (master, builderid, count) in builders {
        for number in 1..=count {
            id += 1;
            let mut b = build(id, number, true, Some(0));
            (b.master, b.builderid, b.event_id) = (master.into(), builderid, id);
            store.record_build(&b).unwrap();
        }
    }
    // In batches of 7, which end inside a builder and span two.
    let mut deleted = 0;
    loop {
        let p = store.prune(r, 0, id, 7, 0).unwrap();
        assert!(p.builds <= 7);
        if p.builds == 0 {
            break;
        }
        deleted += p.builds;
    }
    assert_eq!(deleted, 5 + 70 + 1);
    for (master, builderid, count) in builders {
        let kept: Vec<i64> = store
            .builds_of(master, builderid, 1000)
            .unwrap()
            .iter()
            .map(|b| b.number)
            .collect();
        let newest: Vec<i64> = ((count - super::retention::BUILDS_KEPT).max(0) + 1..=count)
            .rev()
            .collect();
        assert_eq!(kept, newest, "{master} builder {builderid}");
    }
}

#[test]
fn pruning_the_build_history_reads_its_index_not_the_builds() {
    let (_dir, store) = open();
    let conn = store.conn();
    let plan = |sql: &str, params: usize| -> Vec<String> {
        let args: Vec<i64> = vec![0; params];
        let mut q = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        q.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let [first, next_builder, next_master, oldest_kept, delete] = super::retention::PRUNE_BUILDS;
    for (sql, params) in [
        (first, 0),
        (next_builder, 2),
        (next_master, 1),
        (oldest_kept, 4),
        (delete, 5),
    ] {
        let plan = plan(sql, params);
        assert!(
            plan.iter().any(|l| l.contains("builds_by_builder_event")),
            "{sql}: {plan:?}"
        );
        for line in &plan {
            assert!(
                !line.contains("builds")
                    || line.contains("COVERING INDEX builds_by_builder_event")
                    || line.contains("INTEGER PRIMARY KEY"),
                "{sql} reads rows: {plan:?}"
            );
        }
    }
}

#[test]
fn the_previous_build_is_looked_up_as_of_an_event() {
    let (_dir, store) = open();
    let at = |mut b: BuildRecord, event_id| {
        b.event_id = event_id;
        store.record_build(&b).unwrap();
    };
    at(build(10, 1, true, Some(0)), 1);
    at(build(11, 2, false, None), 2); // started at event 2…
    at(build(12, 3, true, Some(2)), 3);
    at(build(11, 2, true, Some(2)), 4); // …finished at event 4
    let prev = |n, event| {
        let snapshot = store.snapshot().unwrap();
        let prev = snapshot.previous_build_before("m1", 3, n, event).unwrap();
        prev.map(|b| b.number)
    };
    // Build 3 finished at event 3, when build 2 was still running.
    assert_eq!(prev(3, 3), Some(1));
    // A build finishing at event 5 finds build 3, then finished; event 3's own row is not seen
    // as of event 3.
    assert_eq!(prev(4, 5), Some(3));
    assert_eq!(prev(4, 3), Some(1));
    assert_eq!(prev(3, 5), Some(2), "as of event 5, build 2 had finished");
    assert_eq!(prev(2, 1), None, "as of event 1, nothing was recorded");
}

#[test]
fn outcomes_finished_together_are_recorded_in_one_go_in_order() {
    let (_dir, store) = open();
    let ev = store.insert_events(&[event("e")], 1).unwrap()[0].id;
    let q = Some("m|buildrequest/1");
    store
        .enqueue(
            &[
                delivery("a", ev, q),
                delivery("b", ev, q),
                delivery("c", ev, None),
                delivery("d", ev, None),
            ],
            1,
        )
        .unwrap();
    let claimed = store.claim_due("push", 1, 10).unwrap();
    let keys: Vec<&str> = claimed.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["a", "c", "d"], "oldest first; b waits behind a");
    let (a, c, d) = (claimed[0].id, claimed[1].id, claimed[2].id);
    store
        .finish_many(&[
            Finished {
                id: a,
                outcome: Outcome::Delivered {
                    detail: "HTTP 200".into(),
                },
                at: 2,
            },
            // Not in the outbox (deleted meanwhile): skipped, the others recorded.
            Finished {
                id: 999,
                outcome: Outcome::Delivered {
                    detail: String::new(),
                },
                at: 2,
            },
            Finished {
                id: c,
                outcome: Outcome::Retry {
                    at: 50,
                    error: "HTTP 503".into(),
                },
                at: 2,
            },
            Finished {
                id: d,
                outcome: Outcome::Dead {
                    error: "HTTP 400".into(),
                },
                at: 2,
            },
        ])
        .unwrap();
    let state = |id| store.delivery(id).unwrap().unwrap().state;
    assert_eq!(
        (state(a), state(c), state(d)),
        (State::Delivered, State::Pending, State::Dead)
    );
    assert_eq!(store.log(c).unwrap()[0].result, "retry");
    // a is done: b, next in its queue, goes now; c only when due.
    let next: Vec<String> = store
        .claim_due("push", 3, 10)
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(next, ["b"]);
    assert_eq!(store.claim_due("push", 50, 10).unwrap()[0].key, "c");
}

#[test]
fn finishing_a_queue_head_and_claiming_the_next_is_one_transaction_that_fails_whole() {
    let (_dir, store) = open();
    let ev = store.insert_events(&[event("e")], 1).unwrap()[0].id;
    let q = Some("m|buildrequest/1");
    store
        .enqueue(&[delivery("a", ev, q), delivery("b", ev, q)], 1)
        .unwrap();
    let a = store.claim_due("push", 1, 10).unwrap();
    assert_eq!(a.len(), 1, "b waits behind a");
    let a = a[0].id;
    // The store is full: the outcome (its error needs new pages) cannot be written, and
    // neither is anything claimed.
    store.limit_size(1).unwrap();
    let retry = |error: String| {
        [Finished {
            id: a,
            outcome: Outcome::Retry { at: 1, error },
            at: 2,
        }]
    };
    let err = store
        .finish_and_claim(&retry("x".repeat(1 << 20)), "push", 3, 10)
        .unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    let row = store.delivery(a).unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (State::InFlight, 1));
    assert!(store.log(a).unwrap().is_empty());
    // Room again: a is recorded dead, which makes b its queue's head, claimed in the same go.
    store.limit_size(1 << 30).unwrap();
    let dead = [Finished {
        id: a,
        outcome: Outcome::Dead {
            error: "HTTP 400".into(),
        },
        at: 2,
    }];
    let (claimed, next) = store.finish_and_claim(&dead, "push", 3, 10).unwrap();
    assert_eq!(store.delivery(a).unwrap().unwrap().state, State::Dead);
    let keys: Vec<&str> = claimed.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["b"]);
    assert_eq!(next, None, "nothing else pending");
    // With no free slot, outcomes are recorded and nothing is claimed.
    let b = claimed[0].id;
    store.enqueue(&[delivery("c", ev, None)], 4).unwrap();
    let delivered = [Finished {
        id: b,
        outcome: Outcome::Delivered {
            detail: "HTTP 200".into(),
        },
        at: 5,
    }];
    let (claimed, _) = store.finish_and_claim(&delivered, "push", 5, 0).unwrap();
    assert!(claimed.is_empty());
    assert_eq!(store.delivery(b).unwrap().unwrap().state, State::Delivered);
    assert_eq!(store.claim_due("push", 5, 10).unwrap()[0].key, "c");
}

/// Commits do not checkpoint the WAL themselves: the checkpoint thread does, once a commit
/// finds the WAL past the threshold, while the writers go on; the database file grows only
/// by its copies.
#[test]
fn the_wal_is_checkpointed_by_its_own_thread_once_past_the_threshold() {
    let (dir, store) = open();
    let db_len = || {
        std::fs::metadata(dir.path().join("tidings.db"))
            .unwrap()
            .len()
    };
    let runs = || {
        store
            ._checkpointer
            .as_ref()
            .expect("a checkpoint thread")
            .runs()
    };
    let before = db_len();
    // Each event spills into an overflow page: about two WAL frames per event.
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    let mut n = 0;
    let mut insert = |count: usize| {
        for _ in 0..count {
            n += 1;
            let key = format!("wal/{n}");
            store
                .insert_events(
                    &[NewEvent {
                        body: &body,
                        ..event(&key)
                    }],
                    0,
                )
                .unwrap();
        }
    };
    insert(100);
    assert_eq!(
        runs(),
        0,
        "not due below {} frames",
        checkpointer::CHECKPOINT_PAGES
    );
    assert_eq!(db_len(), before, "nothing copied into the database yet");
    insert(500);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while runs() == 0 || db_len() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after the WAL passed the threshold"
        );
        std::thread::yield_now();
    }
    assert!(db_len() > before);
    // Every event is there, whatever the checkpoints did meanwhile.
    assert_eq!(store.event_count().unwrap(), 600);
}

/// A dispatcher of `store` without reporters: the history step alone.
fn no_reporters(
    store: &std::sync::Arc<Store>,
    read: std::sync::Arc<crate::dispatch::ReadEvents>,
) -> crate::dispatch::Dispatcher {
    crate::dispatch::Dispatcher {
        store: store.clone(),
        routes: Vec::new(),
        formatters: Default::default(),
        master: Default::default(),
        metrics: Default::default(),
        history: None,
        breakers: Default::default(),
        workers: 0,
        read,
    }
}

/// Events `a` and `b`, received at time 0, which dispatch's history step has passed: their ids.
fn two_dispatched_events(store: &Store) -> Vec<i64> {
    let ids: Vec<i64> = store
        .insert_events(&[event("a"), event("b")], 0)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    store.set_cursor("dispatch", ids[1]).unwrap();
    ids
}

#[test]
fn an_event_after_retention_emptied_the_log_gets_an_id_past_every_cursor() {
    let (_dir, store) = open();
    let day = 86_400_000;
    let r = Retention {
        keep_ms: day,
        dead_ms: None,
    };
    // Both old and dispatched: a quiet spell longer than retention. The newest stays, so the
    // next event is numbered past it (SQLite numbers a row one past the table's largest id).
    let ids = two_dispatched_events(&store);
    let mut deleted = 0;
    loop {
        let pruned = store.prune(r, 2 * day, ids[1], 100, 0).unwrap();
        deleted += pruned.events;
        if !pruned.any() {
            break;
        }
    }
    assert_eq!(deleted, 1, "retention deletes every event but the newest");
    let next = store.insert_events(&[event("c")], 2 * day).unwrap()[0].id;
    assert!(
        next > ids[1],
        "event c got id {next}, which dispatch's cursor ({}) has passed",
        ids[1]
    );
}

/// Ingest runs the history step in the transaction that stores its events, but only when the
/// history step has passed every event before them, when every new event was parsed, and while
/// a dispatcher's lanes are open: events that arrive before (at start-up) stay with the history
/// step, where a lane new to the store finds them.
#[test]
fn ingest_records_the_history_itself_only_when_the_history_step_is_caught_up() {
    use crate::dispatch::{CURSOR, ReadEvent, ReadEvents};
    use crate::event::{BodyFormat, Build, Event};
    use crate::store::committer::Committer;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (_dir, store) = open();
    let store = Arc::new(store);
    let body = |n: i64| {
        format!(
            r#"{{"buildid":{n},"builderid":7,"number":{n},"masterid":1,"complete":true,"results":0}}"#
        )
    };
    let read = Arc::new(ReadEvents::default());
    let pokes = Arc::new(AtomicUsize::new(0));
    let committer = Committer::start_with(store.clone(), Some(read.clone()), {
        let pokes = pokes.clone();
        move || {
            pokes.fetch_add(1, Ordering::SeqCst);
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let post = |n: i64, parsed: bool| {
        let body = body(n);
        let event = Event::from_build(serde_json::from_str::<Build>(&body).unwrap()).unwrap();
        let read = parsed.then(|| Arc::new(ReadEvent::new(event, BodyFormat::Build, &body)));
        rt.block_on(committer.commit(
            format!("m/build/{n}/finished"),
            "build_finished",
            "test",
            body,
            BodyFormat::Build,
            read,
        ))
        .unwrap()
        .id
    };
    let recorded = || {
        store
            .conn()
            .query_row("SELECT COUNT(*) FROM builds", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };

    // No dispatcher yet: stored and handed over; the history step records it.
    let first = post(1, true);
    assert_eq!((store.cursor(CURSOR).unwrap(), recorded()), (0, 0));
    assert_eq!(pokes.load(Ordering::SeqCst), 1);
    let dispatcher = no_reporters(&store, read.clone());
    read.set_lanes(Some((1, false)));
    // Lanes open, but the history step has not passed event 1: still the step's.
    let second = post(2, true);
    assert_eq!((store.cursor(CURSOR).unwrap(), recorded()), (0, 0));
    assert_eq!(pokes.load(Ordering::SeqCst), 2);
    assert_eq!(dispatcher.record_pending().unwrap(), 2);
    assert_eq!(store.cursor(CURSOR).unwrap(), second);
    assert!(first < second);

    // Caught up: ingest records it and moves the cursor, keeps it for the lane, and does not
    // wake the dispatch thread.
    let third = post(3, true);
    assert_eq!((store.cursor(CURSOR).unwrap(), recorded()), (third, 3));
    assert_eq!(pokes.load(Ordering::SeqCst), 2);
    assert_eq!(read.len(), 1, "event 3 kept for the one lane");
    assert_eq!(dispatcher.record_pending().unwrap(), 0);
    // The same event again changes nothing.
    rt.block_on(committer.commit(
        "m/build/3/finished".into(),
        "build_finished",
        "test",
        body(3),
        BodyFormat::Build,
        None,
    ))
    .unwrap();
    assert_eq!(store.cursor(CURSOR).unwrap(), third);

    // An event ingest did not parse is the history step's (it reads the stored body).
    let fourth = post(4, false);
    assert_eq!((store.cursor(CURSOR).unwrap(), recorded()), (third, 3));
    assert_eq!(pokes.load(Ordering::SeqCst), 3);
    assert_eq!(dispatcher.record_pending().unwrap(), 1);
    assert_eq!((store.cursor(CURSOR).unwrap(), recorded()), (fourth, 4));

    // The dispatcher runs a lane on its own thread: it is woken after ingest records too.
    read.set_lanes(Some((1, true)));
    let fifth = post(5, true);
    assert_eq!(store.cursor(CURSOR).unwrap(), fifth);
    assert_eq!(pokes.load(Ordering::SeqCst), 4);
}

/// A history step that read the cursor before ingest moved it writes nothing.
#[test]
fn a_cursor_moved_meanwhile_is_not_moved_again() {
    let (_dir, store) = open();
    let ids = two_dispatched_events(&store);
    let stale = store.enqueue_and_advance(
        &[build(1, 1, true, Some(0))],
        &[delivery("d", ids[0], None)],
        &[],
        0,
        "dispatch",
        0,
        ids[0],
    );
    assert!(
        matches!(
            &stale,
            Err(StoreError::CursorMoved { name, expected: 0, found }) if name == "dispatch" && *found == ids[1]
        ),
        "{stale:?}"
    );
    assert_eq!(store.cursor("dispatch").unwrap(), ids[1]);
    assert!(store.latest_builds().unwrap().is_empty());
    assert!(store.list(None, 10).unwrap().is_empty());
}
