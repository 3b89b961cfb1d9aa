//! The outbox workers: take due deliveries from the store, hand them to the reporter's sink,
//! and record how each attempt ended — delivered, retried later (exponential backoff with
//! jitter, or the peer's `Retry-After`), or dead-lettered (a permanent error, too many
//! attempts, too old).
//!
//! A sink maps its peer's answers to a [`RetryClass`] where its client is (HTTP status codes,
//! SMTP replies), never by matching error strings. Deliveries sharing an order key (one build
//! request) go out one after another, because the store only hands out the oldest unfinished
//! one of each; all others go concurrently, up to the reporter's `concurrency`.
//!
//! On shutdown a worker stops claiming, lets in-flight attempts finish within the grace period
//! and leaves the rest where they are: a row still in flight when the process stops is pending
//! again at the next start ([`Store::recover_in_flight`]), so nothing is lost; a peer may then
//! see it twice, which is what idempotency keys are for.

use crate::clock::now_ms;
use crate::config::RetrySettings;
use crate::metrics::Metrics;
use crate::store::{Delivery, Finished, Outcome, Store, StoreError};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// The peer said when to come back (`Retry-After`).
    RetryAfter(Duration),
    /// A transient failure: retry with exponential backoff.
    Backoff,
    /// A permanent failure: dead-letter now.
    Never,
    /// The peer may have acted on the delivery although the attempt failed (a timeout after
    /// the request was sent). Decided here, once, by [`Sink::idempotent`]: an idempotent sink
    /// retries it with backoff (the peer drops the repeat); any other sink dead-letters it with
    /// that reason, so a mail or a review is never sent twice blindly (`tidings outbox retry`
    /// sends it again on purpose).
    MaybeDelivered,
}

/// A failed attempt, as a sink reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub class: RetryClass,
    /// What happened, for the delivery log (no secrets).
    pub message: String,
}

impl SinkError {
    pub fn new(class: RetryClass, message: impl Into<String>) -> SinkError {
        SinkError {
            class,
            message: message.into(),
        }
    }
}

/// How a sink wants its deliveries grouped (the 0.8 StatusPush's batching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Wait this long after the first due delivery, to collect more.
    pub delay: Duration,
    /// Most deliveries per batch.
    pub chunk_size: usize,
    /// Largest batch, in payload bytes; a single larger delivery goes alone.
    pub max_bytes: usize,
}

/// What a sink is given of an outbox row: the narrow part it needs to deliver, not the
/// store's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The row's id (for logs).
    pub id: i64,
    /// The delivery's idempotency key: event + reporter + destination.
    pub key: String,
    /// Where it goes, as the reporter rendered it.
    pub destination: String,
    /// What is sent, as the reporter rendered it.
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: i64,
}

impl From<&Delivery> for Outgoing {
    fn from(d: &Delivery) -> Outgoing {
        Outgoing {
            id: d.id,
            key: d.key.clone(),
            destination: d.destination.clone(),
            payload: d.payload.clone(),
            attempt: d.attempts,
        }
    }
}

/// A future a sink returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<String, SinkError>> + Send + 'a>>;

/// Where a reporter's deliveries go: one peer, one protocol.
pub trait Sink: Send + Sync + 'static {
    /// Delivers `batch` (exactly one delivery unless [`Sink::batching`] says otherwise);
    /// `Ok` carries a short receipt for the delivery log.
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a>;

    /// Whether deliveries are grouped into batches.
    fn batching(&self) -> Option<Batching> {
        None
    }

    /// Whether the peer drops a repeated delivery (HTTP with `Idempotency-Key`): then an
    /// attempt that may have been delivered ([`RetryClass::MaybeDelivered`]) is retried;
    /// otherwise it is dead-lettered [default false].
    fn idempotent(&self) -> bool {
        false
    }
}

/// Decides the next state of a delivery after an attempt.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub settings: RetrySettings,
    /// The sink's [`Sink::idempotent`].
    pub idempotent: bool,
}

