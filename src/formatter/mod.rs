//! The formatter engine: the only module that knows wasmtime.
//!
//! A [`Host`] owns the process's one `wasmtime::Engine` (epoch interruption, pooling
//! allocator), the ticker thread that drives time limits (and drops warm instances idle past
//! their `max_idle`), the compiled-module cache, and the
//! bound on concurrent calls (one per core). [`Host::load`] validates and compiles a module
//! (or loads its cached artifact) into a [`Formatter`] (the daemon compiles in child processes,
//! see [`compiler`]); each [`Formatter::call`] then runs a
//! fresh instance under the sandbox described in [`sandbox`], and [`abi`] turns its stdout
//! into the hook's typed result.
//!
//! Callers: the CLI (`render`, `test`, `run`, `check`), and the dispatcher, which calls
//! [`Formatter::call_async`] from tokio tasks; the call itself runs on a blocking thread.

pub mod abi;
mod cache;
pub mod compiler;
mod error;
mod limits;
mod sandbox;
pub mod validate;

pub use abi::{HookOutput, Request, WrapContext};
pub use cache::{Origin, private_dir_problem};
pub use compiler::ChildCompiler;
pub use error::{FormatterError, Stream};
pub use limits::{GUEST_DIR, Grants, Limits};
pub use sandbox::{TICK, WARM_ALLOC, WARM_FORMAT};

use cache::ArtifactCache;
use sandbox::{CallSpec, CallState, Program, Stdio, WarmInstance};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tidings_guest::Hook;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, Module};

/// How a [`Host`] is set up.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Where compiled artifacts are cached; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Other caches to take artifacts from, never written (the daemon reads the user's cache,
    /// where `tidings render`, `test` and `check` compiled). Only with `cache_dir`.
    pub read_caches: Vec<PathBuf>,
    /// How many calls of one formatter may run at once; `None` means one per core. All
    /// formatters together may run twice as many, so that one slow formatter (say, one that
    /// keeps running into its time limit) cannot hold every slot while the others wait.
    pub concurrency: Option<usize>,
    /// Bytes of each pooled linear memory kept mapped between calls and zeroed with `memset`,
    /// instead of returned to the kernel; `None` means [`DEFAULT_KEEP_RESIDENT`]. Keeping the
    /// pages a formatter touches saves the page faults a fresh instance takes (Linux only).
    pub memory_keep_resident: Option<usize>,
    /// Compile in a child process instead of in this one (`serve` and `check` do, see
    /// [`ChildCompiler`]); `None` compiles in-process, as `render`, `test` and `run` do.
    pub compile_in: Option<ChildCompiler>,
}

/// The user's cache of compiled modules, which `tidings render` and `tidings test` use and the
/// daemon also reads: `$TIDINGS_CACHE_DIR`, else `$XDG_CACHE_HOME/tidings/modules`, else
/// `~/.cache/tidings/modules`; none without a home (never a shared temporary directory, since
/// the cache holds native code).
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TIDINGS_CACHE_DIR") {
        return Some(d.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tidings").join("modules"))
}

/// The process's formatter engine. Create one and share it (it is cheap to clone).
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    /// The configuration that compiles modules for `engine`, see [`Host::compile`].
    compile_config: Config,
    /// Where to compile, if not in this process.
    compile_in: Option<ChildCompiler>,
    linker: Linker<CallState>,
    component_linker: wasmtime::component::Linker<CallState>,
    cache: Option<ArtifactCache>,
    /// Calls of all formatters that may run at once: twice `concurrency`.
    slots: Slots,
    /// Calls of one formatter that may run at once.
    concurrency: usize,
    /// Warm instances kept idle, all formatters together.
    warm: Arc<WarmRoom>,
    ticker_stop: Arc<AtomicBool>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// Warm instances kept idle between calls, all formatters of a host together: each holds a slot
/// of the pooling allocator (address space, and the memory its guest touched).
pub const WARM_ROOM: usize = 32;

