//! Dispatch calls the hook a reporter asks for, per event kind, with its own `arg`: `startCB` at
//! a build's start, `reviewCB` at its end, `summaryCB` when its buildset completes (Gerrit's
//! generators). A reporter here renders each typed result as JSON, and the real `gerrit`
//! formatter (built for wasm32-wasip1) answers.

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tidings::config::{RetrySettings, Selection};
use tidings::dispatch::{Dispatcher, Route};
use tidings::event::{Envelope, Event, EventKind};
use tidings::formatter::{Formatter, Grants, Host, HostOptions, Limits};
use tidings::outbox::{Outgoing, Sink, SinkFuture};
use tidings::reporters::{Formatted, HookCall, Output, RenderInput, Rendered, Reporter};
use tidings::store::{Durability, NewEvent, Store};
use tidings_guest::Hook;

/// Gerrit's three callbacks, each with the `gerrit` formatter and an `arg` of its own.
struct Callbacks {
    selection: Selection,
}

struct NoSink;

impl Sink for NoSink {
    fn deliver<'a>(&'a self, _: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(async { Ok("not sent".to_owned()) })
    }
}

impl Reporter for Callbacks {
    fn kind(&self) -> &'static str {
        "callbacks"
    }
    fn selection(&self) -> &Selection {
        &self.selection
    }
    fn report_new(&self) -> bool {
        true
    }
    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        let (hook, arg) = match kind {
            EventKind::BuildStarted => (Hook::StartCb, json!("start-arg")),
            EventKind::BuildFinished => (Hook::ReviewCb, json!(true)),
            EventKind::BuildsetComplete => (Hook::SummaryCb, json!({"k": 1})),
            _ => return None,
        };
        Some(HookCall {
            hook,
            formatter: Some("gerrit".into()),
            arg,
        })
    }
    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let payload = match input.message {
            Formatted::Custom(Output::Review(r)) => json!({"review": r}),
            Formatted::Custom(Output::Start(s)) => json!({"start": s}),
            other => json!({"other": format!("{other:?}")}),
        };
        vec![Rendered {
            destination: "gerrit".into(),
            payload: payload.to_string(),
        }]
    }
    fn sink(&self) -> Arc<dyn Sink> {
        Arc::new(NoSink)
    }
    fn retry(&self) -> RetrySettings {
        RetrySettings::default()
    }
}

fn build(buildid: i64, builder: &str, results: Option<i64>) -> Value {
    let mut b: Value = serde_json::from_slice(&support::sample("failure-full.json")).unwrap();
    b["buildid"] = buildid.into();
    b["number"] = buildid.into();
    b["builder"]["name"] = builder.into();
    b["complete"] = results.is_some().into();
    b["results"] = results.map_or(Value::Null, Value::from);
    b["url"] = format!("http://ci/#/builders/1/builds/{buildid}").into();
    b
}

/// A store in a temporary directory, and the `gerrit` formatter loaded.
fn store_and_gerrit() -> (tempfile::TempDir, Arc<Store>, tidings::formatter::Formatter) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Durability::Normal).unwrap());
    let host = Host::new(HostOptions::default()).unwrap();
    let gerrit = host
        .load(
            "gerrit",
            &support::guest("gerrit"),
            Limits::default(),
            Grants::default(),
        )
        .unwrap();
    (dir, store, gerrit)
}

/// A dispatcher over `store` with one reporter and, if given, the `gerrit` formatter; the
/// master is "CI" at http://ci/.
fn dispatcher(
    store: &Arc<Store>,
    reporter: impl Reporter + 'static,
    gerrit: Option<tidings::formatter::Formatter>,
) -> Dispatcher {
    Dispatcher {
        store: store.clone(),
        routes: vec![Route {
            reporter: Arc::new(reporter),
            wake: Default::default(),
        }],
        formatters: gerrit
            .map(|g| HashMap::from([("gerrit".to_owned(), Arc::new(g))]))
            .unwrap_or_default(),
        master: tidings_guest::Master {
            title: "CI".into(),
            buildbot_url: "http://ci/".into(),
        },
        metrics: Default::default(),
        history: None,
        breakers: Default::default(),
        workers: 0,
        read: Default::default(),
    }
}

