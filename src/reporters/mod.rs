//! The reporters: what each kind renders from an event and how it delivers — and THE registry
//! of kinds.
//!
//! Dispatch decides *whether* a reporter reports an event (filters, mode) and calls its
//! formatter once; the reporter turns the result into outbox payloads ([`Reporter::render`]);
//! its [`Sink`] delivers them later, from the outbox. A reporter that keeps a connection (the
//! IRC bot) also owns a [`Service`]: a task the daemon runs beside the pipeline and keeps
//! across reloads while the reporter's table is unchanged.
//!
//! # Adding a reporter
//!
//! 1. A folder `src/reporters/<kind>/` with the same files as every other kind:
//!    - `config.rs`: the `[[reporter.<kind>]]` table, declared with
//!      [`reporter_config!`](crate::config::reporter_config) (which adds the options every
//!      reporter shares), and its [`ReporterConfig`] impl: its own checks
//!      ([`ReporterConfig::check`]) and how it is built ([`ReporterConfig::build`]);
//!    - `mod.rs`: the [`Reporter`] impl (selection, render);
//!    - `sink.rs`: the [`Sink`] (delivery, and which failures are retried: [`RetryClass`]).
//!      HTTP sinks build on [`http`] (client, auth, status classes, `Retry-After`).
//! 2. One line in the [`registry!`] invocation below (`kind: module::Config`).
//! 3. `tests/<kind>.rs`, against the real peer, and the kind's rows in the README's config
//!    reference.
//!
//! Nothing else changes: the config file's `[[reporter.<kind>]]` key, `tidings check`, the
//! daemon's start and reload all go through the registry.
//!
//! [`RetryClass`]: crate::outbox::RetryClass

pub mod bitbucket_server;
pub mod forge;
pub mod gerrit;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod http_push;
pub mod irc;
pub mod mail;

use crate::config::{CommonOptions, RetrySettings, Secret, Selection};
use crate::event::{Build, Event, EventKind};
use crate::formatter::{HookOutput, Request};
use crate::outbox::Sink;
use serde_json::Value;
use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tidings_guest::{Hook, Message, Review, StartMessage};

/// Declares the registry: the `[reporter]` table's struct (one list per kind, unknown kinds
/// refused with the list of known ones) and the walk over every configured reporter.
macro_rules! registry {
    ($($(#[$doc:meta])* $kind:ident : $config:ty,)*) => {
        /// `[reporter]`: one list of tables per kind.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ReporterTables {
            $($(#[$doc])* #[serde(default)] pub $kind: Vec<$config>,)*
        }

        impl ReporterTables {
            /// Every configured reporter with its kind, in file order within a kind.
            pub fn all(&self) -> Vec<(&'static str, &dyn ReporterConfig)> {
                let mut out: Vec<(&'static str, &dyn ReporterConfig)> = Vec::new();
                $(out.extend(self.$kind.iter().map(|c| (stringify!($kind), c as &dyn ReporterConfig)));)*
                out
            }

            /// The kinds this build of tidings knows.
            pub const KINDS: &'static [&'static str] = &[$(stringify!($kind)),*];
        }
    };
}

registry! {
    /// Buildbot's BitbucketServerStatusPush (StashStatusPush) and its core-API variant.
    bitbucket_server: bitbucket_server::BitbucketServerConfig,
    /// Buildbot's BitbucketServerPRCommentPush.
    bitbucket_server_pr_comment: bitbucket_server::BitbucketServerPrCommentConfig,
    /// Buildbot's GerritStatusPush.
    gerrit: gerrit::GerritConfig,
    /// Buildbot's GitHubStatusPush.
    github: github::GitHubConfig,
    /// Buildbot's GitHubCommentPush.
    github_comment: github::GitHubCommentConfig,
    /// Buildbot 4's GitLabStatusPush.
    gitlab: gitlab::GitLabConfig,
    /// Buildbot's HttpStatusPush (and the 0.8 StatusPush).
    http_push: http_push::HttpPushConfig,
    /// Buildbot's IRC bot (`reporters.IRC`).
    irc: irc::IrcConfig,
    /// Buildbot's MailNotifier.
    mail: mail::MailConfig,
}

/// What a reporter's checks may look at besides its own table.
pub struct CheckContext<'a> {
    /// `[secrets]`, for `%(secret:…)s` in templates.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// The `[[formatter]]` names.
    pub formatters: &'a HashSet<&'a str>,
}

/// What building a reporter may use besides its own table.
pub struct BuildContext<'a> {
    /// `[secrets]`.
    pub secrets: &'a BTreeMap<String, Secret>,
    /// The config file's directory: relative paths in the table are resolved against it.
    pub base: &'a Path,
    /// `[server] data_dir`, resolved: where a reporter keeps files of its own (mail's
    /// `transport = "file"` default directory).
    pub data_dir: &'a Path,
    /// The reporter's service, when [`ReporterConfig::service`] made one (the running one,
    /// kept across a reload while the table is unchanged).
    pub service: Option<Arc<dyn Service>>,
    /// The daemon's store, when there is one (not for `tidings check`): a service reads the
    /// state it keeps there (the IRC bot's notify settings) when it is made.
    pub store: Option<Arc<crate::store::Store>>,
}

/// One `[[reporter.<kind>]]` table, parsed. The registry turns each into a [`Reporter`].
pub trait ReporterConfig: CommonOptions + std::fmt::Debug + Send + Sync + Any {
    /// Problems with this table that its types cannot express (addresses, URLs, templates,
    /// options that exclude each other), each a sentence without the table's name (the caller
    /// prefixes it). Never a secret's value.
    fn check(&self, _cx: &CheckContext<'_>) -> Vec<String> {
        Vec::new()
    }

    /// Builds the reporter: its clients and its sink (reads certificate files, creates
    /// directories). Called at start, by `tidings check`, and on every reload.
    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>>;

    /// The long-lived service this reporter needs, if any (the IRC bot's connection). Called
    /// when the daemon starts, and on a reload only when the table changed.
    fn service(&self, _cx: &BuildContext<'_>) -> Option<anyhow::Result<Arc<dyn Service>>> {
        None
    }

    /// Whether `other` is the same table (same kind and every option equal): a reload keeps
    /// this reporter's service running when it is.
    fn same_as(&self, other: &dyn ReporterConfig) -> bool;

    /// For [`ReporterConfig::same_as`] implementations.
    fn as_any(&self) -> &dyn Any;
}

/// [`ReporterConfig::same_as`] for a table type with `PartialEq`.
pub fn same_table<T: PartialEq + 'static>(this: &T, other: &dyn ReporterConfig) -> bool {
    other.as_any().downcast_ref::<T>() == Some(this)
}

