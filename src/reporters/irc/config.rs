//! `[[reporter.irc]]`: the table, its checks, and how it is built.

use super::bot::IrcBot;
use super::notify::valid_event;
use super::text::valid_target;
use super::{Irc, commands::Command};
use crate::config::{DurationStr, RetrySettings, Secret, reporter_config};
use crate::reporters::{BuildContext, CheckContext, Reporter, ReporterConfig, Service, same_table};
use serde::Deserialize;
use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

reporter_config! {
    /// One `[[reporter.irc]]`: Buildbot's IRC bot. It keeps one connection to its server (a
    /// service kept across reloads while this table is unchanged), announces builds to its
    /// channels and nicks as each one's `notify` settings say, and answers commands.
    pub struct IrcConfig {
        /// The IRC server.
        pub host: String,
        /// Its port [default 6667].
        #[serde(default = "default_port")]
        pub port: u16,
        /// The bot's nickname (`_` is appended while it is taken).
        pub nick: String,
        /// Channels to join: `"#name"` or `{ channel = "#name", password = "key" }`.
        #[serde(default)]
        pub channels: Vec<ChannelSpec>,
        /// Nicks that get `notify_events` as private messages.
        #[serde(default)]
        pub pm_to_nicks: Vec<String>,
        /// Server password (`PASS`) and NickServ `IDENTIFY`; with `use_sasl`, the SASL PLAIN
        /// password instead of `PASS`.
        #[serde(default)]
        pub password: Option<Secret>,
        /// Send `password` as the server's `PASS` too, as Buildbot does (without `use_sasl`)
        /// [default true]. A server with no password of its own (ngIRCd) refuses it: `false`
        /// logs in through NickServ only.
        #[serde(default = "crate::config::yes")]
        pub send_pass: bool,
        /// Log in with SASL PLAIN (IRCv3 `sasl`), as `nick` with `password`.
        #[serde(default)]
        pub use_sasl: bool,
        /// TLS; the server's certificate is always verified.
        #[serde(default)]
        pub use_ssl: bool,
        /// An extra CA certificate (PEM) to trust, or the server's own certificate (pinned).
        #[serde(default)]
        pub tls_ca_file: Option<PathBuf>,
        /// Events announced on every channel and pm nick unless changed with `notify`:
        /// `started`, `finished`, `success`, `warnings`, `failure`, `exception`, `cancelled`,
        /// `problem`, `recovery`, `worse`, `better`, `worker`, `<prev>To<Cur>`.
        #[serde(default)]
        pub notify_events: Vec<String>,
        /// `NOTICE` instead of `PRIVMSG` on channels.
        #[serde(default)]
        pub notice_on_channel: bool,
        /// mIRC colours around result words [default true].
        #[serde(default = "crate::config::yes")]
        pub use_colors: bool,
        /// Who may run which command: `{ force = ["alice"], stop = true, shutdown = [] }`.
        /// Keys are command names (or `"!"`: every dangerous command not listed, `""`: every
        /// other one, `"*"`: both); values `true`, `false` or a list of nicks.
        #[serde(default)]
        pub authz: Option<BTreeMap<String, Acl>>,
        /// Buildbot's legacy `allowForce`: `force` and `stop` for everyone (not with `authz`).
        #[serde(default)]
        pub allow_force: Option<bool>,
        /// Buildbot's legacy `allowShutdown` (not with `authz`).
        #[serde(default)]
        pub allow_shutdown: Option<bool>,
        /// Longest wait before reconnecting after a lost connection [default 5s].
        #[serde(default)]
        pub lost_delay: Option<DurationStr>,
        /// Longest wait before trying again after a failed connection [default 60s].
        #[serde(default)]
        pub failed_delay: Option<DurationStr>,
        /// Name who is to blame after a build that did not succeed [default true].
        #[serde(default = "crate::config::yes")]
        pub show_blame_list: bool,
        /// Name builds by their short revisions instead of their numbers [default false].
        #[serde(default)]
        pub use_revisions: bool,
        /// Lines sent at once before flood control paces them [default 4].
        #[serde(default)]
        pub flood_burst: Option<u32>,
        /// One line per this much time once the burst is spent [default 2s].
        #[serde(default)]
        pub flood_interval: Option<DurationStr>,
    }
}

/// A channel to join, with its key if it has one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ChannelSpec {
    Name(String),
    Keyed { channel: String, password: Secret },
}

impl ChannelSpec {
    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            ChannelSpec::Name(n) | ChannelSpec::Keyed { channel: n, .. } => n,
        }
    }

    /// The channel's key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ChannelSpec::Name(_) => None,
            ChannelSpec::Keyed { password, .. } => Some(password.expose()),
        }
    }
}

/// Who may run a command: everyone, no one, or these nicks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Acl {
    All(bool),
    Nicks(Vec<String>),
    Nick(String),
}

