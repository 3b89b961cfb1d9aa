//! The configuration file: TOML → typed config, checked before anything runs.
//!
//! The skeleton is DESIGN.md's: `[server]`, `[master]`, `[source.buildbot]`, `[[formatter]]`,
//! `[[reporter.<kind>]]`. Unknown keys are errors that name the key and its line (serde's
//! `deny_unknown_fields`, reported by the toml parser with a position). Checks that span entries
//! (unique names, references to formatters, mode words, filters that exclude each other) run in
//! [`Config::validate`] and name the table and the key.
//!
//! Durations are strings such as `"250ms"`, `"5s"`, `"2m"`; sizes `"64MiB"`, `"512KiB"`,
//! `"1000"` (bytes). Secrets are [`Secret`]s: a literal, `env:NAME` or `file:PATH`, never printed.
//!
//! Callers: `tidings check` today; `tidings serve` and every reporter as they land.

use crate::formatter::{Grants, Limits};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where tidings listens and keeps its data.
    #[serde(default)]
    pub server: Server,
    /// What formatters see as `master.title` / `master.buildbotURL`.
    #[serde(default)]
    pub master: MasterConfig,
    /// Where events come from besides the HTTP ingest endpoints.
    #[serde(default)]
    pub source: Sources,
    /// WebAssembly formatters, referred to by name from reporters.
    #[serde(default)]
    pub formatter: Vec<FormatterConfig>,
    /// Reporters, by kind: `[[reporter.<kind>]]` tables, parsed through the registry
    /// ([`crate::reporters::ReporterTables`]).
    #[serde(default)]
    pub reporter: crate::reporters::ReporterTables,
    /// Named secrets, for `%(secret:name)s` in option templates (a literal, `env:NAME` or
    /// `file:PATH` each).
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Address of the HTTP listener: ingest, `/healthz`, `/metrics`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory of the store, the outbox and the compiled-module cache.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// When set, ingest requires `Authorization: Bearer <token>`.
    #[serde(default)]
    pub ingest_token: Option<Secret>,
    /// With `ingest_password`: ingest accepts HTTP Basic auth, as Buildbot's
    /// `HttpStatusPush(auth=(user, password))` sends it.
    #[serde(default)]
    pub ingest_user: Option<String>,
    /// The password for `ingest_user`.
    #[serde(default)]
    pub ingest_password: Option<Secret>,
    /// Largest accepted ingest body; larger ones get 413.
    #[serde(default = "default_max_body")]
    pub max_body: Size,
    /// Largest the store may grow: beyond it, ingest answers 503 ("database or disk is full")
    /// as it would on a full disk, and nothing acknowledged is lost [default: unlimited].
    #[serde(default)]
    pub max_store_size: Option<Size>,
    /// How hard a commit reaches the disk: `normal` survives a crash of the process, `full`
    /// also a power cut (SQLite's `synchronous`) [default normal].
    #[serde(default)]
    pub synchronous: Synchronous,
    /// On SIGTERM, how long deliveries in flight may take to finish [default 10s].
    #[serde(default)]
    pub shutdown_grace: Option<DurationStr>,
    /// Log lines as `human` text or `json` objects [default human].
    #[serde(default)]
    pub log_format: LogFormat,
    /// How long delivered deliveries, their log and dispatched events are kept; older ones are
    /// deleted in small batches [default 30d].
    #[serde(default = "default_retention")]
    pub retention: DurationStr,
    /// How long dead letters are kept [default: until dropped or retried by hand].
    #[serde(default)]
    pub dead_retention: Option<DurationStr>,
    /// How long a client may take to send a request's headers; then the connection is closed
    /// [default 10s].
    #[serde(default = "default_header_timeout")]
    pub header_timeout: DurationStr,
    /// How long a client may take to send an ingest body; then it gets 408 [default 30s].
    #[serde(default = "default_body_timeout")]
    pub body_timeout: DurationStr,
    /// HTTP connections open at once. Beyond it a new connection takes the place of the
    /// longest-open one that is not serving a request, and is refused (503) only when all are
    /// [default 1024].
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// `[server] synchronous`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

/// `[server] log_format`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl Default for Server {
    fn default() -> Server {
        Server {
            listen: default_listen(),
            data_dir: default_data_dir(),
            ingest_token: None,
            ingest_user: None,
            ingest_password: None,
            max_body: default_max_body(),
            max_store_size: None,
            synchronous: Synchronous::Normal,
            shutdown_grace: None,
            log_format: LogFormat::Human,
            retention: default_retention(),
            dead_retention: None,
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8411))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./tidings-data")
}
fn default_max_body() -> Size {
    Size(16 << 20)
}
fn default_retention() -> DurationStr {
    DurationStr(Duration::from_secs(30 * 86_400))
}
fn default_header_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(10))
}
fn default_body_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(30))
}
fn default_max_connections() -> usize {
    1024
}

/// `[master]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterConfig {
    /// Buildbot's `c['title']`.
    #[serde(default = "default_title")]
    pub title: String,
    /// Buildbot's `c['buildbotURL']`, with its trailing slash.
    #[serde(default)]
    pub buildbot_url: String,
}

impl Default for MasterConfig {
    fn default() -> MasterConfig {
        MasterConfig {
            title: default_title(),
            buildbot_url: String::new(),
        }
    }
}

fn default_title() -> String {
    "Buildbot".into()
}

/// `[source]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// A client of a Buildbot master's REST API and WebSocket event stream.
    #[serde(default)]
    pub buildbot: Option<BuildbotSource>,
}