/// The default of `max_calls` for warm instances: an instance answers this many calls, then a
/// fresh one takes its place.
pub const DEFAULT_MAX_CALLS: u32 = 1000;

/// The default of `max_idle` for warm instances: one not called for this long is dropped,
/// giving back the memory its guest touched (a Python component's is about 5 MiB), and the
/// next call makes a new one. Making one costs what a fresh call costs (1.8 ms for Python, the
/// dearest), under 0.02% of a 10 s pause; a busy formatter keeps its instances.
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(10);

/// How often the epoch ticker looks for warm instances idle longer than their `max_idle`.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

/// How a formatter's instances are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// A fresh instance per call: nothing survives from one call to the next (the default).
    Fresh,
    /// Instances kept between calls (a few per formatter, at most one per core), each reused
    /// for up to `max_calls` calls, discarded after any failure and dropped once idle for
    /// `max_idle`. Needs a module with the warm entry points ([`WARM_ALLOC`], [`WARM_FORMAT`])
    /// or a component.
    Warm { max_calls: u32, max_idle: Duration },
}

impl Instances {
    /// Warm instances answering up to `max_calls` calls each, dropped after
    /// [`DEFAULT_MAX_IDLE`] without a call.
    pub const fn warm(max_calls: u32) -> Instances {
        Instances::Warm {
            max_calls,
            max_idle: DEFAULT_MAX_IDLE,
        }
    }
}

impl std::fmt::Display for Instances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Instances::Fresh => f.write_str("fresh"),
            Instances::Warm { .. } => f.write_str("warm"),
        }
    }
}

/// What the warm instances of a formatter did, since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmStats {
    /// Instances made.
    pub created: u64,
    /// Calls answered by an instance that had answered one before.
    pub reused: u64,
    /// Instances discarded after a failure (a trap, a limit, an error, an exit).
    pub discarded: u64,
    /// Instances dropped after `max_idle` without a call.
    pub retired: u64,
}

impl WarmStats {
    /// What happened since `before` (an earlier reading of the same formatter).
    pub fn since(self, before: WarmStats) -> WarmStats {
        WarmStats {
            created: self.created.saturating_sub(before.created),
            reused: self.reused.saturating_sub(before.reused),
            discarded: self.discarded.saturating_sub(before.discarded),
            retired: self.retired.saturating_sub(before.retired),
        }
    }
}

/// The warm instances of one formatter.
struct WarmPool {
    /// The formatter's name, for the log.
    name: String,
    /// Instances waiting for a call, the one used last at the end.
    idle: Mutex<Vec<Idle>>,
    max_calls: u32,
    max_idle: Duration,
    created: AtomicU64,
    reused: AtomicU64,
    discarded: AtomicU64,
    retired: AtomicU64,
}

/// A warm instance waiting for a call, since when.
struct Idle {
    instance: WarmInstance,
    since: Instant,
}

/// The warm instances kept idle by all formatters of a host.
#[derive(Default)]
struct WarmRoom {
    /// How many there are (at most [`WARM_ROOM`]).
    idle: AtomicUsize,
    /// Every formatter's pool, for [`WarmRoom::retire_idle`].
    pools: Mutex<Vec<Weak<WarmPool>>>,
}

impl WarmRoom {
    /// Drops the instances that have waited longer than their pool's `max_idle` at `now`;
    /// the epoch ticker calls it every [`IDLE_SWEEP`]. Returns how many it dropped.
    fn retire_idle(&self, now: Instant) -> usize {
        let pools: Vec<Arc<WarmPool>> = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            pools.retain(|p| p.strong_count() > 0);
            pools.iter().filter_map(Weak::upgrade).collect()
        };
        let mut dropped = 0;
        for pool in pools {
            let expired: Vec<Idle> = {
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                // The oldest wait at the front.
                let n = idle
                    .iter()
                    .take_while(|i| now.saturating_duration_since(i.since) >= pool.max_idle)
                    .count();
                idle.drain(..n).collect()
            };
            if expired.is_empty() {
                continue;
            }
            self.idle.fetch_sub(expired.len(), Ordering::Relaxed);
            pool.retired
                .fetch_add(expired.len() as u64, Ordering::Relaxed);
            dropped += expired.len();
            tracing::debug!(formatter = %pool.name, instances = expired.len(), max_idle_ms = pool.max_idle.as_millis() as u64, "dropped warm instances idle past max_idle");
            // Dropped outside the lock: giving back an instance's memory takes a moment.
            drop(expired);
        }
        dropped
    }
}