/// Stores a native envelope as ingest would.
fn store_envelope(store: &Store, e: &Value) {
    let event =
        Event::from_envelope(serde_json::from_value::<Envelope>(e.clone()).unwrap()).unwrap();
    store
        .insert_events(
            &[NewEvent {
                key: &event.key(),
                kind: event.kind.name(),
                source: "test",
                body: &e.to_string(),
                format: tidings::event::BodyFormat::Envelope,
            }],
            1,
        )
        .unwrap();
}

#[test]
fn each_event_kind_gets_the_hook_its_reporter_asks_for() {
    let (_dir, store, gerrit) = store_and_gerrit();
    let reporter = Callbacks {
        selection: Selection {
            name: "review".into(),
            mode: tidings::config::Mode(vec!["failing".into(), "passing".into()]),
            builders: vec!["runtests".into(), "lint".into()],
            ..Selection::default()
        },
    };
    let events = [
        json!({"schema_version": 1, "type": "build_started", "build": build(1, "runtests", None)}),
        json!({"schema_version": 1, "type": "build_finished", "build": build(1, "runtests", Some(2))}),
        // Not in `builders`: no review, and left out of the summary.
        json!({"schema_version": 1, "type": "build_finished", "build": build(2, "docs", Some(0))}),
        json!({"schema_version": 1, "type": "buildset_complete",
               "buildset": {"bsid": 9, "complete": true, "results": 2},
               "builds": [build(1, "runtests", Some(2)), build(3, "lint", Some(0)),
                          build(2, "docs", Some(0))]}),
    ];
    for e in &events {
        store_envelope(&store, e);
    }
    let dispatcher = dispatcher(&store, reporter, Some(gerrit));
    assert_eq!(dispatcher.dispatch_pending().unwrap(), 4);
    let payloads: Vec<Value> = (1..=3)
        .map(|id| {
            let d = store.delivery(id).unwrap().expect("a delivery");
            serde_json::from_str(&d.payload).unwrap()
        })
        .collect();
    assert!(
        store.delivery(4).unwrap().is_none(),
        "three deliveries only"
    );

    // startCB: the builder and the URL.
    let start = payloads[0]["start"]["message"].as_str().unwrap();
    assert!(
        start.contains("started compiling your patchset")
            && start.contains("runtests")
            && start.contains("http://ci/#/builders/1/builds/1"),
        "{start}"
    );
    // reviewCB: the result as a code (FAILURE → -1), and `arg` (true: the URL is added).
    let review = &payloads[1]["review"];
    assert_eq!(review["labels"], json!({"Verified": -1}));
    let message = review["message"].as_str().unwrap();
    assert!(
        message.contains("The result is: FAILURE") && message.contains("For more details visit"),
        "{message}"
    );
    // summaryCB: the builds that pass the filter, sorted by builder name.
    let summary = payloads[2]["review"]["message"].as_str().unwrap();
    let lines: Vec<&str> = summary.split("\n\n").collect();
    assert_eq!(lines.len(), 2, "{summary}");
    assert!(lines[0].starts_with("Builder lint succeeded"), "{summary}");
    assert!(lines[1].starts_with("Builder runtests failed"), "{summary}");
    assert_eq!(payloads[2]["review"]["labels"], json!({"Verified": -1}));
}

/// A message reporter whose built-in formatter hands back the request it was given.
struct Echo {
    selection: Selection,
}

