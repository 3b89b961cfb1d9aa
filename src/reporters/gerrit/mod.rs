//! `[[reporter.gerrit]]`: Buildbot's GerritStatusPush. `reviewCB`, `startCB` and `summaryCB`
//! are WASM formatters (or Buildbot's default callbacks, built in); a review goes to the
//! change's project and revision, found in the build's properties as Buildbot finds them, over
//! ssh (`gerrit review`, [`ssh`]).
//!
//! Which reviews are sent follows Buildbot's mapping of its old arguments: neither `review_cb`
//! nor `summary_cb` → one summary per completed buildset with the default summary;
//! `review_cb` (only) → one review per finished build; `start_cb` → a review when a build
//! starts; `builders` / `tags` filter all three. No mode applies.

mod config;
pub mod rest;
mod sink;
pub mod ssh;

pub use config::{GerritConfig, Transport};
pub use sink::GerritSink;

use crate::config::{RetrySettings, Selection};
use crate::event::{Build, EventKind};
use crate::formatter::Request;
use crate::outbox::Sink;
use crate::reporters::{HookCall, Output, RenderInput, Rendered, Reporter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tidings_guest::{Hook, Review, ReviewArgs, SummaryArgs};

/// The destination of a delivery that sends nothing because the build names no change (its
/// payload is `{"skip": why}`; the sink records "not sent: why").
pub const NOTHING_TO_REVIEW: &str = "(nothing to review)";

/// What one delivery asks Gerrit to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub project: String,
    pub revision: String,
    /// The change number, when the build says it (`event.change.number`, or the repo tool's
    /// download): Gerrit's REST API names changes by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, i64>,
}

/// A configured Gerrit reporter.
pub struct Gerrit {
    selection: Selection,
    retry: RetrySettings,
    /// `(formatter, arg)` per callback; formatter `None`: the built-in default.
    review: Option<(Option<String>, Value)>,
    start: Option<(Option<String>, Value)>,
    summary: Option<(Option<String>, Value)>,
    sink: Arc<GerritSink>,
}

impl Gerrit {
    fn new(c: &GerritConfig, base: &std::path::Path) -> anyhow::Result<Gerrit> {
        let review = GerritConfig::callback(&c.review_cb, &c.review_arg);
        let summary = GerritConfig::callback(&c.summary_cb, &c.summary_arg)
            .or_else(|| review.is_none().then_some((None, Value::Null)));
        Ok(Gerrit {
            selection: crate::config::CommonOptions::selection(c),
            retry: crate::config::CommonOptions::retry(c),
            review,
            start: GerritConfig::callback(&c.start_cb, &c.start_arg),
            summary,
            sink: Arc::new(GerritSink::new(c, base)?),
        })
    }
}

/// Buildbot's `defaultReviewCB` (from the `gerrit` formatter's crate).
pub fn default_review(args: &ReviewArgs) -> Option<Review> {
    gerrit::default_review(args)
}

/// Buildbot's `defaultSummaryCB` (the `gerrit` formatter's `summaryCB`).
pub fn default_summary(args: &SummaryArgs) -> Option<Review> {
    gerrit::summary(args.clone()).ok().flatten()
}

