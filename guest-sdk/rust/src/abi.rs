//! ABI version 1: the hooks, their arguments (what arrives on stdin) and their results (what a
//! formatter writes on stdout). `guest-sdk/schema/` holds the same contract as JSON Schemas; the
//! host's test suite checks that these types and the schemas agree.
//!
//! Every request on stdin is one JSON object `{"abi": 1, "hook": "<hook>", ...arguments}`. The
//! argument structs below do not repeat `abi` and `hook`: serde ignores them, and the SDK's
//! [`run`](crate::run) checks them before a hook function is called.

use crate::build::{Build, Change, Log, Results};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The ABI version this crate speaks.
pub const ABI_VERSION: u32 = 1;

/// A hook: what the host asks a formatter to do. Names on the wire are Buildbot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hook {
    /// Render a message (mail, IRC, HTTP push, GitHub and Stash descriptions).
    #[serde(rename = "messageFormatter")]
    MessageFormatter,
    /// Gerrit: the review for a finished build.
    #[serde(rename = "reviewCB")]
    ReviewCb,
    /// Gerrit: the message for a started build.
    #[serde(rename = "startCB")]
    StartCb,
    /// Gerrit: one review summarising a finished buildset.
    #[serde(rename = "summaryCB")]
    SummaryCb,
    /// The message about a worker that went missing (mail's missing-worker notice).
    #[serde(rename = "messageFormatterMissingWorker")]
    MessageFormatterMissingWorker,
}

impl Hook {
    /// Every hook.
    pub const ALL: [Hook; 5] = [
        Hook::MessageFormatter,
        Hook::ReviewCb,
        Hook::StartCb,
        Hook::SummaryCb,
        Hook::MessageFormatterMissingWorker,
    ];

    /// The hook's name on the wire (and in argv and `TIDINGS_HOOK`).
    pub fn name(self) -> &'static str {
        match self {
            Hook::MessageFormatter => "messageFormatter",
            Hook::ReviewCb => "reviewCB",
            Hook::StartCb => "startCB",
            Hook::SummaryCb => "summaryCB",
            Hook::MessageFormatterMissingWorker => "messageFormatterMissingWorker",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a hook name that ABI v1 does not define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHook(pub String);

impl fmt::Display for UnknownHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown hook {:?}; ABI v1 hooks are messageFormatter, reviewCB, startCB, summaryCB, \
             messageFormatterMissingWorker",
            self.0
        )
    }
}

impl std::error::Error for UnknownHook {}

impl FromStr for Hook {
    type Err = UnknownHook;
    fn from_str(s: &str) -> Result<Hook, UnknownHook> {
        Hook::ALL
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| UnknownHook(s.to_owned()))
    }
}

/// `master`: what Buildbot's `c['title']` and `c['buildbotURL']` were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Master {
    #[serde(default)]
    pub title: String,
    #[serde(rename = "buildbotURL", default)]
    pub buildbot_url: String,
}

/// `reporter`: which configured reporter asks for the message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReporterInfo {
    /// The reporter's unique name from the config, e.g. `team-mail`.
    #[serde(default)]
    pub name: String,
    /// Its kind: `mail`, `irc`, `http_push`, `gerrit`, `github`, `github_comment`,
    /// `bitbucket_server`, or `cli` when called by `tidings render` / `tidings test`.
    #[serde(default)]
    pub kind: String,
}

