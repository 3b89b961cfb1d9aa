//! One call of a formatter: a fresh `Store` and instance, WASI wired to in-memory pipes, the
//! limits applied, the guest run, and the way it ended turned into a result or a
//! [`FormatterError`].
//!
//! How each limit is enforced, and how its breach is recognised (by flags the host itself sets,
//! never by matching error text):
//! - time: epoch interruption (a ticker thread advances the engine's epoch); `Trap::Interrupt`;
//! - sleeping: `poll_oneoff` is shadowed ([`poll_oneoff`]): a wait that would end past the
//!   deadline stops the guest at once, shorter waits return immediately (virtual time), so no
//!   guest ever parks a host thread; a component's host calls are asynchronous, and the
//!   deadline cancels the whole call even while it waits in the host;
//! - memory: [`Limiter`] denies growth past the limit by trapping, and records that it did;
//! - stdout/stderr: [`CappedPipe`] traps on the write that would pass its cap, and records it;
//! - stdin: checked before the guest starts.

use super::error::{FormatterError, Stream, stderr_tail};
use super::limits::{GUEST_DIR, Grants, Limits};
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use wasmtime::component::ResourceTable;
use wasmtime::{Caller, Engine, Extern, InstancePre, Linker, ResourceLimiter, Store, Trap};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the ticker advances the engine's epoch; the granularity of time limits.
pub const TICK: Duration = Duration::from_millis(5);

/// WASI for one call: preview 1 for core modules, preview 2 for components.
enum Wasi {
    P1(WasiP1Ctx),
    P2 { ctx: WasiCtx, table: ResourceTable },
}

/// The store data of one call.
pub struct CallState {
    wasi: Wasi,
    limiter: Limiter,
    /// When the call must end; `poll_oneoff` measures waits against it.
    deadline: Option<Instant>,
    /// Set when the guest asked to sleep past the deadline.
    slept_past_deadline: bool,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        match &mut self.wasi {
            Wasi::P2 { ctx, table } => WasiCtxView { ctx, table },
            // Only the component linker asks, and only component calls build a P2 context.
            Wasi::P1(_) => unreachable!("a preview 2 view of a preview 1 call"),
        }
    }
}

/// The linker every formatter instance is created with: WASI preview 1 (synchronous), with
/// `poll_oneoff` replaced by [`poll_oneoff`].
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut CallState| match &mut s.wasi {
        Wasi::P1(ctx) => ctx,
        // Only the module linker asks, and only module calls build a P1 context.
        Wasi::P2 { .. } => unreachable!("a preview 1 view of a preview 2 call"),
    })?;
    linker.allow_shadowing(true);
    linker.func_wrap("wasi_snapshot_preview1", "poll_oneoff", poll_oneoff)?;
    Ok(linker)
}

/// The linker of components: WASI preview 2 (`wasi:cli/command`), asynchronous, so that a
/// call's deadline can cancel a guest blocked in a host wait (a sleep, a poll).
pub fn component_linker(
    engine: &Engine,
) -> wasmtime::Result<wasmtime::component::Linker<CallState>> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// What a formatter was compiled into.
pub enum Program {
    /// A WASI preview 1 command module.
    Module(InstancePre<CallState>),
    /// A WASI preview 2 `wasi:cli/command` component.
    Component(CommandPre<CallState>),
}

/// How the guest's stdio and clocks are set up for a call.
pub enum Stdio<'a> {
    /// Formatter calls: the request on stdin, stdout and stderr captured with caps.
    Captured { input: &'a [u8] },
    /// `tidings run`: the host process's own stdin, stdout and stderr.
    Inherited,
}

/// Everything a call produced, when the guest ended normally (exit status 0).
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The largest linear memory the instance had, in bytes.
    pub peak_memory: u64,
}

/// What one call is: argv, grants, limits, and whether the clocks and randomness are fixed
/// (for reproducible tests).
pub struct CallSpec<'a> {
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub grants: &'a Grants,
    pub limits: &'a Limits,
    pub deterministic: bool,
    /// `None`: no time limit (only for `tidings run`).
    pub timeout: Option<Duration>,
}