/// The default of [`HostOptions::memory_keep_resident`]: 512 KiB covers what the Rust, C, Zig
/// and AssemblyScript `short` and the Rust formatters touch in a call (at most 448 KiB), and an
/// idle daemon keeps it for every formatter, so more would cost memory for nothing.
pub const DEFAULT_KEEP_RESIDENT: usize = 512 << 10;

impl Host {
    /// Creates the engine, its pooling allocator and the epoch ticker.
    pub fn new(options: HostOptions) -> Result<Host, FormatterError> {
        let host_err = |e: wasmtime::Error| FormatterError::Host {
            message: format!("cannot create the WebAssembly engine: {e:#}"),
        };
        let concurrency = options
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        // Slots in the pool: every running call holds one (up to twice `concurrency`, all
        // formatters together); `tidings run` and instantiation races need a few more. Each
        // reserves address space (not memory) for one instance. Warm instances keep theirs
        // between calls: room for [`WARM_ROOM`] of them.
        let slots = (concurrency as u32) * 3 + 8 + WARM_ROOM as u32;
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        // A component is many core instances (CPython's is over a dozen, each with tables, some
        // with memories); address space is what the extra room costs.
        pool.total_core_instances(slots * 32)
            .total_memories(slots * 8)
            .total_tables(slots * 32)
            .total_component_instances(slots)
            // Component calls run asynchronously, each on a fiber stack from the pool.
            .total_stacks(slots)
            .linear_memory_keep_resident(
                options
                    .memory_keep_resident
                    .unwrap_or(DEFAULT_KEEP_RESIDENT),
            )
            .table_keep_resident(64 << 10);
        let compile_config = compiler::compile_config();
        let mut config = compile_config.clone();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(host_err)?;
        let linker = sandbox::linker(&engine).map_err(host_err)?;
        let component_linker = sandbox::component_linker(&engine).map_err(host_err)?;
        let cache = options
            .cache_dir
            .map(|dir| ArtifactCache::new(dir, options.read_caches, &engine));

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let warm = Arc::new(WarmRoom::default());
        let ticker = {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            let warm = warm.clone();
            std::thread::Builder::new()
                .name("tidings-epoch".into())
                .spawn(move || {
                    let mut swept = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                        let now = Instant::now();
                        if now.duration_since(swept) >= IDLE_SWEEP {
                            swept = now;
                            warm.retire_idle(now);
                        }
                    }
                })
                .map_err(|e| FormatterError::Host {
                    message: format!("cannot start the epoch ticker: {e}"),
                })?
        };
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                compile_config,
                compile_in: options.compile_in,
                linker,
                component_linker,
                cache,
                slots: Slots::new(concurrency.saturating_mul(2)),
                concurrency,
                warm,
                ticker_stop,
                ticker: Mutex::new(Some(ticker)),
            }),
        })
    }

    /// The module `wasm` compiled for this host's engine, as an artifact to deserialize.
    ///
    /// In a child process if the host has [`HostOptions::compile_in`] (all compile memory goes
    /// back with the child, and a compiler blow-up stays there; see [`ChildCompiler`]), falling
    /// back to this process when no child can be started. In this process, compiling is done
    /// by an engine of its own, made for it and dropped after, with the same code-generation
    /// settings (so its artifacts load into `engine`; wasmtime checks): an engine keeps
    /// Cranelift's working buffers for as long as it lives, sized to the largest function it
    /// compiled. [`Host::load_bytes`] then gives the allocator's free memory back to the
    /// kernel. A daemon that compiled its ten formatters on start stayed at ~345 MiB resident
    /// with neither; with both, at 60–81 MiB (freed memory scattered in the arenas of the
    /// threads that compiled); compiling in children, at 51 MiB, as a start that found them
    /// cached (`cargo bench --bench memory`). The engine of its own and the trim cost 5–7 ms
    /// per compile (`short`: 85 against 78–80 ms, `--bench formatter load/`).
    fn compile(&self, kind: compiler::Kind, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        if let Some(child) = &self.inner.compile_in {
            let started = Instant::now();
            match compiler::compile_in_child(child, kind, wasm) {
                Ok(artifact) => {
                    tracing::debug!(?kind, bytes = artifact.len(), elapsed = ?started.elapsed(), "compiled in a child process");
                    return Ok(artifact);
                }
                Err(compiler::ChildError::Failed(message)) => {
                    return Err(wasmtime::Error::msg(message));
                }
                Err(compiler::ChildError::Spawn(e)) => tracing::warn!(
                    executable = %child.executable.display(),
                    error = %e,
                    "cannot start a process to compile in; compiling in this one"
                ),
            }
        }
        let compiler = Engine::new(&self.inner.compile_config)?;
        let artifact = match kind {
            compiler::Kind::Module => compiler.precompile_module(wasm),
            compiler::Kind::Component => compiler.precompile_component(wasm),
        };
        drop(compiler);
        artifact
    }

    /// Loads the module at `path` as formatter `name`. See [`Host::load_bytes`].
    pub fn load(
        &self,
        name: &str,
        path: &Path,
        limits: Limits,
        grants: Grants,
    ) -> Result<Formatter, FormatterError> {
        let wasm = std::fs::read(path)
            .map_err(|e| FormatterError::invalid(format!("cannot read {}: {e}", path.display())))?;
        self.load_bytes(name, &wasm, limits, grants)
    }

    /// Validates `wasm` (a WASI preview 1 command, see [`validate`]), compiles it or loads its
    /// cached artifact, and resolves its imports once.
    pub fn load_bytes(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
        grants: Grants,
    ) -> Result<Formatter, FormatterError> {
        let kind = validate::check_header(wasm)?;
        let sha256 = hex::encode(Sha256::digest(wasm));
        let started = Instant::now();
        let engine = &self.inner.engine;
        let does_not_compile =
            |e: wasmtime::Error| FormatterError::invalid(format!("does not compile: {e:#}"));
        let (pre, origin) = if kind == validate::BinaryKind::Component {
            let compile = || self.compile(compiler::Kind::Component, wasm);
            let (component, origin) = match &self.inner.cache {
                Some(cache) => cache.load_component(engine, &sha256, compile),
                // SAFETY: compiled for this engine a moment ago (see `compile`).
                None => compile()
                    .and_then(|a| unsafe { Component::deserialize(engine, &a) })
                    .map(|c| (c, Origin::Compiled)),
            }
            .map_err(does_not_compile)?;
            let pre = self
                .inner
                .component_linker
                .instantiate_pre(&component)
                .map_err(|e| FormatterError::invalid(format!("cannot be linked: {e:#}")))?;
            let pre = wasmtime_wasi::p2::bindings::CommandPre::new(pre).map_err(|e| {
                FormatterError::invalid(format!(
                    "is a component but not a wasi:cli/command (it must export wasi:cli/run): {e:#}"
                ))
            })?;
            (Program::Component(pre), origin)
        } else {
            let compile = || self.compile(compiler::Kind::Module, wasm);
            let (module, origin) = match &self.inner.cache {
                Some(cache) => cache.load(engine, &sha256, compile),
                // SAFETY: compiled for this engine a moment ago (see `compile`).
                None => compile()
                    .and_then(|a| unsafe { Module::deserialize(engine, &a) })
                    .map(|m| (m, Origin::Compiled)),
            }
            .map_err(does_not_compile)?;
            validate::check_command(&module, limits.memory)?;
            let pre = self
                .inner
                .linker
                .instantiate_pre(&module)
                .map_err(|e| FormatterError::invalid(format!("cannot be linked: {e:#}")))?;
            (Program::Module(pre), origin)
        };
        if origin == Origin::Compiled {
            // Compiling, or reading a child's artifact, freed memory in large pieces.
            return_freed_memory();
        }
        let go_command = match &pre {
            Program::Module(pre) => validate::is_go_command(pre.module(), wasm),
            Program::Component(_) => false,
        };
        // A component in the world tidings:formatter/warm answers warm calls through `format`,
        // which is made to be called again and again.
        let component_format = match &pre {
            Program::Module(_) => false,
            Program::Component(pre) => pre
                .instance_pre()
                .component()
                .get_export_index(None, sandbox::COMPONENT_FORMAT)
                .is_some(),
        };
        tracing::debug!(formatter = name, ?origin, elapsed = ?started.elapsed(), "loaded formatter module");
        // A component without `format` runs warm by having its `run` called once per request
        // on a kept instance, with the request refilled on its stdin. A program whose `run`
        // cannot be called twice (a Rust wasm32-wasip2 command without the SDK) traps on its
        // second, so for such components warm is the operator's choice, never the default,
        // and `check` tries two calls.
        let warm_capable = match &pre {
            Program::Module(pre) => sandbox::supports_warm(pre.module()) && !go_command,
            Program::Component(_) => true,
        };
        Ok(Formatter {
            warm_capable,
            go_command,
            component_format,
            warm: None,
            slots: Slots::new(self.inner.concurrency),
            host: self.clone(),
            name: name.to_owned(),
            pre,
            limits,
            grants,
            sha256,
            origin,
            deterministic: false,
        })
    }

    /// Runs any WASI preview 1 command with the process's own stdio (`tidings run`): argv
    /// `args`, environment `env`, an optional read-only directory, no time limit. Returns the
    /// guest's exit status.
    pub fn run_command(
        &self,
        wasm: &[u8],
        args: &[String],
        env: &[(String, String)],
        grants: &Grants,
        memory: u64,
    ) -> Result<i32, FormatterError> {
        let limits = Limits {
            memory,
            ..Limits::default()
        };
        let f = self.load_bytes(&args[0], wasm, limits.clone(), grants.clone())?;
        let spec = CallSpec {
            args,
            env,
            grants,
            limits: &limits,
            deterministic: false,
            timeout: None,
        };
        let _slot = self.inner.slots.acquire();
        match sandbox::run(&self.inner.engine, &f.pre, &spec, Stdio::Inherited) {
            Ok(_) => Ok(0),
            Err((FormatterError::Exit { code, .. }, _)) => Ok(code),
            Err((e, _)) => Err(e),
        }
    }
}