/// Arguments of `messageFormatter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageArgs {
    /// The reporter's mode words, e.g. `["failing", "passing", "warnings"]`.
    #[serde(default)]
    pub mode: Vec<String>,
    /// The builder's name.
    #[serde(default)]
    pub name: String,
    /// The build's result code; `null` for a build that has not finished.
    #[serde(default)]
    pub results: Option<i64>,
    /// The result's name (`failure`), `not finished`, or `unknown result N`.
    #[serde(default)]
    pub results_text: String,
    #[serde(default)]
    pub reporter: ReporterInfo,
    #[serde(default)]
    pub master: Master,
    #[serde(default)]
    pub build_url: String,
    /// The blamelist: authors of the changes since the last successful build, plus the
    /// `owner`/`owners` properties; sorted and unique.
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The logs whose contents the reporter asked for (`want_logs_content`, mail's
    /// `add_logs`), flat, each with its `stepname`; the same logs are in
    /// [`crate::Build::steps`].
    #[serde(default)]
    pub logs: Vec<Log>,
    /// The previous finished build on the same builder (not RETRY), when known.
    #[serde(default)]
    pub prev_build: Option<Build>,

    // What Buildbot's template context has, computed by the host so that no guest language
    // has to (ABI 1, added later: a host that predates them sends none, and they read as their
    // defaults here).
    /// Buildbot's `status_detected`: `new failure`, `failed build`, `problem in the build`,
    /// `restored build`, `passing build`, `build exception`, or `<result> build`.
    #[serde(default)]
    pub status_detected: String,
    /// Buildbot's `summary`: `Build succeeded!`, `Build Had Warnings: <state>`, `Build was
    /// cancelled` or `BUILD FAILED: <state>`.
    #[serde(default)]
    pub summary: String,
    /// Buildbot's result name (`success`, `failure`, …), `not finished`, or `unknown result N`.
    #[serde(default)]
    pub result_name: String,
    /// The previous build's result code (`prev_build.results`), when there is one.
    #[serde(default)]
    pub previous_results: Option<i64>,
    /// The source stamps' distinct projects, joined by `", "`, or the master's title.
    #[serde(default)]
    pub projects: String,
    /// One line per source stamp: `Build Source Stamp[ '<codebase>']: [branch <b>] <revision
    /// or HEAD>[ (plus patch)]`.
    #[serde(default)]
    pub sourcestamps: String,
    /// Whether this build is reported as part of a buildset summary.
    #[serde(default)]
    pub is_buildset: bool,
    /// The `workername` property, or `<unknown>`.
    #[serde(default)]
    pub workername: String,
    /// `master.buildbotURL`, under Buildbot's template name.
    #[serde(default)]
    pub buildbot_url: String,
    /// Arguments a newer host sends that this version does not model.
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
    /// The build dict. Written last, after `extra` too, so that a guest that does not read it
    /// can leave it undecoded (the Python and JavaScript SDKs do).
    pub build: Build,
}

impl MessageArgs {
    /// The build's result, if it finished with a code Buildbot defines.
    pub fn result(&self) -> Option<Results> {
        self.results.and_then(Results::from_code)
    }
}

/// A worker, as `messageFormatterMissingWorker` gets it (Buildbot's worker dict).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    #[serde(default)]
    pub name: String,
    /// Who is told (the worker's `notify_on_missing`).
    #[serde(default)]
    pub notify: Vec<String>,
    /// When it was last seen, as Buildbot writes it (a ctime string), if known.
    #[serde(default)]
    pub last_connection: Option<String>,
    /// What the worker said of itself (`admin`, `host`, …).
    #[serde(default)]
    pub workerinfo: Map<String, Value>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// Arguments of `messageFormatterMissingWorker`: Buildbot's `MessageFormatterMissingWorker`
/// context. The result is a [`Message`], as for `messageFormatter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MissingWorkerArgs {
    pub worker: WorkerInfo,
    #[serde(default)]
    pub reporter: ReporterInfo,
    #[serde(default)]
    pub master: Master,
    /// `master.title`, under Buildbot's template name.
    #[serde(default)]
    pub buildbot_title: String,
    /// `master.buildbotURL`, under Buildbot's template name.
    #[serde(default)]
    pub buildbot_url: String,
    /// Arguments a newer host sends that this version does not model.
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// How a message body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Plain,
    Html,
    /// `body` is any JSON value (used by HTTP push).
    Json,
}