impl Reporter for Echo {
    fn kind(&self) -> &'static str {
        "echo"
    }
    fn selection(&self) -> &Selection {
        &self.selection
    }
    fn report_new(&self) -> bool {
        false
    }
    fn default_output(&self, request: &tidings::formatter::Request) -> Option<Output> {
        let v: Value = serde_json::from_slice(&request.to_stdin()).unwrap();
        Some(Output::Message(tidings_guest::Message {
            body: v,
            message_type: tidings_guest::MessageType::Json,
            subject: None,
        }))
    }
    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        vec![Rendered {
            destination: "echo".into(),
            payload: input.message.message().unwrap().body.to_string(),
        }]
    }
    fn sink(&self) -> Arc<dyn Sink> {
        Arc::new(NoSink)
    }
    fn retry(&self) -> RetrySettings {
        RetrySettings::default()
    }
}

#[test]
fn a_formatter_gets_what_its_reporter_wants_of_a_build() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), Durability::Normal).unwrap());
    let config = tidings::config::Config::parse(
        "[[reporter.http_push]]\nname = \"echo\"\nserver_url = \"http://x/\"\nmode = \"all\"\n\
         want_properties = false\nwant_logs_content = [\"run.stdio\"]\n",
    )
    .unwrap();
    let selection = tidings::config::CommonOptions::selection(&config.reporter.http_push[0]);
    store_envelope(
        &store,
        &json!({"schema_version": 1, "type": "build_finished", "build": build(7, "runtests", Some(2))}),
    );
    let dispatcher = dispatcher(&store, Echo { selection }, None);
    assert_eq!(dispatcher.dispatch_pending().unwrap(), 1);
    let request: Value =
        serde_json::from_str(&store.delivery(1).unwrap().unwrap().payload).unwrap();
    // want_properties = false: none; want_logs_content: the run step's stdio, flat, with its
    // step's name (the greet step's is not wanted).
    assert_eq!(request["build"]["properties"], json!({}));
    let logs = request["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["stepname"], "run");
    assert_eq!(logs[0]["name"], "stdio");
    assert!(
        logs[0]["content"]["content"]
            .as_str()
            .unwrap()
            .contains("running")
    );
    assert_eq!(request["status_detected"], "failed build");
}

#[test]
fn parallel_dispatch_enqueues_in_event_order_and_finds_previous_builds_within_a_batch() {
    // 150 builds of one builder, each started then finished (300 events: more than one
    // dispatch batch), results in an irregular pattern. Mode `change` reports a finished build
    // only when its result differs from the previous build's, which for most builds is in the
    // same batch and not yet written: a wrong previous build changes which builds report.
    let (_dir, store, gerrit) = store_and_gerrit();
    let result = |n: i64| if (n * 7 + n / 5) % 3 == 0 { 2 } else { 0 };
    for n in 1..=150 {
        store_envelope(
            &store,
            &json!({"schema_version": 1, "type": "build_started", "build": build(n, "runtests", None)}),
        );
        store_envelope(
            &store,
            &json!({"schema_version": 1, "type": "build_finished", "build": build(n, "runtests", Some(result(n)))}),
        );
    }
    let reporter = Callbacks {
        selection: Selection {
            name: "review".into(),
            mode: tidings::config::Mode(vec!["change".into()]),
            ..Selection::default()
        },
    };
    let dispatcher = Dispatcher {
        // More threads than this machine may have cores: the parallel path runs anywhere.
        workers: 3,
        ..dispatcher(&store, reporter, Some(gerrit))
    };
    let mut dispatched = 0;
    loop {
        match dispatcher.dispatch_pending().unwrap() {
            0 => break,
            n => dispatched += n,
        }
    }
    assert_eq!(dispatched, 300);
    let deliveries: Vec<_> = (1..).map_while(|id| store.delivery(id).unwrap()).collect();
    // The outbox holds them in the order of their events.
    assert!(
        deliveries.windows(2).all(|w| w[0].event_id < w[1].event_id),
        "{:?}",
        deliveries.iter().map(|d| d.event_id).collect::<Vec<_>>()
    );
    // Every start (startCB), and each finish whose result changed.
    let changed: Vec<i64> = (2..=150).filter(|&n| result(n) != result(n - 1)).collect();
    let reviews: Vec<i64> = deliveries
        .iter()
        .filter_map(|d| {
            let p: Value = serde_json::from_str(&d.payload).unwrap();
            p.get("review").map(|_| (d.event_id + 1) / 2)
        })
        .collect();
    assert_eq!(reviews, changed);
    assert_eq!(deliveries.len(), 150 + changed.len());
    // And every build is in the history, the last one the previous of a next.
    let latest = store.latest_builds().unwrap();
    assert_eq!(latest.len(), 1, "one builder");
    let b = &latest[0];
    assert_eq!((b.number, b.results), (150, Some(result(150))));
    let prev = store
        .previous_build(&b.master, b.builderid, 150)
        .unwrap()
        .expect("recorded");
    assert_eq!((prev.number, prev.results), (149, Some(result(149))));
}

