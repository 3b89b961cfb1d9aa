//! The store: events, build history, the outbox and the delivery log, in SQLite (WAL mode).
//!
//! The interface is narrow on purpose (insert events, record builds, look up the previous build,
//! enqueue/claim/finish deliveries, inspect the outbox) so that a PostgreSQL backend can be
//! added without touching its callers. Times are Unix milliseconds passed in by the caller, which
//! keeps retry scheduling testable.
//!
//! Guarantees:
//! - an event is stored once per key (master, build, phase), whichever source sent it;
//! - a delivery is enqueued once per idempotency key (event + reporter + destination);
//! - a batch of inserts is one transaction (the caller groups concurrent ingests into it), and
//!   it is durable when the call returns (`synchronous = NORMAL` in WAL mode survives a process
//!   crash; [`Durability::Full`] also a power cut);
//! - one process per data directory: a second [`Store::open`] on it is refused;
//! - bounded ([`retention`](Retention)): old delivered rows and dispatched events are deleted in
//!   small batches, the WAL is checkpointed, and `max_store_size` counts database and WAL.
//!
//! Callers: the ingest sources (events), dispatch (builds, deliveries), the outbox workers
//! (claim, finish), and `tidings outbox` (list, show, retry, drop).

mod checkpointer;
mod committer;
mod inspect;
mod retention;

pub use crate::history::BuildRecord;
pub use committer::Committer;
pub use inspect::EventQuery;
pub use retention::{Pruned, Retention};

use crate::event::BodyFormat;
use rusqlite::{Connection, OptionalExtension, params};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Events dispatch could not read (a bug, a downgrade), kept to be tried again after an
/// upgrade: never silently passed over.
macro_rules! unreadable_table {
    () => {
        "
CREATE TABLE unreadable (
    event_id INTEGER PRIMARY KEY REFERENCES events (id),
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL
);
"
    };
}

/// The schema version this code writes (SQLite's `user_version`).
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = concat!(
    "
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    source      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL,
    format      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE builds (
    master       TEXT NOT NULL,
    buildid      INTEGER NOT NULL,
    builderid    INTEGER NOT NULL,
    number       INTEGER NOT NULL,
    complete     INTEGER NOT NULL,
    results      INTEGER,
    body         TEXT NOT NULL,
    event_id     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (master, buildid)
);
CREATE INDEX builds_by_builder_event ON builds (master, builderid, number, event_id);
CREATE INDEX builds_by_event ON builds (event_id) WHERE body = '';
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    event_id        INTEGER NOT NULL REFERENCES events (id),
    reporter        TEXT NOT NULL,
    destination     TEXT NOT NULL,
    order_key       TEXT,
    payload         TEXT NOT NULL,
    explanation     TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    blocked         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_order ON outbox (reporter, order_key, state)
    WHERE state IN ('pending', 'inflight');
CREATE TABLE delivery_log (
    id        INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL REFERENCES outbox (id),
    attempt   INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    result    TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE bot_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
",
    unreadable_table!()
);

/// The columns [`build_record`] reads, of a query on `builds`: a row with an empty body has
/// the body of the event that wrote it (see [`BuildRecord::body`]).
macro_rules! build_columns {
    () => {
        "master, buildid, builderid, number, complete, results,
         CASE WHEN body = '' THEN COALESCE((SELECT e.body FROM events e WHERE e.id = builds.event_id), '')
              ELSE body END,
         event_id"
    };
}

/// Where the previous build of build ?3 of builder ?2 of master ?1 is, as of event ?5 (?4:
/// RETRY, which is never a previous build).
macro_rules! previous_build_where {
    () => {
        " WHERE master = ?1 AND builderid = ?2 AND number < ?3 AND event_id < ?5
            AND complete = 1 AND results IS NOT NULL AND results != ?4
          ORDER BY number DESC LIMIT 1"
    };
}

/// A read transaction on the store's reader connection ([`Store::snapshot`]); ends when
/// dropped.
pub struct Snapshot<'a> {
    conn: std::sync::MutexGuard<'a, Connection>,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // Only reads were made: ending the transaction cannot lose anything.
        let _ = self.conn.execute_batch("COMMIT");
    }
}

