//! Dispatch: which reporters report a build, decided exactly as Buildbot's generators decide.
//!
//! This module holds the decisions, as pure functions over a build and a reporter's
//! [`Selection`]: the filters (`builders`, `tags`, `branches`, `schedulers`), the mode words
//! (against the previous build, found by [`crate::store::Store::previous_build`]) and the
//! blamelist. [`Dispatcher`] applies them to each stored event, in order, in two steps:
//!
//! - the *history step* records each build event's build in the build history, noting which
//!   event wrote it, in the transaction that moves cursor [`CURSOR`]. Ingest runs it in the
//!   transaction that stores the events, when the step is caught up and ingest parsed them all
//!   ([`crate::store::Store::insert_events_recording`]); otherwise (events stored while it
//!   lagged, after a restart, or not parsed) the dispatch thread does
//!   ([`Dispatcher::record_pending`]);
//! - each reporter's *lane* ([`Dispatcher::dispatch_lane`]) follows it under a cursor of its
//!   own: asks its reporter whether it reports the event (against the previous build as the
//!   history stood at that event, so a lane that lags decides as one that does not), calls the
//!   reporter's formatter once, and enqueues the rendered deliveries in the transaction that
//!   moves its cursor past the event, so an event is dispatched once to each reporter even
//!   across a crash (and if a crash comes between the two, the deliveries' idempotency keys
//!   absorb the repeat).
//!
//! In the daemon each lane has its own thread, so a reporter whose formatter is slow holds up
//! only its own deliveries. Within a lane, the formatter calls of a batch's events run in
//! parallel; everything else, and the order in which deliveries are enqueued, is as one thread
//! would do it.

use crate::clock::now_ms;
use crate::config::{LogsWanted, Mode, OnError, Selection, Wants};
use crate::event::{BodyFormat, Build, Change, Event, EventKind, Results, Subject, Worker};
use crate::formatter::{Formatter, Request, WrapContext};
use crate::history::History;
use crate::metrics::Metrics;
use crate::reporters::{Formatted, HookCall, Output, PrevBuild, RenderInput, Reporter};
use crate::store::{BuildRecord, NewDelivery, Snapshot, Store, StoreError, StoredEvent};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tidings_guest::{Hook, Master, Message, ReporterInfo};
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
    filtered_out(sel, build).is_none()
}

/// The first filter of `sel` that leaves `build` out, if any: its name, the values it wants
/// and the build's own value (for `tidings explain`).
pub fn filtered_out<'a>(
    sel: &'a Selection,
    build: &Build,
) -> Option<(&'static str, &'a [String], String)> {
    let builder = build.builder.as_ref();
    let name = build.builder_name().unwrap_or_default();
    let prop = |p: &str| build.property_str(p).unwrap_or_default();
    if !sel.builders.is_empty() && !sel.builders.iter().any(|b| b == name) {
        return Some(("builders", &sel.builders, name.to_owned()));
    }
    let tags = builder.map(|b| b.tags.as_slice()).unwrap_or_default();
    if !sel.tags.is_empty() && !tags.iter().any(|t| sel.tags.contains(t)) {
        return Some(("tags", &sel.tags, format!("[{}]", tags.join(", "))));
    }
    if !sel.branches.is_empty() && !sel.branches.iter().any(|b| b == prop("branch")) {
        return Some(("branches", &sel.branches, prop("branch").to_owned()));
    }
    if !sel.schedulers.is_empty() && !sel.schedulers.iter().any(|s| s == prop("scheduler")) {
        return Some(("schedulers", &sel.schedulers, prop("scheduler").to_owned()));
    }
    None
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

/// The mode words of `sel` that report a build with `results` after `prev`.
fn mode_hits(sel: &Selection, results: Option<i64>, prev: Option<i64>) -> Vec<&str> {
    sel.mode
        .0
        .iter()
        .filter(|w| mode_matches(&Mode(vec![(*w).clone()]), results, prev))
        .map(String::as_str)
        .collect()
}

/// What dispatch decided for one reporter and one event: a line of `tidings explain`, and what
/// `tidings replay` compares. [`Dispatcher::plan`] returns one per configured reporter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    /// The reporter's name.
    pub reporter: String,
    /// Its kind (`mail`, `http_push`, …).
    pub kind: &'static str,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Why a reporter reported an event, or why it did not.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Verdict {
    /// The reporter does not report events of this kind (`report_new` off, no callback for it…).
    NotAsked { why: String },
    /// A filter left the build out: the filter, what it wants, what the build has.
    Filtered {
        filter: String,
        wanted: Vec<String>,
        value: String,
    },
    /// No mode word matched the build's result against the previous build's.
    ModeMissed {
        mode: Vec<String>,
        result: String,
        previous: String,
    },
    /// Selected, but nothing to send: the formatter returned `null`, or failed under
    /// `on_error = "skip"`, or a buildset kept no build.
    Nothing { why: String },
    /// Reported: why, which formatter made the message (and whether it was degraded), and the
    /// deliveries rendered (none when the reporter found no destination, e.g. a mail without
    /// recipients).
    Reported {
        why: String,
        formatter: String,
        deliveries: Vec<Planned>,
    },
}

/// A delivery dispatch would enqueue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Planned {
    /// The idempotency key (event + reporter + destination).
    pub key: String,
    pub destination: String,
    pub payload: String,
    pub order_key: Option<String>,
    /// Why (reporter, mode, filters, formatter), as `tidings outbox show` says it.
    #[serde(skip)]
    pub explanation: String,
}

/// One pass of dispatch over an event: for which reporters (a lane's one, or all), and the
/// decisions, when someone asks for them.
struct Pass {
    /// The routes (by index) this pass decides for.
    lanes: Range<usize>,
    decisions: Option<Vec<Decision>>,
}

impl Pass {
    /// Dispatch itself, for the routes `lanes`: keeps no decisions.
    fn dispatch(lanes: Range<usize>) -> Pass {
        Pass {
            lanes,
            decisions: None,
        }
    }

    /// Notes a decision about `r`, if decisions are kept (built only then).
    fn note(&mut self, r: &dyn Reporter, verdict: impl FnOnce() -> Verdict) {
        if let Some(d) = &mut self.decisions {
            d.push(Decision {
                reporter: r.selection().name.clone(),
                kind: r.kind(),
                verdict: verdict(),
            });
        }
    }
}

/// Why `r` is not asked about events of `kind`.
fn not_asked(r: &dyn Reporter, kind: EventKind) -> String {
    let sel = r.selection();
    if crate::reporters::message_hooks(sel, r.report_new(), kind).is_some() {
        return format!(
            "{} reporters do not report {} events without a callback for them",
            r.kind(),
            kind.name()
        );
    }
    match kind {
        EventKind::BuildStarted | EventKind::BuildFinished if sel.build_set_summary => {
            "build_set_summary is on: builds are reported once per buildset".into()
        }
        EventKind::BuildStarted => "report_new is off: build starts are not reported".into(),
        EventKind::BuildsetComplete => {
            "build_set_summary is off: completed buildsets are not reported".into()
        }
        EventKind::BuildrequestNew | EventKind::BuildrequestCancelled => {
            "report_requests is off: build requests are not reported".into()
        }
        EventKind::WorkerMissing => "workers is not set: missing workers are not reported".into(),
        _ => format!(
            "{} reporters do not report {} events",
            r.kind(),
            kind.name()
        ),
    }
}

/// The previous build as a phrase: `#12 failure`, or `none`.
fn previous(prev: Option<&BuildRecord>) -> String {
    prev.map_or("none".to_owned(), |p| {
        format!("#{} {}", p.number, Results::text_for(p.results))
    })
}