/// What a [`Service`] is given when the daemon starts it.
pub struct ServiceContext {
    /// The store, for reading (builds, the outbox).
    pub store: Arc<crate::store::Store>,
    /// The followed master's API, when `[source.buildbot]` is configured.
    pub api: Option<crate::buildbot_api::BuildbotApi>,
    /// Turns `true` when the service must stop (daemon shutdown, or its table changed or went
    /// away on reload). The service returns soon after.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The daemon's own shutdown, for a service that may ask for it (the IRC bot's `shutdown`).
    pub control: DaemonControl,
}

/// What a service may ask of the daemon: its graceful shutdown, now or once the outbox has
/// drained (the IRC bot's `shutdown now` and `shutdown start`), or not after all (`shutdown
/// stop`).
#[derive(Clone)]
pub struct DaemonControl {
    state: Arc<tokio::sync::watch::Sender<Shutdown>>,
}

/// Where the daemon's shutdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shutdown {
    /// Not asked for.
    #[default]
    Running,
    /// Asked for once nothing waits in the outbox (a clean shutdown).
    WhenDrained,
    /// Asked for now.
    Now,
}

impl Default for DaemonControl {
    fn default() -> DaemonControl {
        DaemonControl {
            state: Arc::new(tokio::sync::watch::channel(Shutdown::Running).0),
        }
    }
}

impl DaemonControl {
    /// Where the shutdown stands.
    pub fn shutdown_state(&self) -> Shutdown {
        *self.state.borrow()
    }

    /// Asks for (or calls off) the daemon's shutdown.
    pub fn request_shutdown(&self, s: Shutdown) {
        self.state.send_replace(s);
    }

    /// Follows the shutdown requests (for the daemon).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Shutdown> {
        self.state.subscribe()
    }
}

/// A future a service runs as.
pub type ServiceFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A long-lived task owned by a reporter: started with the daemon, given read access to the
/// store, the Buildbot API client and the shutdown signal, and kept across SIGHUP while the
/// reporter's table is unchanged (a reload must not drop an IRC connection). The reporter's
/// sink reaches it through the `Arc` it gets in [`BuildContext::service`] (downcast with
/// [`Service::as_any_arc`]).
pub trait Service: Send + Sync + 'static {
    /// Runs until `cx.shutdown` turns true.
    fn run(self: Arc<Self>, cx: ServiceContext) -> ServiceFuture;

    /// The service as `Any`, so its reporter can reach its own type.
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// A hook's result, typed: what a reporter renders.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// `messageFormatter`'s `{body, type, subject}`.
    Message(Message),
    /// `reviewCB`'s and `summaryCB`'s `{message, labels}`.
    Review(Review),
    /// `startCB`'s `{message, labels}`.
    Start(StartMessage),
}