impl Snapshot<'_> {
    /// Events stored after event `after`, oldest first, at most `limit`.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT id, key, kind, source, body, format, received_at FROM events
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = q.query_map(params![after, limit as i64], stored_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Events stored after event `after` up to event `upto` (included), oldest first, at most
    /// `limit`, without their bodies: each event's `body` is empty and its `format` `None`
    /// until [`Snapshot::read_body`] reads them. For dispatch, which has most
    /// events parsed already (by ingest, or by the history step for the lanes): a body spills
    /// into an overflow page, read again for nothing otherwise.
    pub fn event_heads_between(
        &self,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT id, key, kind, source, received_at FROM events
             WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = q.query_map(params![after, upto, limit as i64], |r| {
            Ok(StoredEvent {
                id: r.get(0)?,
                key: r.get(1)?,
                kind: r.get(2)?,
                source: r.get(3)?,
                body: String::new(),
                format: None,
                received_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Reads the body and format of `ev`, from [`Snapshot::event_heads_between`].
    pub fn read_body(&self, ev: &mut StoredEvent) -> Result<(), StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT body, format FROM events WHERE id = ?1")?;
        let (body, format) = q.query_row([ev.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        ev.body = body;
        ev.format = BodyFormat::parse(&format);
        Ok(())
    }

    /// [`Store::previous_build`] as the history stood when event `event` was dispatched: rows
    /// written by that event or a later one are passed over. (A row holds a build's latest
    /// version; a build finished after `event` was not finished then, so passing over its row
    /// loses nothing a previous build could be.)
    pub fn previous_build_before(
        &self,
        master: &str,
        builderid: i64,
        number: i64,
        event: i64,
    ) -> Result<Option<BuildRecord>, StoreError> {
        self.previous_build_as_of(master, builderid, number, event, true)
    }

    /// [`Snapshot::previous_build_before`], with the build's body only when `with_body` (else
    /// `body` is empty): the body is the larger part of the row, and most reporters' modes
    /// need only the result.
    pub fn previous_build_as_of(
        &self,
        master: &str,
        builderid: i64,
        number: i64,
        event: i64,
        with_body: bool,
    ) -> Result<Option<BuildRecord>, StoreError> {
        let mut q = if with_body {
            self.conn.prepare_cached(concat!(
                "SELECT ",
                build_columns!(),
                " FROM builds",
                previous_build_where!()
            ))?
        } else {
            self.conn.prepare_cached(concat!(
                "SELECT master, buildid, builderid, number, complete, results, '', event_id
                 FROM builds",
                previous_build_where!()
            ))?
        };
        Ok(q.query_row(
            params![master, builderid, number, RETRY, event],
            build_record,
        )
        .optional()?)
    }
}

/// A `builds` row selected as [`build_columns`].
fn build_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<BuildRecord> {
    Ok(BuildRecord {
        master: r.get(0)?,
        buildid: r.get(1)?,
        builderid: r.get(2)?,
        number: r.get(3)?,
        complete: r.get(4)?,
        results: r.get(5)?,
        body: r.get(6)?,
        event_id: r.get(7)?,
    })
}

/// An `outbox` row selected as `id, key, event_id, reporter, destination, order_key, payload,
/// explanation, state, attempts, next_attempt_at, last_error, created_at`.
fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        key: r.get(1)?,
        event_id: r.get(2)?,
        reporter: r.get(3)?,
        destination: r.get(4)?,
        order_key: r.get(5)?,
        payload: r.get(6)?,
        explanation: r.get(7)?,
        state: State::parse(&r.get::<_, String>(8)?),
        attempts: r.get(9)?,
        next_attempt_at: r.get(10)?,
        last_error: r.get(11)?,
        created_at: r.get(12)?,
    })
}

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error("another tidings process is using the data directory {0} (its lock file is held)")]
    Locked(PathBuf),
    /// The data directory or its lock file could not be created or opened.
    #[error("cannot use the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The database was written by a newer tidings.
    #[error("the database has schema version {found}; this tidings knows up to {SCHEMA_VERSION}")]
    Schema { found: i64 },
    /// SQLite failed (disk full, corruption, …).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// `max_store_size` is reached: new events are refused until retention frees room.
    #[error("{0}")]
    Full(String),
    /// A delivery id that does not exist.
    #[error("no delivery with id {0}")]
    NoSuchDelivery(i64),
    /// A delivery whose state does not allow what was asked (retry a delivered one, …).
    #[error("delivery {id} is {}: {why}", .state.as_str())]
    WrongState {
        id: i64,
        state: State,
        why: &'static str,
    },
    /// A cursor was not where its mover last saw it: something else moved it meanwhile (the
    /// history step's cursor, which ingest moves when it records the history itself).
    #[error("cursor {name} moved from {expected} to {found} meanwhile")]
    CursorMoved {
        name: String,
        expected: i64,
        found: i64,
    },
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives a crash of the process (`synchronous = NORMAL` in WAL mode).
    #[default]
    Normal,
    /// Also survives a power cut (`synchronous = FULL`).
    Full,
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// The same event from any source has the same key: master, build id, phase.
    pub key: &'a str,
    /// `build_started`, `build_finished`, …
    pub kind: &'a str,
    /// Which source sent it: `http`, `buildbot`, …
    pub source: &'a str,
    /// The event as JSON.
    pub body: &'a str,
    /// What `body` is, as ingest decided: dispatch reads it as that, never guesses again.
    pub format: BodyFormat,
}

/// The outcome of an insert: the row's id, and whether it was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    pub duplicate: bool,
}

/// What [`Store::insert_events_recording`] needs to run the history step in ingest's
/// transaction: the history step's cursor, and what gives the build rows of the events just
/// stored (`None` when it cannot give them all).
pub type RecordHistory<'a> = (&'a str, &'a dyn Fn(&[Stored]) -> Option<Vec<BuildRecord>>);

/// A stored event, as dispatch reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub key: String,
    pub kind: String,
    pub source: String,
    pub body: String,
    /// What the body is, as ingest decided; `None` for rows stored before it was recorded.
    pub format: Option<BodyFormat>,
    /// When it was stored (Unix ms). Dispatch renders with this time (a mail's `Date`), so
    /// rendering an event again gives the same payloads.
    pub received_at: i64,
}

/// A row of `SELECT id, key, kind, source, body, format, received_at FROM events`.
fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: r.get(2)?,
        source: r.get(3)?,
        body: r.get(4)?,
        format: BodyFormat::parse(&r.get::<_, String>(5)?),
        received_at: r.get(6)?,
    })
}

/// One line of `tidings outbox list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: i64,
    pub reporter: String,
    pub destination: String,
    pub state: State,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    /// Whether the built-in message was sent because the formatter failed (DEGRADED).
    pub degraded: bool,
}