/// Buildbot's merge of the messages of a buildset's builds: the first type wins (a message of
/// another type is left out), the first subject wins, string bodies are concatenated, list
/// bodies joined; other bodies cannot be merged and only the first is kept.
pub fn merge_messages(messages: Vec<Message>) -> Option<Message> {
    let mut it = messages.into_iter();
    let mut merged = it.next()?;
    for m in it {
        if m.message_type != merged.message_type {
            tracing::info!("a buildset message of another type than the first is left out");
            continue;
        }
        if merged.subject.is_none() {
            merged.subject = m.subject;
        }
        match (&mut merged.body, m.body) {
            (Value::String(a), Value::String(b)) => a.push_str(&b),
            (Value::Array(a), Value::Array(b)) => a.extend(b),
            _ => {}
        }
    }
    Some(merged)
}

/// The cursor of dispatch's history step: every event up to it has had its build recorded in
/// the build history (and, if it cannot be read, been noted as unreadable). Each reporter's
/// lane follows behind it under its own cursor ([`lane_cursor`]).
pub const CURSOR: &str = "dispatch";

/// The cursor of reporter `name`'s lane: every event up to it has had its deliveries for that
/// reporter enqueued.
pub fn lane_cursor(name: &str) -> String {
    format!("{CURSOR}/{name}")
}

/// How far dispatch got for every reporter: the lowest of its cursors (the history step's and
/// every lane's; 0 when none is set). Retention keeps the events above it.
pub fn dispatched(store: &Store) -> Result<i64, StoreError> {
    Ok(store
        .cursors_under(CURSOR)?
        .into_iter()
        .map(|(_, at)| at)
        .min()
        .unwrap_or(0))
}

/// Most events dispatched in one outbox transaction.
const BATCH: usize = 256;

/// One reporter as dispatch sees it: the reporter, and who to wake when it has new deliveries.
pub struct Route {
    pub reporter: Arc<dyn Reporter>,
    pub wake: Arc<Notify>,
}

/// Turns stored events into outbox rows. Runs on its own thread ([`Dispatcher::run`]), which
/// reads each batch of events in order and commits its deliveries in order; formatter calls
/// (synchronous WASI) for the batch's events run on up to `workers` threads.
pub struct Dispatcher {
    pub store: Arc<Store>,
    pub routes: Vec<Route>,
    /// `[[formatter]]`s by name (every name a reporter refers to is here).
    pub formatters: HashMap<String, Arc<Formatter>>,
    pub master: Master,
    pub metrics: Arc<Metrics>,
    /// Where changes and missing previous builds come from, if anywhere.
    pub history: Option<Arc<dyn History>>,
    /// Per formatter, its run of failures: a formatter that keeps failing is short-circuited.
    pub breakers: Breakers,
    /// Threads that call formatters at once (for different events); 0 means one per core.
    pub workers: usize,
    /// The events ingest has just parsed, handed to the history step, and the events the
    /// history step has read, handed to the lanes: each reads what the one before read.
    pub read: Arc<ReadEvents>,
}

/// Events already parsed, kept for the next step that reads them, so that an event is parsed
/// once (by ingest, which hands it over with [`ReadEvents::hand_over`] once it is committed),
/// not once more by the history step and once more per reporter. The history step takes
/// what ingest parsed; each lane takes what the history step read, and an event is dropped
/// when every lane has taken it, or when [`READ_ROOM`] newer events are kept (a lane that lags
/// behind a slow formatter). Only a cache: a step that does not find an event here (after a
/// restart, a lagging lane, an event that came another way) reads it from the store, and the
/// same body reads the same.
///
/// Ingest usually runs the history step itself, in the transaction that stores the events
/// ([`crate::store::Store::insert_events_recording`]), and then hands what it parsed straight
/// to the lanes ([`ReadEvents::recorded`]). So this is also where the lanes learn that the
/// history moved on, whichever step moved it.
#[derive(Default)]
pub struct ReadEvents {
    kept: std::sync::Mutex<Kept>,
    /// Bumped each time the history step's cursor moves; the lanes wait on it.
    progress: Progress,
    /// The running dispatcher's lanes, once they are open (`None` before, and between two
    /// dispatchers), and whether its own thread runs some of them (a lane whose thread could
    /// not start), in which case it wants waking after every history batch.
    lanes: std::sync::Mutex<Option<(usize, bool)>>,
}

#[derive(Default)]
struct Kept {
    /// Parsed by ingest, for the history step.
    ingested: BTreeMap<i64, Arc<ReadEvent>>,
    /// Read by the history step, with how many lanes have yet to take each one.
    read: BTreeMap<i64, (Arc<ReadEvent>, usize)>,
}

/// Events [`ReadEvents`] keeps at most for each step: two batches.
const READ_ROOM: usize = 2 * BATCH;

/// A stored event, read: what dispatch needs of its body.
pub struct ReadEvent {
    event: Event,
    /// A build event's build as JSON (the dict as received, when the body was one).
    document: Option<String>,
    /// Whether `document` is the event's body as stored (a build dict, not an envelope).
    verbatim: bool,
}

impl ReadEvent {
    /// What reading `body`, stored as `format`, gives: `event`, which is what `body` parses
    /// to (ingest parsed it).
    pub fn new(event: Event, format: BodyFormat, body: &str) -> ReadEvent {
        let verbatim = matches!(event.subject, Subject::Build(_)) && format == BodyFormat::Build;
        let document = match &event.subject {
            Subject::Build(_) if verbatim => Some(body.to_owned()),
            Subject::Build(b) => Some(serde_json::to_string(b).expect("a build serialises")),
            _ => None,
        };
        ReadEvent {
            event,
            document,
            verbatim,
        }
    }

    /// Reads a stored event's body.
    fn of(ev: &StoredEvent) -> Result<ReadEvent, String> {
        let (event, raw) = Event::from_stored(&ev.body, ev.format)?;
        let format = if raw {
            BodyFormat::Build
        } else {
            BodyFormat::Envelope
        };
        Ok(ReadEvent::new(event, format, &ev.body))
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }
}

