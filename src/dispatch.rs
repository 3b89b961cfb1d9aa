//! Dispatch: which reporters report a build, decided exactly as Buildbot's generators decide.
//!
//! This module holds the decisions, as pure functions over a build and a reporter's
//! [`Selection`]: the filters (`builders`, `tags`, `branches`, `schedulers`), the mode words
//! (against the previous build, found by [`crate::store::Store::previous_build`]) and the
//! blamelist. [`Dispatcher`] applies them to each stored event, in order: it records the build
//! in the history, asks every reporter whether it reports the event, calls the reporter's
//! formatter once, and writes the rendered deliveries to the outbox — in the same transaction
//! that moves its cursor past the event, so an event is dispatched once even across a crash
//! (and if a crash comes between the two, the deliveries' idempotency keys absorb the repeat).

use crate::config::{Mode, OnError, Selection};
use crate::event::{Build, Change, Event, EventKind, Results};
use crate::formatter::{Formatter, HookOutput, Request, WrapContext};
use crate::metrics::Metrics;
use crate::reporters::{Formatted, RenderInput, Reporter};
use crate::source::http::now_ms;
use crate::store::{BuildRecord, NewDelivery, Store, StoreError, StoredEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tidings_guest::{Hook, Master, ReporterInfo};
use tokio::sync::Notify;

/// Whether a finished build with `results` is reported under `mode`, given the previous
/// build's results (`None` when there is no previous build). Buildbot's rules:
/// `change` — a previous build exists and its result differs; `failing` — FAILURE; `passing` —
/// SUCCESS; `problem` — FAILURE after a previous build that was not FAILURE; `warnings`,
/// `exception`, `cancelled` — that result. SKIPPED and RETRY are reported only through `change`.
pub fn mode_matches(mode: &Mode, results: Option<i64>, prev: Option<i64>) -> bool {
    let is = |r: Results| results == Some(r.code());
    mode.0.iter().any(|word| match word.as_str() {
        "change" => prev.is_some() && prev != results,
        "failing" => is(Results::Failure),
        "passing" => is(Results::Success),
        "problem" => is(Results::Failure) && prev.is_some_and(|p| p != Results::Failure.code()),
        "warnings" => is(Results::Warnings),
        "exception" => is(Results::Exception),
        "cancelled" => is(Results::Cancelled),
        _ => false,
    })
}

/// Whether `build` passes the reporter's filters. An empty list does not filter. `tags`
/// matches a builder with any of the tags; `branches` and `schedulers` look at the build's
/// `branch` and `scheduler` properties, as Buildbot does.
pub fn selected(sel: &Selection, build: &Build) -> bool {
    let builder = build.builder.as_ref();
    let name = build.builder_name().unwrap_or_default();
    let prop = |p: &str| build.property_str(p).unwrap_or_default();
    (sel.builders.is_empty() || sel.builders.iter().any(|b| b == name))
        && (sel.tags.is_empty()
            || builder.is_some_and(|b| b.tags.iter().any(|t| sel.tags.contains(t))))
        && (sel.branches.is_empty() || sel.branches.iter().any(|b| b == prop("branch")))
        && (sel.schedulers.is_empty() || sel.schedulers.iter().any(|s| s == prop("scheduler")))
}

/// Buildbot's blamelist: the authors of `changes` (the changes since the last successful
/// build), plus the `owner` property (a string, or a list) and the `owners` property; sorted,
/// without repeats, empty names dropped.
pub fn blamelist(build: &Build, changes: &[Change]) -> Vec<String> {
    let mut users: Vec<String> = changes.iter().filter_map(|c| c.author.clone()).collect();
    users.extend(build.owners());
    users.retain(|u| !u.is_empty());
    users.sort();
    users.dedup();
    users
}

/// The cursor under which dispatch records how far it got in the event log.
pub const CURSOR: &str = "dispatch";

/// Most events dispatched in one outbox transaction.
const BATCH: usize = 256;

/// One reporter as dispatch sees it: the reporter, and who to wake when it has new deliveries.
pub struct Route {
    pub reporter: Arc<dyn Reporter>,
    pub wake: Arc<Notify>,
}

/// Turns stored events into outbox rows. Runs on its own thread ([`Dispatcher::run`]):
/// formatter calls are synchronous WASI, and one thread keeps events in order.
pub struct Dispatcher {
    pub store: Arc<Store>,
    pub routes: Vec<Route>,
    /// `[[formatter]]`s by name (every name a reporter refers to is here).
    pub formatters: HashMap<String, Arc<Formatter>>,
    pub master: Master,
    pub metrics: Arc<Metrics>,
}

/// A delivery rendered but not yet enqueued.
struct Pending {
    key: String,
    event_id: i64,
    reporter: String,
    destination: String,
    order_key: Option<String>,
    payload: String,
    explanation: String,
}

impl Dispatcher {
    /// Dispatches until `stop` is set: everything stored so far, then each time `wake` fires
    /// (the committer signals every commit), checking at least once a second.
    pub fn run(&self, wake: &Receiver<()>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.dispatch_pending() {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "dispatch cannot use the store; retrying in 1s");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
            match wake.recv_timeout(Duration::from_secs(1)) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Dispatches the events stored after the cursor (at most one batch); returns how many.
    pub fn dispatch_pending(&self) -> Result<usize, StoreError> {
        let cursor = self.store.cursor(CURSOR)?;
        let events = self.store.events_after(cursor, BATCH)?;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(0);
        };
        let mut pending = Vec::new();
        for ev in &events {
            pending.extend(self.deliveries_for(ev)?);
        }
        let rows: Vec<NewDelivery<'_>> = pending
            .iter()
            .map(|p| NewDelivery {
                key: &p.key,
                event_id: p.event_id,
                reporter: &p.reporter,
                destination: &p.destination,
                order_key: p.order_key.as_deref(),
                payload: &p.payload,
                explanation: &p.explanation,
            })
            .collect();
        let stored = self
            .store
            .enqueue_and_advance(&rows, now_ms(), CURSOR, last)?;
        for (p, s) in pending.iter().zip(&stored) {
            if s.duplicate {
                tracing::debug!(key = %p.key, "delivery already in the outbox");
            }
        }
        for route in &self.routes {
            if pending
                .iter()
                .any(|p| p.reporter == route.reporter.selection().name)
            {
                route.wake.notify_one();
            }
        }
        Ok(events.len())
    }

    fn deliveries_for(&self, ev: &StoredEvent) -> Result<Vec<Pending>, StoreError> {
        let build: Build = match serde_json::from_str(&ev.body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(event = ev.id, error = %e, "a stored event is not a build dict; skipped");
                return Ok(Vec::new());
            }
        };
        let event = match Event::from_build(build) {
            Ok(e) => e,
            Err(reason) => {
                tracing::error!(event = ev.id, %reason, "a stored event has no build identity; skipped");
                return Ok(Vec::new());
            }
        };
        let b = &event.build;
        let mut prev: Option<BuildRecord> = None;
        if let (Some(buildid), Some(builderid), Some(number)) = (b.buildid, b.builderid, b.number) {
            self.store.record_build(&BuildRecord {
                master: event.master.clone(),
                buildid,
                builderid,
                number,
                complete: b.complete,
                results: b.results,
                body: ev.body.clone(),
            })?;
            if event.kind == EventKind::BuildFinished {
                prev = self
                    .store
                    .previous_build(&event.master, builderid, number)?;
            }
        }
        let prev_results = prev.as_ref().and_then(|p| p.results);
        let order_key = match (b.buildrequestid, b.buildid) {
            (Some(br), _) => Some(format!("{}|buildrequest/{br}", event.master)),
            (None, Some(id)) => Some(format!("{}|build/{id}", event.master)),
            _ => None,
        };
        let now = now_ms();
        let mut out = Vec::new();
        for route in &self.routes {
            let r = &route.reporter;
            let sel = r.selection();
            if !selected(sel, b) {
                continue;
            }
            let why_mode = match event.kind {
                EventKind::BuildStarted if r.report_new() => "build start (report_new)".to_owned(),
                EventKind::BuildStarted => continue,
                EventKind::BuildFinished => {
                    let hits: Vec<&str> = sel
                        .mode
                        .0
                        .iter()
                        .filter(|w| {
                            mode_matches(&Mode(vec![(*w).clone()]), b.results, prev_results)
                        })
                        .map(String::as_str)
                        .collect();
                    if hits.is_empty() {
                        continue;
                    }
                    format!(
                        "mode [{}] matched by {} (result {}, previous build {})",
                        sel.mode.0.join(", "),
                        hits.join(", "),
                        Results::text_for(b.results),
                        prev.as_ref().map_or("none".to_owned(), |p| format!(
                            "#{} {}",
                            p.number,
                            Results::text_for(p.results)
                        )),
                    )
                }
            };
            let Some(message) = self.format(r.as_ref(), &event, prev.as_ref()) else {
                continue;
            };
            let rendered = r.render(&RenderInput {
                event_id: ev.id,
                kind: event.kind,
                build: b,
                build_json: &ev.body,
                message: &message,
                title: &self.master.title,
                now,
            });
            for d in rendered {
                let explanation = explain(ev, r.as_ref(), &event, &why_mode, &message);
                out.push(Pending {
                    key: format!("{}|{}|{}", ev.key, sel.name, d.destination),
                    event_id: ev.id,
                    reporter: sel.name.clone(),
                    destination: d.destination,
                    order_key: order_key.clone(),
                    payload: d.payload,
                    explanation,
                });
            }
        }
        Ok(out)
    }

    /// Calls the reporter's formatter (or not): `None` means send nothing.
    fn format(
        &self,
        r: &dyn Reporter,
        event: &Event,
        prev: Option<&BuildRecord>,
    ) -> Option<Formatted> {
        let sel = r.selection();
        let Some(name) = &sel.message_formatter else {
            return Some(Formatted::Default { degraded: None });
        };
        let Some(formatter) = self.formatters.get(name) else {
            // Config validation makes this unreachable; degrade rather than lose the event.
            return Some(Formatted::Default {
                degraded: Some(format!("formatter {name:?} is not loaded")),
            });
        };
        let mut build = event.build.clone();
        let wants_prev = sel.mode.0.iter().any(|w| w == "change" || w == "problem");
        if wants_prev
            && let Some(p) = prev
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&p.body)
        {
            build.extra.insert("prev_build".into(), v);
        }
        let ctx = WrapContext {
            mode: sel.mode.0.clone(),
            reporter: ReporterInfo {
                name: sel.name.clone(),
                kind: r.kind().into(),
            },
            master: self.master.clone(),
            arg: serde_json::Value::Null,
        };
        let request = Request::from_build(Hook::MessageFormatter, build, &ctx);
        let started = Instant::now();
        let result = formatter.call(&request);
        self.metrics.observe_call(name, started.elapsed());
        match result {
            Ok(HookOutput::Message(Some(m))) => {
                self.metrics.add(
                    "tidings_formatter_calls_total",
                    &[("formatter", name), ("result", "ok")],
                    1,
                );
                Some(Formatted::Custom(m))
            }
            Ok(_) => {
                self.metrics.add(
                    "tidings_formatter_calls_total",
                    &[("formatter", name), ("result", "nothing")],
                    1,
                );
                tracing::debug!(formatter = %name, reporter = %sel.name, "the formatter chose to send nothing");
                None
            }
            Err(e) => {
                self.metrics.add(
                    "tidings_formatter_calls_total",
                    &[("formatter", name), ("result", e.kind())],
                    1,
                );
                let why = format!("formatter {name:?} failed ({}): {e}", e.kind());
                match sel.on_error {
                    OnError::Default => {
                        tracing::warn!(reporter = %sel.name, build = ?event.build.buildid, "{why}; sending the built-in message, marked degraded");
                        Some(Formatted::Default {
                            degraded: Some(why),
                        })
                    }
                    OnError::Skip => {
                        tracing::warn!(reporter = %sel.name, build = ?event.build.buildid, "{why}; on_error = skip, nothing sent");
                        None
                    }
                }
            }
        }
    }
}