/// Result of `messageFormatter`. `null` instead of a message means "send nothing".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// A string for `plain` and `html`; any JSON value for `json`.
    pub body: Value,
    #[serde(rename = "type")]
    pub message_type: MessageType,
    /// The mail subject; the reporter's own subject is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Message {
    /// A plain-text message.
    pub fn plain(body: impl Into<String>) -> Message {
        Message {
            body: Value::String(body.into()),
            message_type: MessageType::Plain,
            subject: None,
        }
    }

    /// An HTML message.
    pub fn html(body: impl Into<String>) -> Message {
        Message {
            body: Value::String(body.into()),
            message_type: MessageType::Html,
            subject: None,
        }
    }

    /// A JSON message (HTTP push posts `body` as is).
    pub fn json(body: Value) -> Message {
        Message {
            body,
            message_type: MessageType::Json,
            subject: None,
        }
    }

    /// The same message with a subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Message {
        self.subject = Some(subject.into());
        self
    }
}

/// Arguments of `reviewCB`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewArgs {
    pub builder_name: String,
    /// The build's result code (an integer, as in Buildbot).
    #[serde(default)]
    pub result: Option<i64>,
    /// The reporter's `review_arg`, any JSON; `null` when not configured.
    #[serde(default)]
    pub arg: Value,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
    /// The build dict (written last, as in [`MessageArgs`]).
    pub build: Build,
}

/// Result of `reviewCB` and `summaryCB`. `{}` or `null` means "no review".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Gerrit labels, e.g. `{"Verified": 1}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, i64>,
}

impl Review {
    /// A review with a message and one label.
    pub fn new(message: impl Into<String>, label: &str, value: i64) -> Review {
        Review {
            message: Some(message.into()),
            labels: BTreeMap::from([(label.to_owned(), value)]),
        }
    }

    /// True when there is nothing to send (no message and no labels).
    pub fn is_empty(&self) -> bool {
        self.message.is_none() && self.labels.is_empty()
    }
}

/// Arguments of `startCB`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartArgs {
    pub builder_name: String,
    /// The reporter's `start_arg`, any JSON; `null` when not configured.
    #[serde(default)]
    pub arg: Value,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
    /// The build dict (written last, as in [`MessageArgs`]).
    pub build: Build,
}

/// Result of `startCB`. `null` means "say nothing".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartMessage {
    pub message: String,
    /// Optional labels to set when the build starts (Buildbot allows it; rarely used).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, i64>,
}

/// One build of a buildset, as `summaryCB` sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    /// The builder's name.
    pub name: String,
    /// The build's result code.
    #[serde(default)]
    pub result: Option<i64>,
    /// `succeeded`, `failed`, `completed with warnings`, `encountered an exception`, or
    /// `completed with unknown result N` (Buildbot's texts).
    #[serde(default)]
    pub result_text: String,
    /// The build's `state_string`.
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub url: Option<String>,
    pub build: Build,
}

impl BuildInfo {
    /// Buildbot's `resultText` for a result code.
    pub fn result_text_for(code: Option<i64>) -> String {
        match code.and_then(Results::from_code) {
            Some(Results::Success) => "succeeded".into(),
            Some(Results::Failure) => "failed".into(),
            Some(Results::Warnings) => "completed with warnings".into(),
            Some(Results::Exception) => "encountered an exception".into(),
            _ => format!(
                "completed with unknown result {}",
                code.map_or("None".to_owned(), |c| c.to_string())
            ),
        }
    }
}

/// Arguments of `summaryCB`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryArgs {
    /// The buildset's builds, sorted by builder name.
    #[serde(rename = "buildInfoList")]
    pub build_info_list: Vec<BuildInfo>,
    /// The buildset's result as a *name* (`"failure"`), as Buildbot passes it to summaryCB.
    #[serde(default)]
    pub results: String,
    /// The reporter's `summary_arg`, any JSON; `null` when not configured.
    #[serde(default)]
    pub arg: Value,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}