/// Buildbot's RETRY result code.
const RETRY: i64 = 5;

/// A delivery to enqueue.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// Event + reporter + destination: the outbox refuses a second row with the same key.
    pub key: &'a str,
    pub event_id: i64,
    pub reporter: &'a str,
    pub destination: &'a str,
    /// Deliveries with the same order key (a build request) go out one after another.
    pub order_key: Option<&'a str>,
    /// The rendered message, ready to send.
    pub payload: &'a str,
    /// Which reporter, mode and filter produced it, for `tidings outbox show`.
    pub explanation: &'a str,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    InFlight,
    Delivered,
    Dead,
}

impl State {
    /// The state as stored and shown: `pending`, `inflight`, `delivered`, `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::InFlight => "inflight",
            State::Delivered => "delivered",
            State::Dead => "dead",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "inflight" => State::InFlight,
            "delivered" => State::Delivered,
            "dead" => State::Dead,
            _ => State::Pending,
        }
    }
}

/// A row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub key: String,
    pub event_id: i64,
    pub reporter: String,
    pub destination: String,
    pub order_key: Option<String>,
    pub payload: String,
    pub explanation: String,
    pub state: State,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    /// When it was enqueued (ms): `max_age` counts from here.
    pub created_at: i64,
}

/// How an attempt ended, as a sink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        detail: String,
    },
    /// Try again at `at` (ms).
    Retry {
        at: i64,
        error: String,
    },
    /// Give up: the dead-letter state, with the reason.
    Dead {
        error: String,
    },
}

/// How one attempt of a delivery ended, for [`Store::finish_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The delivery's id.
    pub id: i64,
    pub outcome: Outcome,
    /// When the attempt ended (ms).
    pub at: i64,
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub attempt: i64,
    pub at: i64,
    pub result: String,
    pub detail: String,
}

