//! `[[reporter.bitbucket_server]]`: Buildbot's BitbucketServerStatusPush (the old
//! StashStatusPush) and, with `api = "core"`, BitbucketServerCoreAPIStatusPush; and
//! `[[reporter.bitbucket_server_pr_comment]]` ([`comment`]): BitbucketServerPRCommentPush.
//!
//! Build statuses: `INPROGRESS` while a build runs (and, for the core API, when it is
//! requested), `SUCCESSFUL` for a success, `FAILED` for anything else, one per source stamp
//! with a revision. `POST {base_url}/rest/build-status/1.0/commits/{sha}` with `{state, key,
//! url, [description], [name]}`, or with `api = "core"` `POST
//! /rest/api/1.0/projects/{project}/repos/{slug}/commits/{sha}/builds` with every key (nulls
//! kept): `state, url, key, parent, ref, buildNumber, description, name, duration,
//! testResults`. Only 204 is success.

mod comment;
mod sink;

pub use comment::BitbucketServerPrCommentConfig;
pub use sink::{BitbucketSink, Payload};

use crate::config::{DurationStr, RetrySettings, Secret, Selection, reporter_config};
use crate::event::{Build, EventKind, Results, SourceStamp};
use crate::interpolate::{Allowed, Template};
use crate::outbox::Sink;
use crate::reporters::forge::{Descriptions, secret_values, status_hook, text_only};
use crate::reporters::github::{KW, Lookups};
use crate::reporters::http::{HttpAuth, encode_segment};
use crate::reporters::{
    BuildContext, CheckContext, HookCall, Output, RenderInput, Rendered, Reporter, ReporterConfig,
    same_table,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.bitbucket_server]]`.
    pub struct BitbucketServerConfig {
        /// Bitbucket Server's root (no trailing `/`, as Buildbot requires).
        pub base_url: String,
        /// HTTP Basic user, with `password`.
        #[serde(default)]
        pub user: Option<String>,
        #[serde(default)]
        pub password: Option<Secret>,
        /// A bearer token instead.
        #[serde(default)]
        pub token: Option<Secret>,
        /// The status key, a template [default `%(prop:buildername)s`].
        #[serde(default)]
        pub key: Option<String>,
        /// The status name, a template [default: none; core API: `<builder> #<number>`].
        #[serde(default)]
        pub status_name: Option<String>,
        /// Core API: appended to the name.
        #[serde(default)]
        pub status_suffix: Option<String>,
        /// Core API: the parent key, a template [default: the builder name].
        #[serde(default)]
        pub parent_name: Option<String>,
        /// `build-status` (the build status API) or `core` (Bitbucket Server 7.4+).
        #[serde(default)]
        pub api: Api,
        /// The descriptions without a formatter [default `Build pending.`, `Build started.`,
        /// `Build done.`].
        #[serde(default)]
        pub pending_description: Option<String>,
        #[serde(default)]
        pub start_description: Option<String>,
        #[serde(default)]
        pub end_description: Option<String>,
        /// Verify the server's certificate [default true].
        #[serde(default = "crate::config::yes")]
        pub verify: bool,
        /// An extra CA certificate (PEM) to trust.
        #[serde(default)]
        pub ca_file: Option<PathBuf>,
        /// Per-request time limit [default 30s].
        #[serde(default)]
        pub timeout: Option<DurationStr>,
    }
}

/// Which Bitbucket Server API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    #[default]
    BuildStatus,
    Core,
}