/// The change a build is about, as Buildbot's `extract_project_revision` finds it: the first
/// download of the repo tool (`repo_downloads`, `repo_downloaded`), or Gerrit's event
/// (`event.change.id`): `event.change.project` and `event.patchSet.revision`, else
/// `got_revision`, else `revision` (a per-codebase dict is read at the `codebase` property).
/// Also the change number, when known (`event.change.number`, or the download's `1234/5`).
/// `Err` says why there is nothing to review.
pub fn change_of(b: &Build) -> Result<(String, String, Option<String>), String> {
    let prop = |name: &str| b.property(name).filter(|v| !v.is_null());
    if let (Some(downloads), Some(downloaded)) = (prop("repo_downloads"), prop("repo_downloaded")) {
        let downloads: Vec<&str> = downloads
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let downloaded: Vec<&str> = downloaded.as_str().unwrap_or("").split(' ').collect();
        if downloads.is_empty() || 2 * downloads.len() != downloaded.len() {
            return Err("repo_downloads and repo_downloaded do not match".into());
        }
        let Some((project, change)) = downloads[0].split_once(' ') else {
            return Err(format!(
                "repo_downloads {:?} is not \"project change\"",
                downloads[0]
            ));
        };
        if change != downloaded[0] {
            return Err("repo_downloads and repo_downloaded name other changes".into());
        }
        let number = change.split('/').next().map(str::to_owned);
        return Ok((project.to_owned(), downloaded[1].to_owned(), number));
    }
    if prop("event.change.id").is_none() {
        return Err(
            "the build carries no Gerrit change (no event.change.id or repo_downloads property)"
                .into(),
        );
    }
    let project = prop("event.change.project")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or("the build has event.change.id but no event.change.project")?;
    let truthy = |v: &&Value| match v {
        Value::String(s) => !s.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => false,
    };
    let revision = prop("event.patchSet.revision")
        .filter(truthy)
        .or_else(|| prop("got_revision").filter(truthy))
        .or_else(|| prop("revision").filter(truthy));
    let revision = match revision {
        Some(Value::String(r)) => r.clone(),
        Some(Value::Object(per_codebase)) => {
            let codebase = b
                .property_str("codebase")
                .ok_or("the revision is per codebase and the build has no codebase property")?;
            per_codebase
                .get(codebase)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("no revision for codebase {codebase:?}"))?
                .to_owned()
        }
        _ => return Err("the build has no revision".into()),
    };
    let number = match prop("event.change.number") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    Ok((project.to_owned(), revision, number))
}