/// Runs `_start` of a fresh instance of `pre` under `spec` (a reactor that exports the warm
/// entry points instead: `_initialize`, then one call of them with the request). On success
/// returns the captured output; on any failure the matching [`FormatterError`], plus whatever
/// stderr the guest wrote (for the log), plus the guest's exit code when it exited non-zero.
pub fn run(
    engine: &Engine,
    program: &Program,
    spec: &CallSpec<'_>,
    stdio: Stdio<'_>,
) -> Result<Output, (FormatterError, Vec<u8>)> {
    let limits = spec.limits;
    let stdout = CappedPipe::new(limits.max_output);
    let stderr = CappedPipe::new(limits.max_stderr);
    let request = match stdio {
        Stdio::Captured { input } => Some(input),
        Stdio::Inherited => None,
    };

    let mut b = WasiCtxBuilder::new();
    b.args(spec.args).envs(spec.env);
    b.allow_blocking_current_thread(true);
    match stdio {
        Stdio::Captured { input } => {
            if input.len() > limits.max_input {
                return Err((
                    FormatterError::InputTooLarge {
                        size: input.len(),
                        limit: limits.max_input,
                    },
                    Vec::new(),
                ));
            }
            b.stdin(MemoryInputPipe::new(Bytes::copy_from_slice(input)));
            b.stdout(stdout.clone()).stderr(stderr.clone());
        }
        Stdio::Inherited => {
            b.inherit_stdio();
        }
    }
    clocks_and_grants(&mut b, spec)?;

    let started = Instant::now();
    let wasi = match program {
        Program::Module(_) => Wasi::P1(b.build_p1()),
        Program::Component(_) => Wasi::P2 {
            ctx: b.build(),
            table: ResourceTable::new(),
        },
    };
    let state = CallState {
        wasi,
        limiter: Limiter::new(limits.memory),
        deadline: spec.timeout.map(|t| started + t),
        slept_past_deadline: false,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    set_deadline(&mut store, spec.timeout);

    let result = match program {
        Program::Module(pre) => pre.instantiate(&mut store).and_then(|instance| {
            let _ambient = ambient();
            if pre.module().get_export("_start").is_none() {
                return call_reactor(&mut store, &instance, request);
            }
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        }),
        Program::Component(pre) => run_component(pre, &mut store, spec.timeout),
    };

    let state = store.into_data();
    let out = stdout.take();
    let err = stderr.take();
    let failure = match result {
        Ok(()) => None,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(0)) => None,
            Some(I32Exit(code)) => Some(FormatterError::Exit {
                code: *code,
                stderr_tail: stderr_tail(&err, 512),
            }),
            None => Some(classify(&e, &state, spec, &stdout, &stderr, &err)),
        },
    };
    match failure {
        None => Ok(Output {
            stdout: out,
            stderr: err,
            peak_memory: state.limiter.peak,
        }),
        Some(f) => Err((f, err)),
    }
}

/// A fresh call of a reactor (no `_start`; `validate` lets one in only with the warm entry
/// points): its `_initialize`, then the request written into the buffer `tidings_alloc_v1`
/// gives and `tidings_format_v1` called once, as a warm call would; a status other than 0 is
/// that exit status.
fn call_reactor(
    store: &mut Store<CallState>,
    instance: &wasmtime::Instance,
    request: Option<&[u8]>,
) -> wasmtime::Result<()> {
    let request = request.ok_or_else(|| {
        wasmtime::Error::msg("a reactor (no _start) runs only as a formatter, given a request")
    })?;
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        init.call(&mut *store, ())?;
    }
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, WARM_ALLOC)?;
    let format = instance.get_typed_func::<(i32, i32), i32>(&mut *store, WARM_FORMAT)?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::Error::msg("the module exports no memory"))?;
    // `run` refused a request over max_input already; that limit is far below 2 GiB.
    let len = i32::try_from(request.len())
        .map_err(|_| wasmtime::Error::msg("the request is larger than a guest can address"))?;
    let ptr = alloc.call(&mut *store, len)?;
    memory
        .write(&mut *store, ptr as u32 as usize, request)
        .map_err(wasmtime::Error::new)?;
    match format.call(&mut *store, (ptr, len))? {
        0 => Ok(()),
        code => Err(wasmtime::Error::new(I32Exit(code))),
    }
}