/// `[source.buildbot]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildbotSource {
    /// The master's web URL, e.g. `http://127.0.0.1:8010/`.
    pub url: String,
    /// Basic-auth user for the master's API, with `password`.
    #[serde(default)]
    pub user: Option<String>,
    /// Basic-auth password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A bearer token instead of user and password.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Extra CA certificates (PEM) for an `https://` master, and self-signed certificates to
    /// accept as they are.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Add the steps, with their logs' URLs, to finished builds (Buildbot's `want_steps`)
    /// [default false].
    #[serde(default)]
    pub want_steps: bool,
    /// Add log contents to finished builds' steps (Buildbot's `want_logs_content`): `true` for
    /// every log, or a list of `log` / `step.log` names; implies `want_steps`
    /// [default false].
    #[serde(default)]
    pub want_logs_content: Option<LogsWanted>,
}

/// Which logs' contents to fetch: all (`true`), none (`false`), or those named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged)]
pub enum LogsWanted {
    All(bool),
    Named(Vec<String>),
}

impl LogsWanted {
    /// `None` for `false` (nothing wanted), else the same.
    pub fn some(self) -> Option<LogsWanted> {
        (self != LogsWanted::All(false)).then_some(self)
    }

    /// Both sets of logs.
    pub fn union(a: Option<&LogsWanted>, b: Option<&LogsWanted>) -> Option<LogsWanted> {
        match (a, b) {
            (None, x) | (x, None) => x.cloned(),
            (Some(LogsWanted::All(true)), _) | (_, Some(LogsWanted::All(true))) => {
                Some(LogsWanted::All(true))
            }
            (Some(LogsWanted::Named(x)), Some(LogsWanted::Named(y))) => {
                let mut all = x.clone();
                all.extend(y.iter().filter(|n| !x.contains(n)).cloned());
                Some(LogsWanted::Named(all))
            }
            (Some(x), Some(_)) => Some(x.clone()),
        }
    }

    /// Whether the log `log` of step `step` is wanted (by `log` or `step.log`).
    pub fn wants(&self, step: &str, log: &str) -> bool {
        match self {
            LogsWanted::All(all) => *all,
            LogsWanted::Named(names) => names
                .iter()
                .any(|n| n == log || *n == format!("{step}.{log}")),
        }
    }
}

/// One `[[formatter]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatterConfig {
    /// Unique name; reporters refer to it (`message_formatter = "short"`).
    pub name: String,
    /// Path of the `.wasm` module, relative to the config file; or of a formatter project (a
    /// directory): a Rust crate is built with cargo for wasm32-wasip1 when it is loaded
    /// (`tidings check`, `serve`), any other directory must hold one `.wasm`.
    pub module: PathBuf,
    /// Time limit per call [default 250ms].
    #[serde(default)]
    pub timeout: Option<DurationStr>,
    /// Memory limit [default 64MiB].
    #[serde(default)]
    pub memory: Option<Size>,
    /// Largest request [default 4MiB].
    #[serde(default)]
    pub max_input: Option<Size>,
    /// Largest result [default 1MiB].
    #[serde(default)]
    pub max_output: Option<Size>,
    /// Largest stderr [default 64KiB].
    #[serde(default)]
    pub max_stderr: Option<Size>,
    /// Extra environment variables for the guest (after TIDINGS_ABI and TIDINGS_HOOK).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A directory the guest may read, seen as `/templates`; relative to the config file.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The hooks this formatter serves; `tidings check` calls each on a sample build
    /// [default: messageFormatter].
    #[serde(default)]
    pub hooks: Option<Vec<tidings_guest::Hook>>,
    /// `fresh` (an instance per call) or `warm` (instances kept between calls; needs a module
    /// with the warm entry points, or a component) [default: warm for a component that exports
    /// `format` (the world tidings:formatter/warm), else fresh].
    #[serde(default)]
    pub instances: Option<InstancesMode>,
    /// Calls a warm instance answers before a fresh one takes its place [default 1000].
    #[serde(default)]
    pub max_calls: Option<u32>,
    /// How long a warm instance may wait for a call before it is dropped, giving back its
    /// memory [default 10s].
    #[serde(default)]
    pub max_idle: Option<DurationStr>,
}

/// `[[formatter]] instances`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstancesMode {
    /// A fresh instance per call.
    Fresh,
    /// Instances kept between calls.
    Warm,
}

