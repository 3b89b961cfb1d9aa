//! Buildbot's build dict and result codes, and the events tidings receives about builds.
//!
//! The types are defined once, in the guest SDK (`tidings_guest::build`), and re-exported here:
//! what the host parses from HttpStatusPush is, by construction, what a Rust formatter
//! deserialises. Unknown fields are kept in each struct's `extra` map and passed through to
//! formatters untouched.

pub use tidings_guest::build::{
    Build, BuildRequest, Builder, Buildset, Change, Log, LogContent, Patch, Properties, Property,
    Results, SourceStamp, Step,
};

use serde::Serialize;

/// What happened. The names are those of the native event API (`POST /api/v1/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    BuildStarted,
    BuildFinished,
}

impl EventKind {
    /// The kind's name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::BuildStarted => "build_started",
            EventKind::BuildFinished => "build_finished",
        }
    }
}

/// One event about a build, from whichever source.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// Which master: the base of the build's URL (`http://ci.example.org/`), else
    /// `masterid:N`. Build ids are unique per master.
    pub master: String,
    pub build: Build,
}

impl Event {
    /// The event HttpStatusPush sends: one build dict, started or finished by its `complete`.
    pub fn from_build(build: Build) -> Result<Event, String> {
        if build.buildid.is_none() {
            return Err("the build dict has no buildid".into());
        }
        let master = match (&build.url, build.masterid) {
            (Some(url), _) if url.contains("#/") => {
                url.split("#/").next().unwrap_or_default().to_owned()
            }
            (_, Some(id)) => format!("masterid:{id}"),
            _ => return Err("the build dict has neither a url nor a masterid".into()),
        };
        let kind = if build.complete {
            EventKind::BuildFinished
        } else {
            EventKind::BuildStarted
        };
        Ok(Event {
            kind,
            master,
            build,
        })
    }

    /// The key under which the event is stored once: the same build's same phase from any
    /// source (HttpStatusPush, the master's event stream) has the same key.
    pub fn key(&self) -> String {
        format!(
            "{}|build/{}/{}",
            self.master,
            self.build.buildid.unwrap_or_default(),
            self.kind.name()
        )
    }
}
