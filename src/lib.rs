//! tidings: CI build news, delivered natively, formatted by sandboxed WebAssembly.
//!
//! # Layout
//!
//! - [`buildbot_api`]: a client of a Buildbot master's REST API (and where its `/ws` is).
//! - [`clock`]: now, in Unix milliseconds.
//! - [`config`]: the configuration's skeleton and shared types, typed and validated (secrets
//!   redacted); reporters' tables come through the registry in [`reporters`].
//! - [`daemon`]: `tidings serve`: ingest, dispatch, outbox workers, reporters' services, signals.
//! - [`dispatch`]: which reporters report a build: filters, modes and blamelist, as Buildbot decides.
//! - [`event`]: Buildbot's build dict and result codes (the data every hook receives).
//! - [`interpolate`]: Buildbot's `%(prop:…)s` / `%(kw:…)s` / `%(secret:…)s` option templates.
//! - [`formatter`]: the only module that knows wasmtime — engine, module validation and cache,
//!   the per-call sandbox, and ABI v1 (requests in, checked results out).
//! - [`history`]: the build-history record and what a followed master can tell dispatch.
//! - [`metrics`]: typed Prometheus metrics (`GET /metrics`).
//! - [`outbox`]: delivery workers, retry classes, backoff, dead letters; the `Sink` trait.
//! - [`reporters`]: the `Reporter` trait, THE registry of kinds, what HTTP sinks share, and one
//!   folder per kind (`http_push`, `mail`).
//! - [`source`]: where events come from: the HTTP ingest endpoints (HttpStatusPush, the native
//!   envelope) and a master's event stream (`[source.buildbot]`).
//! - [`store`]: SQLite (WAL) store of events, build history, the outbox and the delivery log;
//!   the group committer.
//! - [`testing`]: `tidings test`'s case runner (case files, comparison, diffs).
//! - [`tls`]: the one TLS client configuration every client shares (SMTP, HTTP sinks, the
//!   master's API and stream): CA files, pinned self-signed servers, failures in plain words.
//!
//! The binary (`src/main.rs`) is a thin CLI over these: `serve`, `outbox`, `render`, `test`,
//! `run`, `check`.

pub mod buildbot_api;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dispatch;
pub mod event;
pub mod formatter;
pub mod history;
pub mod interpolate;
pub mod metrics;
pub mod outbox;
pub mod project;
pub mod reporters;
pub mod source;
pub mod store;
pub mod testing;
pub mod tls;
