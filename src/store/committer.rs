//! Group commit: one thread takes every event waiting and commits them in one transaction, so
//! durability does not cap ingest throughput. Ingest (HTTP and `[source.buildbot]`) hands each
//! event to [`Committer::commit`] and answers only once it is durable. When dispatch's history
//! step is caught up, the same transaction runs it for the new events
//! ([`Committer::start_with`]).

use crate::clock::now_ms;
use crate::dispatch::{CURSOR, ReadEvent, ReadEvents, build_record};
use crate::event::BodyFormat;
use crate::store::{BuildRecord, NewEvent, Store, Stored};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

struct Pending {
    key: String,
    kind: &'static str,
    source: &'static str,
    body: String,
    format: BodyFormat,
    /// The event as ingest parsed it, for dispatch (which then need not parse it again).
    read: Option<Arc<ReadEvent>>,
    reply: oneshot::Sender<Result<Stored, String>>,
}

/// Commits events on its own thread, every event waiting at that moment in one transaction.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Pending>,
}

/// Most events one transaction takes.
const MAX_BATCH: usize = 512;

impl Committer {
    /// Starts the committer thread for `store`. It stops when every `Committer` clone is gone.
    pub fn start(store: Arc<Store>) -> Committer {
        Self::start_with(store, None, || {})
    }

    /// [`Committer::start`], and running dispatch's history step for the events it stores, in
    /// their transaction, when the step has passed every event before them and ingest parsed
    /// every new one: what ingest parsed then goes to dispatch's lanes through `read`, which
    /// tells them. Otherwise each parsed event is handed over through `read` to the history
    /// step, and `committed` is called (the dispatch thread listens to it); it is also called
    /// when that thread runs a lane itself.
    pub fn start_with(
        store: Arc<Store>,
        read: Option<Arc<ReadEvents>>,
        committed: impl Fn() + Send + 'static,
    ) -> Committer {
        let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("tidings-commit".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    let events: Vec<NewEvent<'_>> = batch
                        .iter()
                        .map(|p| NewEvent {
                            key: &p.key,
                            kind: p.kind,
                            source: p.source,
                            body: &p.body,
                            format: p.format,
                        })
                        .collect();
                    // The history step for these events, in their transaction, when every
                    // new one was parsed (else the history step reads and records them).
                    let record = |stored: &[Stored]| -> Option<Vec<BuildRecord>> {
                        let mut builds = Vec::new();
                        for (p, s) in batch.iter().zip(stored) {
                            if !s.duplicate {
                                builds.extend(build_record(s.id, p.read.as_deref()?));
                            }
                        }
                        Some(builds)
                    };
                    let result = match read.as_ref().filter(|r| r.lanes_open()) {
                        Some(_) => store.insert_events_recording(
                            &events,
                            now_ms(),
                            Some((CURSOR, &record)),
                        ),
                        None => store.insert_events(&events, now_ms()).map(|s| (s, false)),
                    };
                    match result {
                        Ok((stored, recorded)) => {
                            let mut wake = !recorded;
                            if let Some(kept) = &read {
                                let parsed = batch.iter_mut().zip(&stored).filter_map(|(p, s)| {
                                    Some((s.id, p.read.take().filter(|_| !s.duplicate)?))
                                });
                                if recorded {
                                    wake = kept.recorded(parsed);
                                } else {
                                    for (id, r) in parsed {
                                        kept.hand_over(id, r);
                                    }
                                }
                            }
                            if wake && stored.iter().any(|s| !s.duplicate) {
                                committed();
                            }
                            for (p, s) in batch.into_iter().zip(stored) {
                                let _ = p.reply.send(Ok(s));
                            }
                        }
                        Err(e) => {
                            let msg = e.to_string();
                            for p in batch {
                                let _ = p.reply.send(Err(msg.clone()));
                            }
                        }
                    }
                }
            })
            .expect("spawn the committer thread");
        Committer { tx }
    }

    /// Commits one event (with whatever else is waiting) and returns once it is durable.
    /// `format` is what ingest decided `body` is; dispatch reads it as that. `read`, what
    /// `body` parses to, is handed to dispatch once the event is committed.
    pub async fn commit(
        &self,
        key: String,
        kind: &'static str,
        source: &'static str,
        body: String,
        format: BodyFormat,
        read: Option<Arc<ReadEvent>>,
    ) -> Result<Stored, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending {
                key,
                kind,
                source,
                body,
                format,
                read,
                reply,
            })
            .await
            .map_err(|_| "the committer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the committer has stopped".to_owned())?
    }
}
