//! Buildbot's build dict and result codes, and the events tidings receives.
//!
//! The build types are defined once, in the guest SDK (`tidings_guest::build`), and re-exported
//! here: what the host parses from HttpStatusPush is, by construction, what a Rust formatter
//! deserialises. Unknown fields are kept in each struct's `extra` map and passed through to
//! formatters untouched.
//!
//! An [`Event`] comes from HttpStatusPush (a bare build dict), from the native envelope
//! ([`Envelope`], `POST /api/v1/events`, JSON Schema in `guest-sdk/schema/event.schema.json`)
//! or from a master's event stream (`[source.buildbot]`, which stores envelopes too). The store
//! keeps the body as received; [`Event::from_stored`] reads either form back.

pub use tidings_guest::build::{
    Build, BuildRequest, Builder, Buildset, Change, Log, LogContent, Patch, Properties, Property,
    Results, SourceStamp, Step,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happened. The names are those of the native event API (`POST /api/v1/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A build started (`builds.new`).
    BuildStarted,
    /// A build finished (`builds.finished`).
    BuildFinished,
    /// Every build request of a buildset finished (`buildsets.complete`).
    BuildsetComplete,
    /// A build request was submitted and waits for a worker (`buildrequests.new`).
    BuildrequestNew,
    /// A build request was cancelled before it started (`buildrequests.cancel`).
    BuildrequestCancelled,
    /// A worker stayed away longer than its `missing_timeout` (`workers.missing`).
    WorkerMissing,
    /// A worker connected (`workers.connected`).
    WorkerConnected,
}

impl EventKind {
    /// Every kind, in the envelope's order.
    pub const ALL: [EventKind; 7] = [
        EventKind::BuildStarted,
        EventKind::BuildFinished,
        EventKind::BuildsetComplete,
        EventKind::BuildrequestNew,
        EventKind::BuildrequestCancelled,
        EventKind::WorkerMissing,
        EventKind::WorkerConnected,
    ];

    /// The kind's name, as stored and as the envelope's `type` says it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::BuildStarted => "build_started",
            EventKind::BuildFinished => "build_finished",
            EventKind::BuildsetComplete => "buildset_complete",
            EventKind::BuildrequestNew => "buildrequest_new",
            EventKind::BuildrequestCancelled => "buildrequest_cancelled",
            EventKind::WorkerMissing => "worker_missing",
            EventKind::WorkerConnected => "worker_connected",
        }
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A worker, as Buildbot's data API describes it, with what `workers.missing` adds (`notify`,
/// `last_connection`). Unknown fields are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workerid: Option<i64>,
    pub name: String,
    /// Who is told when the worker goes missing (the worker's `notify_on_missing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// When the worker was last seen, as Buildbot writes it (a ctime string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_connection: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// `build_started`, `build_finished`; for `buildrequest_*` the partial build dict Buildbot's
    /// `BuildRequestGenerator` makes (no `buildid` or `number`; `buildrequestid`, `builder`,
    /// `properties`, `buildset`).
    Build(Box<Build>),
    /// `buildset_complete`: the buildset (with its `results`) and the builds of its requests.
    Buildset {
        buildset: Buildset,
        builds: Vec<Build>,
    },
    /// `worker_missing`, `worker_connected`.
    Worker(Worker),
}

/// One event, from whichever source.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// Which master: the base of the build's URL (`http://ci.example.org/`), else
    /// `masterid:N`, else the envelope's `master`. Build ids are unique per master.
    pub master: String,
    /// The sender's occurrence id (envelope `id`), for events that can repeat (workers).
    pub id: Option<String>,
    pub subject: Subject,
    /// The changes a finished build brought (since the last successful build), when the
    /// source knows them: their authors join the blamelist.
    pub changes: Option<Vec<Change>>,
}

/// What a stored event's body is, as ingest decided when it accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Buildbot's build dict (HttpStatusPush, `POST /api/v1/buildbot`).
    Build,
    /// The native envelope (`POST /api/v1/events`, `[source.buildbot]`).
    Envelope,
}

impl BodyFormat {
    /// As stored: `build`, `envelope`.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Build => "build",
            BodyFormat::Envelope => "envelope",
        }
    }

    /// The stored form back; `None` for rows stored before the form was recorded.
    pub fn parse(s: &str) -> Option<BodyFormat> {
        match s {
            "build" => Some(BodyFormat::Build),
            "envelope" => Some(BodyFormat::Envelope),
            _ => None,
        }
    }
}