/// `Basic`/`Bearer` from the options every Bitbucket table has.
pub(crate) fn auth(
    user: &Option<String>,
    password: &Option<Secret>,
    token: &Option<Secret>,
) -> Option<HttpAuth> {
    match (user, password, token) {
        (_, _, Some(t)) => Some(HttpAuth::Bearer { bearer: t.clone() }),
        (Some(u), Some(p), None) => Some(HttpAuth::Basic {
            user: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    }
}

/// Problems with the options every Bitbucket table has.
pub(crate) fn check_common(
    base_url: &str,
    user: &Option<String>,
    password: &Option<Secret>,
    token: &Option<Secret>,
) -> Vec<String> {
    let mut p = Vec::new();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        p.push(format!(
            "base_url {base_url:?} is not an http:// or https:// URL"
        ));
    }
    if base_url.ends_with('/') {
        p.push(format!("base_url {base_url:?} must not end with /"));
    }
    if user.is_some() != password.is_some() {
        p.push("user and password go together".into());
    }
    if token.is_some() && user.is_some() {
        p.push("token and user/password exclude each other".into());
    }
    p
}

/// `(project, slug)`: the last two path components of a repository URL, `.git` stripped.
pub fn project_slug(repository: &str) -> Option<(String, String)> {
    let path = repository.split_once("://").map_or(repository, |(_, r)| {
        r.split_once('/').map_or("", |(_, p)| p)
    });
    let path = path.rsplit_once(':').map_or(path, |(_, p)| p);
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.rsplit('/');
    let slug = parts.next().filter(|s| !s.is_empty())?;
    let project = parts.next().filter(|s| !s.is_empty())?;
    Some((project.to_owned(), slug.to_owned()))
}

impl BitbucketServerConfig {
    fn templates(&self, secrets: &[&str]) -> Result<[Option<Template>; 3], String> {
        let allowed = Allowed { kw: KW, secrets };
        let parse = |name: &str, t: &Option<String>| {
            t.as_deref()
                .map(|t| Template::parse(t, &allowed).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        Ok([
            parse("key", &self.key)?,
            parse("status_name", &self.status_name)?,
            parse("parent_name", &self.parent_name)?,
        ])
    }
}

impl ReporterConfig for BitbucketServerConfig {
    fn check(&self, cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = check_common(&self.base_url, &self.user, &self.password, &self.token);
        let names: Vec<&str> = cx.secrets.keys().map(String::as_str).collect();
        if let Err(e) = self.templates(&names) {
            p.push(e);
        }
        if self.api == Api::BuildStatus
            && (self.status_suffix.is_some() || self.parent_name.is_some())
        {
            p.push("status_suffix and parent_name are for api = \"core\"".into());
        }
        if self.mode.is_some() || self.build_set_summary || self.workers.is_some() {
            p.push("mode, build_set_summary and workers do not apply to bitbucket_server".into());
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        let names: Vec<&str> = cx.secrets.keys().map(String::as_str).collect();
        let [key, name, parent] = self.templates(&names).map_err(anyhow::Error::msg)?;
        let ca_file = self.ca_file.as_ref().map(|p| cx.base.join(p));
        Ok(Arc::new(BitbucketServer {
            selection: crate::config::CommonOptions::selection(self),
            retry: crate::config::CommonOptions::retry(self),
            api: self.api,
            key,
            name,
            parent,
            suffix: self.status_suffix.clone(),
            texts: Descriptions::new(
                &self.pending_description,
                &self.start_description,
                &self.end_description,
            ),
            secrets: secret_values(cx.secrets),
            sink: Arc::new(BitbucketSink::new(
                &self.base_url,
                auth(&self.user, &self.password, &self.token),
                self.verify,
                ca_file.as_deref(),
                self.timeout.map(|t| t.0),
                true,
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

/// A configured Bitbucket Server status reporter.
pub struct BitbucketServer {
    selection: Selection,
    retry: RetrySettings,
    api: Api,
    key: Option<Template>,
    name: Option<Template>,
    parent: Option<Template>,
    suffix: Option<String>,
    texts: Descriptions,
    secrets: BTreeMap<String, String>,
    sink: Arc<BitbucketSink>,
}

/// What one status says, whatever the source stamp.
struct Status<'a> {
    build: &'a Build,
    state: &'a str,
    description: &'a str,
    key: &'a str,
    is_request: bool,
}

/// Bitbucket's state (Buildbot's map).
pub fn state_for(b: &Build) -> &'static str {
    if !b.complete {
        "INPROGRESS"
    } else if b.results == Some(Results::Success.code()) {
        "SUCCESSFUL"
    } else {
        "FAILED"
    }
}

impl BitbucketServer {
    /// The core API's body (every key, nulls kept).
    fn core_body(&self, s: &Status<'_>, ss: &SourceStamp, lookups: &Lookups<'_>) -> Value {
        let (b, state, description, key, is_request) =
            (s.build, s.state, s.description, s.key, s.is_request);
        let builder = b.builder_name().unwrap_or_default().to_owned();
        let number = if is_request {
            String::new()
        } else {
            b.number.map_or(String::new(), |n| n.to_string())
        };
        let mut name = match &self.name {
            Some(t) => t.render(lookups),
            None if is_request => format!("{builder} #(build request)"),
            None => format!("{builder} #{number}"),
        };
        if let Some(s) = &self.suffix {
            name.push_str(s);
        }
        let branch = ss.branch.clone().unwrap_or_default();
        let r#ref = if branch.is_empty() || branch.starts_with("refs/") {
            branch
        } else {
            format!("refs/heads/{branch}")
        };
        let duration = match (b.complete, &b.started_at, &b.complete_at) {
            (true, Some(s), Some(e)) => match (s.as_f64(), e.as_f64()) {
                (Some(s), Some(e)) => json!(((e - s) * 1000.0).round() as i64),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
        let count = |p: &str| {
            b.property(p)
                .and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(0)
        };
        let (failed, skipped, successful) = (
            count("tests_failed"),
            count("tests_skipped"),
            count("tests_successful"),
        );
        let tests = if failed + skipped + successful > 0 {
            json!({"failed": failed, "skipped": skipped, "successful": successful})
        } else {
            Value::Null
        };
        json!({
            "state": state,
            "url": b.url,
            "key": key,
            "parent": self.parent.as_ref().map_or(builder.clone(), |t| t.render(lookups)),
            "ref": r#ref,
            "buildNumber": number,
            "description": description,
            "name": name,
            "duration": duration,
            "testResults": tests,
        })
    }
}

impl Reporter for BitbucketServer {
    fn kind(&self) -> &'static str {
        "bitbucket_server"
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

    /// Starts and ends; the core API's default generators report build requests too.
    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        status_hook(
            kind,
            self.selection.message_formatter.as_deref(),
            self.api == Api::Core,
        )
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        text_only(output, "a Bitbucket status description")
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let Some(b) = input.build else {
            return Vec::new();
        };
        let is_request = matches!(
            input.kind,
            EventKind::BuildrequestNew | EventKind::BuildrequestCancelled
        );
        let description = self.texts.for_event(input.kind, input.message);
        let state = state_for(b);
        let lookups = Lookups::new(b, &self.secrets);
        let key = match &self.key {
            Some(t) => t.render(&lookups),
            None => b.builder_name().unwrap_or_default().to_owned(),
        };
        let stamps: &[SourceStamp] = b.buildset.as_ref().map_or(&[], |s| &s.sourcestamps[..]);
        let mut out = Vec::new();
        for ss in stamps {
            let Some(sha) = ss.revision.clone().filter(|r| !r.is_empty()) else {
                continue;
            };
            let (path, body) = match self.api {
                Api::BuildStatus => {
                    let mut body = json!({"state": state, "key": key, "url": b.url});
                    if !description.is_empty() {
                        body["description"] = description.clone().into();
                    }
                    if let Some(t) = &self.name {
                        body["name"] = t.render(&lookups).into();
                    }
                    (
                        format!("/rest/build-status/1.0/commits/{}", encode_segment(&sha)),
                        body,
                    )
                }
                Api::Core => {
                    let Some((project, slug)) = ss.repository.as_deref().and_then(project_slug)
                    else {
                        tracing::warn!(reporter = %self.selection.name, build = b.buildid, "a source stamp names no Bitbucket project and repository: skipped");
                        continue;
                    };
                    (
                        format!(
                            "/rest/api/1.0/projects/{}/repos/{}/commits/{}/builds",
                            encode_segment(&project),
                            encode_segment(&slug),
                            encode_segment(&sha)
                        ),
                        self.core_body(
                            &Status {
                                build: b,
                                state,
                                description: &description,
                                key: &key,
                                is_request,
                            },
                            ss,
                            &lookups,
                        ),
                    )
                }
            };
            let payload = Payload {
                path: path.clone(),
                body,
                expect: 204,
            };
            out.push(Rendered {
                destination: format!("{sha} {key}"),
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
    fn projects_and_slugs_come_from_the_repository_url() {
        for url in [
            "https://bitbucket.example.org/scm/PROJ/widget.git",
            "ssh://git@bitbucket.example.org:7999/proj/widget.git",
            "git@bitbucket.example.org:PROJ/widget",
        ] {
            let (p, s) = project_slug(url).unwrap();
            assert_eq!(
                (p.to_lowercase().as_str(), s.as_str()),
                ("proj", "widget"),
                "{url}"
            );
        }
        assert_eq!(project_slug("widget"), None);
    }
}
