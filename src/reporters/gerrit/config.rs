//! `[[reporter.gerrit]]`: the table, its checks, and how it is built.

use super::Gerrit;
use crate::config::{DurationStr, Secret, reporter_config};
use crate::reporters::{BuildContext, CheckContext, Reporter, ReporterConfig, same_table};
use serde::Deserialize;
use serde_json::Value;
use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.gerrit]]`: Buildbot's GerritStatusPush. Reviews go over ssh (`gerrit
    /// review`, the system OpenSSH client).
    pub struct GerritConfig {
        /// The Gerrit server's host name.
        pub server: String,
        /// Its ssh port [default 29418].
        #[serde(default = "default_port")]
        pub port: u16,
        /// The ssh user.
        pub username: String,
        /// The private key ssh logs in with (only this one: `IdentitiesOnly`).
        #[serde(default)]
        pub identity_file: Option<PathBuf>,
        /// The `known_hosts` file with the server's host key; host keys are always checked
        /// (`StrictHostKeyChecking=yes`) [default: ssh's own, `~/.ssh/known_hosts`].
        #[serde(default)]
        pub known_hosts: Option<PathBuf>,
        /// `gerrit review --notify`: `NONE`, `OWNER`, `OWNER_REVIEWERS` or `ALL`.
        #[serde(default)]
        pub notify: Option<String>,
        /// `reviewCB`: a `[[formatter]]` name or `"default"` (Buildbot's `defaultReviewCB`,
        /// built in): one review per finished build.
        #[serde(default)]
        pub review_cb: Option<String>,
        /// `startCB`: a `[[formatter]]` name: a review when a build starts.
        #[serde(default)]
        pub start_cb: Option<String>,
        /// `summaryCB`: a `[[formatter]]` name or `"default"` (`defaultSummaryCB`): one review
        /// per completed buildset. With neither `review_cb` nor `summary_cb`, the default
        /// summary, as Buildbot.
        #[serde(default)]
        pub summary_cb: Option<String>,
        /// `arg` for `reviewCB` (any value).
        #[serde(default)]
        pub review_arg: Option<Value>,
        /// `arg` for `startCB`.
        #[serde(default)]
        pub start_arg: Option<Value>,
        /// `arg` for `summaryCB`.
        #[serde(default)]
        pub summary_arg: Option<Value>,
        /// How reviews are sent: `ssh` (`gerrit review`) or `rest` (Gerrit's REST API).
        #[serde(default)]
        pub transport: Transport,
        /// `rest`: Gerrit's web root (`https://review.example.org`).
        #[serde(default)]
        pub url: Option<String>,
        /// `rest`: the HTTP user (Gerrit's HTTP credentials), with `http_password`.
        #[serde(default)]
        pub http_user: Option<String>,
        /// `rest`: the HTTP password.
        #[serde(default)]
        pub http_password: Option<Secret>,
        /// `rest`: a bearer token instead of `http_user`/`http_password`.
        #[serde(default)]
        pub token: Option<Secret>,
        /// `rest`: an extra CA certificate (PEM) to trust; certificates are always verified.
        #[serde(default)]
        pub ca_file: Option<PathBuf>,
        /// Time limit of one ssh command [default 60s].
        #[serde(default)]
        pub timeout: Option<DurationStr>,
    }
}

/// How reviews reach Gerrit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Ssh,
    /// Gerrit's REST API: `POST /a/changes/{project}~{number}/revisions/{revision}/review`.
    Rest,
}

fn default_port() -> u16 {
    29418
}

/// `--notify` values Gerrit accepts.
const NOTIFY: [&str; 4] = ["NONE", "OWNER", "OWNER_REVIEWERS", "ALL"];

impl GerritConfig {
    /// `(formatter, arg)` for a callback option: `"default"` is the built-in (`None`).
    pub(super) fn callback(
        name: &Option<String>,
        arg: &Option<Value>,
    ) -> Option<(Option<String>, Value)> {
        name.as_ref().map(|n| {
            (
                (n != "default").then(|| n.clone()),
                arg.clone().unwrap_or(Value::Null),
            )
        })
    }
}