/// The story of one delivery, for `tidings outbox show`.
fn explain(
    ev: &StoredEvent,
    r: &dyn Reporter,
    event: &Event,
    why_mode: &str,
    message: &Formatted,
) -> String {
    let sel = r.selection();
    let b = &event.build;
    let mut filters = Vec::new();
    for (name, list) in [
        ("builders", &sel.builders),
        ("tags", &sel.tags),
        ("branches", &sel.branches),
        ("schedulers", &sel.schedulers),
    ] {
        if !list.is_empty() {
            filters.push(format!("{name} [{}]", list.join(", ")));
        }
    }
    let formatter = match (message, &sel.message_formatter) {
        (Formatted::Custom(_), Some(f)) => format!("formatter {f:?}"),
        (
            Formatted::Default {
                degraded: Some(why),
            },
            _,
        ) => {
            format!("built-in message, DEGRADED: {why}")
        }
        _ => "built-in message".to_owned(),
    };
    format!(
        "reporter {:?} ({}) for event {} ({} from {}): builder {:?} build #{}; {why_mode}; filters: {}; {formatter}",
        sel.name,
        r.kind(),
        ev.id,
        ev.kind,
        ev.source,
        b.builder_name().unwrap_or_default(),
        b.number.map_or("?".into(), |n| n.to_string()),
        if filters.is_empty() {
            "none".into()
        } else {
            filters.join(", ")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::{BuildRecord, Durability, Store};
    use serde_json::Value;

    /// The build sequence and, per mode, the builds Buildbot 4.3 reports: generated by running
    /// Buildbot's own generator (`scripts/buildbot-mode-table.py`).
    const TABLE: &str = include_str!("../tests/data/modes.json");

    #[test]
    fn every_mode_reports_exactly_what_buildbot_reports() {
        let table: Value = serde_json::from_str(TABLE).unwrap();
        let sequence: Vec<i64> = serde_json::from_value(table["sequence"].clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Normal).unwrap();
        for (i, results) in sequence.iter().enumerate() {
            let n = i as i64 + 1;
            store
                .record_build(&BuildRecord {
                    master: "m".into(),
                    buildid: 100 + n,
                    builderid: 1,
                    number: n,
                    complete: true,
                    results: Some(*results),
                    body: "{}".into(),
                })
                .unwrap();
        }
        for row in table["modes"].as_array().unwrap() {
            // The mode as a config file would say it, normalised by our config code.
            let config = Config::parse(&format!(
                "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nmode = {}\n",
                row["mode"]
            ))
            .unwrap();
            let mode = config.reporter.http_push[0].selection().mode;
            let expanded: Vec<String> = serde_json::from_value(row["expanded"].clone()).unwrap();
            assert_eq!(mode.0, expanded, "expansion of {}", row["mode"]);
            let reported: Vec<i64> = (1..=sequence.len() as i64)
                .filter(|&n| {
                    let prev = store
                        .previous_build("m", 1, n)
                        .unwrap()
                        .and_then(|b| b.results);
                    mode_matches(&mode, Some(sequence[n as usize - 1]), prev)
                })
                .collect();
            let expected: Vec<i64> = serde_json::from_value(row["reported"].clone()).unwrap();
            assert_eq!(reported, expected, "mode {}", row["mode"]);
        }
    }

    fn sample() -> Build {
        serde_json::from_str(include_str!("../tests/data/buildbot/failure-full.json")).unwrap()
    }

    fn sel(f: impl FnOnce(&mut Selection)) -> Selection {
        let mut s = Selection::default();
        f(&mut s);
        s
    }

    #[test]
    fn filters_follow_buildbot() {
        // The sample: builder "runtests" with tags test, reporter; branch main; scheduler force.
        let b = sample();
        assert!(selected(&Selection::default(), &b));
        assert!(selected(&sel(|s| s.builders = vec!["runtests".into()]), &b));
        assert!(!selected(&sel(|s| s.builders = vec!["other".into()]), &b));
        assert!(selected(
            &sel(|s| s.tags = vec!["nope".into(), "reporter".into()]),
            &b
        ));
        assert!(!selected(&sel(|s| s.tags = vec!["nope".into()]), &b));
        assert!(selected(&sel(|s| s.branches = vec!["main".into()]), &b));
        assert!(!selected(&sel(|s| s.branches = vec!["release".into()]), &b));
        assert!(selected(&sel(|s| s.schedulers = vec!["force".into()]), &b));
        assert!(!selected(
            &sel(|s| s.schedulers = vec!["nightly".into()]),
            &b
        ));
    }

    #[test]
    fn the_blamelist_joins_change_authors_and_owners() {
        let b = sample();
        let changes = [
            Change {
                author: Some("zoe <zoe@example.org>".into()),
                ..Default::default()
            },
            Change {
                author: Some("tester <tester@example.org>".into()),
                ..Default::default()
            },
            Change::default(),
        ];
        assert_eq!(
            blamelist(&b, &changes),
            ["tester <tester@example.org>", "zoe <zoe@example.org>"]
        );
        assert_eq!(blamelist(&b, &[]), ["tester <tester@example.org>"]);
    }
}