/// A loaded formatter: a validated, compiled module ready to be instantiated per call.
pub struct Formatter {
    /// The module has the warm entry points.
    warm_capable: bool,
    /// A command built by Go ([`validate::is_go_command`]): it cannot run warm.
    go_command: bool,
    /// A component that exports [`sandbox::COMPONENT_FORMAT`].
    component_format: bool,
    /// Set when the formatter runs warm.
    warm: Option<Arc<WarmPool>>,
    /// This formatter's calls that may run at once (the host's `concurrency`); each also
    /// holds one of the host's slots, taken after this one.
    slots: Slots,
    host: Host,
    name: String,
    pre: Program,
    limits: Limits,
    grants: Grants,
    sha256: String,
    origin: Origin,
    deterministic: bool,
}

impl Drop for Formatter {
    fn drop(&mut self) {
        self.release_warm();
    }
}

/// One successful call, with what it cost.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The guest's stdout, as written.
    pub stdout: Vec<u8>,
    /// The largest linear memory the instance had, in bytes.
    pub peak_memory: u64,
    /// Wall time of the call, from store creation to the end of `_start`.
    pub elapsed: Duration,
}

impl Formatter {
    /// The formatter's name (argv\[0\] of the guest and the log target of its stderr).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the module, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether the module was compiled at load or came from the artifact cache.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes every call deterministic: fixed wall and monotonic clocks (2026-01-01T00:00:00Z,
    /// not moving) and seeded randomness. `tidings test` uses this so outputs can be compared.
    pub fn set_deterministic(&mut self, on: bool) {
        self.deterministic = on;
    }