/// The native event envelope, version 1: what `POST /api/v1/events` accepts and what
/// `[source.buildbot]` stores. Which fields are required depends on `type`; see
/// `guest-sdk/schema/event.schema.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always 1.
    pub schema_version: u32,
    /// The event kind's name ([`EventKind::name`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// The master's name or URL; derived from the build's `url` or `masterid` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// The sender's id of this occurrence; makes repeated worker events distinct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildset: Option<Buildset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds: Option<Vec<Build>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Worker>,
    /// build_finished: the changes since the last successful build (Buildbot's
    /// `builds/<id>/changes`); their authors join the blamelist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
}

/// The envelope versions this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// The master a build belongs to: the base of its `url`, else `masterid:N`.
fn master_of(build: &Build) -> Option<String> {
    match (&build.url, build.masterid) {
        (Some(url), _) if url.contains("#/") => {
            Some(url.split("#/").next().unwrap_or_default().to_owned())
        }
        (_, Some(id)) => Some(format!("masterid:{id}")),
        _ => None,
    }
}

/// The build request a (partial) build dict belongs to.
fn request_of(build: &Build) -> Option<i64> {
    build
        .buildrequestid
        .or_else(|| build.buildrequest.as_ref().and_then(|r| r.buildrequestid))
}

impl Event {
    /// What the event is about, in a few words: `builder "runtests" #12 failure`, `builder
    /// "runtests" request 7`, `buildset 9 (3 builds) success`, `worker "w1"`.
    pub fn describe(&self) -> String {
        match &self.subject {
            Subject::Build(b) => {
                let mut s = format!("builder {:?}", b.builder_name().unwrap_or("?"));
                match (b.number, self.buildrequest()) {
                    (Some(n), _) => s.push_str(&format!(" #{n}")),
                    (None, Some(br)) => s.push_str(&format!(" request {br}")),
                    (None, None) => {}
                }
                if b.complete {
                    s.push(' ');
                    s.push_str(&Results::text_for(b.results));
                }
                s
            }
            Subject::Buildset { buildset, builds } => format!(
                "buildset {} ({} builds) {}",
                buildset.bsid.unwrap_or_default(),
                builds.len(),
                Results::text_for(buildset.results)
            ),
            Subject::Worker(w) => format!("worker {:?}", w.name),
        }
    }

    /// The event HttpStatusPush sends: one build dict, started or finished by its `complete`.
    pub fn from_build(build: Build) -> Result<Event, String> {
        if build.buildid.is_none() {
            return Err("the build dict has no buildid".into());
        }
        let master = master_of(&build)
            .ok_or("the build dict has neither a url nor a masterid".to_owned())?;
        let kind = if build.complete {
            EventKind::BuildFinished
        } else {
            EventKind::BuildStarted
        };
        Ok(Event {
            kind,
            master,
            id: None,
            subject: Subject::Build(Box::new(build)),
            changes: None,
        })
    }

