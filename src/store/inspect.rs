//! Reading the event log for `tidings events`, `tidings explain` and `tidings replay`: by id,
//! newest first with filters, and the deliveries each event led to. Reads only (beside a
//! running daemon, through [`Store::open_shared`]).

use super::{Delivery, Store, StoreError, StoredEvent, delivery_row, stored_event};
use rusqlite::{OptionalExtension, params};

/// Which events [`Store::events_newest`] returns. Every field narrows; none means all.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this kind (`build_finished`, …).
    pub kind: Option<String>,
    /// Only events stored at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Only events with an id below this one (for paging).
    pub before: Option<i64>,
}

impl Store {
    /// Event `id`, if it is still stored (retention deletes old dispatched events).
    pub fn event(&self, id: i64) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, key, kind, source, body, format, received_at FROM events WHERE id = ?1",
                [id],
                stored_event,
            )
            .optional()?)
    }

    /// Up to `limit` events matching `q`, newest first.
    pub fn events_newest(
        &self,
        q: &EventQuery,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, key, kind, source, body, format, received_at FROM events
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR received_at >= ?2)
               AND (?3 IS NULL OR id < ?3)
             ORDER BY id DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![q.kind, q.since, q.before, limit as i64],
            stored_event,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The deliveries event `id` led to, in the order they were enqueued.
    pub fn deliveries_of(&self, event_id: i64) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, key, event_id, reporter, destination, order_key, payload, explanation,
                    state, attempts, next_attempt_at, last_error, created_at
             FROM outbox WHERE event_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([event_id], delivery_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The delivery with idempotency key `key`, if there is one.
    pub fn delivery_by_key(&self, key: &str) -> Result<Option<Delivery>, StoreError> {
        let conn = self.conn();
        let id: Option<i64> = conn
            .query_row("SELECT id FROM outbox WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => Self::delivery_in(&conn, id),
            None => Ok(None),
        }
    }
}