impl FormatterConfig {
    /// The limits of each call, with the defaults filled in.
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            memory: self.memory.map_or(d.memory, |s| s.0),
            timeout: self.timeout.map_or(d.timeout, |t| t.0),
            max_input: self.max_input.map_or(d.max_input, |s| s.0 as usize),
            max_output: self.max_output.map_or(d.max_output, |s| s.0 as usize),
            max_stderr: self.max_stderr.map_or(d.max_stderr, |s| s.0 as usize),
        }
    }

    /// How calls of `formatter` (loaded from this entry) use instances, with `max_calls` filled
    /// in. Unset, a component that exports `format` runs warm (it is made to be called again
    /// and again) and anything else fresh: warm is the operator's choice for a module, and for
    /// a component that has only `run`, which not every program can answer twice.
    pub fn instances(
        &self,
        formatter: &crate::formatter::Formatter,
    ) -> crate::formatter::Instances {
        let mode =
            self.instances
                .unwrap_or(if formatter.is_component() && formatter.prefers_warm() {
                    InstancesMode::Warm
                } else {
                    InstancesMode::Fresh
                });
        match mode {
            InstancesMode::Fresh => crate::formatter::Instances::Fresh,
            InstancesMode::Warm => crate::formatter::Instances::Warm {
                max_calls: self
                    .max_calls
                    .unwrap_or(crate::formatter::DEFAULT_MAX_CALLS),
                max_idle: self
                    .max_idle
                    .map_or(crate::formatter::DEFAULT_MAX_IDLE, |d| d.0),
            },
        }
    }

    /// What the guest is granted, with `dir` resolved against `base` (the config's directory).
    pub fn grants(&self, base: &Path) -> Grants {
        Grants {
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            dir: self.dir.as_ref().map(|d| base.join(d)),
        }
    }

    /// The module's path, resolved against `base`.
    pub fn module_path(&self, base: &Path) -> PathBuf {
        base.join(&self.module)
    }

    /// The `.wasm` to load: [`module_path`](Self::module_path), or for a directory the module
    /// of the formatter project there (a Rust crate is built first).
    pub fn wasm_path(&self, base: &Path) -> Result<PathBuf, String> {
        let path = self.module_path(base);
        if path.is_dir() {
            crate::testing::resolve(&path).map(|t| t.wasm)
        } else {
            Ok(path)
        }
    }
}

/// What a reporter's formatter is given of a build, as Buildbot's `MessageFormatter` options:
/// the properties, the steps (with their logs' URLs), and the contents of some logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wants {
    /// `want_properties` [default true]: without it the build's properties are left out.
    pub properties: bool,
    /// `want_steps`, or implied by `want_logs` / `want_logs_content`.
    pub steps: bool,
    /// The logs whose contents are fetched (`want_logs_content`, mail's `add_logs`).
    pub logs_content: Option<LogsWanted>,
}

impl Default for Wants {
    fn default() -> Wants {
        Wants {
            properties: true,
            steps: false,
            logs_content: None,
        }
    }
}

impl Wants {
    /// Buildbot's rules: `want_logs_content` (anything but `false`) implies logs and steps;
    /// `want_logs` implies steps.
    pub fn from_options(
        properties: Option<bool>,
        steps: bool,
        logs: bool,
        logs_content: Option<LogsWanted>,
    ) -> Wants {
        let logs_content = logs_content.and_then(LogsWanted::some);
        Wants {
            properties: properties.unwrap_or(true),
            steps: steps || logs || logs_content.is_some(),
            logs_content,
        }
    }
}

/// What every reporter shares: its name, which builds it reports, and how it formats them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub name: String,
    pub mode: Mode,
    pub builders: Vec<String>,
    pub tags: Vec<String>,
    pub branches: Vec<String>,
    pub schedulers: Vec<String>,
    pub message_formatter: Option<String>,
    pub on_error: OnError,
    /// Report whole buildsets when they complete instead of each build (Buildbot's
    /// `BuildSetStatusGenerator`, MailNotifier's `buildSetSummary`).
    pub build_set_summary: bool,
    /// Report build requests when they are submitted or cancelled (`BuildRequestGenerator`).
    pub report_requests: bool,
    /// Report missing workers (`WorkerMissingGenerator`): which ones.
    pub workers: Option<WorkerFilter>,
    /// What the formatter is given of a build (`want_properties`, `want_steps`, `want_logs`,
    /// `want_logs_content`).
    pub wants: Wants,
}

/// Which workers a reporter reports missing: `workers = "all"` or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WorkerFilter {
    /// `"all"` (any other string is a config error).
    All(String),
    Names(Vec<String>),
}

impl WorkerFilter {
    /// Whether the worker called `name` is reported.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            WorkerFilter::All(_) => true,
            WorkerFilter::Names(n) => n.iter().any(|w| w == name),
        }
    }
}

