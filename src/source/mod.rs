//! Event sources: where events come from. Each turns what it receives into
//! [`crate::event::Event`]s and commits them to the store before acknowledging.
//!
//! - [`http`]: the ingest endpoints (`POST /api/v1/buildbot` for HttpStatusPush), plus
//!   `/healthz`.
//!
//! Still to come (see the daemon issue): the native `POST /api/v1/events` envelope and the
//! `[source.buildbot]` client of a master's REST API and WebSocket stream.

pub mod http;
