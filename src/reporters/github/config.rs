//! `[[reporter.github]]`: the table, its checks, and how it is built.

use super::GitHub;
use crate::config::{DurationStr, Secret, reporter_config};
use crate::interpolate::{Allowed, Template};
use crate::reporters::{BuildContext, CheckContext, Reporter, ReporterConfig, same_table};
use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.github]]`: Buildbot's GitHubStatusPush, a commit status per source
    /// stamp for each build request (pending), build start (pending) and build end.
    pub struct GitHubConfig {
        /// The token (`Authorization: token …`).
        pub token: Secret,
        /// The API root [default `https://api.github.com`; Enterprise: `https://host/api/v3`].
        #[serde(default)]
        pub base_url: Option<String>,
        /// The status context, a template [default `buildbot/%(prop:buildername)s`].
        #[serde(default)]
        pub context: Option<String>,
        /// The description of a build request's status [default `Build pending.`].
        #[serde(default)]
        pub pending_description: Option<String>,
        /// The description when a build starts [default `Build started.`].
        #[serde(default)]
        pub start_description: Option<String>,
        /// The description when a build ends [default `Build done.`].
        #[serde(default)]
        pub end_description: Option<String>,
        /// Legacy overrides (templates, `%(src:…)s` allowed): the repository owner, its name,
        /// and the commit [default: from each source stamp; `sha` `%(src::revision)s`].
        #[serde(default)]
        pub repo_owner: Option<String>,
        #[serde(default)]
        pub repo_name: Option<String>,
        #[serde(default)]
        pub sha: Option<String>,
        /// An extra CA certificate (PEM) to trust; certificates are always verified.
        #[serde(default)]
        pub ca_file: Option<PathBuf>,
        /// Per-request time limit [default 30s].
        #[serde(default)]
        pub timeout: Option<DurationStr>,
    }
}

/// The `kw` names a GitHub template may use.
pub const KW: &[&str] = &["builder", "result"];

impl GitHubConfig {
    /// The API root, one trailing `/` stripped.
    pub(super) fn base(&self) -> String {
        let b = self.base_url.as_deref().unwrap_or("https://api.github.com");
        b.strip_suffix('/').unwrap_or(b).to_owned()
    }

    /// Each template option with its parse (`Err`: the problem).
    pub(super) fn templates(
        &self,
        secrets: &[&str],
    ) -> Vec<(&'static str, Result<Option<Template>, String>)> {
        let allowed = Allowed { kw: KW, secrets };
        let parse = |t: &Option<String>| {
            t.as_deref()
                .map(|t| Template::parse(t, &allowed).map_err(|e| e.to_string()))
                .transpose()
        };
        vec![
            ("context", parse(&self.context)),
            ("repo_owner", parse(&self.repo_owner)),
            ("repo_name", parse(&self.repo_name)),
            ("sha", parse(&self.sha)),
        ]
    }
}

impl ReporterConfig for GitHubConfig {
    fn check(&self, cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = Vec::new();
        let b = self.base();
        if !(b.starts_with("http://") || b.starts_with("https://")) {
            p.push(format!("base_url {b:?} is not an http:// or https:// URL"));
        }
        let names: Vec<&str> = cx.secrets.keys().map(String::as_str).collect();
        for (option, t) in self.templates(&names) {
            if let Err(e) = t {
                p.push(format!("{option}: {e}"));
            }
        }
        if self.repo_owner.is_some() != self.repo_name.is_some() {
            p.push("repo_owner and repo_name go together".into());
        }
        if self.mode.is_some() {
            p.push("mode does not apply to github: every build request, start and end is reported (Buildbot's default generators)".into());
        }
        if self.build_set_summary || self.workers.is_some() {
            p.push("build_set_summary and workers do not apply to github".into());
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        Ok(Arc::new(GitHub::new(self, cx)?))
    }

    fn same_as(&self, other: &dyn ReporterConfig) -> bool {
        same_table(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