impl RetryPolicy {
    /// The outcome of attempt `d.attempts` of `d`, which ended with `result` at `now`;
    /// `jitter` in [0, 1) spreads retries of many deliveries over the second half of the delay.
    pub fn outcome(
        &self,
        d: &Delivery,
        result: &Result<String, SinkError>,
        now: i64,
        jitter: f64,
    ) -> Outcome {
        let e = match result {
            Ok(detail) => {
                return Outcome::Delivered {
                    detail: detail.clone(),
                };
            }
            Err(e) => e,
        };
        let s = &self.settings;
        let delay = match e.class {
            RetryClass::Never => {
                return Outcome::Dead {
                    error: format!("permanent failure: {}", e.message),
                };
            }
            RetryClass::MaybeDelivered if !self.idempotent => {
                return Outcome::Dead {
                    error: format!(
                        "may have been delivered, so it is not repeated (tidings outbox retry sends it again): {}",
                        e.message
                    ),
                };
            }
            RetryClass::RetryAfter(d) => d,
            RetryClass::Backoff | RetryClass::MaybeDelivered => {
                let exp = u32::try_from(d.attempts.saturating_sub(1)).unwrap_or(u32::MAX);
                let full = s
                    .base
                    .checked_mul(2u32.saturating_pow(exp.min(30)))
                    .unwrap_or(s.max_delay)
                    .min(s.max_delay);
                full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
            }
        };
        if d.attempts >= i64::from(s.max_attempts) {
            return Outcome::Dead {
                error: format!("gave up after {} attempts: {}", d.attempts, e.message),
            };
        }
        let at = now.saturating_add(delay.as_millis() as i64);
        if at - d.created_at > s.max_age.as_millis() as i64 {
            return Outcome::Dead {
                error: format!(
                    "gave up: the next attempt would be past max_age ({}s): {}",
                    s.max_age.as_secs(),
                    e.message
                ),
            };
        }
        Outcome::Retry {
            at,
            error: e.message.clone(),
        }
    }
}

fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Io {
                path: Default::default(),
                source: std::io::Error::other(format!("store task failed: {e}")),
            })
        })
}

/// One reporter's worker.
pub struct Worker {
    pub reporter: String,
    pub sink: Arc<dyn Sink>,
    pub policy: RetryPolicy,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// Notified when new deliveries were enqueued.
    pub wake: Arc<Notify>,
}

/// How long a worker waits before using a store that failed (full disk, I/O error) again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// How often a worker looks at the outbox when nothing woke it (rows retried by
/// `tidings outbox retry` from another process are seen this late at most).
const IDLE_POLL: Duration = Duration::from_secs(1);

