//! `[[reporter.github_comment]]`: Buildbot's GitHubCommentPush. One comment per finished build
//! on the pull request its `branch` property names (`refs/pull/<n>/head` or `…/merge`), on the
//! repository of its first source stamp that names one (Buildbot posts one per source stamp,
//! so a build of two codebases commented twice). The comment is the formatter's plain body, or
//! `end_description` (`Build done.`). A build not of a pull request is not commented on.

use super::GitHubSink;
use super::repo::owner_repo;
use crate::config::{DurationStr, RetrySettings, Secret, Selection, reporter_config};
use crate::event::{EventKind, SourceStamp};
use crate::outbox::Sink;
use crate::reporters::forge::{comment_hook, formatter_text, text_only};
use crate::reporters::{
    BuildContext, CheckContext, HookCall, Output, RenderInput, Rendered, Reporter, ReporterConfig,
    same_table,
};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.github_comment]]`: Buildbot's GitHubCommentPush.
    pub struct GitHubCommentConfig {
        /// The token (`Authorization: token …`).
        pub token: Secret,
        /// The API root [default `https://api.github.com`].
        #[serde(default)]
        pub base_url: Option<String>,
        /// The comment without a formatter [default `Build done.`].
        #[serde(default)]
        pub end_description: Option<String>,
        /// An extra CA certificate (PEM) to trust; certificates are always verified.
        #[serde(default)]
        pub ca_file: Option<PathBuf>,
        /// Per-request time limit [default 30s].
        #[serde(default)]
        pub timeout: Option<DurationStr>,
    }
}

/// One comment on one pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentPayload {
    pub owner: String,
    pub repo: String,
    pub issue: u64,
    pub body: String,
}

/// The pull request a branch names (`refs/pull/<n>/head` or `refs/pull/<n>/merge`).
pub fn pull_request(branch: &str) -> Option<u64> {
    let rest = branch.strip_prefix("refs/pull/")?;
    let (n, tail) = rest.split_once('/')?;
    matches!(tail, "head" | "merge")
        .then(|| n.parse().ok())
        .flatten()
}

impl GitHubCommentConfig {
    fn base(&self) -> String {
        let b = self.base_url.as_deref().unwrap_or("https://api.github.com");
        b.strip_suffix('/').unwrap_or(b).to_owned()
    }
}

impl ReporterConfig for GitHubCommentConfig {
    fn check(&self, _cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = Vec::new();
        let b = self.base();
        if !(b.starts_with("http://") || b.starts_with("https://")) {
            p.push(format!("base_url {b:?} is not an http:// or https:// URL"));
        }
        if self.build_set_summary || self.report_requests || self.workers.is_some() {
            p.push(
                "build_set_summary, report_requests and workers do not apply to github_comment"
                    .into(),
            );
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        let sink = GitHubSink::comments(
            &self.base(),
            &self.token,
            self.ca_file.as_ref().map(|p| cx.base.join(p)).as_deref(),
            self.timeout.map(|t| t.0),
        )?;
        Ok(Arc::new(GitHubComment {
            selection: crate::config::CommonOptions::selection(self),
            retry: crate::config::CommonOptions::retry(self),
            end: self.end_description.clone().unwrap_or("Build done.".into()),
            sink: Arc::new(sink),
        }))
    }

    fn same_as(&self, other: &dyn ReporterConfig) -> bool {
        same_table(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A configured GitHub comment reporter.
pub struct GitHubComment {
    selection: Selection,
    retry: RetrySettings,
    end: String,
    sink: Arc<GitHubSink>,
}

impl Reporter for GitHubComment {
    fn kind(&self) -> &'static str {
        "github_comment"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        false
    }

    /// Every finished build of a pull request (Buildbot's end generator: no mode).
    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        comment_hook(kind, self.selection.message_formatter.as_deref())
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        text_only(output, "a GitHub comment")
    }

    fn uses_mode(&self) -> bool {
        false
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let Some(b) = input.build else {
            return Vec::new();
        };
        let Some(issue) = b.property_str("branch").and_then(pull_request) else {
            return Vec::new();
        };
        let body = formatter_text(input.message).unwrap_or_else(|| self.end.clone());
        let stamps: &[SourceStamp] = b.buildset.as_ref().map_or(&[], |s| &s.sourcestamps[..]);
        let Some((owner, repo)) = stamps
            .iter()
            .find_map(|ss| owner_repo(ss.project.as_deref(), ss.repository.as_deref()))
        else {
            tracing::warn!(reporter = %self.selection.name, build = b.buildid, "no source stamp names a GitHub repository: no comment");
            return Vec::new();
        };
        let payload = CommentPayload {
            owner: owner.clone(),
            repo: repo.clone(),
            issue,
            body,
        };
        vec![Rendered {
            destination: format!("{owner}/{repo}#{issue}"),
            payload: serde_json::to_string(&payload).expect("a comment serialises"),
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

    #[test]
    fn pull_requests_are_read_from_the_branch() {
        assert_eq!(pull_request("refs/pull/42/head"), Some(42));
        assert_eq!(pull_request("refs/pull/7/merge"), Some(7));
        assert_eq!(pull_request("refs/pull/7/other"), None);
        assert_eq!(pull_request("main"), None);
        assert_eq!(pull_request("refs/pull/x/head"), None);
    }
}