/// Declares a reporter's config struct (in `src/reporters/<kind>/config.rs`): the common fields
/// (Buildbot's generator options, retry settings) are written into each struct, because serde
/// cannot combine `flatten` with `deny_unknown_fields`; [`CommonOptions`] gathers them.
macro_rules! reporter_config {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Unique across all reporters; in logs, metrics, the outbox and the delivery log.
            pub name: String,
            /// Buildbot's mode: `failing`, `passing`, `warnings`, `exception`, `cancelled`,
            /// `change`, `problem`, or `all` [default: failing, passing, warnings].
            #[serde(default)]
            pub mode: Option<$crate::config::Mode>,
            /// Only these builders (not together with `tags`).
            #[serde(default)]
            pub builders: Vec<String>,
            /// Only builders with one of these tags (not together with `builders`).
            #[serde(default)]
            pub tags: Vec<String>,
            /// Only builds of these branches.
            #[serde(default)]
            pub branches: Vec<String>,
            /// Only builds started by these schedulers.
            #[serde(default)]
            pub schedulers: Vec<String>,
            /// A `[[formatter]]` by name; the reporter's built-in message otherwise.
            #[serde(default)]
            pub message_formatter: Option<String>,
            /// When the formatter fails: `default` (built-in message, marked degraded) or `skip`.
            #[serde(default)]
            pub on_error: $crate::config::OnError,
            /// Report each buildset once, when it completes, with the builds that pass the
            /// filters and the mode, instead of each build [default false].
            #[serde(default)]
            pub build_set_summary: bool,
            /// Also report build requests when submitted or cancelled [default false].
            #[serde(default)]
            pub report_requests: bool,
            /// Report missing workers: `"all"` or a list of worker names; only workers with a
            /// `notify` list are reported, as in Buildbot [default: none].
            #[serde(default)]
            pub workers: Option<$crate::config::WorkerFilter>,
            /// Attempts before a delivery is dead-lettered [default 10].
            #[serde(default)]
            pub max_attempts: Option<u32>,
            /// Age after which a failing delivery is dead-lettered [default 24h].
            #[serde(default)]
            pub max_age: Option<$crate::config::DurationStr>,
            /// First retry delay; doubles per attempt, with jitter [default 1s].
            #[serde(default)]
            pub retry_delay: Option<$crate::config::DurationStr>,
            /// Longest retry delay [default 10min].
            #[serde(default)]
            pub retry_max_delay: Option<$crate::config::DurationStr>,
            /// Deliveries of this reporter in flight at once [default 8].
            #[serde(default)]
            pub concurrency: Option<usize>,
            /// Give the formatter the build's properties (Buildbot's `want_properties`)
            /// [default true].
            #[serde(default)]
            pub want_properties: Option<bool>,
            /// Give it the steps, fetched from the followed master when the event lacks them
            /// (`want_steps`) [default false].
            #[serde(default)]
            pub want_steps: bool,
            /// Give it the steps with their logs' URLs (`want_logs`; implies `want_steps`)
            /// [default false].
            #[serde(default)]
            pub want_logs: bool,
            /// Give it log contents: `true` or a list of `log` / `step.log` names
            /// (`want_logs_content`; implies `want_logs`) [default false].
            #[serde(default)]
            pub want_logs_content: Option<$crate::config::LogsWanted>,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl $crate::config::CommonOptions for $name {
            fn selection(&self) -> $crate::config::Selection {
                $crate::config::Selection {
                    name: self.name.clone(),
                    mode: self.mode.clone().unwrap_or_else($crate::config::Mode::default_words),
                    builders: self.builders.clone(),
                    tags: self.tags.clone(),
                    branches: self.branches.clone(),
                    schedulers: self.schedulers.clone(),
                    message_formatter: self.message_formatter.clone(),
                    on_error: self.on_error,
                    build_set_summary: self.build_set_summary,
                    report_requests: self.report_requests,
                    workers: self.workers.clone(),
                    wants: $crate::config::Wants::from_options(
                        self.want_properties,
                        self.want_steps,
                        self.want_logs,
                        self.want_logs_content.clone(),
                    ),
                }
            }

            fn retry(&self) -> $crate::config::RetrySettings {
                let d = $crate::config::RetrySettings::default();
                $crate::config::RetrySettings {
                    max_attempts: self.max_attempts.unwrap_or(d.max_attempts).max(1),
                    max_age: self.max_age.map_or(d.max_age, |t| t.0),
                    base: self.retry_delay.map_or(d.base, |t| t.0),
                    max_delay: self.retry_max_delay.map_or(d.max_delay, |t| t.0),
                    concurrency: self.concurrency.unwrap_or(d.concurrency).max(1),
                }
            }
        }
    };
}
pub(crate) use reporter_config;

/// The options every reporter table has (written into each by [`reporter_config!`]).
pub trait CommonOptions {
    /// Name, filters, mode, formatter, generators.
    fn selection(&self) -> Selection;
    /// How the reporter's deliveries are retried.
    fn retry(&self) -> RetrySettings;
}

/// How a reporter's deliveries are retried (the common `max_attempts`, `max_age`,
/// `retry_delay`, `retry_max_delay` and `concurrency` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub max_age: Duration,
    pub base: Duration,
    pub max_delay: Duration,
    pub concurrency: usize,
}

impl Default for RetrySettings {
    fn default() -> RetrySettings {
        RetrySettings {
            max_attempts: 10,
            max_age: Duration::from_secs(24 * 3600),
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            concurrency: 8,
        }
    }
}

/// What a reporter does when its formatter fails.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Send the built-in message, marked degraded.
    #[default]
    Default,
    /// Send nothing.
    Skip,
}

/// `true`, for `#[serde(default = "crate::config::yes")]`.
pub fn yes() -> bool {
    true
}

/// A set of mode words, as Buildbot normalises them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode(pub Vec<String>);

impl Default for Mode {
    fn default() -> Mode {
        Mode::default_words()
    }
}

/// The words a mode may contain, after expansion.
pub const MODE_WORDS: [&str; 7] = [
    "change",
    "failing",
    "passing",
    "problem",
    "warnings",
    "exception",
    "cancelled",
];

impl Mode {
    /// Buildbot's default: failing, passing, warnings.
    pub fn default_words() -> Mode {
        Mode(
            ["failing", "passing", "warnings"]
                .map(String::from)
                .to_vec(),
        )
    }