    /// The event a native envelope describes, checked: the version, the type, and the fields
    /// that type needs.
    pub fn from_envelope(env: Envelope) -> Result<Event, String> {
        if env.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema_version {} is not supported (this tidings speaks {SCHEMA_VERSION})",
                env.schema_version
            ));
        }
        let kind = EventKind::from_name(&env.kind).ok_or_else(|| {
            format!(
                "unknown event type {:?}; expected one of {}",
                env.kind,
                EventKind::ALL.map(EventKind::name).join(", ")
            )
        })?;
        let named = |what: &str| format!("a {} event needs {what}", kind.name());
        let explicit = env.master.clone().filter(|m| !m.is_empty());
        let subject = match kind {
            EventKind::BuildStarted | EventKind::BuildFinished => {
                let b = env.build.ok_or_else(|| named("`build`"))?;
                if b.buildid.is_none() {
                    return Err(named("`build.buildid`"));
                }
                if b.complete != (kind == EventKind::BuildFinished) {
                    return Err(format!(
                        "a {} event's build must have \"complete\": {}",
                        kind.name(),
                        kind == EventKind::BuildFinished
                    ));
                }
                Subject::Build(Box::new(b))
            }
            EventKind::BuildrequestNew | EventKind::BuildrequestCancelled => {
                let b = env
                    .build
                    .ok_or_else(|| named("`build` (the partial build dict)"))?;
                if request_of(&b).is_none() {
                    return Err(named("`build.buildrequestid`"));
                }
                Subject::Build(Box::new(b))
            }
            EventKind::BuildsetComplete => {
                let buildset = env.buildset.ok_or_else(|| named("`buildset`"))?;
                if buildset.bsid.is_none() {
                    return Err(named("`buildset.bsid`"));
                }
                Subject::Buildset {
                    buildset,
                    builds: env.builds.unwrap_or_default(),
                }
            }
            EventKind::WorkerMissing | EventKind::WorkerConnected => {
                let w = env.worker.ok_or_else(|| named("`worker`"))?;
                if w.name.is_empty() {
                    return Err(named("`worker.name`"));
                }
                Subject::Worker(w)
            }
        };
        let derived = match &subject {
            Subject::Build(b) => master_of(b),
            Subject::Buildset { builds, .. } => builds.iter().find_map(master_of),
            Subject::Worker(_) => None,
        };
        let master = explicit
            .or(derived)
            .ok_or_else(|| named("`master` (or builds with a `url` or `masterid`)"))?;
        Ok(Event {
            kind,
            master,
            id: env.id.filter(|i| !i.is_empty()),
            subject,
            changes: env.changes,
        })
    }

    /// Parses a stored body in the form ingest decided when it accepted it (`format`); the
    /// flag says which (`true`: the body is the build dict itself). Only rows stored before
    /// tidings recorded the form (`None`) are told apart by a top-level `schema_version`.
    pub fn from_stored(body: &str, format: Option<BodyFormat>) -> Result<(Event, bool), String> {
        // Parsed straight into its type when the form is known (every row stored since tidings
        // records it): half the work of going through a `Value`.
        let format = match format {
            Some(f) => f,
            None => {
                let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
                if value.get("schema_version").is_some() {
                    BodyFormat::Envelope
                } else {
                    BodyFormat::Build
                }
            }
        };
        let why = |what: &str, e: serde_json::Error| match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => e.to_string(),
            _ => format!("{what}: {e}"),
        };
        match format {
            BodyFormat::Envelope => {
                let env: Envelope =
                    serde_json::from_str(body).map_err(|e| why("not an event envelope", e))?;
                Ok((Event::from_envelope(env)?, false))
            }
            BodyFormat::Build => {
                let build: Build =
                    serde_json::from_str(body).map_err(|e| why("not a build dict", e))?;
                Ok((Event::from_build(build)?, true))
            }
        }
    }

    /// The envelope that describes this event (what `[source.buildbot]` stores).
    pub fn to_envelope(&self) -> Envelope {
        let mut env = Envelope {
            schema_version: SCHEMA_VERSION,
            kind: self.kind.name().to_owned(),
            master: Some(self.master.clone()),
            id: self.id.clone(),
            build: None,
            buildset: None,
            builds: None,
            worker: None,
            changes: self.changes.clone(),
        };
        match &self.subject {
            Subject::Build(b) => env.build = Some((**b).clone()),
            Subject::Buildset { buildset, builds } => {
                env.buildset = Some(buildset.clone());
                env.builds = Some(builds.clone());
            }
            Subject::Worker(w) => env.worker = Some(w.clone()),
        }
        env
    }

    /// The build, for build and build-request events.
    pub fn build(&self) -> Option<&Build> {
        match &self.subject {
            Subject::Build(b) => Some(b),
            _ => None,
        }
    }

    /// The build request this event belongs to, if any: deliveries for one request go out in
    /// order (pending, started, finished).
    pub fn buildrequest(&self) -> Option<i64> {
        self.build().and_then(request_of)
    }

    /// The key under which the event is stored once: the same build's same phase from any
    /// source (HttpStatusPush, the native API, the master's event stream) has the same key.
    pub fn key(&self) -> String {
        let m = &self.master;
        match &self.subject {
            Subject::Build(b) => match self.kind {
                EventKind::BuildrequestNew => {
                    format!("{m}|buildrequest/{}/new", request_of(b).unwrap_or_default())
                }
                EventKind::BuildrequestCancelled => format!(
                    "{m}|buildrequest/{}/cancelled",
                    request_of(b).unwrap_or_default()
                ),
                kind => format!(
                    "{m}|build/{}/{}",
                    b.buildid.unwrap_or_default(),
                    kind.name()
                ),
            },
            Subject::Buildset { buildset, .. } => {
                format!(
                    "{m}|buildset/{}/complete",
                    buildset.bsid.unwrap_or_default()
                )
            }
            Subject::Worker(w) => {
                let state = if self.kind == EventKind::WorkerMissing {
                    "missing"
                } else {
                    "connected"
                };
                let occurrence = self
                    .id
                    .clone()
                    .or_else(|| w.last_connection.clone())
                    .unwrap_or_default();
                format!("{m}|worker/{}/{state}/{occurrence}", w.name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(v: Value) -> Result<Event, String> {
        Event::from_envelope(serde_json::from_value(v).map_err(|e| e.to_string())?)
    }

    #[test]
    fn an_envelope_build_has_the_same_key_as_the_httpstatuspush_body() {
        let dict = json!({"buildid": 7, "number": 3, "builderid": 1, "complete": true,
            "results": 2, "url": "http://ci/#/builders/1/builds/3"});
        let a = Event::from_build(serde_json::from_value(dict.clone()).unwrap()).unwrap();
        let b = env(json!({"schema_version": 1, "type": "build_finished", "build": dict})).unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), "http://ci/|build/7/build_finished");
        let stored = serde_json::to_string(&b.to_envelope()).unwrap();
        assert_eq!(
            Event::from_stored(&stored, None).unwrap(),
            (b.clone(), false)
        );
        assert_eq!(
            Event::from_stored(&stored, Some(BodyFormat::Envelope)).unwrap(),
            (b, false)
        );
    }

    #[test]
    fn every_type_needs_its_fields() {
        let cases = [
            (
                json!({"schema_version": 2, "type": "build_started"}),
                "schema_version 2",
            ),
            (
                json!({"schema_version": 1, "type": "build_done"}),
                "unknown event type",
            ),
            (
                json!({"schema_version": 1, "type": "build_started"}),
                "needs `build`",
            ),
            (
                json!({"schema_version": 1, "type": "build_started",
                       "build": {"buildid": 1, "complete": true, "masterid": 1}}),
                "\"complete\": false",
            ),
            (
                json!({"schema_version": 1, "type": "buildset_complete", "master": "m"}),
                "needs `buildset`",
            ),
            (
                json!({"schema_version": 1, "type": "buildrequest_new", "master": "m",
                       "build": {"builderid": 1}}),
                "buildrequestid",
            ),
            (
                json!({"schema_version": 1, "type": "worker_missing", "worker": {"name": "w"}}),
                "needs `master`",
            ),
        ];
        for (doc, want) in cases {
            let err = env(doc.clone()).unwrap_err();
            assert!(err.contains(want), "{doc}: {err}");
        }
        let e = serde_json::from_value::<Envelope>(
            json!({"schema_version": 1, "type": "x", "extra": 1}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn keys_tell_occurrences_apart() {
        let w = |id: Option<&str>, last: &str| {
            env(
                json!({"schema_version": 1, "type": "worker_missing", "master": "m", "id": id,
                       "worker": {"name": "w1", "notify": ["a@b"], "last_connection": last}}),
            )
            .unwrap()
            .key()
        };
        assert_eq!(w(None, "Mon"), "m|worker/w1/missing/Mon");
        assert_ne!(w(None, "Mon"), w(None, "Tue"));
        assert_eq!(w(Some("x"), "Mon"), "m|worker/w1/missing/x");
        let r = env(
            json!({"schema_version": 1, "type": "buildrequest_cancelled", "master": "m",
                           "build": {"buildrequest": {"buildrequestid": 4}}}),
        )
        .unwrap();
        assert_eq!(r.key(), "m|buildrequest/4/cancelled");
        assert_eq!(r.buildrequest(), Some(4));
        let s = env(json!({"schema_version": 1, "type": "buildset_complete",
                           "buildset": {"bsid": 9, "complete": true, "results": 0},
                           "builds": [{"buildid": 1, "masterid": 3}]}))
        .unwrap();
        assert_eq!(s.key(), "masterid:3|buildset/9/complete");
    }
}