impl Output {
    /// The message, for reporters that only take messages.
    pub fn message(&self) -> Option<&Message> {
        match self {
            Output::Message(m) => Some(m),
            _ => None,
        }
    }

    /// A formatter's checked result, if it has one (`None`: "send nothing").
    pub fn from_hook(out: HookOutput) -> Option<Output> {
        match out {
            HookOutput::Message(m) => m.map(Output::Message),
            HookOutput::Review(r) => r.map(Output::Review),
            HookOutput::Start(s) => s.map(Output::Start),
        }
    }
}

/// What the formatter step produced for one reporter and event.
#[derive(Debug, Clone, PartialEq)]
pub enum Formatted {
    /// The reporter's built-in result; `degraded` says which formatter failed and how;
    /// `output` is the built-in formatter's result, for reporters that have one
    /// ([`Reporter::default_output`]).
    Default {
        degraded: Option<String>,
        output: Option<Output>,
    },
    /// The configured formatter's result.
    Custom(Output),
}

impl Formatted {
    /// The result, the formatter's or the built-in one.
    pub fn output(&self) -> Option<&Output> {
        match self {
            Formatted::Custom(o) => Some(o),
            Formatted::Default { output, .. } => output.as_ref(),
        }
    }

    /// The message, the formatter's or the built-in one, when the result is a message.
    pub fn message(&self) -> Option<&Message> {
        self.output().and_then(Output::message)
    }
}

/// The formatter hook a reporter wants called for one kind of event, and with what: Buildbot's
/// generator and its callback. [`Reporter::hook`] decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookCall {
    /// `messageFormatter`, `startCB`, `reviewCB` or `summaryCB`.
    pub hook: Hook,
    /// The `[[formatter]]` that serves it; `None`: the reporter's built-in
    /// ([`Reporter::default_output`]).
    pub formatter: Option<String>,
    /// The hook's `arg` (Gerrit's `review_arg`, `start_arg`, `summary_arg`); null otherwise.
    pub arg: Value,
}

impl HookCall {
    /// `messageFormatter` with `formatter`.
    pub fn message(formatter: Option<&str>) -> HookCall {
        HookCall {
            hook: Hook::MessageFormatter,
            formatter: formatter.map(str::to_owned),
            arg: Value::Null,
        }
    }
}

/// Buildbot's generators for a message reporter: `messageFormatter` for build starts (with
/// `report_new`) and finished builds (both unless `build_set_summary`), completed buildsets (with
/// `build_set_summary`) and build requests (with `report_requests`); missing workers (with
/// `workers`) get the reporter's built-in message.
pub fn message_hooks(sel: &Selection, report_new: bool, kind: EventKind) -> Option<HookCall> {
    let with_formatter = HookCall::message(sel.message_formatter.as_deref());
    match kind {
        EventKind::BuildStarted => (report_new && !sel.build_set_summary).then_some(with_formatter),
        EventKind::BuildFinished => (!sel.build_set_summary).then_some(with_formatter),
        EventKind::BuildsetComplete => sel.build_set_summary.then_some(with_formatter),
        EventKind::BuildrequestNew | EventKind::BuildrequestCancelled => {
            sel.report_requests.then_some(with_formatter)
        }
        EventKind::WorkerMissing => sel.workers.is_some().then(|| HookCall::message(None)),
        EventKind::WorkerConnected => None,
    }
}

/// One event, as a reporter renders it.
pub struct RenderInput<'a> {
    /// The stored event's id (monotonic).
    pub event_id: i64,
    pub kind: EventKind,
    /// The stored event's key (unique per event).
    pub event_key: &'a str,
    pub event: &'a Event,
    /// The build as formatters saw it (completed from the master when configured), for build
    /// and build-request events; the first reported build of a buildset.
    pub build: Option<&'a Build>,
    /// The builds a buildset report covers (empty otherwise).
    pub builds: &'a [&'a Build],
    /// The blamelist (for a buildset: of every reported build); for a worker event, its
    /// `notify` list.
    pub users: &'a [String],
    /// What the built-in wire format sends: the build dict exactly as received (unknown fields
    /// kept) for build and build-request events; `{"buildset", "builds"}` with the reported
    /// builds for a buildset; the worker dict for a worker event.
    pub document: &'a str,
    pub message: &'a Formatted,
    /// The previous finished build (not RETRY) of the same builder, for a finished build
    /// (`None` when there is none, or for other events), so a reporter can decide transitions
    /// itself (the IRC bot's `failureToSuccess`, `problem`, …).
    pub prev: Option<PrevBuild>,
    /// `[master] title`.
    pub title: &'a str,
    /// The time to render with (Unix ms): when the event arrived, so that rendering an event
    /// again gives the same payloads.
    pub now: i64,
}