/// The clocks and randomness (fixed under `tidings test`) and the granted directory.
fn clocks_and_grants(
    b: &mut WasiCtxBuilder,
    spec: &CallSpec<'_>,
) -> Result<(), (FormatterError, Vec<u8>)> {
    if spec.deterministic {
        b.wall_clock(FixedClock::default())
            .monotonic_clock(FixedClock::default());
        b.secure_random(wasmtime_wasi::Deterministic::new(vec![42; 64]));
        b.insecure_random(wasmtime_wasi::Deterministic::new(vec![7; 64]));
        b.insecure_random_seed(0);
    }
    if let Some(dir) = &spec.grants.dir
        && let Err(e) = b.preopened_dir(dir, GUEST_DIR, FsPerms::ReadOnly)
    {
        return Err((
            FormatterError::Host {
                message: format!("cannot open the granted directory {}: {e}", dir.display()),
            },
            Vec::new(),
        ));
    }
    Ok(())
}

/// The export of a component in the world `tidings:formatter/warm`:
/// `format: func(request: string) -> result<string, string>`. A warm instance's calls go
/// through it: the request as the argument, the result (or the error) as the return value.
pub const COMPONENT_FORMAT: &str = "format";

/// [`COMPONENT_FORMAT`]'s type.
type FormatFunc = wasmtime::component::TypedFunc<(String,), (Result<String, String>,)>;

/// The exports of a module that can be kept warm: ABI v1's second entry point.
pub const WARM_ALLOC: &str = "tidings_alloc_v1";
/// See [`WARM_ALLOC`].
pub const WARM_FORMAT: &str = "tidings_format_v1";

/// True when `module` exports the warm entry points with their signatures:
/// `tidings_alloc_v1(len: i32) -> i32` and `tidings_format_v1(ptr: i32, len: i32) -> i32`.
pub fn supports_warm(module: &wasmtime::Module) -> bool {
    use wasmtime::ValType;
    let func = |name: &str, params: usize| {
        module
            .get_export(name)
            .and_then(|e| e.func().cloned())
            .is_some_and(|f| {
                f.params().len() == params
                    && f.params().all(|p| matches!(p, ValType::I32))
                    && f.results().len() == 1
                    && f.results().all(|r| matches!(r, ValType::I32))
            })
    };
    func(WARM_ALLOC, 1) && func(WARM_FORMAT, 2)
}

/// An instance kept for many calls (`instances = "warm"`): its store (WASI context, memory
/// limiter) and how it is called. Each call gets its own deadline, output caps and a fresh
/// account of what it breached; the instance's memory is its own across calls, and counts
/// against the memory limit as a whole. Any failure discards it.
pub struct WarmInstance {
    store: Store<CallState>,
    kind: WarmKind,
    stdout: CappedPipe,
    stderr: CappedPipe,
    /// Calls it has answered.
    pub calls: u32,
    /// The guest exited (`proc_exit`) during a call: it cannot be called again.
    pub exited: bool,
}

enum WarmKind {
    /// A core module: the request written into its memory, `tidings_format_v1` called.
    Module {
        alloc: wasmtime::TypedFunc<i32, i32>,
        format: wasmtime::TypedFunc<(i32, i32), i32>,
        memory: wasmtime::Memory,
    },
    /// A `wasi:cli/command` component. One that exports [`COMPONENT_FORMAT`] (the world
    /// `tidings:formatter/warm`) gets each request as its argument; any other has its `run`
    /// called once per request, with the request refilled on its stdin.
    Component {
        command: wasmtime_wasi::p2::bindings::Command,
        format: Option<FormatFunc>,
        stdin: RefillPipe,
        rt: tokio::runtime::Runtime,
    },
}

