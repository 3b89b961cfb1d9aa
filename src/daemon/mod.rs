//! `tidings serve`: the daemon that ties the pieces together.
//!
//! ```text
//! HTTP ingest ─▶ Committer (group commit) ─▶ store.events ─▶ Dispatcher thread (history)
//!                                                      one lane per reporter ─▶ store.outbox
//!                                                                      │ wakes
//!                                              one outbox Worker per reporter ─▶ its Sink
//! ```
//!
//! Signals: SIGHUP reloads the config (an invalid one is refused and the running one kept;
//! `[server]` changes need a restart and are reported as such); SIGTERM or SIGINT stops
//! accepting, lets in-flight deliveries finish within `[server] shutdown_grace` and leaves the
//! rest in the outbox for the next start.

use crate::buildbot_api::{BuildbotApi, RestHistory};
use crate::config::{Config, Synchronous};
use crate::dispatch::{Dispatcher, ReadEvents, Route};
use crate::formatter::{ChildCompiler, Formatter, Host, HostOptions};
use crate::history::History;
use crate::metrics::Metrics;
use crate::outbox::{RetryPolicy, Worker};
use crate::reporters::{BuildContext, DaemonControl, Reporter, ServiceContext, Shutdown};
use crate::source::buildbot::BuildbotStream;
use crate::source::http::{Ingest, IngestAuth, router};
use crate::store::Committer;
use crate::store::{Durability, Retention, State, Store};
use crate::{clock::now_ms, dispatch};
use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

mod listener;
mod services;

pub use services::{Prepared, Services};

/// The config `tidings serve` runs without `--config`: listen on 127.0.0.1:8411, keep data in
/// `./tidings-data`, accept events and keep them (add reporters to have them delivered).
pub const DEFAULT_CONFIG: &str = include_str!("../default-config.toml");

/// Where the config comes from.
pub struct ConfigSource {
    /// `None`: the embedded default.
    pub path: Option<PathBuf>,
}

impl ConfigSource {
    /// Reads and validates the config.
    pub fn load(&self) -> Result<Config> {
        match &self.path {
            Some(p) => Ok(Config::load(p)?),
            None => Ok(Config::parse(DEFAULT_CONFIG)?),
        }
    }

    /// The directory relative paths in the config are resolved against.
    pub fn base(&self) -> PathBuf {
        match &self.path {
            Some(p) => p.parent().unwrap_or(Path::new(".")).to_owned(),
            None => PathBuf::from("."),
        }
    }
}

/// The data directory of `config`, resolved against `base` (the config file's directory).
pub fn data_dir(config: &Config, base: &Path) -> PathBuf {
    tidy(&base.join(&config.server.data_dir))
}