    /// True when it can run with [`Instances::Warm`]: a module that exports the warm entry
    /// points ([`WARM_ALLOC`], [`WARM_FORMAT`]), or a component (its `format` called once per
    /// request, else its `run`; see [`Formatter::prefers_warm`]).
    pub fn supports_warm(&self) -> bool {
        self.warm_capable
    }

    /// True when warm is the better default: a module with the warm entry points, or a
    /// component that exports `format` (the world `tidings:formatter/warm`). (Any other
    /// component can run warm too, but only its author knows whether its `run` may be called
    /// again; `tidings test --instances warm` shows it.)
    pub fn prefers_warm(&self) -> bool {
        self.warm_capable && (matches!(self.pre, Program::Module(_)) || self.component_format)
    }

    /// True for a component that exports `format` (the world `tidings:formatter/warm`): its
    /// warm calls go to `format`, those of other components to `run` again.
    pub fn exports_format(&self) -> bool {
        self.component_format
    }

    /// True for a WASI preview 2 component.
    pub fn is_component(&self) -> bool {
        matches!(self.pre, Program::Component(_))
    }

    /// How calls use instances.
    pub fn instances(&self) -> Instances {
        match &self.warm {
            Some(w) => Instances::Warm {
                max_calls: w.max_calls,
                max_idle: w.max_idle,
            },
            None => Instances::Fresh,
        }
    }