/// Instantiates `program` for warm calls under `spec` (argv, environment, grants, limits; the
/// deadline applies to instantiation too). A module's `_initialize` (a reactor's) is run, a
/// command's `_start` is not (its warm exports run its constructors themselves).
pub fn warm_instance(
    engine: &Engine,
    program: &Program,
    spec: &CallSpec<'_>,
) -> Result<WarmInstance, (FormatterError, Vec<u8>)> {
    let limits = spec.limits;
    let stdout = CappedPipe::new(limits.max_output);
    let stderr = CappedPipe::new(limits.max_stderr);
    let stdin = RefillPipe::default();
    let mut b = WasiCtxBuilder::new();
    b.args(spec.args).envs(spec.env);
    b.allow_blocking_current_thread(true);
    b.stdout(stdout.clone()).stderr(stderr.clone());
    clocks_and_grants(&mut b, spec)?;
    let wasi = match program {
        Program::Module(_) => Wasi::P1(b.build_p1()),
        Program::Component(_) => {
            b.stdin(stdin.clone());
            Wasi::P2 {
                ctx: b.build(),
                table: ResourceTable::new(),
            }
        }
    };
    let state = CallState {
        wasi,
        limiter: Limiter::new(limits.memory),
        deadline: spec.timeout.map(|t| Instant::now() + t),
        slept_past_deadline: false,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    set_deadline(&mut store, spec.timeout);
    let made = match program {
        Program::Module(pre) => pre.instantiate(&mut store).and_then(|instance| {
            let _ambient = ambient();
            if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
                init.call(&mut store, ())?;
            }
            let alloc = instance.get_typed_func::<i32, i32>(&mut store, WARM_ALLOC)?;
            let format = instance.get_typed_func::<(i32, i32), i32>(&mut store, WARM_FORMAT)?;
            let memory = instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| wasmtime::Error::msg("the module exports no memory"))?;
            Ok(WarmKind::Module {
                alloc,
                format,
                memory,
            })
        }),
        Program::Component(pre) => call_runtime().and_then(|rt| {
            let instance = rt.block_on(pre.instance_pre().instantiate_async(&mut store))?;
            let command = wasmtime_wasi::p2::bindings::Command::new(&mut store, &instance)?;
            let format = match instance.get_export_index(&mut store, None, COMPONENT_FORMAT) {
                None => None,
                Some(_) => Some(
                    instance
                        .get_typed_func::<(String,), (Result<String, String>,)>(
                            &mut store,
                            COMPONENT_FORMAT,
                        )
                        .map_err(|e| {
                            e.context(format!(
                                "the component exports {COMPONENT_FORMAT} with a signature \
                                 other than tidings:formatter/warm's \
                                 func(request: string) -> result<string, string>"
                            ))
                        })?,
                ),
            };
            Ok(WarmKind::Component {
                command,
                format,
                stdin,
                rt,
            })
        }),
    };
    match made {
        Ok(kind) => Ok(WarmInstance {
            store,
            kind,
            stdout,
            stderr,
            calls: 0,
            exited: false,
        }),
        Err(e) => {
            let err = stderr.take();
            let f = classify(&e, store.data(), spec, &stdout, &stderr, &err);
            Err((f, err))
        }
    }
}

/// The small runtime a component call's asynchronous host calls run on.
fn call_runtime() -> wasmtime::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| wasmtime::Error::msg(format!("cannot start the call's runtime: {e}")))
}

/// The runtime a module call's WASI functions find as the ambient one, entered for the call.
///
/// wasmtime-wasi runs each preview-1 function (every `fd_write` of the guest) as a future. With
/// no runtime entered it falls back on one of its own (a worker per core) and, there, yields to
/// the scheduler once before each function (about 0.1 µs of a 5 µs warm call). Here every such
/// future completes in its first poll (in-memory pipes, blocking file reads allowed
/// on the calling thread, [`poll_oneoff`] never waits), so with this runtime's handle entered
/// each function runs straight through. Its one worker thread drives its timers and I/O should
/// a future ever wait (none does today). `None` if it cannot start: wasmtime-wasi's fallback
/// then serves, as before.
fn ambient() -> Option<tokio::runtime::EnterGuard<'static>> {
    static AMBIENT: std::sync::LazyLock<Option<tokio::runtime::Runtime>> = std::sync::LazyLock::new(
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tidings-wasi")
                .enable_all()
                .build()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot start the runtime for WASI calls; using wasmtime-wasi's own")
                })
                .ok()
        },
    );
    // A caller already inside a runtime keeps it (wasmtime-wasi uses the current one).
    if tokio::runtime::Handle::try_current().is_ok() {
        return None;
    }
    AMBIENT.as_ref().map(|rt| rt.enter())
}