/// `path` without `.` components (`././tidings-data` is `tidings-data`), as people write it.
pub fn tidy(path: &Path) -> PathBuf {
    let out: PathBuf = path
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect();
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// Builds every configured reporter through the registry (HTTP clients, certificates, mail
/// directories). `services` are the reporters' services by name ([`Services::prepare`]); `None`
/// builds without them (`tidings check`). `store` is where reporters read state they keep (the
/// IRC bot's notify settings), when there is one.
///
/// `base` is the config file's directory: relative paths (the data directory, a mail
/// `directory`, certificate files) are resolved against it.
pub fn build_reporters(
    config: &Config,
    base: &Path,
    services: Option<&Prepared>,
    store: Option<&Arc<Store>>,
) -> Result<Vec<Arc<dyn Reporter>>> {
    let data_dir = data_dir(config, base);
    let mut out: Vec<Arc<dyn Reporter>> = Vec::new();
    for (kind, table) in config.reporter.all() {
        let name = table.selection().name;
        let cx = BuildContext {
            secrets: &config.secrets,
            base,
            data_dir: &data_dir,
            service: services.and_then(|s| s.get(&name)),
            store: store.cloned(),
        };
        let r = table
            .build(&cx)
            .with_context(|| format!("[[reporter.{kind}]] {name:?}"))?;
        out.push(r);
    }
    Ok(out)
}

/// Decides the services of `config` against the running config `old` (none at start).
fn prepare_services(
    services: &Services,
    old: Option<&Config>,
    config: &Config,
    base: &Path,
    store: &Arc<Store>,
) -> Result<Prepared> {
    let data_dir = data_dir(config, base);
    let cx = BuildContext {
        secrets: &config.secrets,
        base,
        data_dir: &data_dir,
        service: None,
        store: Some(store.clone()),
    };
    let old = old.map(|c| c.reporter.all()).unwrap_or_default();
    services.prepare(&old, &config.reporter.all(), &cx)
}

/// Loads every `[[formatter]]` (compiling, or reading the precompiled cache); `replaced` gives
/// some of them another module, by name.
pub fn load_formatters(
    config: &Config,
    base: &Path,
    host: &Host,
    replaced: &[(String, PathBuf)],
) -> Result<HashMap<String, Arc<Formatter>>> {
    let mut out = HashMap::new();
    for f in &config.formatter {
        let path = match replaced.iter().find(|(n, _)| n == &f.name) {
            Some((_, p)) => p.clone(),
            None => f
                .wasm_path(base)
                .map_err(|e| anyhow::anyhow!("[[formatter]] {:?}: {e}", f.name))?,
        };
        let mut loaded = host
            .load(&f.name, &path, f.limits(), f.grants(base))
            .with_context(|| format!("[[formatter]] {:?} ({})", f.name, path.display()))?;
        loaded
            .set_instances(f.instances(&loaded))
            .with_context(|| format!("[[formatter]] {:?} ({})", f.name, path.display()))?;
        out.insert(f.name.clone(), Arc::new(loaded));
    }
    Ok(out)
}

/// A dispatcher for `config` over `store` that only plans ([`Dispatcher::plan`]): its reporters
/// and formatters as `serve` builds them (modules from the same cache), no outbox workers, and
/// the followed master's history when `[source.buildbot]` is set (`runtime` runs its requests).
/// `formatters` replaces the module of `[[formatter]]`s by name (`tidings replay --formatter`).
/// For `tidings explain` and `tidings replay`, beside a running daemon.
pub fn planner(
    config: &Config,
    base: &Path,
    store: Arc<Store>,
    formatters: &[(String, PathBuf)],
    runtime: Option<&tokio::runtime::Handle>,
) -> Result<Dispatcher> {
    for (name, _) in formatters {
        if !config.formatter.iter().any(|f| &f.name == name) {
            anyhow::bail!(
                "--formatter {name}=…: the config has no [[formatter]] named {name:?} (it has: {})",
                config
                    .formatter
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let host = Host::new(HostOptions {
        cache_dir: Some(data_dir(config, base).join("modules")),
        read_caches: crate::formatter::default_cache_dir().into_iter().collect(),
        concurrency: None,
        memory_keep_resident: None,
        compile_in: None,
    })?;
    let loaded = load_formatters(config, base, &host, formatters)?;
    let reporters = build_reporters(config, base, None, Some(&store))?;
    let history: Option<Arc<dyn History>> = match (&config.source.buildbot, runtime) {
        (Some(bb), Some(rt)) => Some(Arc::new(RestHistory::new(
            BuildbotApi::new(bb)?,
            rt.clone(),
        ))),
        _ => None,
    };
    Ok(Dispatcher {
        store,
        routes: reporters
            .into_iter()
            .map(|reporter| Route {
                reporter,
                wake: Arc::new(Notify::new()),
            })
            .collect(),
        formatters: loaded,
        master: tidings_guest::Master {
            title: config.master.title.clone(),
            buildbot_url: config.master.buildbot_url.clone(),
        },
        metrics: Arc::new(Metrics::default()),
        history,
        breakers: Default::default(),
        workers: 0,
        read: Default::default(),
    })
}

/// What a config turns into: the dispatcher thread and the outbox workers. Replaced whole on
/// reload.
struct Pipeline {
    stop_dispatch: Arc<AtomicBool>,
    dispatcher: Option<std::thread::JoinHandle<()>>,
    stop_workers: watch::Sender<bool>,
    workers: JoinSet<()>,
}

/// A dispatch thread spawned but not yet dispatching: spawning (which can fail) happens before
/// the running pipeline is stopped, so a reload that cannot get a thread changes nothing.
struct Parked {
    go: std::sync::mpsc::SyncSender<Dispatcher>,
    handle: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Parked {
    fn spawn(shared: &Shared) -> Result<Parked> {
        let (go, go_rx) = std::sync::mpsc::sync_channel::<Dispatcher>(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let wake = shared.dispatch_wake.clone();
        let handle = std::thread::Builder::new()
            .name("tidings-dispatch".into())
            .spawn(move || {
                // A dropped sender (the reload was abandoned) ends the thread unused.
                if let Ok(dispatcher) = go_rx.recv() {
                    let wake = wake.lock().unwrap_or_else(|e| e.into_inner());
                    dispatcher.run(&wake, &stop_flag);
                }
            })
            .context("cannot start the dispatch thread")?;
        Ok(Parked { go, handle, stop })
    }
}

impl Pipeline {
    fn start(
        config: &Config,
        formatters: HashMap<String, Arc<Formatter>>,
        reporters: Vec<Arc<dyn Reporter>>,
        shared: &Shared,
        parked: Parked,
    ) -> Pipeline {
        let grace = grace(config);
        let (stop_workers, stop_rx) = watch::channel(false);
        let mut workers = JoinSet::new();
        let mut routes = Vec::new();
        for r in reporters {
            let wake = Arc::new(Notify::new());
            let worker = Worker {
                reporter: r.selection().name.clone(),
                sink: r.sink(),
                policy: RetryPolicy {
                    settings: r.retry(),
                    idempotent: r.sink().idempotent(),
                },
                store: shared.store.clone(),
                metrics: shared.metrics.clone(),
                wake: wake.clone(),
            };
            workers.spawn(worker.run(stop_rx.clone(), grace));
            routes.push(Route { reporter: r, wake });
        }
        let Parked {
            go,
            handle,
            stop: stop_dispatch,
        } = parked;
        let dispatcher = Dispatcher {
            store: shared.store.clone(),
            routes,
            formatters,
            master: tidings_guest::Master {
                title: config.master.title.clone(),
                buildbot_url: config.master.buildbot_url.clone(),
            },
            metrics: shared.metrics.clone(),
            history: shared.history.clone(),
            breakers: Default::default(),
            workers: 0,
            read: shared.read.clone(),
        };
        // The thread is parked on this channel and owns its other end: it cannot be gone.
        let _ = go.send(dispatcher);
        Pipeline {
            stop_dispatch,
            dispatcher: Some(handle),
            stop_workers,
            workers,
        }
    }

    /// Stops dispatching (after the batch in hand) and lets the workers drain.
    async fn stop(mut self, poke: &SyncSender<()>) {
        self.stop_dispatch.store(true, Ordering::Relaxed);
        let _ = poke.try_send(());
        if let Some(h) = self.dispatcher.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        let _ = self.stop_workers.send(true);
        while self.workers.join_next().await.is_some() {}
    }
}

fn grace(config: &Config) -> Duration {
    config
        .server
        .shutdown_grace
        .map_or(Duration::from_secs(10), |d| d.0)
}

/// What survives a reload.
struct Shared {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// The followed master's REST API, for changes and previous builds.
    history: Option<Arc<dyn History>>,
    dispatch_wake: Arc<Mutex<Receiver<()>>>,
    /// Events parsed by ingest and read by the history step, for the dispatch steps after,
    /// and how the lanes learn that the history moved on (one for every config the daemon
    /// runs, across reloads).
    read: Arc<ReadEvents>,
}

/// Runs the daemon until SIGTERM/SIGINT. Once the listener is up it prints
/// `tidings listening on http://ADDR` on stdout (for scripts and tests that listen on port 0).
///
/// Made for the `tidings` binary: modules are compiled in children of the running executable
/// ([`ChildCompiler::this_executable`]), which must answer `tidings __compile` (else every
/// compile fails with a message that says so).
pub async fn serve(source: ConfigSource) -> Result<()> {
    let config = source.load()?;
    match listener::raise_fd_limit() {
        Ok(n) if (n as usize) < config.server.max_connections + 64 => tracing::warn!(
            open_files = n,
            max_connections = config.server.max_connections,
            "the limit of open files is below max_connections: raise it (ulimit -Hn) or lower max_connections"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the limit of open files"),
    }
    let base = source.base();
    let data_dir = data_dir(&config, &base);
    let durability = match config.server.synchronous {
        Synchronous::Normal => Durability::Normal,
        Synchronous::Full => Durability::Full,
    };
    let store = Arc::new(Store::open(&data_dir, durability)?);
    if let Some(max) = config.server.max_store_size {
        store.limit_size(max.0)?;
    }
    let recovered = store.recover_in_flight()?;
    if recovered > 0 {
        tracing::info!(
            recovered,
            "deliveries that were in flight when tidings last stopped are pending again"
        );
    }
    let host = Host::new(HostOptions {
        cache_dir: Some(data_dir.join("modules")),
        read_caches: crate::formatter::default_cache_dir().into_iter().collect(),
        concurrency: None,
        memory_keep_resident: None,
        compile_in: ChildCompiler::this_executable().ok(),
    })?;
    let formatters = load_formatters(&config, &base, &host, &[])?;
    let mut services = Services::default();
    let prepared = prepare_services(&services, None, &config, &base, &store)?;
    let reporters = build_reporters(&config, &base, Some(&prepared), Some(&store))?;

    let metrics = Arc::new(Metrics::default());
    metrics.formatters_loaded(&formatters);
    let (poke, wake_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let read = Arc::new(ReadEvents::default());
    let committer = {
        let poke = poke.clone();
        Committer::start_with(store.clone(), Some(read.clone()), move || {
            let _ = poke.try_send(());
        })
    };
    let history: Option<Arc<dyn History>> = match &config.source.buildbot {
        Some(bb) => Some(Arc::new(RestHistory::new(
            BuildbotApi::new(bb)?,
            tokio::runtime::Handle::current(),
        ))),
        None => None,
    };
    let shared = Shared {
        store: store.clone(),
        metrics: metrics.clone(),
        history,
        dispatch_wake: Arc::new(Mutex::new(wake_rx)),
        read,
    };
    let api = match &config.source.buildbot {
        Some(bb) => Some(BuildbotApi::new(bb)?),
        None => None,
    };
    let control = DaemonControl::default();
    let service_context = {
        let (store, control) = (store.clone(), control.clone());
        move || ServiceContext {
            store: store.clone(),
            api: api.clone(),
            shutdown: watch::channel(false).1,
            control: control.clone(),
        }
    };
    services.commit(prepared, &service_context).await;
    let mut pipeline = Pipeline::start(
        &config,
        formatters,
        reporters,
        &shared,
        Parked::spawn(&shared)?,
    );

    let (stop_retention, stop_retention_rx) = watch::channel(false);
    let retention = tokio::spawn(retention_loop(
        store.clone(),
        Retention {
            keep_ms: config.server.retention.0.as_millis() as i64,
            dead_ms: config.server.dead_retention.map(|d| d.0.as_millis() as i64),
        },
        stop_retention_rx,
    ));
    let ingest = Ingest {
        committer,
        store: store.clone(),
        auth: IngestAuth {
            token: config.server.ingest_token.clone(),
            basic: config
                .server
                .ingest_user
                .clone()
                .zip(config.server.ingest_password.clone()),
        },
        max_body: config.server.max_body.0 as usize,
        body_timeout: config.server.body_timeout.0,
        metrics: metrics.clone(),
    };
    let (stop_sources, stop_sources_rx) = watch::channel(false);
    let mut sources = tokio::task::JoinSet::new();
    if let Some(bb) = &config.source.buildbot {
        let stream = BuildbotStream {
            api: BuildbotApi::new(bb)?,
            committer: ingest.committer.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
        };
        tracing::info!(master = %bb.url, "following a Buildbot master ([source.buildbot])");
        sources.spawn(stream.run(stop_sources_rx.clone()));
    }
    let app = router(ingest).merge(metrics_router(store.clone(), metrics.clone()));
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), reporters = config.reporter.all().len(), "tidings is serving");
    println!("tidings listening on http://{addr}");

    let (stop_http, stop_http_rx) = watch::channel(false);
    let limits = listener::Limits {
        header_timeout: config.server.header_timeout.0,
        max_connections: config.server.max_connections,
    };
    let server = tokio::spawn(listener::serve(
        listener,
        app,
        limits,
        metrics.clone(),
        stop_http_rx,
    ));

    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut running = Arc::new(config);
    let source = Arc::new(source);
    let services = Arc::new(Mutex::new(services));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                // Compiling formatters and reading certificates blocks: off the async workers.
                let loaded = tokio::task::spawn_blocking({
                    let (source, running, host, services, store) =
                        (source.clone(), running.clone(), host.clone(), services.clone(), store.clone());
                    move || {
                        let services = services.lock().unwrap_or_else(|e| e.into_inner());
                        reload(&source, &running, &host, &services, &store)
                    }
                })
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("the reload task failed: {e}")));
                let parked = loaded.and_then(|l| Ok((l, Parked::spawn(&shared)?)));
                match parked {
                    Ok(((config, formatters, reporters, prepared), parked)) => {
                        metrics.formatters_loaded(&formatters);
                        pipeline.stop(&poke).await;
                        let mut s = std::mem::take(&mut *services.lock().unwrap_or_else(|e| e.into_inner()));
                        s.commit(prepared, &service_context).await;
                        *services.lock().unwrap_or_else(|e| e.into_inner()) = s;
                        pipeline = Pipeline::start(&config, formatters, reporters, &shared, parked);
                        tracing::info!(reporters = config.reporter.all().len(), "config reloaded");
                        running = Arc::new(config);
                    }
                    Err(e) => tracing::error!("config reload refused, the running config stays: {e:#}"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            why = asked_to_stop(control.subscribe(), store.clone()) => {
                tracing::info!("{why}");
                break;
            }
        }
    }
    tracing::info!("stopping: no new events accepted; draining deliveries in flight");
    let _ = stop_http.send(true);
    let _ = stop_retention.send(true);
    let _ = stop_sources.send(true);
    while sources.join_next().await.is_some() {}
    if let Err(e) = server.await {
        tracing::error!(error = %e, "the HTTP server task failed");
    }
    pipeline.stop(&poke).await;
    let _ = retention.await;
    let mut s = std::mem::take(&mut *services.lock().unwrap_or_else(|e| e.into_inner()));
    s.stop_all().await;
    let left: i64 = store
        .counts()?
        .iter()
        .filter(|(s, _)| matches!(s, State::Pending | State::InFlight))
        .map(|(_, n)| n)
        .sum();
    tracing::info!(left_in_outbox = left, "stopped");
    Ok(())
}

type Loaded = (
    Config,
    HashMap<String, Arc<Formatter>>,
    Vec<Arc<dyn Reporter>>,
    Prepared,
);

/// Returns when a service asked the daemon to stop (the IRC bot's `shutdown`): at once for
/// `now`, or once nothing waits in the outbox for `start` (checked every second); a request
/// called off (`shutdown stop`) waits again.
async fn asked_to_stop(mut rx: watch::Receiver<Shutdown>, store: Arc<Store>) -> String {
    loop {
        let state = *rx.borrow_and_update();
        match state {
            Shutdown::Now => return "stopping, as asked (IRC shutdown now)".into(),
            Shutdown::WhenDrained => {
                let waiting: i64 = store
                    .counts()
                    .unwrap_or_default()
                    .iter()
                    .filter(|(s, _)| matches!(s, State::Pending | State::InFlight))
                    .map(|(_, n)| n)
                    .sum();
                if waiting == 0 {
                    return "stopping, as asked, now that the outbox is empty (IRC shutdown start)"
                        .into();
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
            }
            Shutdown::Running => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Keeps the store bounded: every cycle (a tenth of `retention`, between 1 s and 1 min) deletes
/// what retention no longer keeps in batches of 200 rows with a pause between them, so ingest
/// and delivery never wait long for the store, then checkpoints the WAL.
async fn retention_loop(store: Arc<Store>, r: Retention, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis((r.keep_ms / 10).clamp(1_000, 60_000) as u64);
    loop {
        let mut total = crate::store::Pruned::default();
        while !*stop.borrow() {
            let (s, after) = (store.clone(), total.events_after);
            let pruned = tokio::task::spawn_blocking(move || {
                s.prune(r, now_ms(), dispatch::dispatched(&s)?, 200, after)
            })
            .await;
            match pruned {
                Ok(Ok(p)) if p.any() => {
                    total.events_after = p.events_after;
                    total.deliveries += p.deliveries;
                    total.events += p.events;
                    total.builds += p.builds;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "retention cannot delete old rows; trying again later");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the retention task failed");
                    break;
                }
            }
        }
        if total.any() {
            tracing::debug!(
                deliveries = total.deliveries,
                events = total.events,
                builds = total.builds,
                "retention deleted old rows"
            );
        }
        let s = store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.checkpoint()).await {
            tracing::debug!(error = %e, "a WAL checkpoint did not complete");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Reads, validates and builds a new config; nothing running is touched until it all worked.
fn reload(
    source: &ConfigSource,
    running: &Config,
    host: &Host,
    services: &Services,
    store: &Arc<Store>,
) -> Result<Loaded> {
    let config = source.load()?;
    let s = (&config.server, &running.server);
    if s.0.listen != s.1.listen
        || s.0.data_dir != s.1.data_dir
        || s.0.synchronous != s.1.synchronous
        || s.0.max_body.0 != s.1.max_body.0
        || s.0.body_timeout != s.1.body_timeout
        || s.0.header_timeout != s.1.header_timeout
        || s.0.max_connections != s.1.max_connections
        || s.0.retention != s.1.retention
        || s.0.dead_retention != s.1.dead_retention
        || s.0.max_store_size != s.1.max_store_size
        || s.0.ingest_user != s.1.ingest_user
        || s.0.ingest_token.as_ref().map(|t| t.expose().to_owned())
            != s.1.ingest_token.as_ref().map(|t| t.expose().to_owned())
        || s.0.ingest_password.as_ref().map(|t| t.expose().to_owned())
            != s.1.ingest_password.as_ref().map(|t| t.expose().to_owned())
    {
        tracing::warn!("[server] changed: those settings take effect at the next restart");
    }
    let url = |c: &Config| c.source.buildbot.as_ref().map(|b| b.url.clone());
    if url(&config) != url(running) {
        tracing::warn!("[source.buildbot] changed: it takes effect at the next restart");
    }
    let base = source.base();
    let formatters = load_formatters(&config, &base, host, &[])?;
    let prepared = prepare_services(services, Some(running), &config, &base, store)?;
    let reporters = build_reporters(&config, &base, Some(&prepared), Some(store))?;
    Ok((config, formatters, reporters, prepared))
}

/// `GET /metrics`: counters, the formatter latency histogram, and the outbox by state.
fn metrics_router(store: Arc<Store>, metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let store = store.clone();
            let metrics = metrics.clone();
            async move {
                let (counts, unreadable, bytes) = tokio::task::spawn_blocking(move || {
                    (
                        store.counts().unwrap_or_default(),
                        store.unreadable_count().unwrap_or_default(),
                        store.bytes_on_disk(),
                    )
                })
                .await
                .unwrap_or_default();
                metrics.store_bytes(bytes);
                let by_state: Vec<(&str, i64)> = [
                    State::Pending,
                    State::InFlight,
                    State::Delivered,
                    State::Dead,
                ]
                .into_iter()
                .map(|state| {
                    let n = counts
                        .iter()
                        .find(|(s, _)| *s == state)
                        .map_or(0, |(_, n)| *n);
                    (state.as_str(), n)
                })
                .collect();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        crate::metrics::CONTENT_TYPE,
                    )],
                    metrics.render(&by_state, unreadable),
                )
            }
        }),
    )
}