    /// Chooses how calls use instances; warm needs a module that [supports
    /// it](Formatter::supports_warm). Instances kept so far are dropped.
    pub fn set_instances(&mut self, instances: Instances) -> Result<(), FormatterError> {
        self.release_warm();
        self.warm = match instances {
            Instances::Fresh => None,
            Instances::Warm { .. } if self.go_command => {
                return Err(FormatterError::invalid(
                    "cannot run warm: it is a Go command, and Go runs exported functions only \
                     after main, which ends the program; build it with -buildmode=c-shared (as \
                     tidings build does) to run it warm, or use instances = \"fresh\"",
                ));
            }
            Instances::Warm { .. } if !self.warm_capable => {
                return Err(FormatterError::invalid(format!(
                    "cannot run warm: it does not export {WARM_ALLOC} and {WARM_FORMAT} (every \
                     formatter built with the Rust, C, Zig or Go SDK does, and an AssemblyScript \
                     one written for it; see guest-sdk/README.md, \"Warm instances\"); use \
                     instances = \"fresh\""
                )));
            }
            Instances::Warm {
                max_calls,
                max_idle,
            } => {
                let pool = Arc::new(WarmPool {
                    name: self.name.clone(),
                    idle: Mutex::default(),
                    max_calls: max_calls.max(1),
                    max_idle,
                    created: AtomicU64::new(0),
                    reused: AtomicU64::new(0),
                    discarded: AtomicU64::new(0),
                    retired: AtomicU64::new(0),
                });
                let room = &self.host.inner.warm;
                room.pools
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Arc::downgrade(&pool));
                Some(pool)
            }
        };
        Ok(())
    }

    /// Calls of this formatter running now (each holds one of its call slots).
    pub fn calls_in_progress(&self) -> usize {
        self.slots.taken()
    }

    /// What the warm instances did so far (all zero for a fresh formatter).
    pub fn warm_stats(&self) -> WarmStats {
        self.warm
            .as_ref()
            .map_or_else(WarmStats::default, |w| WarmStats {
                created: w.created.load(Ordering::Relaxed),
                reused: w.reused.load(Ordering::Relaxed),
                discarded: w.discarded.load(Ordering::Relaxed),
                retired: w.retired.load(Ordering::Relaxed),
            })
    }

    /// The guest's argv and environment: its name and `TIDINGS_ABI`, the hook when a call is
    /// for one hook only (argv\[1\], `TIDINGS_HOOK`), then the granted variables.
    fn argv_env(&self, hook: Option<Hook>) -> (Vec<String>, Vec<(String, String)>) {
        let mut args = vec![self.name.clone()];
        let mut env = vec![("TIDINGS_ABI".to_owned(), "1".to_owned())];
        if let Some(hook) = hook {
            args.push(hook.name().to_owned());
            env.push(("TIDINGS_HOOK".to_owned(), hook.name().to_owned()));
        }
        env.extend(self.grants.env.iter().cloned());
        (args, env)
    }

    /// A call of this formatter under its grants and limits.
    fn spec<'a>(&'a self, args: &'a [String], env: &'a [(String, String)]) -> CallSpec<'a> {
        CallSpec {
            args,
            env,
            grants: &self.grants,
            limits: &self.limits,
            deterministic: self.deterministic,
            timeout: Some(self.limits.timeout),
        }
    }

    /// Drops the idle warm instances, giving back their room.
    fn release_warm(&self) {
        if let Some(w) = &self.warm {
            let mut idle = w.idle.lock().unwrap_or_else(|e| e.into_inner());
            self.host
                .inner
                .warm
                .idle
                .fetch_sub(idle.len(), Ordering::Relaxed);
            idle.clear();
        }
    }

    /// One call on a warm instance: an idle one, else a new one; kept for the next call unless
    /// it failed, exited, reached `max_calls`, or there is no room.
    fn call_warm(
        &self,
        pool: &WarmPool,
        stdin: &[u8],
    ) -> Result<sandbox::Output, (FormatterError, Vec<u8>)> {
        // A call reads only the limits: argv and environment are the instance's, from when it
        // was made.
        let spec = self.spec(&[], &[]);
        let inner = &self.host.inner;
        let taken = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut instance = match taken {
            Some(i) => {
                inner.warm.idle.fetch_sub(1, Ordering::Relaxed);
                pool.reused.fetch_add(1, Ordering::Relaxed);
                i.instance
            }
            None => {
                // A warm instance serves every hook: the request's `"hook"` says which.
                let (args, env) = self.argv_env(None);
                let i = sandbox::warm_instance(&inner.engine, &self.pre, &self.spec(&args, &env))?;
                pool.created.fetch_add(1, Ordering::Relaxed);
                i
            }
        };
        let result = sandbox::warm_call(&mut instance, stdin, &spec);
        if result.is_err() || instance.exited {
            pool.discarded.fetch_add(1, Ordering::Relaxed);
        } else if instance.calls < pool.max_calls {
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < inner.concurrency
                && inner.warm.idle.fetch_add(1, Ordering::Relaxed) < WARM_ROOM
            {
                idle.push(Idle {
                    instance,
                    since: Instant::now(),
                });
            } else if idle.len() < inner.concurrency {
                inner.warm.idle.fetch_sub(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// Calls `hook` with `request` and checks the result against the hook's schema. Blocks the
    /// current thread; from async code use [`Formatter::call_async`].
    pub fn call(&self, request: &Request) -> Result<HookOutput, FormatterError> {
        let hook = request.hook();
        let report = self.call_raw(hook, &request.to_stdin())?;
        abi::parse_output(hook, &report.stdout)
    }

    /// Runs one call with `stdin` as the request bytes and returns the raw stdout. The guest's
    /// stderr goes to the log under the formatter's name either way.
    pub fn call_raw(&self, hook: Hook, stdin: &[u8]) -> Result<CallReport, FormatterError> {
        let _own = self.slots.acquire();
        let _slot = self.host.inner.slots.acquire();
        let started = Instant::now();
        let result = match &self.warm {
            Some(pool) => self.call_warm(pool, stdin),
            None => {
                let (args, env) = self.argv_env(Some(hook));
                sandbox::run(
                    &self.host.inner.engine,
                    &self.pre,
                    &self.spec(&args, &env),
                    Stdio::Captured { input: stdin },
                )
            }
        };
        let elapsed = started.elapsed();
        match result {
            Ok(out) => {
                self.log_stderr(&out.stderr);
                Ok(CallReport {
                    stdout: out.stdout,
                    peak_memory: out.peak_memory,
                    elapsed,
                })
            }
            Err((e, stderr)) => {
                self.log_stderr(&stderr);
                tracing::warn!(formatter = %self.name, hook = %hook, kind = e.kind(), error = %e, "formatter call failed");
                Err(e)
            }
        }
    }

    /// [`Formatter::call`] from async code: the call runs on tokio's blocking pool (sync WASI
    /// must not run on a runtime worker), and at most one call per core runs at a time.
    pub async fn call_async(
        self: &Arc<Self>,
        request: Request,
    ) -> Result<HookOutput, FormatterError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.call(&request))
            .await
            .map_err(|e| FormatterError::Host {
                message: format!("the formatter call's thread failed: {e}"),
            })?
    }

    fn log_stderr(&self, stderr: &[u8]) {
        if stderr.is_empty() {
            return;
        }
        for line in String::from_utf8_lossy(stderr).lines() {
            tracing::info!(target: "tidings::formatter::stderr", formatter = %self.name, "{line}");
        }
    }
}

/// A counting semaphore for blocking threads: at most `n` calls run at once, whichever thread
/// (tokio's blocking pool, the CLI, a test) makes them.
struct Slots {
    state: Mutex<SlotState>,
    total: usize,
    cv: Condvar,
}

struct SlotState {
    free: usize,
    /// Threads waiting for a slot: a release signals the condition only when one waits (a
    /// signal costs a system call even when nobody waits, twice per call otherwise).
    waiting: usize,
}

struct SlotGuard<'a>(&'a Slots);

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            state: Mutex::new(SlotState {
                free: n.max(1),
                waiting: 0,
            }),
            total: n.max(1),
            cv: Condvar::new(),
        }
    }

    fn taken(&self) -> usize {
        self.total - self.state.lock().expect("slots lock").free
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let mut state = self.state.lock().expect("slots lock");
        while state.free == 0 {
            state.waiting += 1;
            state = self.cv.wait(state).expect("slots lock");
            state.waiting -= 1;
        }
        state.free -= 1;
        SlotGuard(self)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().expect("slots lock");
        state.free += 1;
        if state.waiting > 0 {
            self.0.cv.notify_one();
        }
    }
}

