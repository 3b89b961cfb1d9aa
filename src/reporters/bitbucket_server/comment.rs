//! `[[reporter.bitbucket_server_pr_comment]]`: Buildbot's BitbucketServerPRCommentPush. For a
//! finished build (the mode applies, default failing, passing, warnings) whose
//! `pullrequesturl` property names a pull request, `POST {base_url}/rest/api/1.0<the URL's
//! path>/comments` with `{"text": …}` (the formatter's plain body, or `Build done.`); 201 is
//! success. A comment that may have been posted is not posted again.

use super::{BitbucketSink, Payload, auth, check_common};
use crate::config::{DurationStr, RetrySettings, Secret, Selection, reporter_config};
use crate::event::EventKind;
use crate::outbox::Sink;
use crate::reporters::forge::{comment_hook, formatter_text, text_only};
use crate::reporters::{
    BuildContext, CheckContext, HookCall, Output, RenderInput, Rendered, Reporter, ReporterConfig,
    same_table,
};
use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.bitbucket_server_pr_comment]]`.
    pub struct BitbucketServerPrCommentConfig {
        /// Bitbucket Server's root (no trailing `/`).
        pub base_url: String,
        #[serde(default)]
        pub user: Option<String>,
        #[serde(default)]
        pub password: Option<Secret>,
        #[serde(default)]
        pub token: Option<Secret>,
        /// The comment without a formatter [default `Build done.`].
        #[serde(default)]
        pub end_description: Option<String>,
        #[serde(default = "crate::config::yes")]
        pub verify: bool,
        #[serde(default)]
        pub ca_file: Option<PathBuf>,
        #[serde(default)]
        pub timeout: Option<DurationStr>,
    }
}

/// The path of a pull request URL (`https://host/projects/P/repos/R/pull-requests/7` →
/// `/projects/P/repos/R/pull-requests/7`).
pub fn pull_request_path(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1.trim_end_matches('/');
    let path = path.split(['?', '#']).next().unwrap_or(path);
    (path.contains("/pull-requests/")).then(|| format!("/{path}"))
}

impl ReporterConfig for BitbucketServerPrCommentConfig {
    fn check(&self, _cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = check_common(&self.base_url, &self.user, &self.password, &self.token);
        if self.build_set_summary || self.report_requests || self.workers.is_some() {
            p.push("build_set_summary, report_requests and workers do not apply to bitbucket_server_pr_comment".into());
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        let ca_file = self.ca_file.as_ref().map(|p| cx.base.join(p));
        Ok(Arc::new(PrComment {
            selection: crate::config::CommonOptions::selection(self),
            retry: crate::config::CommonOptions::retry(self),
            end: self.end_description.clone().unwrap_or("Build done.".into()),
            sink: Arc::new(BitbucketSink::new(
                &self.base_url,
                auth(&self.user, &self.password, &self.token),
                self.verify,
                ca_file.as_deref(),
                self.timeout.map(|t| t.0),
                false,
            )?),
        }))
    }

    fn same_as(&self, other: &dyn ReporterConfig) -> bool {
        same_table(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A configured pull request commenter.
pub struct PrComment {
    selection: Selection,
    retry: RetrySettings,
    end: String,
    sink: Arc<BitbucketSink>,
}

impl Reporter for PrComment {
    fn kind(&self) -> &'static str {
        "bitbucket_server_pr_comment"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        false
    }

    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        comment_hook(kind, self.selection.message_formatter.as_deref())
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        text_only(output, "a Bitbucket comment")
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let Some(b) = input.build else {
            return Vec::new();
        };
        let Some(path) = b.property_str("pullrequesturl").and_then(pull_request_path) else {
            return Vec::new();
        };
        let text = formatter_text(input.message).unwrap_or_else(|| self.end.clone());
        let payload = Payload {
            path: format!("/rest/api/1.0{path}/comments"),
            body: serde_json::json!({ "text": text }),
            expect: 201,
        };
        vec![Rendered {
            destination: path,
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
    fn pull_request_paths() {
        assert_eq!(
            pull_request_path(
                "https://bb.example.org/projects/PROJ/repos/widget/pull-requests/7/overview"
            )
            .as_deref(),
            Some("/projects/PROJ/repos/widget/pull-requests/7/overview")
        );
        assert_eq!(
            pull_request_path("https://bb.example.org/projects/PROJ/repos/widget/pull-requests/7")
                .as_deref(),
            Some("/projects/PROJ/repos/widget/pull-requests/7")
        );
        assert_eq!(
            pull_request_path("https://bb.example.org/projects/P/repos/w"),
            None
        );
    }
}
