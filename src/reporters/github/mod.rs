//! `[[reporter.github]]`: Buildbot's GitHubStatusPush. A commit status per source stamp when a
//! build is requested (`pending`, `Build pending.`), when it starts (`pending`, `Build
//! started.`) and when it ends (the result's state, `Build done.`); a cancelled request gets
//! `error` with the pending text, as Buildbot does. A `message_formatter`'s plain body becomes
//! the description.
//!
//! Beyond Buildbot: the description is cut to GitHub's 140 characters; one source stamp that
//! names no repository or revision is skipped without losing the others; answers map to
//! retry classes ([`sink`]), the rate limit included; the statuses of one build request are
//! sent in order, so a `pending` never lands after the `success`.

mod comment;
mod config;
pub mod repo;
mod sink;

pub use comment::{CommentPayload, GitHubCommentConfig, pull_request};
pub use config::{GitHubConfig, KW};
pub use sink::GitHubSink;

use crate::config::{RetrySettings, Selection};
use crate::event::{Build, EventKind, Results, SourceStamp};
use crate::interpolate::{Context, Lookup, Selector, Template};
use crate::outbox::Sink;
use crate::reporters::forge::{Descriptions, secret_values, status_hook, text_only};
use crate::reporters::{BuildContext, HookCall, Output, RenderInput, Rendered, Reporter};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// GitHub's limit on a status description, in characters.
pub const MAX_DESCRIPTION: usize = 140;

/// One status for one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub owner: String,
    pub repo: String,
    pub sha: String,
    /// The request body: `state`, `description`, `target_url`, `context`.
    pub status: Status,
}

/// GitHub's commit-status request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    pub description: String,
    pub context: String,
}

/// A configured GitHub status reporter.
pub struct GitHub {
    selection: Selection,
    retry: RetrySettings,
    context: Template,
    owner: Option<Template>,
    name: Option<Template>,
    sha: Option<Template>,
    texts: Descriptions,
    secrets: BTreeMap<String, String>,
    sink: Arc<GitHubSink>,
}

/// GitHub's state for a build's result (Buildbot's map): success, warnings and skipped are
/// `success`; failure `failure`; retry or not finished `pending`; anything else `error`.
pub fn state_for(results: Option<i64>) -> &'static str {
    match results.and_then(Results::from_code) {
        None if results.is_none() => "pending",
        Some(Results::Success | Results::Warnings | Results::Skipped) => "success",
        Some(Results::Failure) => "failure",
        Some(Results::Retry) => "pending",
        _ => "error",
    }
}

/// `text` cut to `max` characters (with `…` as the last one when cut).
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl GitHub {
    fn new(c: &GitHubConfig, cx: &BuildContext<'_>) -> anyhow::Result<GitHub> {
        let names: Vec<&str> = cx.secrets.keys().map(String::as_str).collect();
        let mut parsed = BTreeMap::new();
        for (option, t) in c.templates(&names) {
            parsed.insert(option, t.map_err(|e| anyhow::anyhow!("{option}: {e}"))?);
        }
        let mut take = |k: &str| parsed.remove(k).flatten();
        let context = take("context").unwrap_or(Template::parse(
            "buildbot/%(prop:buildername)s",
            &crate::interpolate::Allowed {
                kw: config::KW,
                secrets: &[],
            },
        )?);
        Ok(GitHub {
            selection: crate::config::CommonOptions::selection(c),
            retry: crate::config::CommonOptions::retry(c),
            context,
            owner: take("repo_owner"),
            name: take("repo_name"),
            sha: take("sha"),
            texts: Descriptions::new(
                &c.pending_description,
                &c.start_description,
                &c.end_description,
            ),
            secrets: secret_values(cx.secrets),
            sink: Arc::new(GitHubSink::new(c, cx.base)?),
        })
    }

    /// The statuses for `b`: one per source stamp (or, with `repo_owner`/`repo_name`, one).
    fn statuses(&self, b: &Build, status: &Status, lookup: &dyn Lookup) -> Vec<Rendered> {
        let stamps: &[SourceStamp] = b.buildset.as_ref().map_or(&[], |s| &s.sourcestamps[..]);
        let mut targets: Vec<(Option<(String, String)>, String)> = Vec::new();
        if let (Some(o), Some(n)) = (&self.owner, &self.name) {
            let sha = match &self.sha {
                Some(t) => t.render(lookup),
                None => crate::interpolate::source_stamp_attr(stamps, "", "revision")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            };
            let (o, n) = (o.render(lookup), n.render(lookup));
            targets.push(((!o.is_empty() && !n.is_empty()).then_some((o, n)), sha));
        } else {
            for ss in stamps {
                let sha = match &self.sha {
                    Some(t) => t.render(lookup),
                    None => ss.revision.clone().unwrap_or_default(),
                };
                targets.push((
                    repo::owner_repo(ss.project.as_deref(), ss.repository.as_deref()),
                    sha,
                ));
            }
        }
        let mut out = Vec::new();
        for (owner_repo, sha) in targets {
            let Some((owner, repo)) = owner_repo else {
                tracing::warn!(reporter = %self.selection.name, build = b.buildid, "a source stamp names no GitHub repository (project owner/repo, or a repository URL): skipped");
                continue;
            };
            if sha.is_empty() {
                tracing::warn!(reporter = %self.selection.name, build = b.buildid, %owner, %repo, "a source stamp has no revision: skipped");
                continue;
            }
            let payload = Payload {
                owner: owner.clone(),
                repo: repo.clone(),
                sha: sha.clone(),
                status: status.clone(),
            };
            out.push(Rendered {
                destination: format!("{owner}/{repo}@{sha}"),
                payload: serde_json::to_string(&payload).expect("a status serialises"),
            });
        }
        out
    }
}

