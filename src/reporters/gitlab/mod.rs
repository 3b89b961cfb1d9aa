//! `[[reporter.gitlab]]`: Buildbot 4's GitLabStatusPush. A commit status per source stamp when a
//! build is requested (`pending`), starts (`running`) and ends (`success`, `failed`,
//! `canceled`, or `pending` for a retry); a cancelled request is `canceled` with the pending
//! text. The project is the build's `source_project_id` property, or looked up once per
//! `owner/repo` (`GET /api/v4/projects/owner%2Frepo`) and remembered. The description is cut
//! to 140 characters, as for GitHub.

mod sink;

pub use sink::GitLabSink;

use crate::config::{DurationStr, RetrySettings, Secret, Selection, reporter_config};
use crate::event::{EventKind, Results, SourceStamp};
use crate::interpolate::{Allowed, Template};
use crate::outbox::Sink;
use crate::reporters::forge::{Descriptions, secret_values, status_hook, text_only};
use crate::reporters::github::{Lookups, MAX_DESCRIPTION, cut, repo::owner_repo};
use crate::reporters::{
    BuildContext, CheckContext, HookCall, Output, RenderInput, Rendered, Reporter, ReporterConfig,
    same_table,
};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.gitlab]]`: Buildbot's GitLabStatusPush.
    pub struct GitLabConfig {
        /// The token (`PRIVATE-TOKEN`).
        pub token: Secret,
        /// GitLab's root [default `https://gitlab.com`].
        #[serde(default)]
        pub base_url: Option<String>,
        /// The status name, a template [default `buildbot/%(prop:buildername)s`].
        #[serde(default)]
        pub context: Option<String>,
        /// The descriptions without a formatter [default `Build pending.`, `Build started.`,
        /// `Build done.`].
        #[serde(default)]
        pub pending_description: Option<String>,
        #[serde(default)]
        pub start_description: Option<String>,
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

/// One status: where (a project id, or `owner/repo` to look up) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// `source_project_id`, when the build has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// `owner/repo`, looked up when there is no id.
    pub path: String,
    pub sha: String,
    /// The request body: `state`, `ref`, `description`, `target_url`, `name`.
    pub status: BTreeMap<String, String>,
}

/// GitLab's state for a finished build (Buildbot's map).
pub fn state_for(results: Option<i64>) -> &'static str {
    match results.and_then(Results::from_code) {
        Some(Results::Success | Results::Warnings | Results::Skipped) => "success",
        Some(Results::Retry) => "pending",
        Some(Results::Cancelled) => "canceled",
        _ => "failed",
    }
}

impl GitLabConfig {
    fn base(&self) -> String {
        let b = self.base_url.as_deref().unwrap_or("https://gitlab.com");
        b.strip_suffix('/').unwrap_or(b).to_owned()
    }

    fn context(&self, secrets: &[&str]) -> Result<Template, String> {
        Template::parse(
            self.context
                .as_deref()
                .unwrap_or("buildbot/%(prop:buildername)s"),
            &Allowed {
                kw: crate::reporters::github::KW,
                secrets,
            },
        )
        .map_err(|e| format!("context: {e}"))
    }
}

impl ReporterConfig for GitLabConfig {
    fn check(&self, cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = Vec::new();
        let b = self.base();
        if !(b.starts_with("http://") || b.starts_with("https://")) {
            p.push(format!("base_url {b:?} is not an http:// or https:// URL"));
        }
        let names: Vec<&str> = cx.secrets.keys().map(String::as_str).collect();
        if let Err(e) = self.context(&names) {
            p.push(e);
        }
        if self.mode.is_some() || self.build_set_summary || self.workers.is_some() {
            p.push("mode, build_set_summary and workers do not apply to gitlab".into());
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        let names: Vec<&str> = cx.secrets.keys().map(String::as_str).collect();
        let ca_file = self.ca_file.as_ref().map(|p| cx.base.join(p));
        Ok(Arc::new(GitLab {
            selection: crate::config::CommonOptions::selection(self),
            retry: crate::config::CommonOptions::retry(self),
            context: self.context(&names).map_err(anyhow::Error::msg)?,
            texts: Descriptions::new(
                &self.pending_description,
                &self.start_description,
                &self.end_description,
            ),
            secrets: secret_values(cx.secrets),
            sink: Arc::new(GitLabSink::new(
                &self.base(),
                &self.token,
                ca_file.as_deref(),
                self.timeout.map(|t| t.0),
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

/// A configured GitLab status reporter.
pub struct GitLab {
    selection: Selection,
    retry: RetrySettings,
    context: Template,
    texts: Descriptions,
    secrets: BTreeMap<String, String>,
    sink: Arc<GitLabSink>,
}

impl Reporter for GitLab {
    fn kind(&self) -> &'static str {
        "gitlab"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        true
    }

    fn uses_mode(&self) -> bool {
        false
    }

    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        status_hook(kind, self.selection.message_formatter.as_deref(), true)
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        text_only(output, "a GitLab status description")
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let Some(b) = input.build else {
            return Vec::new();
        };
        let state = match input.kind {
            EventKind::BuildrequestNew => "pending",
            EventKind::BuildrequestCancelled => "canceled",
            EventKind::BuildStarted => "running",
            EventKind::BuildFinished => state_for(b.results),
            _ => return Vec::new(),
        };
        let description = self.texts.for_event(input.kind, input.message);
        let lookups = Lookups::new(b, &self.secrets);
        let name = self.context.render(&lookups);
        let project_id = b.property("source_project_id").and_then(|v| match v {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        });
        let stamps: &[SourceStamp] = b.buildset.as_ref().map_or(&[], |s| &s.sourcestamps[..]);
        let mut out = Vec::new();
        for ss in stamps {
            let Some(sha) = ss.revision.clone().filter(|r| !r.is_empty()) else {
                continue;
            };
            let path = match owner_repo(ss.project.as_deref(), ss.repository.as_deref()) {
                Some((owner, repo)) => format!("{owner}/{repo}"),
                None if project_id.is_some() => String::new(),
                None => {
                    tracing::warn!(reporter = %self.selection.name, build = b.buildid, "a source stamp names no GitLab project: skipped");
                    continue;
                }
            };
            let branch = b
                .property_str("source_branch")
                .map(str::to_owned)
                .or_else(|| ss.branch.clone())
                .unwrap_or_default();
            let mut status = BTreeMap::new();
            status.insert("state".to_owned(), state.to_owned());
            status.insert("ref".to_owned(), branch);
            status.insert("description".to_owned(), cut(&description, MAX_DESCRIPTION));
            status.insert("name".to_owned(), name.clone());
            if let Some(u) = &b.url {
                status.insert("target_url".to_owned(), u.clone());
            }
            let payload = Payload {
                project_id: project_id.clone(),
                path: path.clone(),
                sha: sha.clone(),
                status,
            };
            out.push(Rendered {
                destination: format!(
                    "{}@{sha}",
                    project_id
                        .as_deref()
                        .map_or(path, |id| format!("project {id}"))
                ),
                payload: serde_json::to_string(&payload).expect("a status serialises"),
            });
        }
        out
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
    fn states_are_buildbots() {
        let got: Vec<&str> = (0..7).map(|c| state_for(Some(c))).collect();
        assert_eq!(
            got,
            [
                "success", "success", "failed", "success", "failed", "pending", "canceled"
            ]
        );
    }
}
