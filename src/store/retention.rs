//! Keeping the store bounded: retention deletes old rows in small batches, checkpoints keep
//! the WAL small, and `max_store_size` counts the database and its WAL together.
//!
//! What is deleted, once older than `retention` ([`Retention::keep_ms`]):
//! - delivered deliveries and their delivery log (by when they were delivered);
//! - dead letters only once older than `dead_retention`, when set — by default they are kept
//!   until an operator drops or retries them;
//! - events that dispatch has passed, that no delivery still refers to, that are not kept as
//!   unreadable and whose body is not a kept build's (a build's row leaves its body to the
//!   event that wrote it when that event's body is the build dict);
//! - build history beyond the newest [`BUILDS_KEPT`] builds of each builder (what a mode such as
//!   `change` compares with is the previous build; a few more cover late arrivals), counting
//!   only builds recorded by events that every dispatch lane has passed, so a lane that lags
//!   still finds the previous build of each event it has yet to dispatch.
//!
//! Pending and in-flight deliveries, events not yet dispatched, and unreadable events are never
//! deleted, whatever their age: nothing acknowledged is lost to retention. Nor is the newest
//! event: SQLite numbers a new row one past the largest id in its table, so a log emptied by
//! retention would number the next event 1 again, below the cursors that have passed the old
//! ones, and dispatch would never see it (event ids must only grow: cursors, and the build
//! history as of an event, compare them).

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use std::sync::atomic::Ordering;

/// Builds kept in the history per builder, newest first.
pub const BUILDS_KEPT: i64 = 50;

/// How long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Delivered deliveries, their log, and events (milliseconds).
    pub keep_ms: i64,
    /// Dead letters (milliseconds); `None`: until dropped or retried by hand.
    pub dead_ms: Option<i64>,
}

// Each query finds its rows through an index, so a batch costs the same with a month of rows
// kept as with none: delivered and dead deliveries by (state, next_attempt_at); events from the
// lowest id up to the last one both dispatched and received before the cutoff (ids and
// receive times grow together), skipping only rows still referred to.

/// The statements [`Store::prune`] walks the build history with, builder by builder: the first
/// builder, the next builder of a master, the first builder of the next master, the number of
/// the oldest build kept (the [`BUILDS_KEPT`]-th newest counted one), and the delete.
pub(super) const PRUNE_BUILDS: [&str; 5] = [
    "SELECT master, builderid FROM builds ORDER BY master, builderid LIMIT 1",
    "SELECT builderid FROM builds WHERE master = ?1 AND builderid > ?2
     ORDER BY builderid LIMIT 1",
    "SELECT master, builderid FROM builds WHERE master > ?1 ORDER BY master, builderid LIMIT 1",
    "SELECT number FROM builds WHERE master = ?1 AND builderid = ?2 AND event_id <= ?3
     ORDER BY number DESC LIMIT 1 OFFSET ?4",
    "DELETE FROM builds WHERE rowid IN (
         SELECT rowid FROM builds
         WHERE master = ?1 AND builderid = ?2 AND number < ?3 AND event_id <= ?4
         LIMIT ?5)",
];

/// What one [`Store::prune`] call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: usize,
    pub events: usize,
    pub builds: usize,
    /// The highest event id this call deleted (or the `after` it was given): pass it to the
    /// next call of the same cycle, so rows that must stay are not read again and again.
    pub events_after: i64,
}

impl Pruned {
    /// Whether anything was deleted (when not, the caller can stop until the next cycle).
    pub fn any(&self) -> bool {
        self.deliveries + self.events + self.builds > 0
    }
}

