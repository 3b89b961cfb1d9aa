//! `[source.buildbot]`: events from a Buildbot master's WebSocket stream (`/ws`), completed
//! through its REST API.
//!
//! The source subscribes (`startConsuming`) to `builds/*/*`, `buildsets/*/*`,
//! `buildrequests/*/*` and `workers/*/*`, and turns what it hears into native envelopes:
//! builds started and finished (enriched like HttpStatusPush's build dict, so the same build
//! from both is stored once), buildsets completed (with their builds), build requests
//! submitted and cancelled, workers missing and connected. Each is committed to the store like
//! an ingested event; events are handled in the order the master sent them.
//!
//! When the connection drops it reconnects with backoff (1 s doubling to 60 s, with jitter).
//! Every (re)connection first catches up through REST: builds created after the newest one the
//! source has seen, and builds that finished since it last heard from the master, are stored
//! (repeats are absorbed by the store's event keys). On the very first connection to a master
//! the history is not reported: the source only takes its bookmark.
//!
//! `/metrics` counts connections (`tidings_source_connections_total{source="buildbot"}`, after
//! the catch-up) and the events stored (`tidings_events_total{source="buildbot",…}`).

use crate::buildbot_api::{ApiError, BuildbotApi};
use crate::clock::now_ms;
use crate::event::{Build, Buildset, Envelope, Event, EventKind, Worker};
use crate::metrics::Metrics;
use crate::store::Committer;
use crate::store::Store;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The paths the source consumes.
const PATHS: [&str; 4] = [
    "builds/*/*",
    "buildsets/*/*",
    "buildrequests/*/*",
    "workers/*/*",
];

/// How many of the newest builds a catch-up looks at.
const CATCH_UP: usize = 200;

/// The source, ready to run.
pub struct BuildbotStream {
    pub api: BuildbotApi,
    pub committer: Committer,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("REST: {0}")]
    Api(#[from] ApiError),
    #[error("store: {0}")]
    Store(String),
    #[error("the master closed the stream")]
    Closed,
    /// One message could not be used; the stream goes on.
    #[error("{0}")]
    Bad(String),
}