impl Worker {
    /// Delivers until `shutdown` turns true, then waits up to `grace` for attempts in flight.
    ///
    /// Each wake-up does its bookkeeping in one transaction
    /// ([`Store::finish_and_claim`]): the outcomes of the attempts that ended since the last
    /// one are recorded and the deliveries due now claimed, up to the free attempt slots.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let this = Arc::new(self);
        let batching = this.sink.batching();
        let concurrency = this.policy.settings.concurrency;
        let mut inflight: JoinSet<()> = JoinSet::new();
        // Each attempt sends its deliveries' outcomes here, once, when it ends (also when it
        // panics or is aborted: then with none, and its rows stay in flight until the next
        // start); until then its slot is taken.
        let (done, mut outcomes) = mpsc::unbounded_channel::<Vec<Finished>>();
        let mut busy = 0usize;
        let mut finished: Vec<Finished> = Vec::new();
        let mut failing = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            while inflight.try_join_next().is_some() {}
            while let Ok(rows) = outcomes.try_recv() {
                busy -= 1;
                finished.extend(rows);
            }
            let free = concurrency.saturating_sub(busy);
            let now = now_ms();
            // When the next delivery that could be claimed falls due, as the claim found it.
            let mut next = None;
            if free > 0 || !finished.is_empty() {
                let limit = match (free, batching) {
                    (0, _) => 0,
                    (free, None) => free,
                    (free, Some(b)) => b.chunk_size.max(1) * free,
                };
                if limit > 0
                    && let Some(b) = batching
                {
                    // Collect for `delay` once something is due, then claim all at once.
                    let due = blocking(&this.store, {
                        let r = this.reporter.clone();
                        move |s| s.next_due(&r)
                    })
                    .await;
                    if matches!(due, Ok(Some(t)) if t <= now) && !b.delay.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(b.delay) => {}
                            _ = shutdown.changed() => continue,
                        }
                    }
                }
                let rows = Arc::new(std::mem::take(&mut finished));
                let (these, reporter) = (rows.clone(), this.reporter.clone());
                let claim = move |s: &Store| s.finish_and_claim(&these, &reporter, now_ms(), limit);
                match blocking(&this.store, claim).await {
                    Ok((claimed, due)) => {
                        if failing {
                            tracing::info!(reporter = %this.reporter, "the outbox can be written again");
                            failing = false;
                        }
                        let full = limit > 0 && claimed.len() >= limit;
                        for group in groups(claimed, batching) {
                            let (w, done) = (this.clone(), done.clone());
                            busy += 1;
                            inflight.spawn(async move { w.attempt(group, done).await });
                        }
                        if full {
                            // There may be more due now: claim again once slots free up.
                            continue;
                        }
                        next = due;
                    }
                    Err(e) => {
                        // Nothing was recorded or claimed: the outcomes wait for the next try.
                        finished = Arc::unwrap_or_clone(rows);
                        if !failing {
                            tracing::error!(reporter = %this.reporter, error = %e, unrecorded = finished.len(), "cannot record deliveries' outcomes or claim deliveries in the outbox; trying again every second");
                            failing = true;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(STORE_RETRY) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            }
            // Woken by new deliveries, ended attempts (outcomes to record, free slots, unblocked
            // queues), or when the next delivery falls due.
            let wait = match next {
                Some(t) => Duration::from_millis(t.saturating_sub(now).clamp(0, 1000) as u64),
                None => IDLE_POLL,
            };
            tokio::select! {
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(rows) = outcomes.recv() => {
                    busy -= 1;
                    finished.extend(rows);
                    // Attempts that end together are recorded together.
                    tokio::task::yield_now().await;
                }
                _ = shutdown.changed() => {}
            }
        }
        if busy > 0 {
            tracing::info!(reporter = %this.reporter, in_flight = busy, grace_ms = grace.as_millis() as u64, "waiting for deliveries in flight");
        }
        let drained = tokio::time::timeout(grace, async {
            while busy > 0
                && let Some(rows) = outcomes.recv().await
            {
                busy -= 1;
                finished.extend(rows);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(reporter = %this.reporter, left = busy, "grace period over; unfinished deliveries stay in the outbox for the next start");
            inflight.abort_all();
        }
        while inflight.join_next().await.is_some() {}
        while let Ok(rows) = outcomes.try_recv() {
            finished.extend(rows);
        }
        // What ended and is not recorded yet; a store that keeps failing leaves those rows in
        // flight, pending again at the next start.
        if finished.is_empty() {
            return;
        }
        let rows = Arc::new(finished);
        let record = async {
            loop {
                let these = rows.clone();
                match blocking(&this.store, move |s| s.finish_many(&these)).await {
                    Ok(()) => break,
                    Err(_) => tokio::time::sleep(STORE_RETRY).await,
                }
            }
        };
        if tokio::time::timeout(grace.max(STORE_RETRY * 2), record)
            .await
            .is_err()
        {
            tracing::warn!(reporter = %this.reporter, deliveries = rows.len(), "the outcomes of the last attempts could not be recorded; those deliveries are attempted again at the next start");
        }
    }

    async fn attempt(&self, group: Vec<Delivery>, done: mpsc::UnboundedSender<Vec<Finished>>) {
        // Sent when dropped: at the end, or should the attempt panic or be aborted.
        let mut report = Report {
            done,
            rows: Vec::with_capacity(group.len()),
        };
        let outgoing: Vec<Outgoing> = group.iter().map(Outgoing::from).collect();
        let result = self.sink.deliver(&outgoing).await;
        let now = now_ms();
        for d in &group {
            let outcome = self.policy.outcome(d, &result, now, jitter());
            let label = match &outcome {
                Outcome::Delivered { .. } => "delivered",
                Outcome::Retry { .. } => "retry",
                Outcome::Dead { .. } => "dead",
            };
            match &outcome {
                Outcome::Delivered { detail } => {
                    tracing::info!(reporter = %self.reporter, id = d.id, event = d.event_id, destination = %d.destination, attempt = d.attempts, "delivered: {detail}")
                }
                Outcome::Retry { at, error } => {
                    tracing::warn!(reporter = %self.reporter, id = d.id, event = d.event_id, destination = %d.destination, attempt = d.attempts, retry_in_ms = at - now, "delivery failed, will retry: {error}")
                }
                Outcome::Dead { error } => {
                    tracing::error!(reporter = %self.reporter, id = d.id, event = d.event_id, destination = %d.destination, attempt = d.attempts, "delivery dead-lettered (tidings outbox retry {} to try again): {error}", d.id)
                }
            }
            self.metrics.delivery(&self.reporter, label);
            report.rows.push(Finished {
                id: d.id,
                outcome,
                at: now,
            });
        }
    }
}

/// One attempt's outcomes, sent to its worker when dropped (once, however the attempt ends).
struct Report {
    done: mpsc::UnboundedSender<Vec<Finished>>,
    rows: Vec<Finished>,
}

impl Drop for Report {
    fn drop(&mut self) {
        // The worker keeps its receiver until every attempt has ended.
        let _ = self.done.send(std::mem::take(&mut self.rows));
    }
}

/// Splits claimed deliveries into what one `deliver` call takes.
fn groups(claimed: Vec<Delivery>, batching: Option<Batching>) -> Vec<Vec<Delivery>> {
    let Some(b) = batching else {
        return claimed.into_iter().map(|d| vec![d]).collect();
    };
    let mut out: Vec<Vec<Delivery>> = Vec::new();
    let mut size = 0usize;
    for d in claimed {
        // A JSON array: brackets plus a comma between packets.
        let add = d.payload.len() + 1;
        match out.last_mut() {
            Some(g) if g.len() < b.chunk_size.max(1) && size + add < b.max_bytes => {
                size += add;
                g.push(d);
            }
            _ => {
                if add + 1 > b.max_bytes {
                    tracing::warn!(
                        id = d.id,
                        bytes = d.payload.len(),
                        max = b.max_bytes,
                        "a packet is larger than max_http_request_size; it is sent alone"
                    );
                }
                size = add + 1;
                out.push(vec![d]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::State;

    fn delivery(id: i64, attempts: i64, payload: &str) -> Delivery {
        Delivery {
            id,
            key: format!("k{id}"),
            event_id: 1,
            reporter: "r".into(),
            destination: "d".into(),
            order_key: None,
            payload: payload.into(),
            explanation: String::new(),
            state: State::InFlight,
            attempts,
            next_attempt_at: 0,
            last_error: None,
            created_at: 0,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            settings: RetrySettings {
                max_attempts: 5,
                max_age: Duration::from_secs(3600),
                base: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
                concurrency: 1,
            },
            idempotent: false,
        }
    }

    fn err(class: RetryClass) -> Result<String, SinkError> {
        Err(SinkError::new(class, "HTTP 500"))
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = policy();
        let at = |attempts, jitter| match p.outcome(
            &delivery(1, attempts, ""),
            &err(RetryClass::Backoff),
            0,
            jitter,
        ) {
            Outcome::Retry { at, .. } => at,
            other => panic!("{other:?}"),
        };
        assert_eq!((at(1, 0.0), at(1, 0.999_999)), (500, 999));
        assert_eq!((at(2, 0.0), at(3, 0.0)), (1000, 2000));
        assert_eq!(at(4, 1.0), 8000);
        let capped = RetryPolicy {
            settings: RetrySettings {
                max_attempts: 100,
                ..p.settings
            },
            ..p
        };
        match capped.outcome(&delivery(1, 40, ""), &err(RetryClass::Backoff), 0, 1.0) {
            Outcome::Retry { at, .. } => assert_eq!(at, 60_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_is_honoured_and_limits_dead_letter() {
        let p = policy();
        let ra = err(RetryClass::RetryAfter(Duration::from_secs(2)));
        assert_eq!(
            p.outcome(&delivery(1, 1, ""), &ra, 10, 0.3),
            Outcome::Retry {
                at: 2010,
                error: "HTTP 500".into()
            }
        );
        assert!(matches!(
            p.outcome(&delivery(1, 5, ""), &ra, 10, 0.3),
            Outcome::Dead { error } if error.starts_with("gave up after 5 attempts")
        ));
        let late = RetryClass::RetryAfter(Duration::from_secs(7200));
        assert!(matches!(
            p.outcome(&delivery(1, 1, ""), &err(late), 10, 0.3),
            Outcome::Dead { error } if error.contains("max_age")
        ));
        assert!(matches!(
            p.outcome(&delivery(1, 1, ""), &err(RetryClass::Never), 10, 0.3),
            Outcome::Dead { error } if error.starts_with("permanent failure")
        ));
        assert_eq!(
            p.outcome(&delivery(1, 1, ""), &Ok("HTTP 200".into()), 10, 0.3),
            Outcome::Delivered {
                detail: "HTTP 200".into()
            }
        );
    }

    #[test]
    fn maybe_delivered_is_retried_only_by_idempotent_sinks() {
        let maybe = err(RetryClass::MaybeDelivered);
        match policy().outcome(&delivery(1, 1, ""), &maybe, 0, 0.0) {
            Outcome::Dead { error } => {
                assert!(error.starts_with("may have been delivered"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        let idempotent = RetryPolicy {
            idempotent: true,
            ..policy()
        };
        assert_eq!(
            idempotent.outcome(&delivery(1, 1, ""), &maybe, 0, 0.0),
            Outcome::Retry {
                at: 500,
                error: "HTTP 500".into()
            }
        );
        // The attempt budget still applies.
        assert!(matches!(
            idempotent.outcome(&delivery(1, 5, ""), &maybe, 0, 0.0),
            Outcome::Dead { error } if error.starts_with("gave up after 5 attempts")
        ));
    }

    #[test]
    fn batches_respect_chunk_size_and_byte_limit() {
        let b = Batching {
            delay: Duration::ZERO,
            chunk_size: 3,
            max_bytes: 20,
        };
        let ds: Vec<Delivery> = (1..=7)
            .map(|i| {
                delivery(
                    i,
                    1,
                    if i == 5 {
                        "{\"big\":\"xxxxxxxxxxxxxxxxxxxx\"}"
                    } else {
                        "{\"a\":1}"
                    },
                )
            })
            .collect();
        let sizes: Vec<Vec<i64>> = groups(ds, Some(b))
            .iter()
            .map(|g| g.iter().map(|d| d.id).collect())
            .collect();
        // "[" + 2 × (7 bytes + ",") fits in 20; a third does not. The oversized one goes alone.
        assert_eq!(sizes, vec![vec![1, 2], vec![3, 4], vec![5], vec![6, 7]]);
        let single = groups(vec![delivery(1, 1, "x"), delivery(2, 1, "y")], None);
        assert_eq!(single.len(), 2);
    }

    /// Panics on its first delivery, then delivers.
    struct PanicsOnce(std::sync::atomic::AtomicBool);

    impl Sink for PanicsOnce {
        fn deliver<'a>(&'a self, _: &'a [Outgoing]) -> SinkFuture<'a> {
            Box::pin(async {
                if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    panic!("a sink bug");
                }
                Ok("sent".to_owned())
            })
        }
    }

    /// A store with one event and `keys` queued for reporter `r`, and their ids.
    fn queued(dir: &std::path::Path, keys: &[&str]) -> (Arc<Store>, Vec<i64>) {
        let store = Arc::new(Store::open(dir, crate::store::Durability::Normal).unwrap());
        let ev = store
            .insert_events(
                &[crate::store::NewEvent {
                    key: "e",
                    kind: "build_finished",
                    source: "test",
                    body: "{}",
                    format: crate::event::BodyFormat::Build,
                }],
                1,
            )
            .unwrap()[0]
            .id;
        let rows: Vec<_> = keys
            .iter()
            .map(|key| crate::store::NewDelivery {
                key,
                event_id: ev,
                reporter: "r",
                destination: "d",
                order_key: None,
                payload: "{}",
                explanation: "",
            })
            .collect();
        let ids = store
            .enqueue(&rows, 1)
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        (store, ids)
    }

    fn worker(store: &Arc<Store>, sink: impl Sink) -> Worker {
        Worker {
            reporter: "r".into(),
            sink: Arc::new(sink),
            policy: policy(),
            store: store.clone(),
            metrics: Arc::new(Metrics::default()),
            wake: Arc::new(Notify::new()),
        }
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "waited for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_attempt_that_panics_gives_its_slot_back_and_its_row_stays_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = queued(dir.path(), &["a", "b", "c"]);
        // One attempt at a time: had the panic kept its slot, nothing else would go out.
        let worker = worker(&store, PanicsOnce(Default::default()));
        let (stop, shutdown) = watch::channel(false);
        let run = tokio::spawn(worker.run(shutdown, Duration::from_secs(5)));
        let states = || -> Vec<State> {
            ids.iter()
                .map(|id| store.delivery(*id).unwrap().unwrap().state)
                .collect()
        };
        wait_for("two deliveries", || {
            states().iter().filter(|s| **s == State::Delivered).count() == 2
        })
        .await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the worker stops")
            .unwrap();
        // The panicked attempt's row recorded nothing: in flight, pending again at the next start.
        assert_eq!(
            states(),
            [State::InFlight, State::Delivered, State::Delivered]
        );
        assert_eq!(store.recover_in_flight().unwrap(), 1);
    }

    /// Delivers, with a receipt too large for a full store to log.
    struct BigReceipt;

    impl Sink for BigReceipt {
        fn deliver<'a>(&'a self, _: &'a [Outgoing]) -> SinkFuture<'a> {
            Box::pin(async { Ok("x".repeat(1 << 20)) })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outcomes_the_full_store_cannot_take_are_kept_and_recorded_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = queued(dir.path(), &["a"]);
        store.limit_size(1).unwrap();
        let (stop, shutdown) = watch::channel(false);
        let run = tokio::spawn(worker(&store, BigReceipt).run(shutdown, Duration::from_secs(5)));
        let a = || store.delivery(ids[0]).unwrap().unwrap();
        // Claimed (that fits), sent, and its outcome refused by the full store.
        wait_for("the attempt", || a().attempts == 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(a().state, State::InFlight);
        assert!(store.log(ids[0]).unwrap().is_empty());
        // Room again: the kept outcome is written within the retry second, without sending again.
        store.limit_size(1 << 30).unwrap();
        wait_for("the outcome recorded", || a().state == State::Delivered).await;
        assert_eq!(a().attempts, 1, "sent once");
        assert_eq!(store.log(ids[0]).unwrap().len(), 1);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the worker stops")
            .unwrap();
    }
}