impl Reporter for Gerrit {
    fn kind(&self) -> &'static str {
        "gerrit"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        self.start.is_some()
    }

    /// Every start, end and buildset is reviewed (by the callbacks configured), as Buildbot's
    /// Gerrit generators do.
    fn uses_mode(&self) -> bool {
        false
    }

    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        let (hook, callback) = match kind {
            EventKind::BuildStarted => (Hook::StartCb, &self.start),
            EventKind::BuildFinished => (Hook::ReviewCb, &self.review),
            EventKind::BuildsetComplete => (Hook::SummaryCb, &self.summary),
            _ => return None,
        };
        callback.as_ref().map(|(formatter, arg)| HookCall {
            hook,
            formatter: formatter.clone(),
            arg: arg.clone(),
        })
    }

    fn default_output(&self, request: &Request) -> Option<Output> {
        match request {
            Request::Review(a) => default_review(a).map(Output::Review),
            Request::Summary(a) => default_summary(a).map(Output::Review),
            _ => None,
        }
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        match output {
            Output::Message(_) => {
                Err("gerrit takes reviews ({message, labels}), not a message".into())
            }
            _ => Ok(()),
        }
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let (message, labels) = match input.message.output() {
            Some(Output::Review(r)) => (r.message.clone(), r.labels.clone()),
            Some(Output::Start(s)) => (Some(s.message.clone()), s.labels.clone()),
            _ => return Vec::new(),
        };
        let Some(message) = message else {
            tracing::debug!(reporter = %self.selection.name, "no review message: nothing sent");
            return Vec::new();
        };
        let Some(build) = input.build else {
            return Vec::new();
        };
        let (project, revision, change) = match change_of(build) {
            Ok(c) => c,
            Err(why) => {
                // Kept in the outbox, delivered as "not sent" with the reason, so that `outbox
                // show` answers "why did Gerrit get no review of this build?".
                let skip = serde_json::json!({ "skip": why });
                return vec![Rendered {
                    destination: NOTHING_TO_REVIEW.into(),
                    payload: skip.to_string(),
                }];
            }
        };
        let payload = Payload {
            project: project.clone(),
            revision: revision.clone(),
            change,
            message: Some(message),
            labels,
        };
        vec![Rendered {
            destination: format!("{project}@{revision}"),
            payload: serde_json::to_string(&payload).expect("a review serialises"),
        }]
    }

    fn sink(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    fn retry(&self) -> RetrySettings {
        self.retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(props: Value) -> Build {
        let mut p = serde_json::Map::new();
        for (k, v) in props.as_object().unwrap() {
            p.insert(k.clone(), json!([v, "test"]));
        }
        serde_json::from_value(json!({"properties": p})).unwrap()
    }

    #[test]
    fn the_change_is_found_as_buildbot_finds_it() {
        let gerrit = json!({"event.change.id": "I1", "event.change.project": "tools/widget",
                            "event.patchSet.revision": "abc", "got_revision": "def"});
        assert_eq!(
            change_of(&build(gerrit)),
            Ok(("tools/widget".into(), "abc".into(), None))
        );
        let numbered = json!({"event.change.id": "I1", "event.change.project": "p",
                              "event.change.number": 4711, "event.patchSet.revision": "abc"});
        assert_eq!(
            change_of(&build(numbered)).unwrap().2.as_deref(),
            Some("4711")
        );
        let got = json!({"event.change.id": "I1", "event.change.project": "p", "got_revision": "def", "revision": "r"});
        assert_eq!(change_of(&build(got)), Ok(("p".into(), "def".into(), None)));
        let multi = json!({"event.change.id": "I1", "event.change.project": "p",
                           "got_revision": {"a": "111", "b": "222"}, "codebase": "b"});
        assert_eq!(
            change_of(&build(multi)),
            Ok(("p".into(), "222".into(), None))
        );
        let no_codebase = json!({"event.change.id": "I1", "event.change.project": "p",
                                 "got_revision": {"a": "111"}});
        assert!(change_of(&build(no_codebase)).is_err());
        let repo = json!({"repo_downloads": ["platform/build 1234/5", "x 9/1"],
                          "repo_downloaded": "1234/5 aaa 9/1 bbb"});
        assert_eq!(
            change_of(&build(repo)),
            Ok(("platform/build".into(), "aaa".into(), Some("1234".into())))
        );
        let bad_repo =
            json!({"repo_downloads": ["platform/build 1234/5"], "repo_downloaded": "1234/6 aaa"});
        assert!(change_of(&build(bad_repo)).is_err());
        let plain = json!({"revision": "abc"});
        assert!(
            change_of(&build(plain))
                .unwrap_err()
                .contains("no Gerrit change")
        );
    }

    #[test]
    fn default_callbacks_are_buildbots() {
        let args = ReviewArgs {
            builder_name: "linux".into(),
            result: Some(2),
            ..Default::default()
        };
        let r = default_review(&args).unwrap();
        assert_eq!(
            r.message.as_deref(),
            Some(
                "Buildbot finished compiling your patchset\non configuration: linux\nThe result is: FAILURE\n"
            )
        );
        assert_eq!(r.labels, BTreeMap::from([("Verified".into(), -1)]));
        let retry = ReviewArgs {
            result: Some(5),
            ..args
        };
        assert_eq!(default_review(&retry), None);
        let Request::Summary(s) = Request::summary(
            vec![
                serde_json::from_value(json!({"results": 0, "state_string": "build successful",
                    "url": "http://ci/#/builders/1/builds/7", "builder": {"name": "a"}}))
                .unwrap(),
                serde_json::from_value(json!({"results": 0, "state_string": "ok",
                    "builder": {"name": "b"}}))
                .unwrap(),
            ],
            Some(0),
            Value::Null,
        ) else {
            unreachable!()
        };
        let r = default_summary(&s).unwrap();
        assert_eq!(
            r.message.as_deref(),
            Some(
                "Builder a succeeded (build successful) - http://ci/#/builders/1/builds/7\n\nBuilder b succeeded (ok)."
            )
        );
        assert_eq!(r.labels, BTreeMap::from([("Verified".into(), 1)]));
    }
}
