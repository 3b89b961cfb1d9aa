//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past its threshold,
//! on the writer's connection: every other writer (ingest's commits, dispatch, the outbox)
//! waits for the store's write lock while it copies a thousand pages into the database and
//! syncs it. Here the writer's commit only notes that the WAL has grown (a WAL hook), and a
//! thread with a connection of its own runs the checkpoint, in SQLite's `PASSIVE` mode, which
//! never holds writers up: they append to the WAL while it copies. Should that thread fall far
//! behind (or be gone), the commit that finds the WAL [`FALLEN_BEHIND`] times the threshold
//! long checkpoints itself, as SQLite would have.

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// WAL frames (pages) that make a checkpoint due: SQLite's own default threshold.
pub const CHECKPOINT_PAGES: i32 = 1000;

/// How many thresholds long the WAL may grow before a commit checkpoints by itself.
pub const FALLEN_BEHIND: i32 = 8;

/// What the writer's WAL hook and the checkpoint thread share.
#[derive(Default)]
struct Shared {
    /// The WAL length (frames) from which a checkpoint is due; 0 means [`CHECKPOINT_PAGES`].
    /// After a checkpoint it is the WAL's length then plus the threshold, so a WAL that cannot
    /// restart yet (a reader still uses its frames) does not have the thread checkpoint again
    /// after every commit; when the WAL restarts from its start, the hook sets it back to 0.
    mark: AtomicI32,
    due: Mutex<bool>,
    raised: Condvar,
    stop: AtomicBool,
    /// Checkpoints the thread has run (for tests and debugging).
    runs: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn mark(&self) -> i32 {
        match self.mark.load(Ordering::Relaxed) {
            0 => CHECKPOINT_PAGES,
            m => m,
        }
    }

    fn raise(&self) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        if !*due {
            *due = true;
            self.raised.notify_one();
        }
    }
}

/// The checkpoint thread of a store; stops (and closes its connection) when dropped.
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing through `conn` (a connection of its own) for the writes made on
    /// `writer`, whose automatic checkpoints it replaces. `None` when the thread cannot start:
    /// `writer` then checkpoints as SQLite does by default.
    pub fn start(
        writer: &mut Connection,
        conn: Connection,
    ) -> rusqlite::Result<Option<Checkpointer>> {
        let shared = Arc::new(Shared::default());
        let hook = shared.clone();
        let mut last = 0;
        // Replaces SQLite's automatic checkpoint, which is a WAL hook too.
        writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
            if pages < last {
                // The WAL restarted from its start.
                hook.mark.store(0, Ordering::Relaxed);
            }
            last = pages;
            let mark = hook.mark();
            if pages >= mark.saturating_add(FALLEN_BEHIND.saturating_sub(1) * CHECKPOINT_PAGES) {
                // Best effort, as SQLite's own: the thread or the next commit takes the rest.
                let _ = wal.checkpoint();
            } else if pages >= mark {
                hook.raise();
            }
            Ok(())
        }))?;
        let run = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tidings-checkpoint".into())
            .spawn(move || checkpoint_when_due(&run, &conn));
        match thread {
            Ok(t) => Ok(Some(Checkpointer {
                shared,
                thread: Some(t),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the WAL checkpoint thread; commits checkpoint the WAL themselves");
                // SQLite's automatic checkpoint again (setting it replaces the hook).
                writer.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
                Ok(None)
            }
        }
    }

    /// Checkpoints the thread has run so far.
    #[cfg(test)]
    pub fn runs(&self) -> u64 {
        self.shared.runs.load(Ordering::Relaxed)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.raise();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: waits until a commit finds a checkpoint due, runs it, and sets the next mark.
fn checkpoint_when_due(shared: &Shared, conn: &Connection) {
    // Never wait for a lock: a checkpoint already running (the retention loop's TRUNCATE)
    // does the work, and the next commit raises the flag again.
    let _ = conn.busy_timeout(std::time::Duration::ZERO);
    loop {
        {
            let mut due = shared.due.lock().unwrap_or_else(|e| e.into_inner());
            while !*due {
                due = shared.raised.wait(due).unwrap_or_else(|e| e.into_inner());
            }
            *due = false;
        }
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((log, _copied)) => {
                shared.runs.fetch_add(1, Ordering::Relaxed);
                shared
                    .mark
                    .store(log.saturating_add(CHECKPOINT_PAGES), Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "a WAL checkpoint did not complete"),
        }
    }
}
