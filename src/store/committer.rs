//! Group commit: one thread takes every event waiting and commits them in one transaction, so
//! durability does not cap ingest throughput. Ingest (HTTP and `[source.buildbot]`) hands each
//! event to [`Committer::commit`] and answers only once it is durable.

use crate::clock::now_ms;
use crate::dispatch::{ReadEvent, ReadEvents};
use crate::event::BodyFormat;
use crate::store::{NewEvent, Store, Stored};
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

    /// [`Committer::start`], handing each new event that ingest parsed to dispatch through
    /// `read` once it is committed, and calling `committed` after each transaction that stored
    /// events (dispatch listens to it).
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
                    let result = store.insert_events(&events, now_ms());
                    match result {
                        Ok(stored) => {
                            if let Some(kept) = &read {
                                for (p, s) in batch.iter_mut().zip(&stored) {
                                    if let (false, Some(r)) = (s.duplicate, p.read.take()) {
                                        kept.hand_over(s.id, r);
                                    }
                                }
                            }
                            if stored.iter().any(|s| !s.duplicate) {
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