fn default_port() -> u16 {
    6667
}

/// The settings the bot runs with, resolved from the table.
#[derive(Debug)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub nick: String,
    pub channels: Vec<(String, Option<String>)>,
    pub pm_to_nicks: Vec<String>,
    pub password: Option<String>,
    pub send_pass: bool,
    pub use_sasl: bool,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub notify_events: Vec<String>,
    pub notice_on_channel: bool,
    pub use_colors: bool,
    /// Upper-cased command (or `!`, ``, `*`) → who.
    pub authz: BTreeMap<String, Acl>,
    pub lost_delay: Duration,
    pub failed_delay: Duration,
    pub show_blame_list: bool,
    pub use_revisions: bool,
    pub flood_burst: u32,
    pub flood_interval: Duration,
}

impl IrcConfig {
    /// The bot's settings; reads the CA file.
    pub(super) fn settings(&self, cx: &BuildContext<'_>) -> anyhow::Result<Settings> {
        let tls = if self.use_ssl {
            let ca = self.tls_ca_file.as_ref().map(|p| cx.base.join(p));
            Some(crate::tls::client_config(&crate::tls::TlsOptions {
                ca_file: ca.as_deref(),
                ..Default::default()
            })?)
        } else {
            None
        };
        let mut authz: BTreeMap<String, Acl> = BTreeMap::new();
        if let Some(a) = &self.authz {
            for (k, v) in a {
                authz.insert(k.to_uppercase(), v.clone());
            }
        }
        if let Some(f) = self.allow_force {
            authz.insert("FORCE".into(), Acl::All(f));
            authz.insert("STOP".into(), Acl::All(f));
        }
        if let Some(s) = self.allow_shutdown {
            authz.insert("SHUTDOWN".into(), Acl::All(s));
        }
        Ok(Settings {
            host: self.host.clone(),
            port: self.port,
            nick: self.nick.clone(),
            channels: self
                .channels
                .iter()
                .map(|c| (c.name().to_owned(), c.key().map(str::to_owned)))
                .collect(),
            pm_to_nicks: self.pm_to_nicks.clone(),
            password: self.password.as_ref().map(|p| p.expose().to_owned()),
            send_pass: self.send_pass,
            use_sasl: self.use_sasl,
            tls,
            notify_events: self.notify_events.clone(),
            notice_on_channel: self.notice_on_channel,
            use_colors: self.use_colors,
            authz,
            lost_delay: self.lost_delay.map_or(Duration::from_secs(5), |d| d.0),
            failed_delay: self.failed_delay.map_or(Duration::from_secs(60), |d| d.0),
            show_blame_list: self.show_blame_list,
            use_revisions: self.use_revisions,
            flood_burst: self.flood_burst.unwrap_or(4).max(1),
            flood_interval: self.flood_interval.map_or(Duration::from_secs(2), |d| d.0),
        })
    }

    /// Retries for IRC: a notification waits for the server as long as `max_age` allows
    /// (attempts are not the limit), tried again at least every 15 s once it is back.
    pub(super) fn irc_retry(&self) -> RetrySettings {
        let mut r = crate::config::CommonOptions::retry(self);
        if self.max_attempts.is_none() {
            r.max_attempts = u32::MAX;
        }
        if self.retry_max_delay.is_none() {
            r.max_delay = Duration::from_secs(15);
        }
        r
    }
}