impl ReadEvents {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether ingest may run the history step itself: only while a dispatcher runs with its
    /// lanes open. Before (at start-up), a lane new to the store starts where the history step
    /// is, and must find there the events that arrived while the dispatcher was starting.
    pub fn lanes_open(&self) -> bool {
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Ingest ran the history step for `events` (id, as parsed) in the transaction that stored
    /// them: they are kept for the lanes, which are told. Returns whether the dispatch thread
    /// wants to be woken as well (it runs a lane itself).
    pub fn recorded(&self, events: impl IntoIterator<Item = (i64, Arc<ReadEvent>)>) -> bool {
        let (lanes, inline) = self
            .lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_default();
        for (id, read) in events {
            self.keep(id, read, lanes);
        }
        self.progress.bump();
        inline
    }

    /// Notes the running dispatcher's lanes (how many, and whether its thread runs some), or
    /// that none runs.
    pub(crate) fn set_lanes(&self, lanes: Option<(usize, bool)>) {
        *self.lanes.lock().unwrap_or_else(|e| e.into_inner()) = lanes;
    }

    /// Hands event `id`, committed as `read` says, to the history step.
    pub fn hand_over(&self, id: i64, read: Arc<ReadEvent>) {
        let mut kept = self.lock();
        kept.ingested.insert(id, read);
        while kept.ingested.len() > READ_ROOM {
            kept.ingested.pop_first();
        }
    }

    /// Event `id` as ingest parsed it, for the history step, if it is kept.
    fn take_ingested(&self, id: i64) -> Option<Arc<ReadEvent>> {
        self.lock().ingested.remove(&id)
    }

    /// Forgets what ingest handed over up to event `last`, which the history step has passed
    /// (an event it read before ingest could hand it over).
    fn passed(&self, last: i64) {
        let mut kept = self.lock();
        kept.ingested = kept.ingested.split_off(&(last + 1));
    }

    /// Keeps `read` for `lanes` lanes to take.
    fn keep(&self, id: i64, read: Arc<ReadEvent>, lanes: usize) {
        if lanes == 0 {
            return;
        }
        let mut kept = self.lock();
        kept.read.insert(id, (read, lanes));
        while kept.read.len() > READ_ROOM {
            kept.read.pop_first();
        }
    }

    /// Event `id` as the history step read it, for one lane, if it is kept.
    fn take(&self, id: i64) -> Option<Arc<ReadEvent>> {
        let mut kept = self.lock();
        let (read, left) = kept.read.get_mut(&id)?;
        let read = read.clone();
        *left -= 1;
        if *left == 0 {
            kept.read.remove(&id);
        }
        Some(read)
    }

    /// How many events are kept, for either step.
    pub fn len(&self) -> usize {
        let kept = self.lock();
        kept.ingested.len() + kept.read.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failures in a row after which a formatter is short-circuited.
pub const TRIP_AFTER: u32 = 5;
/// How long a short-circuited formatter is not called (then one call tries it again).
pub const COOL_DOWN: Duration = Duration::from_secs(30);

/// The circuit breakers of a dispatcher's formatters. A formatter that failed [`TRIP_AFTER`]
/// times in a row (a timeout, a trap, a bad result…) is not called for [`COOL_DOWN`]: its
/// reporters get the `on_error` fallback at once, so one broken formatter cannot slow every
/// event down by its time limit. After the cool-down one call tries it again: a success closes
/// the breaker, a failure opens it for another cool-down.
#[derive(Default)]
pub struct Breakers(std::sync::Mutex<HashMap<String, Breaker>>);

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    last: String,
}

impl Breakers {
    /// Why `formatter` is not to be called now, if it is short-circuited.
    fn open(&self, formatter: &str, now: Instant) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let b = map.get(formatter)?;
        let until = b.open_until.filter(|u| *u > now)?;
        Some(format!(
            "formatter {formatter:?} is short-circuited after {} failures in a row (last: {}); it is tried again in {}s",
            b.failures,
            b.last,
            until.saturating_duration_since(now).as_secs().max(1)
        ))
    }

    /// Records a call's outcome; returns true when this failure opened the breaker.
    fn record(&self, formatter: &str, failure: Option<&str>, now: Instant) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let b = map.entry(formatter.to_owned()).or_default();
        match failure {
            None => {
                *b = Breaker::default();
                false
            }
            Some(why) => {
                b.failures += 1;
                b.last = why.to_owned();
                if b.failures >= TRIP_AFTER {
                    b.open_until = Some(now + COOL_DOWN);
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// What a report is about, for the reporter's rendering.
struct About<'a> {
    build: Option<&'a Build>,
    builds: &'a [&'a Build],
    users: &'a [String],
    prev: Option<PrevBuild>,
}

/// An event read, with the previous build of each build it reports looked up: all that
/// calling its formatters needs, so events can be rendered in parallel.
struct Prepared {
    read: Arc<ReadEvent>,
    /// The previous builds: one for a build event, one per build for a buildset, none
    /// otherwise.
    prevs: Vec<Option<BuildRecord>>,
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

/// How lanes learn that the history step moved on (run by ingest or by the dispatch thread):
/// a counter of its batches, and a condition to wait on (also signalled to stop).
#[derive(Default)]
struct Progress {
    batches: Mutex<u64>,
    moved: Condvar,
}

impl Progress {
    fn now(&self) -> u64 {
        *self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        *self.batches.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.moved.notify_all();
    }

    /// Waits until the counter differs from `seen`, for at most `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .moved
            .wait_timeout_while(guard, timeout, |now| *now == seen);
    }
}

impl Dispatcher {
    /// Dispatches until `stop` is set: everything stored so far, then each time `wake` fires
    /// (the committer signals each commit whose history step it left to this thread),
    /// checking at least once a second.
    ///
    /// This thread runs the history step ([`Dispatcher::record_pending`]) for what ingest did
    /// not record itself (events stored while the step lagged, after a restart, or that ingest
    /// did not parse); each reporter has a lane on a thread of its own
    /// ([`Dispatcher::dispatch_lane`]) that follows the history step's cursor, so a reporter
    /// whose formatter is slow or keeps timing out holds up only its own lane. Each lane
    /// finishes the batch in hand when `stop` is set.
    pub fn run(&self, wake: &Receiver<()>, stop: &AtomicBool) {
        while let Err(e) = self.open_lanes() {
            tracing::error!(error = %e, "dispatch cannot read its cursors; retrying in 1s");
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        match self.retry_unreadable() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                events = n,
                "dispatched events that could not be read before"
            ),
            Err(e) => tracing::error!(error = %e, "cannot try the unreadable events again"),
        }
        let progress = &self.read.progress;
        std::thread::scope(|scope| {
            // A lane whose thread cannot be started runs on this one, after each history batch.
            let mut inline = Vec::new();
            for lane in 0..self.routes.len() {
                let spawned = std::thread::Builder::new()
                    .name(format!("tidings-lane-{lane}"))
                    .spawn_scoped(scope, move || self.run_lane(lane, progress, stop));
                if let Err(e) = spawned {
                    tracing::warn!(reporter = %self.lane_name(lane), error = %e, "cannot start a thread for the reporter's dispatch lane; it runs on the dispatch thread");
                    inline.push(lane);
                }
            }
            self.read
                .set_lanes(Some((self.routes.len(), !inline.is_empty())));
            while !stop.load(Ordering::Relaxed) {
                match self.record_pending() {
                    Ok(n) if n > 0 => {
                        progress.bump();
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "dispatch cannot use the store; retrying in 1s");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                }
                for &lane in &inline {
                    self.catch_up(lane);
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
            // The lanes see `stop` when they next look; this makes that at once.
            progress.bump();
        });
        // Until the next dispatcher has its lanes open, the history step is this thread's.
        self.read.set_lanes(None);
    }

    /// One lane's loop: dispatches for its reporter whatever the history step has passed, then
    /// waits for the history step to move on (or a second).
    fn run_lane(&self, lane: usize, progress: &Progress, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let seen = progress.now();
            match self.dispatch_lane(lane) {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(reporter = %self.lane_name(lane), error = %e, "dispatch cannot use the store; retrying in 1s");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
            progress.wait(seen, Duration::from_secs(1));
        }
    }

    /// Dispatches lane `lane` up to the history step (logging a failure).
    fn catch_up(&self, lane: usize) {
        loop {
            match self.dispatch_lane(lane) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(reporter = %self.lane_name(lane), error = %e, "dispatch cannot use the store; trying again later");
                    return;
                }
            }
        }
    }

    /// The name of the reporter of lane `lane`.
    fn lane_name(&self, lane: usize) -> &str {
        &self.routes[lane].reporter.selection().name
    }

    /// Gets the lanes' cursors ready: a reporter new to the store starts where the history
    /// step is (it reports what arrives from now on, as when it was added to a running
    /// Buildbot), and the cursors of reporters no longer configured are forgotten (so that
    /// they hold back no retention, and a reporter configured again later starts afresh).
    pub fn open_lanes(&self) -> Result<(), StoreError> {
        let history = self.store.cursor(CURSOR)?;
        let names: Vec<String> = (0..self.routes.len())
            .map(|lane| lane_cursor(self.lane_name(lane)))
            .collect();
        let existing = self.store.cursors_under(CURSOR)?;
        for (name, _) in &existing {
            if name != CURSOR && !names.contains(name) {
                self.store.forget_cursor(name)?;
            }
        }
        for name in names {
            if !existing.iter().any(|(n, _)| *n == name) {
                self.store.set_cursor(&name, history)?;
            }
        }
        Ok(())
    }

    /// Dispatches the events stored after the cursor (at most one batch) to every reporter;
    /// returns how many. The history step ([`Dispatcher::record_pending`]) runs first, then
    /// each lane catches up with it ([`Dispatcher::dispatch_lane`]), all on this thread.
    /// [`Dispatcher::run`] does the same with a thread per lane.
    pub fn dispatch_pending(&self) -> Result<usize, StoreError> {
        self.open_lanes()?;
        let n = self.record_pending()?;
        for lane in 0..self.routes.len() {
            while self.dispatch_lane(lane)? > 0 {}
        }
        Ok(n)
    }

    /// The history step over the events stored after [`CURSOR`] (at most one batch); returns
    /// how many. Each event is read; a build event's build is recorded in the build history
    /// (with the event's id: [`crate::store::Snapshot::previous_build_before`] sees the history
    /// as of each event); an event that cannot be read is not passed over: it is recorded as
    /// unreadable, with the reason ([`Dispatcher::retry_unreadable`] tries it again at the next
    /// start). All in the transaction that moves the cursor.
    pub fn record_pending(&self) -> Result<usize, StoreError> {
        let cursor = self.store.cursor(CURSOR)?;
        let snapshot = self.store.snapshot()?;
        let mut events = snapshot.event_heads_between(cursor, i64::MAX, BATCH)?;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(0);
        };
        // What ingest handed over, taken first: only the other events' bodies are read.
        let handed = take_or_read(&mut events, &snapshot, |id| self.read.take_ingested(id))?;
        drop(snapshot);
        let mut builds = Vec::new();
        let mut unreadable = Vec::new();
        let mut read = Vec::with_capacity(events.len());
        for (ev, handed) in events.iter().zip(handed) {
            let r = match handed {
                Some(r) => Ok(r),
                None => ReadEvent::of(ev).map(Arc::new),
            };
            match r {
                Ok(r) => {
                    builds.extend(build_record(ev.id, &r));
                    read.push((ev.id, r));
                }
                Err(reason) => {
                    tracing::error!(event = ev.id, key = %ev.key, %reason, "a stored event cannot be read; kept as unreadable (tidings outbox unreadable), tried again at the next start");
                    self.metrics.unreadable_event();
                    unreadable.push((ev.id, reason));
                }
            }
        }
        let unreadable: Vec<(i64, &str)> =
            unreadable.iter().map(|(id, r)| (*id, r.as_str())).collect();
        let moved = self.store.enqueue_and_advance(
            &builds,
            &[],
            &unreadable,
            now_ms(),
            CURSOR,
            cursor,
            last,
        );
        match moved {
            Ok(_) => {}
            // Ingest recorded these events itself after this step read the cursor
            // ([`Store::insert_events_recording`]): nothing is left to do for them.
            Err(StoreError::CursorMoved { .. }) => return Ok(0),
            Err(e) => return Err(e),
        }
        self.read.passed(last);
        for (id, r) in read {
            self.read.keep(id, r, self.routes.len());
        }
        Ok(events.len())
    }

    /// Dispatches, for the reporter of lane `lane`, the events after the lane's cursor that the
    /// history step has passed (at most one batch); returns how many.
    ///
    /// Two steps: each event is read and the previous build of each build it reports looked
    /// up, as the history stood at that event; then the reporter's formatter is called for the
    /// events in parallel (on up to `workers` threads), and the deliveries are enqueued in
    /// event order in the transaction that moves the lane's cursor, so the outbox sees exactly
    /// the order a single thread would have produced, and an event is dispatched once even
    /// across a crash. An event that cannot be read is passed over here: the history step
    /// keeps it as unreadable.
    pub fn dispatch_lane(&self, lane: usize) -> Result<usize, StoreError> {
        let name = lane_cursor(self.lane_name(lane));
        let cursor = self.store.cursor(&name)?;
        let upto = self.store.cursor(CURSOR)?;
        if upto <= cursor {
            return Ok(0);
        }
        // One read transaction for the batch's reads (its events, their previous builds).
        let snapshot = self.store.snapshot()?;
        let mut events = snapshot.event_heads_between(cursor, upto, BATCH)?;
        let last = match events.last() {
            Some(e) if events.len() == BATCH => e.id,
            // Nothing else up to the history step's cursor.
            _ => upto,
        };
        // What the history step read, taken first: only the other events' bodies are read.
        let kept = take_or_read(&mut events, &snapshot, |id| self.read.take(id))?;
        let mut prepared = Vec::with_capacity(events.len());
        for (ev, read) in events.iter().zip(kept) {
            if let Ok(p) = self.prepare(ev, read, &snapshot, lane..lane + 1)? {
                prepared.push((ev, p));
            }
        }
        drop(snapshot);
        let pending: Vec<Pending> = self
            .render(&prepared, lane..lane + 1)
            .into_iter()
            .flatten()
            .collect();
        let stored = self.store.enqueue_and_advance(
            &[],
            &new_rows(&pending),
            &[],
            now_ms(),
            &name,
            cursor,
            last,
        )?;
        self.after_enqueue(&pending, &stored);
        Ok(events.len().max(1))
    }

    /// The deliveries of each prepared event for the routes `lanes`, in order. The events are
    /// shared out among up to [`Dispatcher::workers`] threads (this one among them); a
    /// formatter call is the slow part, and calls for different events are independent once
    /// their previous builds are known.
    fn render(
        &self,
        prepared: &[(&StoredEvent, Prepared)],
        lanes: Range<usize>,
    ) -> Vec<Vec<Pending>> {
        let one = |(ev, p): &(&StoredEvent, Prepared)| {
            self.deliveries_for(ev, p, &mut Pass::dispatch(lanes.clone()))
        };
        let workers = self.workers().min(prepared.len());
        if workers <= 1 {
            return prepared.iter().map(one).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = prepared.get(i) else {
                    return done;
                };
                done.push((i, one(item)));
            }
        };
        let mut out: Vec<Vec<Pending>> = Vec::new();
        out.resize_with(prepared.len(), Vec::new);
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
            let mut all = work();
            for h in helpers {
                // A panic in a helper is a bug; it reaches this thread as it would have there.
                all.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            for (i, p) in all {
                out[i] = p;
            }
        });
        out
    }

    /// How many threads call formatters at once: [`Dispatcher::workers`], by default one per
    /// core (as many calls as the formatter host lets run at once).
    fn workers(&self) -> usize {
        match self.workers {
            // Asked once: the standard library reads the cgroup's CPU quota from files each
            // time (a hundredth of a lane's time when asked every batch).
            0 => {
                static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
                *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            }
            n => n,
        }
    }

    /// Tries the events recorded as unreadable again (after an upgrade, they may read): each
    /// one that reads now has its build recorded and is dispatched, out of order, to the
    /// reporters whose lanes have passed it (the others reach it in order), and is forgotten as
    /// unreadable. Returns how many were dispatched.
    pub fn retry_unreadable(&self) -> Result<usize, StoreError> {
        let mut done = 0;
        for (ev, _) in self.store.unreadable()? {
            let all = 0..self.routes.len();
            let prepared = self.prepare(&ev, None, &self.store.snapshot()?, all)?;
            let Ok(prepared) = prepared else {
                continue;
            };
            let builds = build_record(ev.id, &prepared.read);
            let mut pending = Vec::new();
            for lane in 0..self.routes.len() {
                let passed = self.store.cursor(&lane_cursor(self.lane_name(lane)))?;
                if passed >= ev.id {
                    pending.extend(self.deliveries_for(
                        &ev,
                        &prepared,
                        &mut Pass::dispatch(lane..lane + 1),
                    ));
                }
            }
            let stored = self.store.resolve_unreadable(
                ev.id,
                builds.as_slice(),
                &new_rows(&pending),
                now_ms(),
            )?;
            self.after_enqueue(&pending, &stored);
            tracing::info!(event = ev.id, key = %ev.key, "an event that could not be read before is dispatched now");
            done += 1;
        }
        Ok(done)
    }

    /// What dispatch decides for `ev` with this dispatcher's reporters and formatters, without
    /// recording anything or touching the outbox: one [`Decision`] per reporter, in config
    /// order (for `tidings explain` and `tidings replay`). Formatters are called as dispatch
    /// calls them; previous builds are those of the history as it stood at `ev`. `Err(reason)`
    /// inside when the event cannot be read.
    pub fn plan(&self, ev: &StoredEvent) -> Result<Result<Vec<Decision>, String>, StoreError> {
        let prepared =
            match self.prepare(ev, None, &self.store.snapshot()?, 0..self.routes.len())? {
                Ok(p) => p,
                Err(reason) => return Ok(Err(reason)),
            };
        let mut pass = Pass {
            lanes: 0..self.routes.len(),
            decisions: Some(Vec::new()),
        };
        self.deliveries_for(ev, &prepared, &mut pass);
        Ok(Ok(pass.decisions.unwrap_or_default()))
    }

    /// Reads `ev` (unless the history step's reading of it is given) and looks up the
    /// previous build of each build it reports, as the history stood at `ev`. `Err(reason)`
    /// inside when the event cannot be read.
    ///
    /// A previous build's body is read only when a reporter of `lanes` sends it
    /// ([`sends_prev_build`]); the others need only its result.
    fn prepare(
        &self,
        ev: &StoredEvent,
        read: Option<Arc<ReadEvent>>,
        snapshot: &Snapshot<'_>,
        lanes: Range<usize>,
    ) -> Result<Result<Prepared, String>, StoreError> {
        let with_body = self.routes[lanes]
            .iter()
            .any(|r| sends_prev_build(r.reporter.selection()));
        let read = match read {
            Some(r) => r,
            None => match ReadEvent::of(ev) {
                Ok(r) => Arc::new(r),
                Err(reason) => return Ok(Err(reason)),
            },
        };
        let event = &read.event;
        let prev =
            |builder, n| self.previous_build(&event.master, builder, n, ev.id, snapshot, with_body);
        let mut prevs = Vec::new();
        match &event.subject {
            Subject::Build(b) => {
                if event.kind == EventKind::BuildFinished || event.kind == EventKind::BuildStarted {
                    prevs.push(match (b.builderid, b.number) {
                        (Some(builder), Some(n)) if b.complete => prev(builder, n)?,
                        _ => None,
                    });
                }
            }
            Subject::Buildset { builds, .. } => {
                for b in builds {
                    prevs.push(match (b.builderid, b.number) {
                        (Some(builder), Some(n)) => prev(builder, n)?,
                        _ => None,
                    });
                }
            }
            Subject::Worker(_) => {}
        }
        Ok(Ok(Prepared { read, prevs }))
    }

    /// Logs repeats and wakes the workers of the reporters that got deliveries.
    fn after_enqueue(&self, pending: &[Pending], stored: &[crate::store::Stored]) {
        for (p, s) in pending.iter().zip(stored) {
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
    }

    /// The deliveries for one prepared event.
    fn deliveries_for(&self, ev: &StoredEvent, p: &Prepared, pass: &mut Pass) -> Vec<Pending> {
        let event = &p.read.event;
        let mut out = Vec::new();
        match &event.subject {
            Subject::Build(b) => {
                let document = p.read.document.as_deref().unwrap_or_default();
                match event.kind {
                    EventKind::BuildStarted | EventKind::BuildFinished => {
                        let prev = p.prevs.first().and_then(Option::as_ref);
                        self.for_build(ev, event, b, prev, document, &mut out, pass)
                    }
                    _ => self.for_request(ev, event, b, document, &mut out, pass),
                }
            }
            Subject::Buildset { buildset, builds } => {
                self.for_buildset(ev, event, buildset, builds, &p.prevs, &mut out, pass)
            }
            Subject::Worker(w) => self.for_worker(ev, event, w, &mut out, pass),
        }
        out
    }

    /// `build_started` / `build_finished`: Buildbot's `BuildStatusGenerator`.
    #[allow(clippy::too_many_arguments)]
    fn for_build(
        &self,
        ev: &StoredEvent,
        event: &Event,
        b: &Build,
        prev: Option<&BuildRecord>,
        document: &str,
        out: &mut Vec<Pending>,
        pass: &mut Pass,
    ) {
        let prev_results = prev.and_then(|p| p.results);
        let mut changes: Option<Vec<Change>> = None;
        // What formatters get: the build, completed from the master when the event (say, from
        // HttpStatusPush) lacks the steps and logs a reporter wants; asked once per distinct
        // set of wants.
        let mut enriched: HashMap<Wants, Option<Build>> = HashMap::new();
        for route in &self.routes[pass.lanes.clone()] {
            let r = route.reporter.as_ref();
            let sel = r.selection();
            let Some(call) = r.hook(event.kind) else {
                pass.note(r, || Verdict::NotAsked {
                    why: not_asked(r, event.kind),
                });
                continue;
            };
            if let Some((filter, wanted, value)) = filtered_out(sel, b) {
                pass.note(r, || Verdict::Filtered {
                    filter: filter.into(),
                    wanted: wanted.to_vec(),
                    value,
                });
                continue;
            }
            let why = match event.kind {
                EventKind::BuildStarted => format!("build start ({})", call.hook),
                _ if !r.uses_mode() => format!(
                    "build finished (result {}, previous build {}); no mode: the reporter decides per destination",
                    Results::text_for(b.results),
                    previous(prev),
                ),
                _ => {
                    let hits = mode_hits(sel, b.results, prev_results);
                    if hits.is_empty() {
                        pass.note(r, || Verdict::ModeMissed {
                            mode: sel.mode.0.clone(),
                            result: Results::text_for(b.results).to_string(),
                            previous: previous(prev),
                        });
                        continue;
                    }
                    format!(
                        "mode [{}] matched by {} (result {}, previous build {})",
                        sel.mode.0.join(", "),
                        hits.join(", "),
                        Results::text_for(b.results),
                        previous(prev),
                    )
                }
            };
            let changes = changes.get_or_insert_with(|| self.changes_of(event, b));
            let full = match (&self.history, b.complete) {
                (Some(h), true) => enriched
                    .entry(sel.wants.clone())
                    .or_insert_with(|| h.enrich(&event.master, b, &sel.wants))
                    .as_ref()
                    .unwrap_or(b),
                _ => b,
            };
            let message = match self.format(r, &call, full, prev, changes, false) {
                Ok(m) => m,
                Err(why) => {
                    pass.note(r, || Verdict::Nothing { why });
                    continue;
                }
            };
            let users = blamelist(b, changes);
            let about = About {
                build: Some(full),
                builds: &[full],
                users: &users,
                prev: prev.map(|p| PrevBuild {
                    number: p.number,
                    results: p.results,
                }),
            };
            self.emit(ev, event, r, &why, &message, document, &about, out, pass);
        }
    }

    /// The changes a finished build brought: from the event, else from the master.
    fn changes_of(&self, event: &Event, b: &Build) -> Vec<Change> {
        if let Some(c) = &event.changes {
            return c.clone();
        }
        match (&self.history, b.buildid, b.complete) {
            (Some(h), Some(id), true) => h.changes(&event.master, id).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The finished build before `number` of a builder, as the history stood at event
    /// `event`, else the master's.
    fn previous_build(
        &self,
        master: &str,
        builderid: i64,
        number: i64,
        event: i64,
        snapshot: &Snapshot<'_>,
        with_body: bool,
    ) -> Result<Option<BuildRecord>, StoreError> {
        let stored = snapshot.previous_build_as_of(master, builderid, number, event, with_body)?;
        Ok(stored.or_else(|| {
            self.history
                .as_ref()
                .and_then(|h| h.previous_build(master, builderid, number))
        }))
    }

    /// `buildrequest_new` / `buildrequest_cancelled`: Buildbot's `BuildRequestGenerator`
    /// (filters, no mode), for reporters with `report_requests`.
    fn for_request(
        &self,
        ev: &StoredEvent,
        event: &Event,
        b: &Build,
        document: &str,
        out: &mut Vec<Pending>,
        pass: &mut Pass,
    ) {
        for route in &self.routes[pass.lanes.clone()] {
            let r = route.reporter.as_ref();
            let sel = r.selection();
            let Some(call) = r.hook(event.kind) else {
                pass.note(r, || Verdict::NotAsked {
                    why: not_asked(r, event.kind),
                });
                continue;
            };
            if let Some((filter, wanted, value)) = filtered_out(sel, b) {
                pass.note(r, || Verdict::Filtered {
                    filter: filter.into(),
                    wanted: wanted.to_vec(),
                    value,
                });
                continue;
            }
            let message = match self.format(r, &call, b, None, &[], false) {
                Ok(m) => m,
                Err(why) => {
                    pass.note(r, || Verdict::Nothing { why });
                    continue;
                }
            };
            let about = About {
                build: Some(b),
                builds: &[],
                users: &[],
                prev: None,
            };
            self.emit(
                ev,
                event,
                r,
                "report_requests",
                &message,
                document,
                &about,
                out,
                pass,
            );
        }
    }

    /// `buildset_complete`: Buildbot's `BuildSetStatusGenerator`, for reporters with
    /// `build_set_summary`: the builds that pass the filters and the mode (each against its own
    /// previous build); nothing when none does. The formatter is called per kept build and the
    /// messages merged as Buildbot merges them.
    #[allow(clippy::too_many_arguments)]
    fn for_buildset(
        &self,
        ev: &StoredEvent,
        event: &Event,
        buildset: &crate::event::Buildset,
        builds: &[Build],
        prevs: &[Option<BuildRecord>],
        out: &mut Vec<Pending>,
        pass: &mut Pass,
    ) {
        for route in &self.routes[pass.lanes.clone()] {
            let r = route.reporter.as_ref();
            let sel = r.selection();
            let Some(call) = r.hook(event.kind) else {
                pass.note(r, || Verdict::NotAsked {
                    why: not_asked(r, event.kind),
                });
                continue;
            };
            if call.hook == Hook::SummaryCb {
                self.summary(ev, event, r, &call, buildset, builds, out, pass);
                continue;
            }
            let mut kept = Vec::new();
            let mut words = Vec::new();
            let mut left_out = Vec::new();
            for (b, prev) in builds.iter().zip(prevs) {
                let hits = mode_hits(sel, b.results, prev.as_ref().and_then(|p| p.results));
                let name = || {
                    format!(
                        "{} #{}",
                        b.builder_name().unwrap_or("?"),
                        b.number.unwrap_or_default()
                    )
                };
                if let Some((filter, _, value)) = filtered_out(sel, b) {
                    left_out.push(format!("{}: {filter} filter ({value})", name()));
                } else if hits.is_empty() {
                    left_out.push(format!(
                        "{}: mode [{}] missed (result {}, previous build {})",
                        name(),
                        sel.mode.0.join(", "),
                        Results::text_for(b.results),
                        previous(prev.as_ref())
                    ));
                } else {
                    kept.push((b, prev.as_ref()));
                    words.extend(hits);
                }
            }
            if kept.is_empty() {
                pass.note(r, || Verdict::Nothing {
                    why: format!(
                        "build_set_summary: no build of the buildset is kept ({})",
                        left_out.join("; ")
                    ),
                });
                continue;
            }
            words.sort_unstable();
            words.dedup();
            let mut messages = Vec::new();
            let mut degraded = None;
            for (b, prev) in &kept {
                match self.format(r, &call, b, *prev, &[], true) {
                    Ok(Formatted::Custom(Output::Message(m))) => messages.push(m),
                    Ok(Formatted::Default {
                        degraded: d,
                        output,
                    }) => {
                        degraded = degraded.or(d);
                        messages.extend(output.and_then(|o| o.message().cloned()));
                    }
                    Ok(Formatted::Custom(_)) | Err(_) => {}
                }
            }
            let merged = merge_messages(messages).map(Output::Message);
            let message = match (&call.formatter, degraded) {
                (Some(_), None) => match merged {
                    Some(m) => Formatted::Custom(m),
                    None => {
                        pass.note(r, || Verdict::Nothing {
                            why: "the formatter sent nothing for any kept build".into(),
                        });
                        continue;
                    }
                },
                (_, degraded) => Formatted::Default {
                    degraded,
                    output: merged,
                },
            };
            // Buildbot's buildset blamelist: every kept build's change authors and owners.
            let mut users: Vec<String> = kept
                .iter()
                .flat_map(|(b, _)| blamelist(b, &self.changes_of(event, b)))
                .collect();
            users.sort();
            users.dedup();
            let kept_builds: Vec<&Build> = kept.iter().map(|(b, _)| *b).collect();
            let document = serde_json::json!({
                "buildset": buildset,
                "builds": kept.iter().map(|(b, _)| b).collect::<Vec<_>>(),
            })
            .to_string();
            let why = format!(
                "build_set_summary: buildset {} result {}, {} of {} builds kept by mode [{}] (matched by {})",
                buildset.bsid.unwrap_or_default(),
                Results::text_for(buildset.results),
                kept.len(),
                builds.len(),
                sel.mode.0.join(", "),
                words.join(", "),
            );
            let about = About {
                build: kept_builds.first().copied(),
                builds: &kept_builds,
                users: &users,
                prev: None,
            };
            self.emit(ev, event, r, &why, &message, &document, &about, out, pass);
        }
    }

    /// `worker_missing`: Buildbot's `WorkerMissingGenerator`, for reporters whose `workers`
    /// names the worker, and only when the worker has a `notify` list: the reporter's
    /// `messageFormatterMissingWorker` formatter, or its built-in message.
    fn for_worker(
        &self,
        ev: &StoredEvent,
        event: &Event,
        w: &Worker,
        out: &mut Vec<Pending>,
        pass: &mut Pass,
    ) {
        // Buildbot reports a worker missing only when it has a `notify` list; a worker back
        // online goes only to reporters that ask for it (the IRC bot).
        if event.kind == EventKind::WorkerMissing && w.notify.is_empty() {
            for route in &self.routes[pass.lanes.clone()] {
                pass.note(route.reporter.as_ref(), || Verdict::Nothing {
                    why: format!(
                        "worker {:?} has no notify list: a missing worker is reported only to it",
                        w.name
                    ),
                });
            }
            return;
        }
        let document = serde_json::to_string(w).expect("a worker serialises");
        let worker: tidings_guest::WorkerInfo =
            serde_json::from_str(&document).expect("a worker reads back");
        for route in &self.routes[pass.lanes.clone()] {
            let r = route.reporter.as_ref();
            let sel = r.selection();
            let Some(call) = r.hook(event.kind) else {
                pass.note(r, || Verdict::NotAsked {
                    why: not_asked(r, event.kind),
                });
                continue;
            };
            if !sel.workers.as_ref().is_some_and(|f| f.matches(&w.name)) {
                pass.note(r, || Verdict::Filtered {
                    filter: "workers".into(),
                    wanted: Vec::new(),
                    value: w.name.clone(),
                });
                continue;
            }
            let why = format!(
                "worker {:?} {}, notify [{}]; {} by {}",
                w.name,
                if event.kind == EventKind::WorkerMissing {
                    "missing"
                } else {
                    "connected"
                },
                w.notify.join(", "),
                call.hook,
                call.formatter
                    .as_ref()
                    .map_or("the built-in formatter".to_owned(), |f| format!(
                        "formatter {f:?}"
                    )),
            );
            let ctx = self.wrap_context(r, &call);
            let request = Request::missing_worker(worker.clone(), &ctx);
            let message = match self.call(r, &call, &request, None) {
                Ok(m) => m,
                Err(why) => {
                    pass.note(r, || Verdict::Nothing { why });
                    continue;
                }
            };
            let about = About {
                build: None,
                builds: &[],
                users: &w.notify,
                prev: None,
            };
            self.emit(ev, event, r, &why, &message, &document, &about, out, pass);
        }
    }

    /// Renders one reporter's deliveries for an event and queues them.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        ev: &StoredEvent,
        event: &Event,
        r: &dyn Reporter,
        why: &str,
        message: &Formatted,
        document: &str,
        about: &About<'_>,
        out: &mut Vec<Pending>,
        pass: &mut Pass,
    ) {
        let sel = r.selection();
        let order_key = match (&event.subject, event.buildrequest()) {
            (_, Some(br)) => format!("{}|buildrequest/{br}", event.master),
            (Subject::Build(b), None) => {
                format!("{}|build/{}", event.master, b.buildid.unwrap_or_default())
            }
            (Subject::Buildset { buildset, .. }, _) => {
                format!(
                    "{}|buildset/{}",
                    event.master,
                    buildset.bsid.unwrap_or_default()
                )
            }
            (Subject::Worker(w), _) => format!("{}|worker/{}", event.master, w.name),
        };
        let rendered = r.render(&RenderInput {
            event_id: ev.id,
            kind: event.kind,
            event_key: &ev.key,
            event,
            build: about.build,
            builds: about.builds,
            users: about.users,
            document,
            message,
            prev: about.prev,
            title: &self.master.title,
            // When the event arrived, not the wall clock: rendering it again (`tidings
            // replay`, a repeat after a crash) gives the same payloads.
            now: ev.received_at,
        });
        let first = out.len();
        for d in rendered {
            out.push(Pending {
                key: format!("{}|{}|{}", ev.key, sel.name, d.destination),
                event_id: ev.id,
                reporter: sel.name.clone(),
                destination: d.destination,
                order_key: Some(order_key.clone()),
                payload: d.payload,
                explanation: explain(ev, r, event, why, message),
            });
        }
        pass.note(r, || Verdict::Reported {
            why: why.to_owned(),
            formatter: formatter_story(sel, message),
            deliveries: out[first..]
                .iter()
                .map(|p| Planned {
                    key: p.key.clone(),
                    destination: p.destination.clone(),
                    payload: p.payload.clone(),
                    order_key: p.order_key.clone(),
                    explanation: p.explanation.clone(),
                })
                .collect(),
        });
    }

    /// `summaryCB` for a completed buildset (Gerrit's summary generator): one call with every
    /// build that passes the reporter's filters (no mode), sorted by builder name, and the
    /// buildset's result as a name; nothing when no build passes.
    #[allow(clippy::too_many_arguments)]
    fn summary(
        &self,
        ev: &StoredEvent,
        event: &Event,
        r: &dyn Reporter,
        call: &HookCall,
        buildset: &crate::event::Buildset,
        builds: &[Build],
        out: &mut Vec<Pending>,
        pass: &mut Pass,
    ) {
        let sel = r.selection();
        let mut kept: Vec<&Build> = builds.iter().filter(|b| selected(sel, b)).collect();
        if kept.is_empty() {
            pass.note(r, || Verdict::Nothing {
                why: format!(
                    "summaryCB: none of the buildset's {} builds passes the filters",
                    builds.len()
                ),
            });
            return;
        }
        kept.sort_by(|a, b| a.builder_name().cmp(&b.builder_name()));
        let request = Request::summary(
            kept.iter().map(|b| (*b).clone()).collect(),
            buildset.results,
            call.arg.clone(),
        );
        let message = match self.call(r, call, &request, None) {
            Ok(m) => m,
            Err(why) => {
                pass.note(r, || Verdict::Nothing { why });
                return;
            }
        };
        let mut users: Vec<String> = kept
            .iter()
            .flat_map(|b| blamelist(b, &self.changes_of(event, b)))
            .collect();
        users.sort();
        users.dedup();
        let document = serde_json::json!({ "buildset": buildset, "builds": kept }).to_string();
        let why = format!(
            "summaryCB: buildset {} result {}, {} of {} builds pass the filters",
            buildset.bsid.unwrap_or_default(),
            Results::text_for(buildset.results),
            kept.len(),
            builds.len(),
        );
        let about = About {
            build: kept.first().copied(),
            builds: &kept,
            users: &users,
            prev: None,
        };
        self.emit(ev, event, r, &why, &message, &document, &about, out, pass);
    }

    /// Builds `call`'s request for build `b` (`is_buildset`: reported in a buildset summary)
    /// and calls it: `Err(why)` means send nothing.
    fn format(
        &self,
        r: &dyn Reporter,
        call: &HookCall,
        b: &Build,
        prev: Option<&BuildRecord>,
        changes: &[Change],
        is_buildset: bool,
    ) -> Result<Formatted, String> {
        let sel = r.selection();
        let mut build = b.clone();
        if !sel.wants.properties {
            build.properties = Default::default();
        }
        if sends_prev_build(sel)
            && let Some(p) = prev
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&p.body)
        {
            build.extra.insert("prev_build".into(), v);
        }
        let ctx = self.wrap_context(r, call);
        let mut request = Request::from_build(call.hook, build, &ctx);
        if let Request::Message(args) = &mut request {
            args.is_buildset = is_buildset;
            args.logs = wanted_logs(b, sel.wants.logs_content.as_ref());
            if !changes.is_empty() {
                args.users = blamelist(b, changes);
                args.changes = changes.to_vec();
            }
        }
        self.call(r, call, &request, b.buildid)
    }

    /// What a request for reporter `r`'s `call` carries besides the event.
    fn wrap_context(&self, r: &dyn Reporter, call: &HookCall) -> WrapContext {
        let sel = r.selection();
        WrapContext {
            mode: sel.mode.0.clone(),
            reporter: ReporterInfo {
                name: sel.name.clone(),
                kind: r.kind().into(),
            },
            master: self.master.clone(),
            arg: call.arg.clone(),
        }
    }

    /// Calls the hook's formatter (or the reporter's built-in one) on `request`, counting and
    /// timing it; a failure degrades or skips as `on_error` says. `Err(why)` means send
    /// nothing.
    fn call(
        &self,
        r: &dyn Reporter,
        call: &HookCall,
        request: &Request,
        build: Option<i64>,
    ) -> Result<Formatted, String> {
        let sel = r.selection();
        let builtin = |degraded: Option<String>| Formatted::Default {
            degraded,
            output: r.default_output(request),
        };
        let Some(name) = &call.formatter else {
            return Ok(builtin(None));
        };
        let Some(formatter) = self.formatters.get(name) else {
            // Config validation makes this unreachable; degrade rather than lose the event.
            return Ok(builtin(Some(format!("formatter {name:?} is not loaded"))));
        };
        let started = Instant::now();
        if let Some(why) = self.breakers.open(name, started) {
            self.metrics.formatter_call(name, "short_circuited");
            return match sel.on_error {
                OnError::Default => Ok(builtin(Some(why))),
                OnError::Skip => Err(format!("{why}; on_error = \"skip\": nothing sent")),
            };
        }
        let result = formatter.call(request);
        self.metrics.observe_call(name, started.elapsed());
        self.metrics.warm_instances(name, formatter.warm_stats());
        let failure = match result.map(Output::from_hook) {
            Ok(Some(output)) => match r.accepts(&output) {
                Ok(()) => {
                    self.metrics.formatter_call(name, "ok");
                    self.breakers.record(name, None, started);
                    return Ok(Formatted::Custom(output));
                }
                Err(why) => (
                    "BadOutput",
                    format!("formatter {name:?} failed (BadOutput): {why}"),
                ),
            },
            Ok(None) => {
                self.metrics.formatter_call(name, "nothing");
                self.breakers.record(name, None, started);
                tracing::debug!(formatter = %name, reporter = %sel.name, hook = %call.hook, "the formatter chose to send nothing");
                return Err(format!(
                    "formatter {name:?} ({}) returned null: nothing to send",
                    call.hook
                ));
            }
            Err(e) => (
                e.kind(),
                format!("formatter {name:?} failed ({}): {e}", e.kind()),
            ),
        };
        let (kind, why) = failure;
        self.metrics.formatter_call(name, kind);
        if self.breakers.record(name, Some(kind), started) {
            tracing::warn!(formatter = %name, "formatter {name:?} failed {TRIP_AFTER} times in a row: it is not called for {}s, its reporters' on_error applies meanwhile", COOL_DOWN.as_secs());
        }
        match sel.on_error {
            OnError::Default => {
                tracing::warn!(reporter = %sel.name, build = ?build, "{why}; sending the built-in message, marked degraded");
                Ok(builtin(Some(why)))
            }
            OnError::Skip => {
                tracing::warn!(reporter = %sel.name, build = ?build, "{why}; on_error = skip, nothing sent");
                Err(format!("{why}; on_error = \"skip\": nothing sent"))
            }
        }
    }
}