    /// Normalises Buildbot's way: the string `"all"` is failing, passing, warnings, exception,
    /// cancelled (not change or problem, whatever Buildbot's docs say); the string
    /// `"warnings"` is failing + warnings; in a list, `"all"` expands the same way (DESIGN's
    /// `mode = ["all"]`; Buildbot refuses it) and `"warnings"` is itself.
    fn normalise(words: Vec<String>, from_string: bool) -> Result<Mode, String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |w: &str| {
            if !out.iter().any(|o| o == w) {
                out.push(w.to_owned());
            }
        };
        for w in &words {
            match w.as_str() {
                "all" => ["failing", "passing", "warnings", "exception", "cancelled"]
                    .iter()
                    .for_each(|w| push(w)),
                "warnings" if from_string => ["failing", "warnings"].iter().for_each(|w| push(w)),
                w if MODE_WORDS.contains(&w) => push(w),
                other => {
                    return Err(format!(
                        "unknown mode word {other:?}; expected all or {}",
                        MODE_WORDS.join(", ")
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("mode is empty; leave it out for the default".into());
        }
        Ok(Mode(out))
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let (words, from_string) = match Raw::deserialize(d)? {
            Raw::One(s) => (vec![s], true),
            Raw::Many(v) => (v, false),
        };
        Mode::normalise(words, from_string).map_err(serde::de::Error::custom)
    }
}

/// A duration written as `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"30d"` or `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationStr(pub Duration);

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DurationStr, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(DurationStr)
            .map_err(serde::de::Error::custom)
    }
}

/// The longest duration any option takes: ten years. Longer ones are refused rather than
/// overflowing a deadline later.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses a duration with a unit (`humantime`'s syntax: `"250ms"`, `"5s"`, `"2m"`, `"1h"`,
/// `"30d"`, `"1h 30m"`), at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("bad duration {s:?} ({e}): expected e.g. \"250ms\", \"5s\", \"2m\", \"1h\"")
    })?;
    if d > MAX_DURATION {
        return Err(format!("duration {s:?} is too long (at most 10 years)"));
    }
    Ok(d)
}

/// A size in bytes, written as `"64MiB"`, `"512KiB"`, `"1GiB"`, `"10MB"`, `"1000"` or a bare
/// integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("a size is a number of bytes or a string such as \"64MiB\"")
        })?;
        match raw {
            Raw::N(n) => check_size(n, &n.to_string()).map(Size),
            Raw::S(s) => parse_size(&s).map(Size),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// The largest size any option takes: 1 PiB. Larger ones are refused rather than wrapping.
pub const MAX_SIZE: u64 = 1 << 50;

fn check_size(n: u64, written: &str) -> Result<u64, String> {
    if n > MAX_SIZE {
        return Err(format!("size {written:?} is too large (at most 1PiB)"));
    }
    Ok(n)
}

/// Parses a size (`bytesize`'s syntax: `"64MiB"`, `"512KiB"`, `"1GiB"`, `"10MB"`, `"1000"`,
/// `"1000B"`), at most [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let b: bytesize::ByteSize = t.parse().map_err(|e| {
        format!("bad size {s:?} ({e}): expected e.g. \"64MiB\", \"512KiB\", \"1000\"")
    })?;
    // bytesize computes in floating point and saturates; a saturated value is over MAX_SIZE.
    check_size(b.as_u64(), s)
}

/// A secret: a literal, `env:NAME` (an environment variable) or `file:PATH` (a file's contents,
/// trailing newline removed). Its value never appears in `Debug`, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    source: SecretSource,
    value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SecretSource {
    Literal,
    Env(String),
    File(PathBuf),
}

impl Secret {
    /// Reads a secret from its written form, resolving `env:` and `file:` now.
    pub fn resolve(written: &str) -> Result<Secret, String> {
        if let Some(name) = written.strip_prefix("env:") {
            let value = std::env::var(name)
                .map_err(|_| format!("the environment variable {name} is not set"))?;
            Ok(Secret {
                source: SecretSource::Env(name.to_owned()),
                value,
            })
        } else if let Some(path) = written.strip_prefix("file:") {
            let value = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the secret file {path}: {e}"))?;
            Ok(Secret {
                source: SecretSource::File(path.into()),
                value: value.trim_end_matches(['\n', '\r']).to_owned(),
            })
        } else {
            Ok(Secret {
                source: SecretSource::Literal,
                value: written.to_owned(),
            })
        }
    }

    /// The secret's value, for the one place that sends it (an Authorization header, SMTP AUTH).
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Literal => f.write_str("Secret(literal, redacted)"),
            SecretSource::Env(n) => write!(f, "Secret(env:{n}, redacted)"),
            SecretSource::File(p) => write!(f, "Secret(file:{}, redacted)", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// A string; any other value is refused without being repeated in the error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret: a string, written as a literal, env:NAME or file:PATH")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
        }
        let s = d.deserialize_any(Text).map_err(|_| {
            serde::de::Error::custom(
                "a secret must be a string: a literal, \"env:NAME\" or \"file:PATH\" (its value is not shown)",
            )
        })?;
        Secret::resolve(&s).map_err(serde::de::Error::custom)
    }
}

/// A TOML error as a sentence that names its line, column and key, but never quotes the
/// file: the offending line may hold a secret.
fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let Some(span) = e.span() else {
        return e.message().to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    // The key on that line, when the line is `key = value` (its value is never shown).
    let source_line = text.lines().nth(line - 1).unwrap_or_default();
    let key = source_line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .map_or(String::new(), |k| format!(" ({k})"));
    format!(
        "line {line}, column {column}{key}: {}",
        did_you_mean(e.message().trim())
    )
}

