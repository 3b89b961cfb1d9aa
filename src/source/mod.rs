//! Event sources: where events come from. Each turns what it receives into
//! [`crate::event::Event`]s and commits them to the store before acknowledging.
//!
//! - [`http`]: the ingest endpoints (`POST /api/v1/buildbot` for HttpStatusPush,
//!   `POST /api/v1/events` for the native envelope), plus `/healthz`.
//!
//! - [`buildbot`]: `[source.buildbot]`, a client of a master's WebSocket event stream and REST
//!   API.

pub mod buildbot;
pub mod http;

use crate::event::Event;
use crate::store::Stored;

/// One line at info per event committed, for an operator following the log.
fn log_accepted(event: &Event, source: &str, stored: Stored) {
    if stored.duplicate {
        tracing::info!(id = stored.id, kind = event.kind.name(), source, key = %event.key(), "event already stored: not dispatched again");
    } else {
        tracing::info!(
            id = stored.id,
            kind = event.kind.name(),
            source,
            "event accepted: {}",
            event.describe()
        );
    }
}
