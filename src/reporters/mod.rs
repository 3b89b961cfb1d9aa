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

pub mod http;
pub mod http_push;
pub mod mail;
pub mod tls;

use crate::config::{CommonOptions, RetrySettings, Secret, Selection};
use crate::event::{Build, Event, EventKind};
use crate::formatter::Request;
use crate::outbox::Sink;
use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tidings_guest::Message;

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
    /// Buildbot's HttpStatusPush (and the 0.8 StatusPush).
    http_push: http_push::HttpPushConfig,
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

/// What the formatter step produced for one reporter and event.
#[derive(Debug, Clone, PartialEq)]
pub enum Formatted {
    /// The reporter's built-in message; `degraded` says which formatter failed and how;
    /// `message` is the built-in formatter's output, for reporters that have one
    /// ([`Reporter::default_message`]).
    Default {
        degraded: Option<String>,
        message: Option<Message>,
    },
    /// The configured formatter's message.
    Custom(Message),
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
    /// Now, in Unix ms.
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
    /// The deliveries for one event.
    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered>;
    /// The reporter's built-in message for `request` (what its formatter would get), when it
    /// has a built-in formatter; `None` when its built-in payload needs no message.
    fn default_message(&self, _request: &Request) -> Option<Message> {
        None
    }
    /// Whether the reporter can send `message` (mail takes no `json`); the reason if not —
    /// the formatter's output then counts as a `BadOutput` failure.
    fn accepts(&self, _message: &Message) -> Result<(), String> {
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
    fn the_registry_knows_every_kind_once() {
        let kinds = ReporterTables::KINDS;
        assert_eq!(kinds, ["http_push", "mail"]);
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