/// The previous build of a finished build: its number and result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrevBuild {
    pub number: i64,
    /// Buildbot's result code; `None` if the master did not say.
    pub results: Option<i64>,
}

/// A rendered delivery: where it goes and what is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub destination: String,
    pub payload: String,
}

/// A configured reporter.
pub trait Reporter: Send + Sync {
    /// The config table's kind: `http_push`, `mail`, …
    fn kind(&self) -> &'static str;
    /// Name, filters, mode, formatter.
    fn selection(&self) -> &Selection;
    /// Whether build starts are reported (they bypass the mode, as in Buildbot).
    fn report_new(&self) -> bool;
    /// Whether dispatch applies the mode to finished builds [default true]. The IRC bot says
    /// no: each of its channels decides with its own notify events.
    fn uses_mode(&self) -> bool {
        true
    }
    /// The hook to call for an event of `kind`, or `None` when this reporter does not report
    /// such events. The default is [`message_hooks`]: Buildbot's generators with
    /// `messageFormatter`. A reporter with callbacks (Gerrit's `startCB`, `reviewCB`,
    /// `summaryCB`) answers per kind, each with its own formatter and `arg`.
    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        message_hooks(self.selection(), self.report_new(), kind)
    }
    /// The deliveries for one event.
    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered>;
    /// The reporter's built-in result for `request` (what its formatter would get), when it
    /// has a built-in formatter for that hook; `None` when its built-in payload needs none.
    fn default_output(&self, _request: &Request) -> Option<Output> {
        None
    }
    /// Whether the reporter can send `output` (mail takes no `json` message); the reason if
    /// not — the formatter's result then counts as a `BadOutput` failure.
    fn accepts(&self, _output: &Output) -> Result<(), String> {
        Ok(())
    }
    /// Where the deliveries go.
    fn sink(&self) -> Arc<dyn Sink>;
    /// How deliveries are retried.
    fn retry(&self) -> RetrySettings;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_reporters_follow_buildbots_generators() {
        use EventKind::*;
        let asked = |sel: &Selection, report_new: bool| -> Vec<EventKind> {
            EventKind::ALL
                .into_iter()
                .filter(|k| message_hooks(sel, report_new, *k).is_some())
                .collect()
        };
        let plain = Selection {
            message_formatter: Some("short".into()),
            ..Selection::default()
        };
        assert_eq!(asked(&plain, true), [BuildStarted, BuildFinished]);
        assert_eq!(asked(&plain, false), [BuildFinished]);
        let call = message_hooks(&plain, false, BuildFinished).unwrap();
        assert_eq!(call, HookCall::message(Some("short")));
        let sets = Selection {
            build_set_summary: true,
            report_requests: true,
            workers: Some(crate::config::WorkerFilter::All("all".into())),
            ..Selection::default()
        };
        assert_eq!(
            asked(&sets, true),
            [
                BuildsetComplete,
                BuildrequestNew,
                BuildrequestCancelled,
                WorkerMissing
            ]
        );
    }

    #[test]
    fn the_registry_knows_every_kind_once() {
        let kinds = ReporterTables::KINDS;
        assert_eq!(
            kinds,
            [
                "bitbucket_server",
                "bitbucket_server_pr_comment",
                "gerrit",
                "github",
                "github_comment",
                "gitlab",
                "http_push",
                "irc",
                "mail"
            ]
        );
        let text = "[[http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\n\
                    [[mail]]\nname = \"m\"\nfromaddr = \"ci@example.org\"\n";
        let tables: ReporterTables = toml::from_str(text).unwrap();
        let all = tables.all();
        let names: Vec<(&str, String)> =
            all.iter().map(|(k, c)| (*k, c.selection().name)).collect();
        assert_eq!(
            names,
            [("http_push", "p".to_owned()), ("mail", "m".to_owned())]
        );
        assert!(all[0].1.same_as(all[0].1) && !all[0].1.same_as(all[1].1));
        let again: ReporterTables = toml::from_str(text).unwrap();
        assert!(all[1].1.same_as(again.all()[1].1));
        let changed: ReporterTables = toml::from_str(&text.replace("ci@", "builds@")).unwrap();
        assert!(!all[1].1.same_as(changed.all()[1].1));
    }
}