/// A dispatcher over `store` with a `Callbacks` reporter (mode `change`) per name, all with the
/// `gerrit` formatter.
fn lanes(store: &Arc<Store>, gerrit: &Arc<Formatter>, names: &[&str]) -> Dispatcher {
    let reporter = |name: &str| Callbacks {
        selection: Selection {
            name: name.into(),
            mode: tidings::config::Mode(vec!["change".into()]),
            ..Selection::default()
        },
    };
    let mut d = dispatcher(store, reporter(names[0]), None);
    d.formatters = HashMap::from([("gerrit".to_owned(), gerrit.clone())]);
    for name in &names[1..] {
        d.routes.push(Route {
            reporter: Arc::new(reporter(name)),
            wake: Default::default(),
        });
    }
    d
}

/// Every delivery in the outbox, as (reporter, event id, payload), in outbox order.
fn outbox(store: &Store) -> Vec<(String, i64, String)> {
    (1..)
        .map_while(|id| store.delivery(id).unwrap())
        .map(|d| (d.reporter, d.event_id, d.payload))
        .collect()
}

#[test]
fn each_reporter_has_its_own_lane_and_sees_the_history_as_of_each_event() {
    let (_dir, store, gerrit) = store_and_gerrit();
    // Build 2 finishes before build 1: when it finished, no build before it had finished, so
    // mode `change` has no previous build to compare with (nor has build 1). Build 3's previous
    // is build 2, a failure: reported.
    for (kind, n, results) in [
        ("build_started", 1, None),
        ("build_started", 2, None),
        ("build_finished", 2, Some(2)),
        ("build_finished", 1, Some(0)),
        ("build_started", 3, None),
        ("build_finished", 3, Some(0)),
    ] {
        store_envelope(
            &store,
            &json!({"schema_version": 1, "type": kind, "build": build(n, "runtests", results)}),
        );
    }
    let gerrit = Arc::new(gerrit);
    let d = lanes(&store, &gerrit, &["a", "b"]);
    let cursor = |name: &str| store.cursor(name).unwrap();
    d.open_lanes().unwrap();
    // The history step records every build first; then lane a goes, and b has not started.
    assert_eq!(d.record_pending().unwrap(), 6);
    // The events the history step read are kept for the lanes, until both have taken them.
    assert_eq!(d.read.len(), 6);
    assert_eq!(d.dispatch_lane(0).unwrap(), 6);
    assert_eq!(d.read.len(), 6, "lane b has not taken them");
    assert_eq!(
        (
            cursor("dispatch"),
            cursor("dispatch/a"),
            cursor("dispatch/b")
        ),
        (6, 6, 0)
    );
    assert_eq!(tidings::dispatch::dispatched(&store).unwrap(), 0);
    // Retention keeps every event lane b has not passed, however old.
    let everything = tidings::store::Retention {
        keep_ms: 0,
        dead_ms: Some(0),
    };
    let pruned = store
        .prune(
            everything,
            i64::MAX / 2,
            tidings::dispatch::dispatched(&store).unwrap(),
            100,
            0,
        )
        .unwrap();
    assert_eq!(pruned.events, 0);
    // Lane b, going after the whole history was written, decides as lane a did.
    assert_eq!(d.dispatch_lane(1).unwrap(), 6);
    assert_eq!(d.dispatch_lane(1).unwrap(), 0, "caught up");
    assert!(d.read.is_empty(), "every lane took them");
    assert_eq!(tidings::dispatch::dispatched(&store).unwrap(), 6);
    let all = outbox(&store);
    let of = |name: &str| -> Vec<(i64, String)> {
        all.iter()
            .filter(|(r, _, _)| r == name)
            .map(|(_, e, p)| (*e, p.clone()))
            .collect()
    };
    assert_eq!(of("a"), of("b"));
    let reviews: Vec<i64> = of("a")
        .iter()
        .filter(|(_, p)| p.contains("\"review\""))
        .map(|(e, _)| *e)
        .collect();
    assert_eq!(reviews, [6], "only build 3's finish (event 6) is a change");
    assert_eq!(of("a").len(), 4, "three starts and one review");

    // Configured again with a and c: c starts where the history step is, b is forgotten.
    store_envelope(
        &store,
        &json!({"schema_version": 1, "type": "build_started", "build": build(4, "runtests", None)}),
    );
    let d = lanes(&store, &gerrit, &["a", "c"]);
    d.open_lanes().unwrap();
    assert!(d.read.is_empty(), "a new dispatcher reads from the store");
    assert_eq!(
        store.cursors_under("dispatch").unwrap(),
        [
            ("dispatch".to_owned(), 6),
            ("dispatch/a".to_owned(), 6),
            ("dispatch/c".to_owned(), 6)
        ]
    );
    assert_eq!(d.dispatch_pending().unwrap(), 1);
    let last: Vec<_> = outbox(&store)
        .into_iter()
        .filter(|(_, e, _)| *e == 7)
        .map(|(r, _, _)| r)
        .collect();
    assert_eq!(last, ["a", "c"]);
}

