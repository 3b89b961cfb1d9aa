//! What dispatch may learn about builds besides their events: the build history's record type
//! and the [`History`] a followed master answers.
//!
//! It sits between the store (which keeps [`BuildRecord`]s), dispatch (which asks for previous
//! builds and changes) and the Buildbot API client (which answers over REST), so that neither
//! the client nor the store depends on dispatch.

use crate::event::{Build, Change};

/// A build as the history knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    pub master: String,
    pub buildid: i64,
    pub builderid: i64,
    pub number: i64,
    pub complete: bool,
    pub results: Option<i64>,
    /// The build dict as JSON. Recorded empty when it is the body of event `event_id` as
    /// stored (the store reads that back in its place, and keeps the event while the row is
    /// kept), so a build is stored once.
    pub body: String,
    /// The event whose dispatch wrote this version (0 when none did: a version from the
    /// master's REST API, or from a store older than the column).
    pub event_id: i64,
}

/// What a master can tell dispatch besides its events: a build's changes (for the blamelist)
/// and a previous build tidings' own history lacks (it started after that build). Implemented
/// over the master's REST API by [`crate::buildbot_api::RestHistory`] when
/// `[source.buildbot]` is configured. Every method answers `None` for another master, on
/// failure, and while the master is known to be unreachable: an implementation bounds how long
/// one question may block dispatch (previous builds are asked on the dispatch thread, in event
/// order; changes and enrichment on the threads that call formatters).
pub trait History: Send + Sync {
    /// The changes of build `buildid` since the last successful build.
    fn changes(&self, master: &str, buildid: i64) -> Option<Vec<Change>>;
    /// The previous build of builder `builderid` before `number` (finished, not RETRY).
    fn previous_build(&self, master: &str, builderid: i64, number: i64) -> Option<BuildRecord>;
    /// `build` with what `wants` (a reporter's `want_*` options) and the source's own settings
    /// ask for and the event lacks (steps, log contents); `None` when there is nothing to add.
    fn enrich(&self, master: &str, build: &Build, wants: &crate::config::Wants) -> Option<Build>;
}

/// The latest answers to questions asked of a master, so that the reporters' lanes, which ask
/// the same questions about the same build at about the same time, cause one request: the first
/// to ask asks, the others wait for its answer (a failure, `None`, is shared too, so every
/// reporter sees the build the same way). Keeps the `capacity` most recent questions.
pub struct Recent<K, V> {
    capacity: usize,
    kept: std::sync::Mutex<RecentMap<K, V>>,
}

type RecentMap<K, V> = (
    std::collections::HashMap<K, std::sync::Arc<std::sync::OnceLock<V>>>,
    std::collections::VecDeque<K>,
);

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Recent<K, V> {
    /// Keeps the answers to the `capacity` most recent questions.
    pub fn new(capacity: usize) -> Recent<K, V> {
        Recent {
            capacity: capacity.max(1),
            kept: std::sync::Mutex::new(Default::default()),
        }
    }

    /// The answer to `key`: kept, or being found by another thread (waited for), or found by
    /// `ask` now.
    pub fn get_or(&self, key: K, ask: impl FnOnce() -> V) -> V {
        let cell = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            let (map, order) = &mut *kept;
            match map.get(&key) {
                Some(cell) => cell.clone(),
                None => {
                    if order.len() >= self.capacity
                        && let Some(oldest) = order.pop_front()
                    {
                        map.remove(&oldest);
                    }
                    let cell = std::sync::Arc::new(std::sync::OnceLock::new());
                    map.insert(key.clone(), cell.clone());
                    order.push_back(key);
                    cell
                }
            }
        };
        // Outside the lock: other questions go on while this one is asked.
        cell.get_or_init(ask).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_question_asked_at_once_by_several_threads_is_asked_once() {
        let recent: Recent<i64, Option<String>> = Recent::new(2);
        let asked = AtomicUsize::new(0);
        let ask = |answer: &str| {
            asked.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            Some(answer.to_owned())
        };
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| recent.get_or(1, || ask("one"))))
                .collect();
            for t in threads {
                assert_eq!(t.join().unwrap().as_deref(), Some("one"));
            }
        });
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // A failure is shared too.
        assert_eq!(recent.get_or(2, || None), None);
        assert_eq!(recent.get_or(2, || ask("late")), None);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Only the two most recent questions are kept: 1 was forgotten when 3 came.
        recent.get_or(3, || ask("three"));
        assert_eq!(recent.get_or(1, || ask("again")).as_deref(), Some("again"));
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }
}