/// Properties, `kw` (`builder`, `result`), secrets and source stamps for a forge's templates.
pub struct Lookups<'a> {
    build: &'a Build,
    kw: Vec<(&'static str, String)>,
    secrets: &'a BTreeMap<String, String>,
}

impl<'a> Lookups<'a> {
    /// What the templates see of `build`.
    pub fn new(build: &'a Build, secrets: &'a BTreeMap<String, String>) -> Lookups<'a> {
        Lookups {
            build,
            kw: vec![
                (
                    "builder",
                    build.builder_name().unwrap_or_default().to_owned(),
                ),
                ("result", Results::text_for(build.results)),
            ],
            secrets,
        }
    }
}

impl Lookup for Lookups<'_> {
    fn lookup(&self, selector: Selector, key: &str) -> Option<serde_json::Value> {
        let secrets = |k: &str| self.secrets.get(k).cloned();
        Context {
            properties: Some(&self.build.properties),
            kw: &self.kw,
            secrets: &secrets,
            sourcestamps: self
                .build
                .buildset
                .as_ref()
                .map_or(&[], |s| &s.sourcestamps[..]),
        }
        .lookup(selector, key)
    }
}

impl Reporter for GitHub {
    fn kind(&self) -> &'static str {
        "github"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        true
    }

    /// Every request, start and end is reported (Buildbot's default generators).
    fn uses_mode(&self) -> bool {
        false
    }

    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        status_hook(kind, self.selection.message_formatter.as_deref(), true)
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        text_only(output, "a GitHub status description")
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let Some(b) = input.build else {
            return Vec::new();
        };
        let state = match input.kind {
            EventKind::BuildrequestNew | EventKind::BuildStarted => "pending",
            EventKind::BuildrequestCancelled => "error",
            EventKind::BuildFinished => state_for(b.results),
            _ => return Vec::new(),
        };
        let description = self.texts.for_event(input.kind, input.message);
        let lookups = Lookups::new(b, &self.secrets);
        let status = Status {
            state: state.into(),
            target_url: b.url.clone(),
            description: cut(&description, MAX_DESCRIPTION),
            context: self.context.render(&lookups),
        };
        self.statuses(b, &status, &lookups)
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

    #[test]
    fn states_and_descriptions() {
        let got: Vec<&str> = (0..7).map(|c| state_for(Some(c))).collect();
        assert_eq!(
            got,
            [
                "success", "success", "failure", "success", "error", "pending", "error"
            ]
        );
        assert_eq!(state_for(None), "pending");
        assert_eq!(state_for(Some(99)), "error");
        let long = "é".repeat(300);
        let c = cut(&long, MAX_DESCRIPTION);
        assert_eq!(c.chars().count(), 140);
        assert!(c.ends_with('…'));
        assert_eq!(cut("short", 140), "short");
    }
}