/// Sets the store's epoch deadline for a call of `timeout` (or none).
fn set_deadline(store: &mut Store<CallState>, timeout: Option<Duration>) {
    match timeout {
        // The deadline passes between `timeout` and `timeout + TICK` from now.
        Some(t) => store.set_epoch_deadline(t.as_nanos().div_ceil(TICK.as_nanos()) as u64 + 1),
        // wasmtime adds the current epoch to this: leave it room.
        None => store.set_epoch_deadline(u64::MAX / 2),
    }
}

/// One call of a warm instance under the call's deadline and caps: a module's request written
/// into its memory and `tidings_format_v1` called; a component's passed to its `format`, or
/// put on its stdin and `run` called. An error means the instance must be discarded.
pub fn warm_call(
    w: &mut WarmInstance,
    input: &[u8],
    spec: &CallSpec<'_>,
) -> Result<Output, (FormatterError, Vec<u8>)> {
    let limits = spec.limits;
    let too_large = || {
        (
            FormatterError::InputTooLarge {
                size: input.len(),
                limit: limits.max_input,
            },
            Vec::new(),
        )
    };
    if input.len() > limits.max_input {
        return Err(too_large());
    }
    let len = i32::try_from(input.len()).map_err(|_| too_large())?;
    // What this call breaches is its own; the memory the instance has is not.
    {
        let state = w.store.data_mut();
        state.limiter.denied = false;
        state.limiter.peak = state.limiter.total;
        state.slept_past_deadline = false;
        state.deadline = spec.timeout.map(|t| Instant::now() + t);
    }
    w.stdout.reset();
    w.stderr.reset();
    set_deadline(&mut w.store, spec.timeout);
    let store = &mut w.store;
    let result = match &w.kind {
        WarmKind::Module {
            alloc,
            format,
            memory,
        } => (|| {
            let _ambient = ambient();
            let ptr = alloc.call(&mut *store, len)?;
            memory
                .write(&mut *store, ptr as u32 as usize, input)
                .map_err(wasmtime::Error::new)?;
            format.call(&mut *store, (ptr, len))
        })(),
        WarmKind::Component {
            format: Some(format),
            rt,
            ..
        } => {
            // The request is JSON the host wrote from Rust strings: UTF-8 (the input limit
            // above bounds it). Lent, not copied: `from_utf8_lossy` walked it a chunk at a time,
            // a twentieth of a warm Python call.
            let request = match std::str::from_utf8(input) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(input),
            };
            // SAFETY: `format` was checked at instantiation as `func(string) -> result<string,
            // string>`; `&str` and `String` are both a component `string` as a parameter.
            let format = unsafe {
                wasmtime::component::TypedFunc::<(&str,), (Result<String, String>,)>::new_unchecked(
                    *format.func(),
                )
            };
            let (stdout, stderr) = (&w.stdout, &w.stderr);
            rt.block_on(async {
                let call = format.call_async(&mut *store, (&*request,));
                let (result,) = match spec.timeout {
                    Some(t) => match tokio::time::timeout(t + TICK, call).await {
                        Ok(r) => r?,
                        Err(_) => {
                            store.data_mut().slept_past_deadline = true;
                            return Err(wasmtime::Error::new(SleptPastDeadline));
                        }
                    },
                    None => call.await?,
                };
                // As a fresh call's `run` would have written it: the result on stdout, an error
                // on stderr and exit status 1.
                let (pipe, text, status) = match &result {
                    Ok(text) => (stdout, text, 0),
                    Err(text) => (stderr, text, 1),
                };
                if !pipe.append(text.as_bytes()) {
                    return Err(wasmtime::Error::new(OutputCapExceeded(pipe.cap)));
                }
                Ok(status)
            })
        }
        WarmKind::Component {
            command, stdin, rt, ..
        } => {
            stdin.refill(input);
            rt.block_on(async {
                let call = command.wasi_cli_run().call_run(&mut *store);
                let outcome = match spec.timeout {
                    Some(t) => match tokio::time::timeout(t + TICK, call).await {
                        Ok(r) => r,
                        Err(_) => {
                            store.data_mut().slept_past_deadline = true;
                            return Err(wasmtime::Error::new(SleptPastDeadline));
                        }
                    },
                    None => call.await,
                };
                // `run` failing is exit status 1, as for a fresh call.
                Ok(if outcome?.is_ok() { 0 } else { 1 })
            })
        }
    };
    let out = w.stdout.take();
    let err = w.stderr.take();
    w.calls += 1;
    let exit = result
        .as_ref()
        .err()
        .and_then(|e| e.downcast_ref::<I32Exit>())
        .map(|I32Exit(code)| *code);
    // A guest that exits inside a warm call is done for: the caller discards it.
    w.exited = exit.is_some();
    let state = w.store.data();
    let failure = match (result, exit) {
        (Ok(0), _) => None,
        (Ok(code), _) | (Err(_), Some(code)) => Some(FormatterError::Exit {
            code,
            stderr_tail: stderr_tail(&err, 512),
        }),
        (Err(e), None) => Some(classify(&e, state, spec, &w.stdout, &w.stderr, &err)),
    };
    // An exit(0) inside a warm call still ended the instance; report the output as usual.
    match failure {
        None | Some(FormatterError::Exit { code: 0, .. }) => Ok(Output {
            stdout: out,
            stderr: err,
            peak_memory: state.limiter.peak,
        }),
        Some(f) => Err((f, err)),
    }
}