/// Whether `s` can go on ssh's command line as a host or user name without being taken for an
/// option or breaking the destination.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl ReporterConfig for GerritConfig {
    fn check(&self, cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = Vec::new();
        if !plain_name(&self.server) {
            p.push(format!("server {:?} is not a host name", self.server));
        }
        if !plain_name(&self.username) {
            p.push(format!(
                "username {:?} is not an ssh user name (letters, digits, '.', '_', '-')",
                self.username
            ));
        }
        if let Some(n) = &self.notify
            && !NOTIFY.contains(&n.as_str())
        {
            p.push(format!("notify {n:?} is not one of {}", NOTIFY.join(", ")));
        }
        for (option, name) in [
            ("review_cb", &self.review_cb),
            ("start_cb", &self.start_cb),
            ("summary_cb", &self.summary_cb),
        ] {
            match name.as_deref() {
                Some("default") if option == "start_cb" => p.push(
                    "start_cb = \"default\": Buildbot has no default startCB; name a [[formatter]]"
                        .into(),
                ),
                Some("default") | None => {}
                Some(f) if !cx.formatters.contains(f) => {
                    p.push(format!("{option} {f:?} is not a [[formatter]] name"))
                }
                Some(_) => {}
            }
        }
        if self.transport == Transport::Rest {
            match &self.url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
                Some(u) => p.push(format!("url {u:?} is not an http:// or https:// URL")),
                None => p.push("transport = \"rest\" needs url (Gerrit's web root)".into()),
            }
            if self.http_user.is_some() != self.http_password.is_some() {
                p.push("http_user and http_password go together".into());
            }
            if self.token.is_some() && self.http_user.is_some() {
                p.push("token and http_user/http_password exclude each other".into());
            }
        } else if self.url.is_some() || self.http_user.is_some() || self.token.is_some() {
            p.push("url, http_user, http_password and token are for transport = \"rest\"".into());
        }
        if self.mode.is_some() {
            p.push(
                "mode does not apply to gerrit: every start (start_cb), end (review_cb) and buildset (summary_cb) is reviewed"
                    .into(),
            );
        }
        if self.message_formatter.is_some()
            || self.build_set_summary
            || self.report_requests
            || self.workers.is_some()
        {
            p.push(
                "message_formatter, build_set_summary, report_requests and workers do not apply to gerrit: use review_cb, start_cb and summary_cb"
                    .into(),
            );
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        Ok(Arc::new(Gerrit::new(self, cx.base)?))
    }

    fn same_as(&self, other: &dyn ReporterConfig) -> bool {
        same_table(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn every_problem_is_named_and_the_issue_config_is_fine() {
        let e = match Config::parse(
            r#"
[[formatter]]
name = "f"
module = "f.wasm"

[[reporter.gerrit]]
name = "g"
server = "-oProxyCommand=x"
username = "ci user"
notify = "EVERYONE"
review_cb = "nope"
start_cb = "default"
transport = "rest"
mode = "all"
"#,
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        for want in [
            "server \"-oProxyCommand=x\" is not a host name",
            "username \"ci user\" is not an ssh user name",
            "notify \"EVERYONE\" is not one of NONE, OWNER, OWNER_REVIEWERS, ALL",
            "review_cb \"nope\" is not a [[formatter]] name",
            "Buildbot has no default startCB",
            "transport = \"rest\" needs url",
            "mode does not apply to gerrit",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        Config::parse(
            r#"
[[reporter.gerrit]]
name = "gerrit"
server = "127.0.0.1"
port = 2222
username = "ci"
identity_file = "ssh/id_ed25519"
known_hosts = "ssh/known_hosts"
review_cb = "default"
review_arg = { any = ["json", 1] }
"#,
        )
        .unwrap();
    }
}