/// Hands the allocator's free memory back to the kernel: glibc keeps what a thread freed in its
/// arena, and compiling frees hundreds of MiB at once (see [`Host::compile`]).
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free pages of the allocator's own arenas back to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_slot_released_goes_to_a_thread_waiting_for_it_and_every_waiter_gets_one() {
        let slots = Slots::new(2);
        let held = [slots.acquire(), slots.acquire()];
        assert_eq!(slots.taken(), 2);
        let (got, got_rx) = mpsc::channel();
        std::thread::scope(|s| {
            for i in 0..3 {
                let (slots, got) = (&slots, got.clone());
                s.spawn(move || {
                    let _slot = slots.acquire();
                    got.send(i).unwrap();
                });
            }
            // Three threads wait on two taken slots: none gets through until one is released.
            while slots.state.lock().unwrap().waiting < 3 {
                std::thread::yield_now();
            }
            assert!(got_rx.try_recv().is_err());
            drop(held);
            let mut all: Vec<i32> = (0..3)
                .map(|_| got_rx.recv_timeout(Duration::from_secs(10)).unwrap())
                .collect();
            all.sort();
            assert_eq!(all, [0, 1, 2]);
        });
        assert_eq!(slots.taken(), 0);
        assert_eq!(slots.state.lock().unwrap().waiting, 0);
    }
}