/// A component's stdin in warm mode: each call's request is put in, and read until it is
/// used up (then the stream reports its end, as a fresh call's does, until the next refill).
#[derive(Clone, Default)]
struct RefillPipe {
    buf: Arc<Mutex<Bytes>>,
}

impl RefillPipe {
    fn refill(&self, input: &[u8]) {
        *self.buf.lock().expect("stdin lock") = Bytes::copy_from_slice(input);
    }
}

impl IsTerminal for RefillPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdinStream for RefillPipe {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::InputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::InputStream for RefillPipe {
    fn read(&mut self, size: usize) -> Result<Bytes, StreamError> {
        let mut buf = self.buf.lock().expect("stdin lock");
        if buf.is_empty() {
            return Err(StreamError::Closed);
        }
        let n = size.min(buf.len());
        Ok(buf.split_to(n))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for RefillPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncRead for RefillPipe {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut buf = self.buf.lock().expect("stdin lock");
        let n = out.remaining().min(buf.len());
        out.put_slice(&buf.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// Runs `wasi:cli/run` of a fresh instance of the component. Its host calls are asynchronous:
/// the call runs on a small runtime of its own, and the deadline cancels it even while the
/// guest waits in the host (where epochs cannot reach it).
fn run_component(
    pre: &CommandPre<CallState>,
    store: &mut Store<CallState>,
    timeout: Option<Duration>,
) -> wasmtime::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| wasmtime::Error::msg(format!("cannot start the call's runtime: {e}")))?;
    rt.block_on(async {
        let call = async {
            let command = pre.instantiate_async(&mut *store).await?;
            command.wasi_cli_run().call_run(&mut *store).await
        };
        let outcome = match timeout {
            Some(t) => match tokio::time::timeout(t + TICK, call).await {
                Ok(r) => r,
                Err(_) => {
                    store.data_mut().slept_past_deadline = true;
                    return Err(wasmtime::Error::new(SleptPastDeadline));
                }
            },
            None => call.await,
        };
        match outcome? {
            Ok(()) => Ok(()),
            // `wasi:cli/run` says only that it failed: exit status 1, like a module's exit(1).
            Err(()) => Err(wasmtime::Error::new(I32Exit(1))),
        }
    })
}

/// Names the way a call that did not exit ended. The flags set by the host come first: a guest
/// stopped at the write that overflowed stdout is `OutputTooLarge`, whatever trap that caused.
fn classify(
    e: &wasmtime::Error,
    state: &CallState,
    spec: &CallSpec<'_>,
    stdout: &CappedPipe,
    stderr: &CappedPipe,
    err: &[u8],
) -> FormatterError {
    let limits = spec.limits;
    if stdout.overflowed() {
        return FormatterError::OutputTooLarge {
            stream: Stream::Stdout,
            limit: limits.max_output,
        };
    }
    if stderr.overflowed() {
        return FormatterError::OutputTooLarge {
            stream: Stream::Stderr,
            limit: limits.max_stderr,
        };
    }
    if state.limiter.denied {
        return FormatterError::MemoryLimit {
            limit: limits.memory,
        };
    }
    let timeout = spec.timeout.unwrap_or_default();
    if state.slept_past_deadline {
        return FormatterError::Timeout { limit: timeout };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => FormatterError::Timeout { limit: timeout },
        Some(trap) => FormatterError::Trap {
            message: trap.to_string(),
            stderr_tail: stderr_tail(err, 512),
        },
        None => FormatterError::Trap {
            message: format!("{e:#}"),
            stderr_tail: stderr_tail(err, 512),
        },
    }
}

/// Bounds an instance's linear memory and tables, remembers the peak, and records a denial so
/// the call is reported as `MemoryLimit` however the guest reacts to it.
struct Limiter {
    limit: u64,
    /// Bytes of linear memory the instance has now, all memories together.
    total: u64,
    peak: u64,
    denied: bool,
}

impl Limiter {
    fn new(limit: u64) -> Limiter {
        Limiter {
            limit,
            total: 0,
            peak: 0,
            denied: false,
        }
    }
}

/// The error a denied growth traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit reached: the guest asked for {desired} bytes, the limit is {limit}")]
struct MemoryDenied {
    desired: u64,
    limit: u64,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The budget is for all of the instance's memories together (a component has several;
        // a module may declare several).
        let total = self
            .total
            .saturating_sub(current as u64)
            .saturating_add(desired as u64);
        if total > self.limit {
            self.denied = true;
            // Trap rather than return -1 from memory.grow: a guest that ignores the failure
            // must not keep running, and the report must say why it stopped.
            return Err(wasmtime::Error::new(MemoryDenied {
                desired: total,
                limit: self.limit,
            }));
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element costs a pointer; count tables against the same budget.
        let bytes = (desired as u64).saturating_mul(8);
        if bytes > self.limit {
            self.denied = true;
            return Err(wasmtime::Error::new(MemoryDenied {
                desired: bytes,
                limit: self.limit,
            }));
        }
        Ok(true)
    }

    // A component is several core instances (the guest, its WASI adapter, shims), each with
    // its own memory and tables; the byte budget above is for all memories together.
    fn instances(&self) -> usize {
        32
    }
    fn tables(&self) -> usize {
        32
    }
    fn memories(&self) -> usize {
        8
    }
}

/// An in-memory stdout/stderr with a cap. The write that would pass the cap traps the guest
/// (it cannot keep the host busy by ignoring write errors) and sets a flag the host reads.
#[derive(Clone)]
struct CappedPipe {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
    overflowed: Arc<AtomicBool>,
}

/// The error the overflowing write traps with.
#[derive(Debug, thiserror::Error)]
#[error("output cap of {0} bytes exceeded")]
struct OutputCapExceeded(usize);

impl CappedPipe {
    fn new(cap: usize) -> CappedPipe {
        CappedPipe {
            buf: Arc::default(),
            cap,
            overflowed: Arc::default(),
        }
    }

    fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().expect("pipe lock"))
    }