/// The store of one data directory.
pub struct Store {
    conn: Mutex<Connection>,
    /// A second connection for dispatch's reads (the events to dispatch, previous builds):
    /// in WAL mode they neither wait for the writers (ingest, the outbox workers) nor hold
    /// them up.
    read: Mutex<Connection>,
    /// The data directory (the database's and its WAL's sizes are read from there).
    dir: PathBuf,
    /// `max_store_size` in bytes, database and WAL together; 0 when there is none.
    limit: std::sync::atomic::AtomicU64,
    /// Why the last event insert failed for want of room, until one succeeds or retention
    /// frees rows (`/healthz` reports it).
    refused: Mutex<Option<String>>,
    // Held for the store's life: the OS releases it when the process dies, even by kill -9.
    // `None` for a shared handle (`tidings outbox` beside a running daemon).
    _lock: Option<File>,
    /// Runs the WAL checkpoints of `conn`'s writes on a thread of its own; `None` for a shared
    /// handle (whose few writes checkpoint as SQLite does by default), or when the thread could
    /// not start.
    _checkpointer: Option<checkpointer::Checkpointer>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, and locks the directory for this process.
    pub fn open(dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = File::create(dir.join("tidings.lock")).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(dir.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut conn = Self::connect(dir, durability, true)?;
        let checkpointer =
            checkpointer::Checkpointer::start(&mut conn, Self::connect(dir, durability, false)?)?;
        Ok(Store {
            conn: Mutex::new(conn),
            read: Mutex::new(Self::connect(dir, durability, false)?),
            dir: dir.to_owned(),
            limit: Default::default(),
            refused: Mutex::default(),
            _lock: Some(lock),
            _checkpointer: checkpointer,
        })
    }

    /// Opens the existing store in `dir` beside the process that holds it (a running `serve`),
    /// without taking the lock: for `tidings outbox`, whose reads and small writes SQLite's
    /// WAL mode lets run alongside the daemon.
    pub fn open_shared(dir: &Path) -> Result<Store, StoreError> {
        if !dir.join("tidings.db").exists() {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no tidings.db here (has `tidings serve` run with this data_dir? pass the daemon's --config)",
                ),
            });
        }
        Ok(Store {
            conn: Mutex::new(Self::connect(dir, Durability::Normal, false)?),
            read: Mutex::new(Self::connect(dir, Durability::Normal, false)?),
            dir: dir.to_owned(),
            limit: Default::default(),
            refused: Mutex::default(),
            _lock: None,
            _checkpointer: None,
        })
    }

    fn connect(dir: &Path, durability: Durability, create: bool) -> Result<Connection, StoreError> {
        let conn = Connection::open(dir.join("tidings.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Plans that do not depend on the values bound: without this, a statement whose
        // parameter meets an indexed column or a LIMIT is compiled again at every step after a
        // new binding (the bundled SQLite has STAT4), which was a fifth of dispatch's and the
        // outbox's time. Every query here has one good plan through its index.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Normal => "NORMAL",
                Durability::Full => "FULL",
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version == 0 && create {
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            version = SCHEMA_VERSION;
        }
        while (1..SCHEMA_VERSION).contains(&version) {
            match version {
                1 => {
                    // Version 2 records the form ingest decided for each event, and keeps the
                    // events dispatch could not read. Rows from version 1 have no form ('').
                    conn.execute_batch(concat!(
                        "BEGIN;
                         ALTER TABLE events ADD COLUMN format TEXT NOT NULL DEFAULT '';",
                        unreadable_table!(),
                        "PRAGMA user_version = 2;
                         COMMIT;"
                    ))?;
                }
                2 => {
                    // Version 3 marks the deliveries waiting behind an earlier one of their
                    // order key (`blocked`), so claiming reads only the heads of the queues.
                    conn.execute_batch(
                        "BEGIN;
                         ALTER TABLE outbox ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
                         UPDATE outbox SET blocked = 1
                         WHERE state IN ('pending', 'inflight') AND order_key IS NOT NULL
                           AND id != (SELECT MIN(p.id) FROM outbox p
                                      WHERE p.reporter = outbox.reporter
                                        AND p.order_key = outbox.order_key
                                        AND p.state IN ('pending', 'inflight'));
                         PRAGMA user_version = 3;
                         COMMIT;",
                    )?;
                }
                3 => {
                    // Version 4 notes which event wrote each build's row, so that dispatch's
                    // lanes (one per reporter, each at its own place in the event log) see
                    // the history as of their event. Older rows count as written before every
                    // event.
                    conn.execute_batch(
                        "BEGIN;
                         ALTER TABLE builds ADD COLUMN event_id INTEGER NOT NULL DEFAULT 0;
                         PRAGMA user_version = 4;
                         COMMIT;",
                    )?;
                }
                _ => {
                    // Version 5 lets a build's row leave its body to the event that wrote it
                    // (`body` empty: the event's body is the build dict as received), so a
                    // build is written once, not twice; retention keeps such an event while
                    // its row is kept, found through `builds_by_event`. Older rows keep
                    // their bodies. And it drops `outbox_due`, which no query has used since
                    // claiming reads `outbox_heads`, and which every change of a delivery's
                    // state updated; `outbox_heads` and `outbox_order` keep only the
                    // deliveries their queries look for (pending; pending and in flight), so
                    // they stay as small as the queues, however many delivered rows
                    // retention keeps, and finishing a delivery touches fewer entries.
                    conn.execute_batch(
                        "BEGIN;
                         CREATE INDEX builds_by_event ON builds (event_id) WHERE body = '';
                         DROP INDEX IF EXISTS outbox_due;
                         DROP INDEX IF EXISTS outbox_heads;
                         DROP INDEX IF EXISTS outbox_order;
                         CREATE INDEX outbox_order ON outbox (reporter, order_key, state)
                             WHERE state IN ('pending', 'inflight');
                         PRAGMA user_version = 5;
                         COMMIT;",
                    )?;
                }
            }
            version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        }
        match version {
            SCHEMA_VERSION => {}
            found => return Err(StoreError::Schema { found }),
        }
        if create {
            // What retention's deletes look rows up by (added without a version change: an
            // older tidings reads a store with them as before). `builds_by_builder_event`
            // replaced `builds_by_builder`: its entries carry `event_id` too, so the history
            // is pruned and looked up as of an event without reading builds' bodies.
            conn.execute_batch(
                "CREATE INDEX IF NOT EXISTS outbox_event ON outbox (event_id);
                 CREATE INDEX IF NOT EXISTS outbox_state_at ON outbox (state, next_attempt_at);
                 CREATE INDEX IF NOT EXISTS delivery_log_outbox ON delivery_log (outbox_id);
                 CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
                 CREATE INDEX IF NOT EXISTS outbox_heads
                     ON outbox (reporter, blocked, next_attempt_at) WHERE state = 'pending';
                 CREATE INDEX IF NOT EXISTS builds_by_builder_event
                     ON builds (master, builderid, number, event_id);
                 DROP INDEX IF EXISTS builds_by_builder;",
            )?;
        }
        Ok(conn)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection for reads that must not queue behind the writers. It sees what has been
    /// committed, as of each statement.
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `events` in one transaction; a key already stored (or repeated in the batch) is
    /// reported as a duplicate with the first row's id. Durable when this returns.
    pub fn insert_events(
        &self,
        events: &[NewEvent<'_>],
        now: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        self.insert_events_recording(events, now, None)
            .map(|(stored, _)| stored)
    }

    /// [`Store::insert_events`], and the history step for them in the same transaction when
    /// it can: when cursor `history.0` has passed every event stored before these, and
    /// `history.1` gives the build rows of the new ones (`None`: it cannot, e.g. an event it
    /// has not read), the rows are recorded and the cursor moved to the last new event.
    /// Returns whether it did; when not, the history step records them later, as ever.
    pub fn insert_events_recording(
        &self,
        events: &[NewEvent<'_>],
        now: i64,
        history: Option<RecordHistory<'_>>,
    ) -> Result<(Vec<Stored>, bool), StoreError> {
        if let Some(why) = self.over_limit()? {
            return Err(StoreError::Full(why));
        }
        let result = (|| -> Result<(Vec<Stored>, bool), StoreError> {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            // Before the insert: whether the history step has passed every event stored so far
            // (ids only grow, retention keeping the newest event).
            let caught_up = match &history {
                Some((cursor, _)) => {
                    let at = Self::cursor_in(&tx, cursor)?;
                    let top: Option<i64> = tx
                        .prepare_cached("SELECT MAX(id) FROM events")?
                        .query_row([], |r| r.get(0))?;
                    top.is_none_or(|top| at >= top)
                }
                None => false,
            };
            let stored = Self::insert_once_in(
                &tx,
                "events",
                "INSERT INTO events (key, kind, source, received_at, body, format)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (key) DO NOTHING",
                events,
                |e| e.key,
                |insert, e| {
                    insert.execute(params![
                        e.key,
                        e.kind,
                        e.source,
                        now,
                        e.body,
                        e.format.as_str()
                    ])
                },
            )?;
            let last = stored.iter().filter(|s| !s.duplicate).map(|s| s.id).max();
            let mut recorded = false;
            if caught_up
                && let (Some((cursor, record)), Some(last)) = (history, last)
                && let Some(builds) = record(&stored)
            {
                Self::record_builds_in(&tx, &builds)?;
                Self::set_cursor_in(&tx, cursor, last)?;
                recorded = true;
            }
            tx.commit()?;
            Ok((stored, recorded))
        })();
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => *refused = None,
            Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::DiskFull =>
            {
                *refused = Some(
                    "the store is full: the last event could not be stored (database or disk \
                     is full)"
                        .to_owned(),
                );
            }
            Err(_) => {}
        }
        result
    }

    fn insert_once_in<R>(
        conn: &Connection,
        table: &str,
        insert: &str,
        rows: &[R],
        key: impl Fn(&R) -> &str,
        execute: impl Fn(&mut rusqlite::CachedStatement<'_>, &R) -> rusqlite::Result<usize>,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        let mut insert = conn.prepare_cached(insert)?;
        let mut find = conn.prepare_cached(&format!("SELECT id FROM {table} WHERE key = ?1"))?;
        for row in rows {
            let added = execute(&mut insert, row)?;
            let id: i64 = find.query_row([key(row)], |r| r.get(0))?;
            out.push(Stored {
                id,
                duplicate: added == 0,
            });
        }
        Ok(out)
    }

    /// The body of event `id`.
    pub fn event_body(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT body FROM events WHERE id = ?1", [id], |r| r.get(0))
            .optional()?)
    }

    /// How many events are stored.
    pub fn event_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    }

    /// Records (or updates) a build in the history.
    pub fn record_build(&self, b: &BuildRecord) -> Result<(), StoreError> {
        Self::record_builds_in(&self.conn(), std::slice::from_ref(b))
    }

    fn record_builds_in(conn: &Connection, builds: &[BuildRecord]) -> Result<(), StoreError> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO builds
               (master, buildid, builderid, number, complete, results, body, event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (master, buildid) DO UPDATE SET
               complete = excluded.complete, results = excluded.results, body = excluded.body,
               event_id = excluded.event_id",
        )?;
        for b in builds {
            insert.execute(params![
                b.master,
                b.buildid,
                b.builderid,
                b.number,
                b.complete,
                b.results,
                b.body,
                b.event_id
            ])?;
        }
        Ok(())
    }

    /// The previous build of build `number` on a builder: the highest-numbered *finished* build
    /// below it whose result is not RETRY. Unlike Buildbot (bug #9067), a build still running
    /// is never the previous one.
    pub fn previous_build(
        &self,
        master: &str,
        builderid: i64,
        number: i64,
    ) -> Result<Option<BuildRecord>, StoreError> {
        self.snapshot()?
            .previous_build_before(master, builderid, number, i64::MAX)
    }

    /// A consistent view of what has been committed, for a run of reads (one dispatch batch):
    /// one read transaction on the reader connection, which neither waits for the writers nor
    /// holds them up, and whose page cache stays valid for the whole run (SQLite drops a
    /// connection's cache at each new read transaction after another connection wrote).
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        let conn = self.reader();
        conn.execute_batch("BEGIN")?;
        Ok(Snapshot { conn })
    }

    /// Enqueues deliveries in one transaction, due at `now`. A key already in the outbox is
    /// reported as a duplicate and not enqueued again: a re-sent event does not re-notify.
    pub fn enqueue(
        &self,
        deliveries: &[NewDelivery<'_>],
        now: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let out = Self::enqueue_in(&tx, deliveries, now)?;
        tx.commit()?;
        Ok(out)
    }

    fn enqueue_in(
        conn: &Connection,
        deliveries: &[NewDelivery<'_>],
        now: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        Self::insert_once_in(
            conn,
            "outbox",
            // Behind an unfinished delivery of the same order key, a new one waits (blocked)
            // until that one is done ([`Store::unblock_next`]).
            "INSERT INTO outbox (key, event_id, reporter, destination, order_key, payload,
                                 explanation, state, created_at, next_attempt_at, blocked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8,
                     ?5 IS NOT NULL AND EXISTS (
                         SELECT 1 FROM outbox p WHERE p.reporter = ?3 AND p.order_key = ?5
                           AND p.state IN ('pending', 'inflight')))
             ON CONFLICT (key) DO NOTHING",
            deliveries,
            |d| d.key,
            |insert, d| {
                insert.execute(params![
                    d.key,
                    d.event_id,
                    d.reporter,
                    d.destination,
                    d.order_key,
                    d.payload,
                    d.explanation,
                    now
                ])
            },
        )
    }

    /// Claims up to `limit` of `reporter`'s deliveries that are due at `now`, marking them in
    /// flight and counting the attempt. Of deliveries sharing an order key, only the oldest
    /// unfinished one is ever claimed, so they go out in order; others go concurrently.
    pub fn claim_due(
        &self,
        reporter: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.claim(reporter, now, limit)?.0)
    }

    /// [`Store::claim_due`], and when the next of `reporter`'s deliveries that could be
    /// claimed now falls due (ms), if any: one transaction per wake-up of an outbox worker.
    /// Deliveries waiting behind an unfinished one of their order key are not counted: their
    /// turn comes when that one finishes.
    pub fn claim(
        &self,
        reporter: &str,
        now: i64,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<i64>), StoreError> {
        self.finish_and_claim(&[], reporter, now, limit)
    }

    /// Records `finished` ([`Store::finish_many`]), then claims as [`Store::claim`] does, in
    /// one transaction: an outbox worker's bookkeeping for one wake-up. A delivery that
    /// finished at the head of its order key's queue lets the next one of the queue be claimed
    /// in the same transaction. Nothing is recorded or claimed if it fails.
    pub fn finish_and_claim(
        &self,
        finished: &[Finished],
        reporter: &str,
        now: i64,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<i64>), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        Self::finish_in(&tx, finished)?;
        if limit == 0 {
            tx.commit()?;
            return Ok((Vec::new(), None));
        }
        let mut out: Vec<Delivery> = {
            // Only the heads of the order-key queues (not blocked) are read: claiming costs
            // the due heads, however long one queue is.
            let mut q = tx.prepare_cached(
                "UPDATE outbox SET state = 'inflight', attempts = attempts + 1
                 WHERE id IN (SELECT id FROM outbox
                              WHERE reporter = ?1 AND state = 'pending' AND blocked = 0
                                AND next_attempt_at <= ?2
                              ORDER BY id LIMIT ?3)
                 RETURNING id, key, event_id, reporter, destination, order_key, payload,
                           explanation, state, attempts, next_attempt_at, last_error, created_at",
            )?;
            q.query_map(params![reporter, now, limit as i64], delivery_row)?
                .collect::<Result<_, _>>()?
        };
        let next: Option<i64> = tx
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM outbox
                 WHERE reporter = ?1 AND state = 'pending' AND blocked = 0",
            )?
            .query_row([reporter], |r| r.get(0))?;
        tx.commit()?;
        // RETURNING gives no order: oldest first, as claimed.
        out.sort_unstable_by_key(|d| d.id);
        Ok((out, next))
    }

    /// Records how an attempt of delivery `id` ended, and logs it. The state changes only while
    /// the delivery is still in flight: if it was dropped or retried by hand meanwhile, that
    /// decision stands and the attempt is only logged. A row no longer there is skipped.
    pub fn finish(&self, id: i64, outcome: &Outcome, now: i64) -> Result<(), StoreError> {
        self.finish_many(&[Finished {
            id,
            outcome: outcome.clone(),
            at: now,
        }])
    }

    /// Records many attempts' ends (as [`Store::finish`], in order) in one transaction: the
    /// outbox workers record what finished since their last write at once. A delivery that is
    /// no longer in the outbox (deleted meanwhile) has nothing to record and is skipped.
    pub fn finish_many(&self, finished: &[Finished]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        Self::finish_in(&tx, finished)?;
        tx.commit()?;
        Ok(())
    }

    fn finish_in(tx: &Connection, finished: &[Finished]) -> Result<(), StoreError> {
        {
            let mut attempts = tx.prepare_cached("SELECT attempts FROM outbox WHERE id = ?1")?;
            let mut update = tx.prepare_cached(
                "UPDATE outbox SET state = ?2, next_attempt_at = ?3,
                                   last_error = COALESCE(?4, last_error)
                 WHERE id = ?1 AND state = 'inflight'",
            )?;
            let mut log = tx.prepare_cached(
                "INSERT INTO delivery_log (outbox_id, attempt, at, result, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for f in finished {
                let id = f.id;
                let Some(attempt): Option<i64> =
                    attempts.query_row([id], |r| r.get(0)).optional()?
                else {
                    continue;
                };
                let now = f.at;
                let (state, next, error, result, detail) = match &f.outcome {
                    Outcome::Delivered { detail } => {
                        (State::Delivered, now, None, "delivered", detail)
                    }
                    Outcome::Retry { at, error } => {
                        (State::Pending, *at, Some(error), "retry", error)
                    }
                    Outcome::Dead { error } => (State::Dead, now, Some(error), "dead", error),
                };
                update.execute(params![id, state.as_str(), next, error])?;
                if state != State::Pending {
                    Self::unblock_next(tx, id)?;
                }
                log.execute(params![id, attempt, now, result, detail])?;
            }
        }
        Ok(())
    }

    /// After a restart: deliveries that were in flight when the process stopped are pending
    /// again (at-least-once). Returns how many.
    pub fn recover_in_flight(&self) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE outbox SET state = 'pending' WHERE state = 'inflight'",
            [],
        )?)
    }

    /// After delivery `id` left its queue (delivered, dead, dropped): the oldest unfinished
    /// delivery of its order key, if any, is its queue's head now.
    fn unblock_next(conn: &Connection, id: i64) -> Result<(), StoreError> {
        conn.prepare_cached(
            "UPDATE outbox SET blocked = 0 WHERE id = (
                 SELECT MIN(p.id) FROM outbox p, outbox o
                 WHERE o.id = ?1 AND p.reporter = o.reporter AND p.order_key = o.order_key
                   AND p.state IN ('pending', 'inflight'))",
        )?
        .execute([id])?;
        Ok(())
    }

    /// Delivery `id`.
    pub fn delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        Self::delivery_in(&self.conn(), id)
    }

    fn delivery_in(conn: &Connection, id: i64) -> Result<Option<Delivery>, StoreError> {
        Ok(conn
            .query_row(
                "SELECT id, key, event_id, reporter, destination, order_key, payload, explanation,
                        state, attempts, next_attempt_at, last_error, created_at
                 FROM outbox WHERE id = ?1",
                [id],
                delivery_row,
            )
            .optional()?)
    }

    /// The delivery log of delivery `id`, oldest first.
    pub fn log(&self, id: i64) -> Result<Vec<LogEntry>, StoreError> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT attempt, at, result, detail FROM delivery_log WHERE outbox_id = ?1 ORDER BY id",
        )?;
        let rows = q.query_map([id], |r| {
            Ok(LogEntry {
                attempt: r.get(0)?,
                at: r.get(1)?,
                result: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many deliveries are in each state, for `/metrics` and `tidings outbox list`.
    pub fn counts(&self) -> Result<Vec<(State, i64)>, StoreError> {
        let conn = self.conn();
        let mut q = conn
            .prepare_cached("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")?;
        let rows = q.query_map([], |r| {
            Ok((State::parse(&r.get::<_, String>(0)?), r.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `tidings outbox retry ID`: a dead or pending delivery becomes due now, with a fresh
    /// budget of attempts and age (the log keeps the earlier attempts and notes the retry).
    pub fn retry(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, attempts = 0, created_at = ?2
             WHERE id = ?1 AND state IN ('pending', 'dead')",
            params![id, now],
        )?;
        if n == 0 {
            return Err(Self::refusal(
                &tx,
                id,
                "only a pending or dead delivery can be retried",
            )?);
        }
        // Back in its queue, in its place: it waits behind an older unfinished delivery of its
        // order key, and newer ones wait behind it.
        tx.execute(
            "UPDATE outbox SET blocked = EXISTS (
                 SELECT 1 FROM outbox p WHERE p.reporter = outbox.reporter
                   AND p.order_key = outbox.order_key AND p.state IN ('pending', 'inflight')
                   AND p.id < outbox.id)
             WHERE id = ?1",
            [id],
        )?;
        tx.execute(
            "UPDATE outbox SET blocked = 1
             WHERE id > ?1 AND state IN ('pending', 'inflight')
               AND (reporter, order_key) = (SELECT reporter, order_key FROM outbox WHERE id = ?1)",
            [id],
        )?;
        tx.execute(
            "INSERT INTO delivery_log (outbox_id, attempt, at, result, detail)
             VALUES (?1, 0, ?2, 'requeued', 'retry requested by hand')",
            params![id, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Events stored after event `after`, oldest first, at most `limit`.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.snapshot()?.events_after(after, limit)
    }

    /// The events dispatch could not read, oldest first, with the reason.
    pub fn unreadable(&self) -> Result<Vec<(StoredEvent, String)>, StoreError> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT e.id, e.key, e.kind, e.source, e.body, e.format, e.received_at, u.reason
             FROM unreadable u JOIN events e ON e.id = u.event_id ORDER BY e.id",
        )?;
        let rows = q.query_map([], |r| Ok((stored_event(r)?, r.get::<_, String>(7)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many stored events dispatch could not read.
    pub fn unreadable_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM unreadable", [], |r| r.get(0))?)
    }

    /// Dispatches an event that was unreadable and now reads: records its builds, enqueues its
    /// deliveries and forgets that it was unreadable, in one transaction.
    pub fn resolve_unreadable(
        &self,
        event_id: i64,
        builds: &[BuildRecord],
        deliveries: &[NewDelivery<'_>],
        now: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        Self::record_builds_in(&tx, builds)?;
        let stored = Self::enqueue_in(&tx, deliveries, now)?;
        tx.execute("DELETE FROM unreadable WHERE event_id = ?1", [event_id])?;
        tx.commit()?;
        Ok(stored)
    }

    /// The value of cursor `name` (0 when never set): how far a consumer of the event log got.
    pub fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        Self::cursor_in(&self.conn(), name)
    }

    /// Caps the database at about `bytes` (SQLite's `max_page_count`): past it every write
    /// fails with "database or disk is full", exactly as on a full disk. Never shrinks below the
    /// current size.
    pub fn limit_size(&self, bytes: u64) -> Result<(), StoreError> {
        self.limit
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        let conn = self.conn();
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let page = page.max(1) as u64;
        let pages = (bytes / page).max(1);
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Service state (the IRC bot's per-channel settings): every `(key, value)` whose key
    /// starts with `prefix`, in key order.
    pub fn bot_state(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT key, value FROM bot_state WHERE substr(key, 1, ?2) = ?1 ORDER BY key",
        )?;
        let rows = stmt
            .query_map(params![prefix, prefix.len() as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<Vec<(String, String)>, _>>()?;
        Ok(rows)
    }

    /// Sets (or, with `None`, deletes) service state `key`.
    pub fn set_bot_state(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        let conn = self.conn();
        match value {
            Some(v) => conn.execute(
                "INSERT INTO bot_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, v],
            )?,
            None => conn.execute("DELETE FROM bot_state WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    /// The newest build of every builder the history knows (of every master).
    pub fn latest_builds(&self) -> Result<Vec<BuildRecord>, StoreError> {
        self.builds_where(
            "WHERE (master, builderid, number) IN
               (SELECT master, builderid, MAX(number) FROM builds GROUP BY master, builderid)
             ORDER BY master, builderid",
            params![],
        )
    }

    /// The builds of one builder, newest first, at most `limit`.
    pub fn builds_of(
        &self,
        master: &str,
        builderid: i64,
        limit: usize,
    ) -> Result<Vec<BuildRecord>, StoreError> {
        self.builds_where(
            "WHERE master = ?1 AND builderid = ?2 ORDER BY number DESC LIMIT ?3",
            params![master, builderid, limit as i64],
        )
    }

    fn builds_where(
        &self,
        clause: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<BuildRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare(&format!("SELECT {} FROM builds {clause}", build_columns!()))?;
        let rows = stmt
            .query_map(params, build_record)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Sets cursor `name` to `value` (a source's bookmark in its peer's history).
    pub fn set_cursor(&self, name: &str, value: i64) -> Result<(), StoreError> {
        Self::set_cursor_in(&self.conn(), name, value)
    }

    /// Cursor `name` as `conn` sees it (0 when never set).
    fn cursor_in(conn: &Connection, name: &str) -> Result<i64, StoreError> {
        Ok(conn
            .prepare_cached("SELECT value FROM cursors WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn set_cursor_in(conn: &Connection, name: &str, value: i64) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT INTO cursors (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![name, value])?;
        Ok(())
    }

    /// Cursor `prefix` and the cursors named `prefix/…`, with their values, by name.
    pub fn cursors_under(&self, prefix: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT name, value FROM cursors
             WHERE name = ?1 OR substr(name, 1, length(?1) + 1) = ?1 || '/'
             ORDER BY name",
        )?;
        let rows = q.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets cursor `name`.
    pub fn forget_cursor(&self, name: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM cursors WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Whether cursor `name` has ever been set.
    pub fn has_cursor(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM cursors WHERE name = ?1", [name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Records `builds` in the history (as [`Store::record_build`], in order), enqueues
    /// `deliveries` (as [`Store::enqueue`]), notes the `unreadable` events and moves cursor
    /// `name` from `from` to `to`, in one transaction: a crash either keeps all or none, so an
    /// event is dispatched once. When the cursor is no longer at `from`, nothing is written:
    /// [`StoreError::CursorMoved`].
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_and_advance(
        &self,
        builds: &[BuildRecord],
        deliveries: &[NewDelivery<'_>],
        unreadable: &[(i64, &str)],
        now: i64,
        name: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let found = Self::cursor_in(&tx, name)?;
        if found != from {
            return Err(StoreError::CursorMoved {
                name: name.to_owned(),
                expected: from,
                found,
            });
        }
        Self::record_builds_in(&tx, builds)?;
        let stored = Self::enqueue_in(&tx, deliveries, now)?;
        for (event_id, reason) in unreadable {
            tx.execute(
                "INSERT INTO unreadable (event_id, reason, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (event_id) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                params![event_id, reason, now],
            )?;
        }
        Self::set_cursor_in(&tx, name, to)?;
        tx.commit()?;
        Ok(stored)
    }

    /// When `reporter`'s next delivery that could be claimed is due (ms), if it has one (not
    /// counting those waiting behind an unfinished one of their order key).
    pub fn next_due(&self, reporter: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT MIN(next_attempt_at) FROM outbox
                 WHERE reporter = ?1 AND state = 'pending' AND blocked = 0",
            )?
            .query_row([reporter], |r| r.get(0))?)
    }

    /// The outbox, newest first, at most `limit` rows, optionally only in `state`.
    pub fn list(&self, state: Option<State>, limit: usize) -> Result<Vec<Summary>, StoreError> {
        let conn = self.conn();
        let mut q = conn.prepare_cached(
            "SELECT id, reporter, destination, state, attempts, next_attempt_at, last_error,
                    instr(explanation, 'DEGRADED:') > 0
             FROM outbox WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = q.query_map(params![state.map(State::as_str), limit as i64], |r| {
            Ok(Summary {
                id: r.get(0)?,
                reporter: r.get(1)?,
                destination: r.get(2)?,
                state: State::parse(&r.get::<_, String>(3)?),
                attempts: r.get(4)?,
                next_attempt_at: r.get(5)?,
                last_error: r.get(6)?,
                degraded: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `tidings outbox drop ID`: gives a pending, in-flight or dead delivery up (dead). Its
    /// `last_error` is kept (a drop says why only when there was no error); the drop is its
    /// own entry in the log. An attempt in flight still finishes and is logged, but cannot
    /// undo the drop ([`Store::finish`]).
    pub fn drop_delivery(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE outbox SET state = 'dead', last_error = COALESCE(last_error, 'dropped by hand')
             WHERE id = ?1 AND state IN ('pending', 'inflight', 'dead')",
            params![id],
        )?;
        if n == 0 {
            return Err(Self::refusal(
                &tx,
                id,
                "it was delivered; there is nothing to drop",
            )?);
        }
        Self::unblock_next(&tx, id)?;
        tx.execute(
            "INSERT INTO delivery_log (outbox_id, attempt, at, result, detail)
             VALUES (?1, 0, ?2, 'dropped', 'dropped by hand')",
            params![id, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Why a by-hand action on delivery `id` was refused: it does not exist, or its state.
    fn refusal(
        tx: &rusqlite::Transaction<'_>,
        id: i64,
        why: &'static str,
    ) -> Result<StoreError, StoreError> {
        let state: Option<String> = tx
            .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        Ok(match state {
            None => StoreError::NoSuchDelivery(id),
            Some(s) => StoreError::WrongState {
                id,
                state: State::parse(&s),
                why,
            },
        })
    }
}

#[cfg(test)]
mod tests;