/// What `take` has of each of `events` (each as read already), in order; the body of each
/// event it has not is read from `snapshot` instead (the events come without their bodies).
fn take_or_read(
    events: &mut [StoredEvent],
    snapshot: &Snapshot<'_>,
    take: impl Fn(i64) -> Option<Arc<ReadEvent>>,
) -> Result<Vec<Option<Arc<ReadEvent>>>, StoreError> {
    let mut taken = Vec::with_capacity(events.len());
    for ev in events {
        let r = take(ev.id);
        if r.is_none() {
            snapshot.read_body(ev)?;
        }
        taken.push(r);
    }
    Ok(taken)
}

/// Whether a reporter's formatter requests carry `prev_build` (the previous build's dict): when
/// its mode compares with the previous build (`change`, `problem`), as Buildbot's do.
fn sends_prev_build(sel: &Selection) -> bool {
    sel.mode.0.iter().any(|w| w == "change" || w == "problem")
}

/// The build history's row for a `build_started` / `build_finished` event's build (none for
/// other events, or a build without ids).
pub(crate) fn build_record(event_id: i64, read: &ReadEvent) -> Option<BuildRecord> {
    let event = &read.event;
    let Subject::Build(b) = &event.subject else {
        return None;
    };
    if !matches!(
        event.kind,
        EventKind::BuildStarted | EventKind::BuildFinished
    ) {
        return None;
    }
    Some(BuildRecord {
        master: event.master.clone(),
        buildid: b.buildid?,
        builderid: b.builderid?,
        number: b.number?,
        complete: b.complete,
        results: b.results,
        // The event's body is the build dict: the row refers to it rather than copy it.
        body: match (&read.document, read.verbatim) {
            (Some(_), true) => String::new(),
            (document, _) => document.clone()?,
        },
        event_id,
    })
}