    /// Empties the pipe and forgets an overflow: the next warm call starts clean.
    fn reset(&self) {
        self.buf.lock().expect("pipe lock").clear();
        self.overflowed.store(false, Ordering::Relaxed);
    }

    /// Appends `bytes`, or records the overflow and refuses them whole.
    fn append(&self, bytes: &[u8]) -> bool {
        let mut buf = self.buf.lock().expect("pipe lock");
        if buf.len() + bytes.len() > self.cap {
            self.overflowed.store(true, Ordering::Relaxed);
            return false;
        }
        buf.extend_from_slice(bytes);
        true
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.append(&bytes) {
            Ok(())
        } else {
            Err(StreamError::Trap(wasmtime::Error::new(OutputCapExceeded(
                self.cap,
            ))))
        }
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept the whole write, so the one that passes the cap reaches `write` and
        // traps, instead of the guest being told "closed" and trying again forever.
        Ok(usize::MAX)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.append(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(io::Error::other(OutputCapExceeded(self.cap))))
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The clocks of deterministic calls (`tidings test`): the wall clock is
/// 2026-01-01T00:00:00Z and never moves; the monotonic clock starts at one second and moves
/// one microsecond per reading, the same sequence in every call (language runtimes refuse a
/// monotonic clock that reads zero or stands still: Go's aborts with "nanotime returning
/// zero").
#[derive(Default)]
struct FixedClock(std::sync::atomic::AtomicU64);

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(1_767_225_600)
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        1_000_000_000 + 1_000 * self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The error a guest traps with when it asks to wait past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the guest asked to sleep past its deadline")]
struct SleptPastDeadline;

// WASI preview 1 numbers used by `poll_oneoff`.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const EVENTTYPE_CLOCK: u8 = 0;
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const CLOCK_REALTIME: u32 = 0;
const SUBCLOCKFLAG_ABSTIME: u16 = 1;

/// `poll_oneoff` for formatters. The stock WASI implementation blocks the calling thread for as
/// long as the guest asks, and epochs cannot interrupt a host call. Here every subscription is
/// answered at once: a clock that would fire before the call's deadline fires immediately
/// (virtual time: sleeping costs nothing), one that would fire after it ends the call as a
/// timeout right away, and fd subscriptions (in-memory pipes, always ready) are reported ready.
fn poll_oneoff(
    mut caller: Caller<'_, CallState>,
    in_ptr: i32,
    out_ptr: i32,
    nsubscriptions: i32,
    nevents_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Ok(ERRNO_FAULT);
    };
    let n = nsubscriptions as u32 as usize;
    if n == 0 {
        return Ok(ERRNO_INVAL);
    }
    let (mem, state) = memory.data_and_store_mut(&mut caller);
    let range = |ptr: i32, len: usize| {
        let start = ptr as u32 as usize;
        start
            .checked_add(len)
            .filter(|end| *end <= mem.len())
            .map(|end| start..end)
    };
    let (Some(subs), Some(events), Some(nevents)) = (
        range(in_ptr, n.saturating_mul(SUBSCRIPTION_SIZE)),
        range(out_ptr, n.saturating_mul(EVENT_SIZE)),
        range(nevents_ptr, 4),
    ) else {
        return Ok(ERRNO_FAULT);
    };
    let subs = mem[subs].to_vec();
    for (i, sub) in subs.chunks_exact(SUBSCRIPTION_SIZE).enumerate() {
        let userdata = &sub[0..8];
        let tag = sub[8];
        if tag == EVENTTYPE_CLOCK {
            let clock_id = u32::from_le_bytes(sub[16..20].try_into().expect("4 bytes"));
            let timeout = u64::from_le_bytes(sub[24..32].try_into().expect("8 bytes"));
            let flags = u16::from_le_bytes(sub[40..42].try_into().expect("2 bytes"));
            let wait = if flags & SUBCLOCKFLAG_ABSTIME != 0 {
                // Absolute deadlines are only comparable for the real-time clock; a monotonic
                // one has a base the host does not share with the guest: treat it as due.
                if clock_id == CLOCK_REALTIME {
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default();
                    Duration::from_nanos(timeout).saturating_sub(now)
                } else {
                    Duration::ZERO
                }
            } else {
                Duration::from_nanos(timeout)
            };
            if let Some(deadline) = state.deadline
                && Instant::now() + wait > deadline
            {
                state.slept_past_deadline = true;
                return Err(wasmtime::Error::new(SleptPastDeadline));
            }
        }
        let ev = &mut mem[events.start + i * EVENT_SIZE..events.start + (i + 1) * EVENT_SIZE];
        ev.fill(0);
        ev[0..8].copy_from_slice(userdata);
        ev[8..10].copy_from_slice(&0u16.to_le_bytes());
        ev[10] = tag;
    }
    mem[nevents].copy_from_slice(&(n as u32).to_le_bytes());
    Ok(ERRNO_SUCCESS)
}
