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
    /// The build dict as JSON.
    pub body: String,
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
