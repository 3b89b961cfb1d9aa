//! tidings: CI build news, delivered natively, formatted by sandboxed WebAssembly.
//!
//! # Layout
//!
//! - [`buildbot_api`]: a client of a Buildbot master's REST API (and where its `/ws` is).
//! - [`config`]: the TOML configuration, typed and validated (secrets redacted).
//! - [`dispatch`]: which reporters report a build: filters, modes and blamelist, as Buildbot decides.
//! - [`event`]: Buildbot's build dict and result codes (the data every hook receives).
//! - [`interpolate`]: Buildbot's `%(prop:…)s` / `%(kw:…)s` / `%(secret:…)s` option templates.
//! - [`formatter`]: the only module that knows wasmtime — engine, module validation and cache,
//!   the per-call sandbox, and ABI v1 (requests in, checked results out).
//! - [`source`]: where events come from: the HTTP ingest endpoints (HttpStatusPush, the native
//!   envelope) and a master's event stream (`[source.buildbot]`).
//! - [`store`]: SQLite (WAL) store of events, build history, the outbox and the delivery log.
//! - [`testing`]: `tidings test`'s case runner (case files, comparison, diffs).
//!
//! The binary (`src/main.rs`) is a thin CLI over these: `render`, `test`, `run`, `check`.
//! The daemon's pieces (sources, store, dispatch, outbox, reporters) build on this crate.

pub mod buildbot_api;
pub mod config;
pub mod daemon;
pub mod dispatch;
pub mod event;
pub mod formatter;
pub mod interpolate;
pub mod metrics;
pub mod outbox;
pub mod reporters;
pub mod source;
pub mod store;
pub mod testing;