impl Store {
    /// Deletes at most `batch` rows of each kind that `r` no longer keeps, as of `now`, in one
    /// short transaction (so ingest and delivery wait for it only briefly); events are kept
    /// while dispatch has not passed them (every lane is past event `dispatched`: the lowest of
    /// dispatch's cursors, [`crate::dispatch::dispatched`]), and only events above id
    /// `after` are considered (0 at the start of a cycle; then the previous call's
    /// [`Pruned::events_after`]).
    pub fn prune(
        &self,
        r: Retention,
        now: i64,
        dispatched: i64,
        batch: usize,
        after: i64,
    ) -> Result<Pruned, StoreError> {
        let cutoff = now - r.keep_ms;
        let dead_cutoff = r.dead_ms.map_or(i64::MIN, |d| now - d);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids: Vec<i64> = {
            let mut q = tx.prepare_cached(
                "SELECT id FROM outbox
                 WHERE (state = 'delivered' AND next_attempt_at < ?1)
                    OR (state = 'dead' AND next_attempt_at < ?2)
                 LIMIT ?3",
            )?;
            q.query_map(params![cutoff, dead_cutoff, batch as i64], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        {
            let mut log = tx.prepare_cached("DELETE FROM delivery_log WHERE outbox_id = ?1")?;
            let mut row = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in &ids {
                log.execute([id])?;
                row.execute([id])?;
            }
        }
        let doomed: Vec<i64> = {
            let mut q = tx.prepare_cached(
                "SELECT e.id FROM events e
                 WHERE e.id > ?4
                   AND e.id <= MIN(
                         ?2,
                         COALESCE((SELECT id FROM events WHERE received_at < ?1
                                   ORDER BY received_at DESC LIMIT 1), 0))
                   AND e.id < (SELECT MAX(id) FROM events)
                   AND e.received_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id)
                   AND NOT EXISTS (SELECT 1 FROM unreadable u WHERE u.event_id = e.id)
                   AND NOT EXISTS (SELECT 1 FROM builds b WHERE b.event_id = e.id AND b.body = '')
                 ORDER BY e.id
                 LIMIT ?3",
            )?;
            q.query_map(params![cutoff, dispatched, batch as i64, after], |row| {
                row.get(0)
            })?
            .collect::<Result<_, _>>()?
        };
        {
            let mut delete = tx.prepare_cached("DELETE FROM events WHERE id = ?1")?;
            for id in &doomed {
                delete.execute([id])?;
            }
        }
        let events = doomed.len();
        let events_after = doomed.last().copied().unwrap_or(after);
        let builds = Self::prune_builds(&tx, dispatched, batch)?;
        tx.commit()?;
        drop(conn);
        let pruned = Pruned {
            deliveries: ids.len(),
            events,
            builds,
            events_after,
        };
        if pruned.any() {
            // There may be room again: the next event will tell.
            *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Ok(pruned)
    }

    /// Deletes at most `batch` builds beyond the newest [`BUILDS_KEPT`] of each builder, counting
    /// and deleting only rows recorded by events that every lane has passed (up to
    /// `dispatched`): a lane that lags looks up the previous build as of each event it has yet
    /// to dispatch, and a row written after its cursor is one of those (or newer than they
    /// are).
    ///
    /// Builder by builder, each step a seek in `builds_by_builder_event`, whose entries carry
    /// `event_id`: no build's body is read. (`event_id` is the row's last column, after the
    /// body's overflow pages; a single query ranking every row read them all, for every
    /// batch, which under a burst of builds took most of the daemon's time.)
    fn prune_builds(
        tx: &rusqlite::Transaction<'_>,
        dispatched: i64,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let [first, next_builder, next_master, oldest_kept, delete] = PRUNE_BUILDS;
        let mut first = tx.prepare_cached(first)?;
        let mut next_builder = tx.prepare_cached(next_builder)?;
        let mut next_master = tx.prepare_cached(next_master)?;
        let mut oldest_kept = tx.prepare_cached(oldest_kept)?;
        let mut delete = tx.prepare_cached(delete)?;
        let pair = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?));
        let mut builder: Option<(String, i64)> = first.query_row([], pair).optional()?;
        let mut deleted = 0;
        while let Some((master, builderid)) = builder {
            if deleted >= batch {
                break;
            }
            let cut: Option<i64> = oldest_kept
                .query_row(
                    params![master, builderid, dispatched, BUILDS_KEPT - 1],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(cut) = cut {
                deleted += delete.execute(params![
                    master,
                    builderid,
                    cut,
                    dispatched,
                    (batch - deleted) as i64
                ])?;
            }
            builder = match next_builder
                .query_row(params![master, builderid], |r| r.get(0))
                .optional()?
            {
                Some(b) => Some((master, b)),
                None => next_master.query_row([&master], pair).optional()?,
            };
        }
        Ok(deleted)
    }

    /// Copies the WAL into the database and truncates it (SQLite's `wal_checkpoint(TRUNCATE)`),
    /// so the WAL stays small. Best effort: a reader beside the daemon (`tidings outbox`) can
    /// keep part of it for a moment; the next checkpoint takes the rest.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        // Never wait for readers (SQLite would, for the whole busy timeout): whoever asked
        // goes on, and the next checkpoint takes what this one could not.
        conn.busy_timeout(std::time::Duration::ZERO)?;
        let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        done?;
        Ok(())
    }

    /// Bytes the store takes on disk: the database file and its WAL.
    pub fn bytes_on_disk(&self) -> u64 {
        let len = |name: &str| {
            std::fs::metadata(self.dir.join(name))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        len("tidings.db") + len("tidings.db-wal")
    }

    /// Bytes in use: the database's pages that hold data (freed pages, which SQLite reuses,
    /// are not counted) and the WAL.
    pub fn bytes_used(&self) -> Result<u64, StoreError> {
        let (pages, free, page) = {
            let conn = self.conn();
            let get = |pragma: &str| conn.query_row(pragma, [], |r| r.get::<_, i64>(0));
            (
                get("PRAGMA page_count")?,
                get("PRAGMA freelist_count")?,
                get("PRAGMA page_size")?,
            )
        };
        let wal = std::fs::metadata(self.dir.join("tidings.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(((pages - free).max(0) * page) as u64 + wal)
    }

    /// Why the store takes no new events, if it is full: `max_store_size` reached by the
    /// database and its WAL together, or the last event refused for want of room (a full disk)
    /// while nothing was freed since.
    pub fn full(&self) -> Result<Option<String>, StoreError> {
        if let Some(why) = self.over_limit()? {
            return Ok(Some(why));
        }
        Ok(self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    /// Whether the database and its WAL together reached `max_store_size` (a checkpoint, which
    /// empties the WAL, is tried first), and by how much.
    pub(super) fn over_limit(&self) -> Result<Option<String>, StoreError> {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit == 0 {
            return Ok(None);
        }
        let mut used = self.bytes_used()?;
        if used >= limit {
            let _ = self.checkpoint();
            used = self.bytes_used()?;
        }
        Ok((used >= limit).then(|| {
            format!(
                "the store is full: {} used of max_store_size {} (retention frees room as rows \
                 age; raise max_store_size or shorten retention)",
                bytesize::ByteSize(used),
                bytesize::ByteSize(limit)
            )
        }))
    }
}