impl BuildbotStream {
    /// Runs until `stop` becomes true, reconnecting as needed.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut delay = Duration::from_secs(1);
        loop {
            let started = std::time::Instant::now();
            let result = tokio::select! {
                r = self.connect_and_follow() => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Err(e) = result;
            if started.elapsed() > Duration::from_secs(60) {
                delay = Duration::from_secs(1);
            }
            let jitter = Duration::from_millis(now_ms().unsigned_abs() % 1000);
            let wait = delay / 2 + (delay / 2).mul_f64(jitter.as_secs_f64());
            tracing::warn!(master = %self.api.base(), error = %e, retry_in = ?wait, "lost the master's event stream; reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    fn cursor_names(&self) -> (String, String) {
        let m = self.api.base();
        (
            format!("source.buildbot {m} buildid"),
            format!("source.buildbot {m} heard_at"),
        )
    }

    /// One connection: subscribe, catch up, then follow the stream until it fails.
    async fn connect_and_follow(&self) -> Result<std::convert::Infallible, StreamError> {
        let url = self.api.buildbot_url().await?;
        let mut request = self.api.ws_url().into_client_request()?;
        if let Some(a) = self.api.authorization() {
            request
                .headers_mut()
                .insert("authorization", a.parse().map_err(|_| StreamError::Closed)?);
        }
        let tls = tokio_tungstenite::Connector::Rustls(self.api.tls());
        let (mut ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(tls))
                .await?;
        for (i, path) in PATHS.iter().enumerate() {
            let cmd = json!({"cmd": "startConsuming", "path": path, "_id": i + 1});
            ws.send(WsMessage::text(cmd.to_string())).await?;
        }
        // Subscribed first, then caught up: nothing falls between the two (repeats are fine).
        self.catch_up(&url).await?;
        self.metrics.source_connected("buildbot");
        tracing::info!(master = %self.api.base(), "following the master's event stream");
        let mut ping = tokio::time::interval(Duration::from_secs(30));
        ping.tick().await;
        loop {
            tokio::select! {
                msg = ws.next() => {
                    let msg = match msg {
                        Some(m) => m?,
                        None => return Err(StreamError::Closed),
                    };
                    let text = match msg {
                        WsMessage::Text(t) => t.to_string(),
                        WsMessage::Close(_) => return Err(StreamError::Closed),
                        _ => continue,
                    };
                    let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                        tracing::warn!(frame = %text.chars().take(200).collect::<String>(), "the master sent a frame that is not JSON; ignored");
                        continue;
                    };
                    if let Some(err) = frame.get("error") {
                        tracing::error!(master = %self.api.base(), error = %err, "the master refused a subscription");
                        continue;
                    }
                    if let (Some(k), Some(m)) = (frame.get("k").and_then(Value::as_str), frame.get("m")) {
                        match self.handle(k, m, &url).await {
                            Err(StreamError::Bad(reason)) => {
                                tracing::warn!(master = %self.api.base(), key = %k, %reason, "an event from the master cannot be read; skipped");
                            }
                            other => other?,
                        }
                    }
                }
                _ = ping.tick() => {
                    ws.send(WsMessage::text(json!({"cmd": "ping", "_id": 0}).to_string())).await?;
                }
            }
        }
    }

    /// Stores the builds missed while away; on the first connection, only takes a bookmark.
    async fn catch_up(&self, url: &str) -> Result<(), StreamError> {
        let (seen_name, heard_name) = self.cursor_names();
        let store = self.store.clone();
        let (first, seen, heard) = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((
                !store.has_cursor(&seen_name)?,
                store.cursor(&seen_name)?,
                store.cursor(&heard_name)?,
            ))
        })
        .await
        .map_err(|e| StreamError::Store(e.to_string()))?
        .map_err(|e| StreamError::Store(e.to_string()))?;
        let recent = self.api.recent_builds(CATCH_UP).await?;
        if first {
            let newest = recent
                .iter()
                .filter_map(|b| b.get("buildid").and_then(Value::as_i64))
                .max()
                .unwrap_or(0);
            self.bookmark(Some(newest)).await?;
            tracing::info!(master = %self.api.base(), newest_build = newest, "first contact with this master: its history is not reported");
            return Ok(());
        }
        let mut missed = 0;
        for b in recent.into_iter().rev() {
            let id = b.get("buildid").and_then(Value::as_i64).unwrap_or(0);
            let complete = b.get("complete").and_then(Value::as_bool) == Some(true);
            let done_at = b.get("complete_at").and_then(Value::as_i64).unwrap_or(0) * 1000;
            let new = id > seen;
            let finished_since = complete && done_at >= heard - 60_000;
            if !(new || finished_since) {
                continue;
            }
            let dict = self.api.build_dict(b, url).await?;
            if new {
                let mut started = dict.clone();
                started["complete"] = false.into();
                started["results"] = Value::Null;
                started["complete_at"] = Value::Null;
                missed += self.store_build(started, EventKind::BuildStarted).await? as usize;
            }
            if complete {
                missed += self.store_build(dict, EventKind::BuildFinished).await? as usize;
            }
        }
        if missed > 0 {
            tracing::info!(master = %self.api.base(), events = missed, "caught up on builds missed while away");
        }
        Ok(())
    }

    /// Records the newest build seen (if given) and that the master was heard from now.
    async fn bookmark(&self, buildid: Option<i64>) -> Result<(), StreamError> {
        let (seen_name, heard_name) = self.cursor_names();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(id) = buildid
                && id > store.cursor(&seen_name)?
            {
                store.set_cursor(&seen_name, id)?;
            }
            store.set_cursor(&heard_name, now_ms())
        })
        .await
        .map_err(|e| StreamError::Store(e.to_string()))?
        .map_err(|e| StreamError::Store(e.to_string()))
    }

    /// Turns one stream message into an event and stores it.
    async fn handle(&self, key: &str, m: &Value, url: &str) -> Result<(), StreamError> {
        let parts: Vec<&str> = key.split('/').collect();
        let (kind, event) = match parts.as_slice() {
            ["builds", _, "new"] => (EventKind::BuildStarted, "new"),
            ["builds", _, "finished"] => (EventKind::BuildFinished, "finished"),
            ["buildsets", _, "complete"] => (EventKind::BuildsetComplete, "complete"),
            ["buildrequests", _, "new"] => (EventKind::BuildrequestNew, "new"),
            ["buildrequests", _, "cancel"] => (EventKind::BuildrequestCancelled, "cancel"),
            ["workers", _, "missing"] => (EventKind::WorkerMissing, "missing"),
            ["workers", _, "connected"] => (EventKind::WorkerConnected, "connected"),
            _ => return Ok(()),
        };
        tracing::debug!(%key, "event from the master's stream");
        match kind {
            EventKind::BuildStarted | EventKind::BuildFinished => {
                let dict = self.api.build_dict(m.clone(), url).await?;
                let id = dict.get("buildid").and_then(Value::as_i64);
                self.store_build(dict, kind).await?;
                self.bookmark(id).await?;
            }
            EventKind::BuildsetComplete => {
                let bsid = m.get("bsid").and_then(Value::as_i64).unwrap_or(0);
                let builds = self.api.buildset_builds(bsid, url).await?;
                let buildset: Buildset = from_value(m.clone(), key)?;
                let builds: Vec<Build> = builds
                    .into_iter()
                    .filter_map(|b| serde_json::from_value(b).ok())
                    .collect();
                self.store_envelope(Envelope {
                    buildset: Some(buildset),
                    builds: Some(builds),
                    ..envelope(kind, url, None)
                })
                .await?;
            }
            EventKind::BuildrequestNew | EventKind::BuildrequestCancelled => {
                let mut dict = self.api.request_dict(m.clone(), url).await?;
                if event == "cancel" {
                    dict["complete"] = true.into();
                    dict["results"] = crate::event::Results::Cancelled.code().into();
                }
                self.store_envelope(Envelope {
                    build: Some(from_value(dict, key)?),
                    ..envelope(kind, url, None)
                })
                .await?;
            }
            EventKind::WorkerMissing | EventKind::WorkerConnected => {
                let worker: Worker = from_value(m.clone(), key)?;
                let id = match kind {
                    EventKind::WorkerMissing => worker.last_connection.clone(),
                    _ => Some(now_ms().to_string()),
                };
                self.store_envelope(Envelope {
                    worker: Some(worker),
                    ..envelope(kind, url, id)
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Stores a build event (a finished build with its changes); returns whether it was new.
    async fn store_build(&self, dict: Value, kind: EventKind) -> Result<bool, StreamError> {
        let mut dict = dict;
        let finished = kind == EventKind::BuildFinished;
        dict["complete"] = finished.into();
        let build: Build = from_value(dict, "build")?;
        let changes = match (finished, build.buildid) {
            (true, Some(id)) => Some(
                self.api
                    .list(&format!("builds/{id}/changes"), "changes")
                    .await?
                    .into_iter()
                    .filter_map(|c| serde_json::from_value(c).ok())
                    .collect(),
            ),
            _ => None,
        };
        let url = crate::event::Event::from_build(build.clone())
            .map(|e| e.master)
            .unwrap_or_default();
        self.store_envelope(Envelope {
            build: Some(build),
            changes,
            ..envelope(kind, &url, None)
        })
        .await
    }

    /// Checks and commits an envelope; returns whether it was new.
    async fn store_envelope(&self, env: Envelope) -> Result<bool, StreamError> {
        let body = serde_json::to_string(&env).expect("an envelope serialises");
        let event = match Event::from_envelope(env) {
            Ok(e) => e,
            Err(reason) => {
                tracing::warn!(master = %self.api.base(), %reason, "an event from the master is incomplete; skipped");
                return Ok(false);
            }
        };
        let format = crate::event::BodyFormat::Envelope;
        let read = Arc::new(crate::dispatch::ReadEvent::new(event, format, &body));
        let event = read.event();
        let stored = self
            .committer
            .commit(
                event.key(),
                event.kind.name(),
                "buildbot",
                body,
                format,
                Some(read.clone()),
            )
            .await
            .map_err(StreamError::Store)?;
        super::log_accepted(event, "buildbot", stored);
        self.metrics
            .event("buildbot", event.kind.name(), stored.duplicate);
        Ok(!stored.duplicate)
    }
}

fn envelope(kind: EventKind, master: &str, id: Option<String>) -> Envelope {
    Envelope {
        schema_version: crate::event::SCHEMA_VERSION,
        kind: kind.name().to_owned(),
        master: Some(master.to_owned()).filter(|m| !m.is_empty()),
        id,
        build: None,
        buildset: None,
        builds: None,
        worker: None,
        changes: None,
    }
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, StreamError> {
    serde_json::from_value(v).map_err(|e| StreamError::Bad(format!("{what}: {e}")))
}