/// The outbox rows for `pending`.
fn new_rows(pending: &[Pending]) -> Vec<NewDelivery<'_>> {
    pending
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
        .collect()
}

/// The logs of `build`'s steps whose contents the reporter asked for and has, flattened (each
/// with its `stepname`), for the request's `logs`.
fn wanted_logs(build: &Build, wanted: Option<&LogsWanted>) -> Vec<tidings_guest::build::Log> {
    let Some(wanted) = wanted else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for step in build.steps.iter().flatten() {
        for log in &step.logs {
            if log.content.is_some() && wanted.wants(&step.name, &log.name) {
                let mut log = log.clone();
                log.stepname.get_or_insert_with(|| step.name.clone());
                out.push(log);
            }
        }
    }
    out
}

/// Which formatter made `message`, and whether it was degraded.
fn formatter_story(sel: &Selection, message: &Formatted) -> String {
    match (message, &sel.message_formatter) {
        (Formatted::Custom(Output::Message(_)), Some(f)) => format!("formatter {f:?}"),
        (Formatted::Custom(_), _) => "the reporter's formatter (a callback)".to_owned(),
        (
            Formatted::Default {
                degraded: Some(why),
                ..
            },
            _,
        ) => {
            format!("built-in message, DEGRADED: {why}")
        }
        _ => "built-in message".to_owned(),
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
    let formatter = formatter_story(sel, message);
    let about = match &event.subject {
        Subject::Build(b) if b.number.is_some() || b.buildid.is_some() => format!(
            "builder {:?} build #{}",
            b.builder_name().unwrap_or_default(),
            b.number.map_or("?".into(), |n| n.to_string())
        ),
        Subject::Build(b) => format!(
            "builder {:?} build request {}",
            b.builder_name().unwrap_or_default(),
            event.buildrequest().unwrap_or_default()
        ),
        Subject::Buildset { buildset, builds } => format!(
            "buildset {} ({} builds)",
            buildset.bsid.unwrap_or_default(),
            builds.len()
        ),
        Subject::Worker(w) => format!("worker {:?}", w.name),
    };
    format!(
        "reporter {:?} ({}) for event {} ({} from {}): {about}; {why_mode}; filters: {}; {formatter}",
        sel.name,
        r.kind(),
        ev.id,
        ev.kind,
        ev.source,
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

    /// A build event as the history step reads it.
    fn read(id: i64) -> ReadEvent {
        let body = include_str!("../tests/data/buildbot/failure-full.json");
        ReadEvent::of(&StoredEvent {
            id,
            key: format!("k{id}"),
            kind: "build_finished".into(),
            source: "test".into(),
            body: body.into(),
            format: Some(crate::event::BodyFormat::Build),
            received_at: 0,
        })
        .unwrap()
    }

    #[test]
    fn a_read_event_is_kept_until_every_lane_took_it_and_a_lagging_lane_costs_only_room() {
        let kept = ReadEvents::default();
        kept.keep(1, Arc::new(read(1)), 2);
        let first = kept.take(1).expect("kept for two lanes");
        assert_eq!(first.document.as_deref(), read(1).document.as_deref());
        assert!(kept.take(1).is_some(), "the second lane's");
        assert!(kept.take(1).is_none(), "gone when both took it");
        assert!(kept.is_empty());
        // No lanes: nothing to keep it for.
        kept.keep(2, Arc::new(read(2)), 0);
        assert!(kept.is_empty());
        // A lane that never takes its events: the oldest go, the room is never exceeded, and
        // what went is read from the store again.
        for id in 10..10 + READ_ROOM as i64 + 5 {
            kept.keep(id, Arc::new(read(id)), 2);
        }
        assert_eq!(kept.len(), READ_ROOM);
        assert!(kept.take(10).is_none() && kept.take(14).is_none());
        assert!(kept.take(15).is_some());
    }
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
                    event_id: 0,
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
            let mode = crate::config::CommonOptions::selection(&config.reporter.http_push[0]).mode;
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

    /// A lane whose mode compares with the previous build gets the previous build's dict (its
    /// requests carry it as `prev_build`); a lane that needs only results does not read it.
    #[test]
    fn the_previous_build_is_read_whole_only_for_a_lane_that_sends_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), Durability::Normal).unwrap());
        let body = |n: i64| {
            let mut b: Value =
                serde_json::from_str(include_str!("../tests/data/buildbot/failure-full.json"))
                    .unwrap();
            b["buildid"] = (500 + n).into();
            b["number"] = n.into();
            b.to_string()
        };
        let bodies = [body(1), body(2)];
        let keys = ["m/build/501/finished", "m/build/502/finished"];
        let events: Vec<crate::store::NewEvent<'_>> = keys
            .iter()
            .zip(&bodies)
            .map(|(key, body)| crate::store::NewEvent {
                key,
                kind: "build_finished",
                source: "test",
                body,
                format: crate::event::BodyFormat::Build,
            })
            .collect();
        store.insert_events(&events, 1).unwrap();
        let config = Config::parse(
            "[[reporter.http_push]]\nname = \"all\"\nserver_url = \"http://127.0.0.1:9/\"\n\
             mode = [\"all\"]\n\n\
             [[reporter.http_push]]\nname = \"change\"\nserver_url = \"http://127.0.0.1:9/\"\n\
             mode = [\"change\"]\n",
        )
        .unwrap();
        let d = crate::daemon::planner(&config, dir.path(), store.clone(), &[], None).unwrap();
        d.open_lanes().unwrap();
        assert_eq!(d.record_pending().unwrap(), 2);
        let second = &store.snapshot().unwrap().events_after(1, 1).unwrap()[0];
        let prev_of = |lane: usize| {
            let p = d
                .prepare(second, None, &store.snapshot().unwrap(), lane..lane + 1)
                .unwrap()
                .unwrap();
            let prev = p.prevs[0].clone().expect("build 1 is the previous build");
            (prev.number, prev.results, prev.body)
        };
        assert_eq!(prev_of(0), (1, Some(2), String::new()));
        assert_eq!(prev_of(1), (1, Some(2), bodies[0].clone()));
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