impl ReporterConfig for IrcConfig {
    fn check(&self, _cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = Vec::new();
        if self.host.is_empty() || self.host.contains(char::is_whitespace) {
            p.push(format!("host {:?} is not a host name", self.host));
        }
        if !valid_target(&self.nick) || self.nick.starts_with(['#', '&', '+', '!']) {
            p.push(format!("nick {:?} is not a valid IRC nickname", self.nick));
        }
        for c in &self.channels {
            let n = c.name();
            if !n.starts_with(['#', '&', '+', '!']) || !valid_target(n) {
                p.push(format!("channel {n:?} is not a valid IRC channel name"));
            }
            if let Some(k) = c.key()
                && (k.is_empty() || k.contains([' ', ',', '\r', '\n', '\0']))
            {
                p.push(format!(
                    "the key of channel {n:?} cannot be empty or hold spaces, commas or line breaks"
                ));
            }
        }
        for n in &self.pm_to_nicks {
            if !valid_target(n) || n.starts_with(['#', '&', '+', '!']) {
                p.push(format!("pm_to_nicks: {n:?} is not a valid IRC nickname"));
            }
        }
        for e in &self.notify_events {
            if !valid_event(e) {
                p.push(format!(
                    "notify_events: {e:?} is not an event (started, finished, success, warnings, failure, exception, cancelled, problem, recovery, worse, better, worker, or <prev>To<Cur>)"
                ));
            }
        }
        if self.use_sasl && self.password.is_none() {
            p.push("use_sasl needs password (SASL PLAIN logs in as nick with it)".into());
        }
        if self.tls_ca_file.is_some() && !self.use_ssl {
            p.push("tls_ca_file is set but use_ssl is not".into());
        }
        if self.authz.is_some() && (self.allow_force.is_some() || self.allow_shutdown.is_some()) {
            p.push(
                "authz and the legacy allow_force / allow_shutdown exclude each other: say it all in authz"
                    .into(),
            );
        }
        if let Some(a) = &self.authz {
            for k in a.keys() {
                if !matches!(k.as_str(), "!" | "" | "*") && Command::parse(k).is_none() {
                    p.push(format!(
                        "authz: {k:?} is not a command (one of {}, or \"!\", \"\", \"*\")",
                        Command::NAMES.join(", ")
                    ));
                }
            }
        }
        if self.mode.is_some() {
            p.push(
                "mode does not apply to irc: each channel's notify events decide (notify_events)"
                    .into(),
            );
        }
        if self.build_set_summary || self.report_requests || self.workers.is_some() {
            p.push(
                "build_set_summary, report_requests and workers do not apply to irc (the `worker` notify event announces missing workers)"
                    .into(),
            );
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        let bot = match &cx.service {
            Some(s) => s
                .clone()
                .as_any_arc()
                .downcast::<IrcBot>()
                .map_err(|_| anyhow::anyhow!("the running service is not an IRC bot"))?,
            None => Arc::new(IrcBot::new(
                &crate::config::CommonOptions::selection(self).name,
                self.settings(cx)?,
                cx.store.clone(),
            )),
        };
        Ok(Arc::new(Irc::new(self, bot)))
    }

    fn service(&self, cx: &BuildContext<'_>) -> Option<anyhow::Result<Arc<dyn Service>>> {
        let name = crate::config::CommonOptions::selection(self).name;
        Some(
            self.settings(cx)
                .map(|s| Arc::new(IrcBot::new(&name, s, cx.store.clone())) as Arc<dyn Service>),
        )
    }

    fn same_as(&self, other: &dyn ReporterConfig) -> bool {
        same_table(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The settings of the `[[reporter.irc]]` tables in `text`, for tests.
#[cfg(test)]
pub(crate) fn test_settings(text: &str) -> Vec<Settings> {
    let c = crate::config::Config::parse(text).unwrap();
    let cx = BuildContext {
        secrets: &Default::default(),
        base: std::path::Path::new("."),
        data_dir: std::path::Path::new("."),
        service: None,
        store: None,
    };
    c.reporter
        .irc
        .iter()
        .map(|t| t.settings(&cx).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn errors(text: &str) -> String {
        match Config::parse(text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_problem_is_named() {
        let e = errors(
            r##"
[[reporter.irc]]
name = "irc"
host = "irc.example.org"
nick = "#bot"
channels = ["builds", { channel = "#k", password = "a key" }]
pm_to_nicks = ["bad nick"]
notify_events = ["started", "finish", "failureToSuccess"]
use_sasl = true
tls_ca_file = "ca.pem"
authz = { force = ["alice"], frobnicate = true }
allow_force = true
mode = "all"
workers = "all"
"##,
        );
        for want in [
            "nick \"#bot\" is not a valid IRC nickname",
            "channel \"builds\" is not a valid IRC channel name",
            "the key of channel \"#k\" cannot be empty or hold spaces",
            "pm_to_nicks: \"bad nick\" is not a valid IRC nickname",
            "notify_events: \"finish\" is not an event",
            "use_sasl needs password",
            "tls_ca_file is set but use_ssl is not",
            "authz and the legacy allow_force / allow_shutdown exclude each other",
            "authz: \"frobnicate\" is not a command",
            "mode does not apply to irc",
            "workers do not apply to irc",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert!(!e.contains("failureToSuccess"), "{e}");
    }

    #[test]
    fn the_issue_config_is_fine_and_legacy_switches_map_onto_authz() {
        let all = super::test_settings(
            r##"
[[reporter.irc]]
name = "irc"
host = "127.0.0.1"
port = 6667
nick = "tidingsbot"
channels = ["#builds"]
notify_events = ["started", "finished"]
use_colors = false
authz = { force = ["trusted"] }

[[reporter.irc]]
name = "legacy"
host = "127.0.0.1"
nick = "old"
allow_force = true
"##,
        );
        let (s, legacy) = (&all[0], &all[1]);
        use super::Acl;
        assert_eq!(legacy.authz.get("FORCE"), Some(&Acl::All(true)));
        assert_eq!(legacy.authz.get("STOP"), Some(&Acl::All(true)));
        assert_eq!(legacy.port, 6667);
        assert_eq!(
            s.authz.get("FORCE"),
            Some(&Acl::Nicks(vec!["trusted".into()]))
        );
        assert_eq!((s.flood_burst, s.flood_interval.as_secs()), (4, 2));
    }
}