/// serde's "unknown field `x`, expected one of `a`, `b`, …" (or "unknown variant"), said with
/// the nearest known name when one is close: "unknown field `extra_recipient`: did you mean
/// `extra_recipients`? (known: …)". Other messages are returned as they are.
fn did_you_mean(message: &str) -> String {
    let parse = || -> Option<(&str, &str, Vec<&str>)> {
        let (what, rest) = ["unknown field `", "unknown variant `"]
            .iter()
            .find_map(|p| message.strip_prefix(p).map(|r| (&p[..p.len() - 2], r)))?;
        let (given, rest) = rest.split_once('`')?;
        let list = rest
            .strip_prefix(", expected one of ")
            .or_else(|| rest.strip_prefix(", expected "))?;
        let known = list
            .split([',', ' '])
            .filter_map(|w| w.trim().strip_prefix('`')?.strip_suffix('`'))
            .collect();
        Some((what, given, known))
    };
    let Some((what, given, known)) = parse() else {
        return message.to_owned();
    };
    let nearest = known
        .iter()
        .map(|k| (edit_distance(given, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min();
    match nearest {
        Some((_, k)) => format!(
            "{what} `{given}`: did you mean `{k}`? (known: {})",
            known.join(", ")
        ),
        None => format!("{what} `{given}` (known: {})", known.join(", ")),
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != *cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A config that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Parses `text` and validates it. Errors name the key (and, for unknown or malformed keys,
    /// the line).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError(vec![toml_error(&e, text)]))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
        Config::parse(&text).map_err(|ConfigError(errs)| {
            ConfigError(
                errs.into_iter()
                    .map(|e| format!("{}: {e}", path.display()))
                    .collect(),
            )
        })
    }

    /// The checks that span entries: unique names, formatter references, filters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.max_connections == 0 {
            problems.push("[server] max_connections must be at least 1".to_owned());
        }
        for (key, d) in [
            ("header_timeout", self.server.header_timeout),
            ("body_timeout", self.server.body_timeout),
            ("retention", self.server.retention),
        ]
        .into_iter()
        .chain(self.server.dead_retention.map(|d| ("dead_retention", d)))
        {
            if d.0.is_zero() {
                problems.push(format!("[server] {key} must be longer than 0s"));
            }
        }
        let mut formatters = HashSet::new();
        for f in &self.formatter {
            if !formatters.insert(f.name.as_str()) {
                problems.push(format!("[[formatter]] name {:?} is used twice", f.name));
            }
        }
        let mut reporters = HashSet::new();
        let cx = crate::reporters::CheckContext {
            secrets: &self.secrets,
            formatters: &formatters,
        };
        for (kind, table) in self.reporter.all() {
            let s = table.selection();
            let at = format!("[[reporter.{kind}]] {:?}", s.name);
            if s.name.is_empty() {
                problems.push(format!("[[reporter.{kind}]]: name is empty"));
            }
            if !reporters.insert(s.name.clone()) {
                problems.push(format!("{at}: the name is used by another reporter"));
            }
            if !s.builders.is_empty() && !s.tags.is_empty() {
                problems.push(format!(
                    "{at}: builders and tags cannot be used together (Buildbot refuses it too)"
                ));
            }
            if let Some(WorkerFilter::All(w)) = &s.workers
                && w != "all"
            {
                problems.push(format!(
                    "{at}: workers = {w:?}: give \"all\" or a list of worker names"
                ));
            }
            if let Some(f) = &s.message_formatter
                && !formatters.contains(f.as_str())
            {
                problems.push(format!(
                    "{at}: message_formatter {f:?} is not a [[formatter]] name"
                ));
            }
            problems.extend(table.check(&cx).into_iter().map(|p| format!("{at}: {p}")));
        }
        if self.server.ingest_user.is_some() != self.server.ingest_password.is_some() {
            problems.push("[server]: ingest_user and ingest_password go together".into());
        }
        if let Some(b) = &self.source.buildbot
            && !(b.url.starts_with("http://") || b.url.starts_with("https://"))
        {
            problems.push(format!(
                "[source.buildbot]: url {:?} is not an http:// or https:// URL",
                b.url
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_sender_is_tidings_at_this_machine() {
        let c = Config::parse("[[reporter.mail]]\nname = \"m\"\n").unwrap();
        let sender = c.reporter.mail[0].sender();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(sender, format!("tidings <tidings@{}>", host.trim()));
        let c = Config::parse("[[reporter.mail]]\nname = \"m\"\nfromaddr = \"ci@example.org\"\n")
            .unwrap();
        assert_eq!(c.reporter.mail[0].sender(), "ci@example.org");
    }

    #[test]
    fn a_mistyped_key_gets_the_nearest_known_one() {
        let e = Config::parse(
            "[[reporter.mail]]\nname = \"m\"\nfromaddr = \"a@b.c\"\nextra_recipient = [\"x@y.z\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "line 4, column 1 (extra_recipient): unknown field `extra_recipient`: did you mean `extra_recipients`? (known: name, mode,"
            ),
            "{e}"
        );
        let e = Config::parse("[server]\nlisten = \"127.0.0.1:0\"\nfoo = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `foo` (known: "), "{e}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    use super::*;
    use crate::config::CommonOptions;

    fn errors(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_example_config_parses() {
        let c = Config::parse(include_str!("../tidings.example.toml")).unwrap();
        assert_eq!(c.server.listen, default_listen());
        assert_eq!(c.server.max_body, Size(16 << 20));
        assert_eq!(c.master.title, "Example CI");
        assert_eq!(c.formatter.len(), 2);
        let short = &c.formatter[0];
        assert_eq!(short.limits().timeout, Duration::from_millis(250));
        assert_eq!(short.limits().memory, 64 << 20);
        assert_eq!(
            short.grants(Path::new("/etc/tidings")).env,
            [("TEAM".into(), "infra".into())]
        );
        let push = c.reporter.http_push[0].selection();
        assert_eq!(
            push.mode.0,
            ["failing", "passing", "warnings", "exception", "cancelled"]
        );
        assert_eq!(push.message_formatter.as_deref(), Some("short"));
        assert_eq!(c.reporter.mail[0].extra_recipients, ["ops@example.org"]);
        assert_eq!(c.secrets["team"].expose(), "infra");
        let sets = c.reporter.http_push[1].selection();
        assert!(sets.build_set_summary && sets.report_requests);
        assert_eq!(sets.workers, Some(WorkerFilter::All("all".into())));
        assert!(c.validate().is_ok());
        let source = c.source.buildbot.as_ref().unwrap();
        let logs = source.want_logs_content.as_ref().unwrap();
        assert!(logs.wants("run", "stdio") && !logs.wants("greet", "stdio"));
        assert!(LogsWanted::All(true).wants("x", "y") && !LogsWanted::All(false).wants("x", "y"));
        assert!(
            errors("[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nworkers = \"some\"\n")
                .contains("workers = \"some\"")
        );
    }

    #[test]
    fn mail_settings_are_checked() {
        let mail = |extra: &str| {
            errors(&format!(
                "[[reporter.mail]]\nname = \"m\"\nfromaddr = \"ci@example.org\"\n{extra}\n"
            ))
        };
        for (extra, why) in [
            (
                "extra_recipients = [\"me@localhost\"]",
                "\"me@localhost\" is not a valid",
            ),
            ("use_tls = true\nuse_smtps = true", "exclude each other"),
            ("smtp_user = \"u\"", "go together"),
            ("subject = \"%(color)s\"", "unknown key \"color\""),
            (
                "extra_headers = { \"X-A\" = \"%(secret:nope)s\" }",
                "not defined in [secrets]",
            ),
            (
                "extra_headers = { \"Bad Name\" = \"x\" }",
                "not a valid header name",
            ),
            (
                "extra_headers = { \"Subject\" = \"x\" }",
                "tidings writes itself",
            ),
            ("transport = \"pigeon\"", "pigeon"),
        ] {
            let e = mail(extra);
            assert!(e.contains(why), "{extra}: {e}");
        }
        assert!(
            errors("[[reporter.mail]]\nname = \"m\"\nfromaddr = \"not an address\"\n")
                .contains("fromaddr")
        );
    }

    #[test]
    fn wants_follow_buildbots_implications() {
        let w = Wants::from_options(None, false, false, Some(LogsWanted::All(false)));
        assert_eq!(w, Wants::default());
        let w = Wants::from_options(Some(false), false, true, None);
        assert!(!w.properties && w.steps && w.logs_content.is_none());
        let named = |n: &[&str]| LogsWanted::Named(n.iter().map(|s| s.to_string()).collect());
        let w = Wants::from_options(None, false, false, Some(named(&["run.stdio"])));
        assert!(w.steps && w.logs_content == Some(named(&["run.stdio"])));
        let u = LogsWanted::union(
            w.logs_content.as_ref(),
            Some(&named(&["stdio", "run.stdio"])),
        );
        assert_eq!(u, Some(named(&["run.stdio", "stdio"])));
        let all = LogsWanted::union(u.as_ref(), Some(&LogsWanted::All(true)));
        assert_eq!(all, Some(LogsWanted::All(true)));
        assert_eq!(LogsWanted::union(None, None), None);
        let c = Config::parse(
            "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nwant_logs_content = [\"run.stdio\"]\nwant_properties = false\n",
        )
        .unwrap();
        let s = c.reporter.http_push[0].selection();
        assert!(s.wants.steps && !s.wants.properties);
        assert!(s.wants.logs_content.unwrap().wants("run", "stdio"));
    }

    #[test]
    fn an_empty_file_is_the_embedded_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8411");
        assert_eq!(c.server.data_dir, PathBuf::from("./tidings-data"));
        assert!(c.formatter.is_empty() && c.reporter.http_push.is_empty());
    }

    #[test]
    fn unknown_keys_name_the_key_and_its_line() {
        let e = errors("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n");
        assert!(e.contains("listen_port") && e.contains("line 3"), "{e}");
        let e = errors(
            "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nmodes = \"all\"\n",
        );
        assert!(e.contains("modes") && e.contains("line 4"), "{e}");
        let e = errors("[[reporter.carrier_pigeon]]\nname = \"p\"\n");
        assert!(e.contains("carrier_pigeon"), "{e}");
    }

    #[test]
    fn modes_normalise_as_buildbot_does() {
        let mode = |m: &str| {
            Config::parse(&format!(
                "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nmode = {m}\n"
            ))
            .map(|c| c.reporter.http_push[0].selection().mode.0)
        };
        let all = ["failing", "passing", "warnings", "exception", "cancelled"];
        assert_eq!(mode("\"all\"").unwrap(), all);
        assert_eq!(mode("[\"all\"]").unwrap(), all);
        assert_eq!(mode("\"warnings\"").unwrap(), ["failing", "warnings"]);
        assert_eq!(mode("[\"warnings\"]").unwrap(), ["warnings"]);
        assert_eq!(
            mode("[\"change\", \"problem\"]").unwrap(),
            ["change", "problem"]
        );
        let e = mode("[\"failing\", \"broken\"]").unwrap_err().to_string();
        assert!(
            e.contains("unknown mode word \"broken\"") && e.contains("line 4"),
            "{e}"
        );
        assert!(mode("[]").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("fast").is_err());
        // Huge values are refused, never overflowed (this used to panic).
        for huge in ["99999999999999999h", "18446744073709551615s", "11y"] {
            let e = parse_duration(huge).unwrap_err();
            assert!(
                e.contains("too long") || e.contains("bad duration"),
                "{huge}: {e}"
            );
        }
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("many").is_err());
        assert!(parse_size("99999999999GiB").is_err());
        assert!(parse_size("99999999999999999999999999999999GiB").is_err());
        let e = errors("[server]\nmax_body = \"2048TiB\"\n");
        assert!(e.contains("too large"), "{e}");
        let e = errors(
            "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\ntimeout = \"99999999999999999999h\"\n",
        );
        assert!(e.contains("bad duration") && e.contains("line 4"), "{e}");
        let e = errors("[[formatter]]\nname = \"f\"\nmodule = \"f.wasm\"\ntimeout = \"quick\"\n");
        assert!(e.contains("bad duration") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn secrets_resolve_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-from-file\n").unwrap();
        let s = Secret::resolve(&format!("file:{}", file.display())).unwrap();
        assert_eq!(s.expose(), "s3cret-from-file");
        assert!(!format!("{s:?}").contains("s3cret"));

        let path = std::env::var("PATH").unwrap();
        let s = Secret::resolve("env:PATH").unwrap();
        assert_eq!(s.expose(), path);
        assert_eq!(format!("{s:?}"), "Secret(env:PATH, redacted)");

        let s = Secret::resolve("literal-hunter2").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(literal, redacted)");

        let c = Config::parse("[server]\ningest_token = \"hunter2\"\n").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));

        let e = errors("[server]\ningest_token = \"env:TIDINGS_SURELY_UNSET_4711\"\n");
        assert!(
            e.contains("TIDINGS_SURELY_UNSET_4711 is not set") && e.contains("line 2"),
            "{e}"
        );
        let e = errors("[server]\ningest_token = \"file:/nonexistent/token\"\n");
        assert!(
            e.contains("cannot read the secret file /nonexistent/token"),
            "{e}"
        );
    }

    #[test]
    fn no_error_shows_a_secret() {
        // Every secret-bearing key of the skeleton and of every reporter kind, given a value
        // of the wrong type, or a wrong key beside it on the same line.
        let cases = [
            "[server]\ningest_token = 12345678\n",
            "[server]\ningest_user = \"u\"\ningest_password = 12345678\n",
            "[server]\ningest_password = [\"LEAKME\"]\n",
            "[source.buildbot]\nurl = \"http://x/\"\npassword = 12345678\n",
            "[source.buildbot]\nurl = \"http://x/\"\ntoken = { t = \"LEAKME\" }\n",
            "[secrets]\nteam = 12345678\n",
            "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nauth = { user = \"u\", password = \"LEAKME\", extra = 1 }\n",
            "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nauth = { bearer = 12345678 }\n",
            "[[reporter.mail]]\nname = \"m\"\nfromaddr = \"ci@example.org\"\nsmtp_password = 12345678\n",
            "[[reporter.mail]]\nname = \"m\"\nfromaddr = \"ci@example.org\"\nsmtp_user = \"u\"\nsmtp_password = \"LEAKME\"\nsmtp_pasword = \"LEAKME\"\n",
        ];
        for text in cases {
            let e = errors(text);
            assert!(
                !e.contains("LEAKME") && !e.contains("12345678"),
                "a secret in: {e}\nfrom:\n{text}"
            );
            assert!(e.contains("line "), "no line in: {e}");
        }
        let e = errors("[server]\ningest_password = 12345678\n");
        assert!(
            e.contains("line 2")
                && e.contains("(ingest_password)")
                && e.contains("must be a string"),
            "{e}"
        );
        let e = errors(
            "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://x/\"\nauth = { user = \"u\", password = \"LEAKME\", extra = 1 }\n",
        );
        assert!(e.contains("(auth)") && e.contains("expected { user"), "{e}");
    }

    #[test]
    fn cross_entry_problems_are_all_reported() {
        let e = errors(
            r#"
[[formatter]]
name = "f"
module = "f.wasm"

[[formatter]]
name = "f"
module = "g.wasm"

[[reporter.http_push]]
name = "push"
server_url = "ftp://x/"
builders = ["a"]
tags = ["t"]
message_formatter = "nope"

[[reporter.http_push]]
name = "push"
server_url = "http://x/"
"#,
        );
        for want in [
            "[[formatter]] name \"f\" is used twice",
            "\"push\": the name is used by another reporter",
            "builders and tags cannot be used together",
            "message_formatter \"nope\" is not a [[formatter]] name",
            "server_url \"ftp://x/\" is not an http:// or https:// URL",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn http_auth_is_basic_or_bearer() {
        let c = Config::parse(
            "[[reporter.http_push]]\nname = \"a\"\nserver_url = \"http://x/\"\nauth = { user = \"u\", password = \"p\" }\n\
             [[reporter.http_push]]\nname = \"b\"\nserver_url = \"http://x/\"\nauth = { bearer = \"t\" }\n",
        )
        .unwrap();
        use crate::reporters::http::HttpAuth;
        assert!(matches!(
            c.reporter.http_push[0].auth,
            Some(HttpAuth::Basic { .. })
        ));
        assert!(matches!(
            c.reporter.http_push[1].auth,
            Some(HttpAuth::Bearer { .. })
        ));
        assert!(Config::parse("[[reporter.http_push]]\nname = \"a\"\nserver_url = \"http://x/\"\nauth = { token = \"t\" }\n").is_err());
    }
}