#[test]
fn an_event_readable_again_goes_to_each_lane_once() {
    let (dir, store, gerrit) = store_and_gerrit();
    // Event 1 is stored as an envelope, which its body is not (as a bug could leave it).
    let started = build(1, "runtests", None);
    store
        .insert_events(
            &[NewEvent {
                key: "m/build/1/started",
                kind: "build_started",
                source: "test",
                body: &started.to_string(),
                format: tidings::event::BodyFormat::Envelope,
            }],
            1,
        )
        .unwrap();
    store_envelope(
        &store,
        &json!({"schema_version": 1, "type": "build_started", "build": build(2, "runtests", None)}),
    );
    let gerrit = Arc::new(gerrit);
    let d = lanes(&store, &gerrit, &["a", "b"]);
    d.open_lanes().unwrap();
    assert_eq!(d.record_pending().unwrap(), 2);
    assert_eq!(store.unreadable_count().unwrap(), 1);
    // Lane a passes both events (event 2 reported); lane b has not started.
    d.dispatch_lane(0).unwrap();
    assert_eq!(outbox(&store).len(), 1);
    // An upgrade reads the event now (here: its form corrected in the store).
    rusqlite::Connection::open(dir.path().join("tidings.db"))
        .unwrap()
        .execute("UPDATE events SET format = 'build' WHERE id = 1", [])
        .unwrap();
    // At the next start it goes to lane a, which passed it; lane b reaches it in order.
    assert_eq!(d.retry_unreadable().unwrap(), 1);
    assert_eq!(store.unreadable_count().unwrap(), 0);
    while d.dispatch_lane(1).unwrap() > 0 {}
    let got: Vec<(String, i64)> = outbox(&store).into_iter().map(|(r, e, _)| (r, e)).collect();
    assert_eq!(
        got,
        [
            ("a".to_owned(), 2),
            ("a".to_owned(), 1),
            ("b".to_owned(), 1),
            ("b".to_owned(), 2)
        ]
    );
    // The build of event 1 is in the history now.
    let latest = &store.latest_builds().unwrap()[0];
    let numbers: Vec<i64> = store
        .builds_of(&latest.master, latest.builderid, 10)
        .unwrap()
        .iter()
        .map(|b| b.number)
        .collect();
    assert_eq!(numbers, [2, 1]);
}
