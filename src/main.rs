//! The `tidings` command line: a thin layer over the library.
//!
//! - `render`: call one formatter once (or `--repeat N` times, with timings) and print its result;
//! - `test`: run a formatter against its cases under the real sandbox;
//! - `new`, `build`: start a formatter project in any guest language, build it ([`tidings::project`]);
//! - `run`: run any WASI command under the same engine (a cargo runner for wasm32-wasip1);
//! - `check`: validate a config's formatter entries (load, compile, one call on a sample);
//! - `serve`: the daemon;
//! - `outbox`, `events`, `explain`, `replay`, `config default`: the operator's tools ([`cli`]).

mod cli;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tidings::config::Config;
use tidings::daemon;
use tidings::formatter::{
    Formatter, Grants, Host, HostOptions, Instances, Limits, Request, WrapContext,
};
use tidings::testing::{self, Outcome};
use tidings_guest::Hook;

/// A failing build captured from a real Buildbot 4.3 master (steps, logs and log contents).
const SAMPLE_BUILD: &str = include_str!("../tests/data/buildbot/failure-full.json");

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "CI build news, formatted by sandboxed WebAssembly"
)]
struct Cli {
    /// Where compiled modules are cached [default: $TIDINGS_CACHE_DIR, else
    /// $XDG_CACHE_HOME/tidings/modules, else ~/.cache/tidings/modules].
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Call a formatter once and print its result as JSON.
    Render(RenderArgs),
    /// Run a formatter against test cases (<case>.input.json + <case>.expected.json).
    Test {
        /// A .wasm file, a directory with one, or a Rust formatter crate (built first).
        formatter: PathBuf,
        /// The cases directory [default: tests/ of the formatter].
        #[arg(long)]
        cases: Option<PathBuf>,
        /// Run the cases in fresh instances only, or warm only [default: fresh, then once more
        /// in one warm instance for a module with the warm entry points, which finds state kept
        /// between calls; `warm` tries a component warm].
        #[arg(long)]
        instances: Option<InstancesArg>,
        #[command(flatten)]
        grants: GrantArgs,
    },
    /// Start a formatter project in a new directory: the example formatter, the SDK of the
    /// language, two test cases from a real build, and a README (nothing else to fetch).
    New {
        /// The project's language.
        language: tidings::project::Language,
        /// A new or empty directory; its name is the formatter's.
        dir: PathBuf,
    },
    /// Build a formatter project (made by `tidings new`) with its language's toolchain and
    /// print the module's path (build/<name>.wasm).
    Build {
        /// The project's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run a WASI command with this terminal's stdio (usable as CARGO_TARGET_WASM32_WASIP1_RUNNER).
    Run {
        #[command(flatten)]
        grants: GrantArgs,
        /// Memory limit in MiB.
        #[arg(long, default_value_t = 1024)]
        memory_mib: u64,
        /// The module.
        module: PathBuf,
        /// Arguments for the module.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Validate a config file: every key, every reference, and every formatter (each loads,
    /// compiles and answers a sample call).
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the daemon: accept events, dispatch them to reporters, deliver from the outbox.
    /// Without --config it runs the embedded default (127.0.0.1:8411, data in ./tidings-data;
    /// `tidings config default` prints it).
    Serve {
        /// The config file (TOML; start from tidings.example.toml, check it with `tidings
        /// check --config FILE`) [default: the embedded default].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Inspect and act on the outbox (works beside a running daemon).
    Outbox {
        /// The config whose data_dir holds the outbox [default: the embedded default's].
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: cli::outbox::OutboxAction,
    },
    /// The stored events, newest first, or one of them (works beside a running daemon).
    Events {
        /// The config whose data_dir holds the events [default: the embedded default's].
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Why a stored event was reported or not: every reporter of the config, what it decided
    /// (filter, mode, formatter) and what the outbox did with its deliveries.
    Explain {
        /// The event's id (`tidings events list` shows them; ingest answers with it).
        id: i64,
        /// The config to explain with [default: the embedded default].
        #[arg(long)]
        config: Option<PathBuf>,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Run stored events through dispatch as a config (and formatter builds) would now, without
    /// sending, and show what would change against what was sent.
    Replay {
        /// The config to replay with [default: the embedded default].
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: cli::replay::ReplayArgs,
    },
    /// The config: `tidings config default` prints the embedded default.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum EventsAction {
    /// Stored events, newest first, with how many deliveries each led to.
    List {
        #[command(flatten)]
        filter: cli::events::Filter,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One stored event, as it was received (pretty JSON).
    Show { id: i64 },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the config `tidings serve` runs without --config (commented; a start for your own).
    Default,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// The formatter: a .wasm module, or a Rust formatter crate (built first).
    #[arg(long, required_unless_present = "show_request")]
    formatter: Option<PathBuf>,
    /// messageFormatter, reviewCB, startCB or summaryCB [default: the request's own hook, or
    /// messageFormatter for a bare build dict].
    #[arg(long)]
    hook: Option<Hook>,
    /// A build dict or a full hook request, as a file or - for stdin.
    #[arg(long)]
    input: PathBuf,
    /// JSON passed as `arg` to the Gerrit hooks.
    #[arg(long)]
    arg: Option<String>,
    /// Call N times and print per-call timings on stderr.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Time limit per call, in milliseconds.
    #[arg(long, default_value_t = 250)]
    timeout_ms: u64,
    /// Memory limit, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: u64,
    /// Print the request the formatter would get on stdin, and do not call it.
    #[arg(long)]
    show_request: bool,
    /// A fresh instance per call, or one kept warm between calls [default: warm for a module
    /// with the warm entry points or a component that exports format, else fresh; any other
    /// component runs warm only when asked].
    #[arg(long)]
    instances: Option<InstancesArg>,
    #[command(flatten)]
    grants: GrantArgs,
}

/// `--instances`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InstancesArg {
    Fresh,
    Warm,
}

/// Sets `formatter`'s instances from `--instances`, or to warm when it can run warm.
fn choose_instances(formatter: &mut Formatter, arg: Option<InstancesArg>) -> Result<()> {
    let warm = Instances::warm(tidings::formatter::DEFAULT_MAX_CALLS);
    match arg {
        Some(InstancesArg::Fresh) => formatter.set_instances(Instances::Fresh)?,
        Some(InstancesArg::Warm) => formatter.set_instances(warm)?,
        None if formatter.prefers_warm() => formatter.set_instances(warm)?,
        None => {}
    }
    Ok(())
}

/// What an operator may grant a formatter, as flags.
#[derive(clap::Args)]
struct GrantArgs {
    /// Grant a host directory, read-only, seen by the guest as /templates.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Pass an environment variable: NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
}

impl GrantArgs {
    fn grants(&self) -> Result<Grants> {
        Ok(Grants {
            env: parse_env(&self.env)?,
            dir: self.dir.clone(),
        })
    }
}

fn parse_env(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("--env takes NAME=VALUE, got {kv:?}"),
        })
        .collect()
}

fn init_tracing(default_level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDINGS_LOG")
        .unwrap_or_else(|_| default_level.into());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// glibc gives each thread that allocates an arena of its own, up to eight per core, and memory
/// freed in one arena is not reused by another. The daemon runs a thread per reporter lane
/// besides its runtime's: an idle daemon with ten formatters kept 4 MiB more than with one
/// arena per core (`cargo bench --bench memory`), but one per core cost a sixth of the
/// saturated throughput (`--bench pipeline`: lock contention). Four per core keep half the
/// saving (1.5–2 MiB) for about 2% more CPU per event (medians of eight runs each, same
/// sitting: 271 against 265 µs).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SAFETY: mallopt only sets an allocator parameter; glibc checks the value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, (cores * 4).clamp(1, 1024) as libc::c_int);
    }
}

fn main() -> ExitCode {
    // The daemon's compiler children (not a command for people: see `ChildCompiler`).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(tidings::formatter::compiler::SUBCOMMAND) {
        let code = tidings::formatter::compiler::child_main(&args[2..]);
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    if let Command::Serve { config } = &cli.command {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        limit_malloc_arenas();
        let source = daemon::ConfigSource {
            path: config.clone(),
        };
        return match serve(source) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    // A command's output piped into `head` ends quietly when the reader goes away, as other
    // command-line tools do, instead of panicking on the broken pipe (serve keeps Rust's
    // default: a peer that hangs up is an error to handle, not a reason to die).
    // SAFETY: setting a signal's disposition to the default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    init_tracing("warn", false);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(source: daemon::ConfigSource) -> Result<()> {
    // Read the config first: it says how to log.
    let config = source.load()?;
    init_tracing(
        "info",
        config.server.log_format == tidings::config::LogFormat::Json,
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(daemon::serve(source))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Outbox { config, action } => return cli::outbox::outbox(config, action),
        Command::Events { config, action } => {
            let opened = cli::open(config)?;
            return match action {
                EventsAction::List {
                    filter,
                    limit,
                    json,
                } => cli::events::list(&opened, &filter, limit, json),
                EventsAction::Show { id } => cli::events::show(&opened, id),
            };
        }
        Command::Explain { id, config, json } => {
            return cli::events::explain(&cli::open(config)?, id, json);
        }
        Command::Replay { config, args } => {
            return cli::replay::replay(&cli::open(config)?, &args);
        }
        Command::Config {
            action: ConfigAction::Default,
        } => {
            print!("{}", daemon::DEFAULT_CONFIG);
            return Ok(ExitCode::SUCCESS);
        }
        Command::New { language, dir } => return new_project(language, &dir),
        Command::Build { dir } => {
            if !tidings::project::is_project(&dir) {
                eprintln!(
                    "error: {} has no formatter.toml: start a project with `tidings new \
                     <language> DIR` (or give `render`/`test` a Rust crate or a .wasm)",
                    dir.display()
                );
                return Ok(ExitCode::from(2));
            }
            return match tidings::project::build(&dir) {
                Ok(wasm) => {
                    println!("{}", wasm.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            };
        }
        _ => {}
    }
    let host = Host::new(HostOptions {
        cache_dir: cli.cache_dir.or_else(tidings::formatter::default_cache_dir),
        read_caches: Vec::new(),
        concurrency: None,
        memory_keep_resident: None,
        compile_in: None,
    })?;
    match cli.command {
        Command::Render(args) => render(&host, args),
        Command::Test {
            formatter,
            cases,
            instances,
            grants,
        } => test(&host, &formatter, cases, instances, grants.grants()?),
        Command::Run {
            grants,
            memory_mib,
            module,
            args,
        } => {
            let wasm =
                std::fs::read(&module).with_context(|| format!("reading {}", module.display()))?;
            let mut argv = vec![module.display().to_string()];
            argv.extend(args);
            // For a plain command the variables are its whole environment, not extra ones.
            let env = parse_env(&grants.env)?;
            let grants = Grants {
                env: Vec::new(),
                dir: grants.dir,
            };
            match host.run_command(&wasm, &argv, &env, &grants, memory_mib << 20) {
                Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
                Err(e) => {
                    eprintln!("error: {}: {e}", e.kind());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Check { config } => check(&config),
        Command::Serve { .. }
        | Command::Outbox { .. }
        | Command::Events { .. }
        | Command::Explain { .. }
        | Command::Replay { .. }
        | Command::Config { .. }
        | Command::New { .. }
        | Command::Build { .. } => unreachable!("handled before"),
    }
}

/// `tidings new`: writes the project and says what to run next.
fn new_project(language: tidings::project::Language, dir: &Path) -> Result<ExitCode> {
    match tidings::project::create(language, dir) {
        Ok(files) => {
            println!(
                "made a {} formatter project in {}:",
                language.name(),
                dir.display()
            );
            for f in files {
                println!("  {f}");
            }
            let d = dir.display();
            println!(
                "next:\n  tidings test {d}        # builds it, then runs its cases\n  \
                 tidings build {d}       # prints the module's path, for [[formatter]] module\n  \
                 edit {d}/{}",
                language.source()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn render(host: &Host, args: RenderArgs) -> Result<ExitCode> {
    let input = if args.input == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?
    };
    let mut ctx = WrapContext::default();
    if let Some(arg) = &args.arg {
        ctx.arg = serde_json::from_str(arg).context("--arg is not JSON")?;
    }
    let request = Request::parse(&input, args.hook, &ctx)?;
    if args.show_request {
        let v: serde_json::Value = serde_json::from_slice(&request.to_stdin())?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let limits = Limits {
        timeout: Duration::from_millis(args.timeout_ms),
        memory: args.memory_mib << 20,
        ..Limits::default()
    };
    let path = args.formatter.context("--formatter is required")?;
    let path = if path.is_dir() {
        testing::resolve(&path).map_err(anyhow::Error::msg)?.wasm
    } else {
        path
    };
    let mut formatter = match host.load(&module_name(&path), &path, limits, args.grants.grants()?) {
        Ok(f) => f,
        Err(e) => return Ok(formatter_failure(&e)),
    };
    choose_instances(&mut formatter, args.instances)?;
    if args.repeat > 1 {
        return render_repeat(&formatter, &request, args.repeat);
    }
    match formatter.call(&request) {
        Ok(out) => {
            println!("{}", serde_json::to_string_pretty(&out.to_json())?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(formatter_failure(&e)),
    }
}

fn formatter_failure(e: &tidings::formatter::FormatterError) -> ExitCode {
    eprintln!("error: {}: {e}", e.kind());
    ExitCode::from(1)
}

/// `render --repeat N`: N calls in one process; prints the last result and, on stderr,
/// `per-call: min=… median=… p99=… peak_memory=…` (times in µs, memory in bytes).
fn render_repeat(formatter: &Formatter, request: &Request, n: usize) -> Result<ExitCode> {
    let stdin = request.to_stdin();
    let hook = request.hook();
    let mut times = Vec::with_capacity(n);
    let mut peak = 0;
    let mut last = None;
    for _ in 0..n {
        let t = std::time::Instant::now();
        let report = match formatter.call_raw(hook, &stdin) {
            Ok(r) => r,
            Err(e) => return Ok(formatter_failure(&e)),
        };
        let out = match tidings::formatter::abi::parse_output(hook, &report.stdout) {
            Ok(o) => o,
            Err(e) => return Ok(formatter_failure(&e)),
        };
        times.push(t.elapsed());
        peak = peak.max(report.peak_memory);
        last = Some(out);
    }
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p99 = times[((n * 99) / 100).min(n - 1)];
    // A warm component is called through `format` when it exports it, else through `run`.
    let entry = match formatter.instances() {
        Instances::Warm { .. } if formatter.exports_format() => ", each call to its format",
        Instances::Warm { .. } if formatter.is_component() => ", each call to its run again",
        _ => "",
    };
    eprintln!(
        "per-call: min={:.1} median={:.1} p99={:.1} peak_memory={peak} (µs, {n} calls, {} \
         instances{entry})",
        us(times[0]),
        us(times[n / 2]),
        us(p99),
        formatter.instances()
    );
    if let Some(out) = last {
        println!("{}", serde_json::to_string_pretty(&out.to_json())?);
    }
    Ok(ExitCode::SUCCESS)
}

fn module_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "formatter".into())
}

/// `tidings test`: every case in fresh instances, then (when the module can run warm) every
/// case again in one warm instance, in order; a case that passes fresh but not warm depends on
/// what an earlier call left in the instance.
fn test(
    host: &Host,
    path: &Path,
    cases: Option<PathBuf>,
    instances: Option<InstancesArg>,
    grants: Grants,
) -> Result<ExitCode> {
    let target = testing::resolve(path).map_err(anyhow::Error::msg)?;
    let cases_dir = cases.unwrap_or(target.default_cases);
    let cases = testing::discover(&cases_dir).map_err(anyhow::Error::msg)?;
    let mut formatter = host.load(
        &module_name(&target.wasm),
        &target.wasm,
        Limits::default(),
        grants,
    )?;
    formatter.set_deterministic(true);
    let ctx = WrapContext::default();
    // One instance answers every case, however long the suite takes.
    let warm = Instances::Warm {
        max_calls: u32::MAX,
        max_idle: Duration::MAX,
    };
    let modes: Vec<Instances> = match instances {
        Some(InstancesArg::Fresh) => vec![Instances::Fresh],
        Some(InstancesArg::Warm) => vec![warm],
        None if formatter.prefers_warm() => vec![Instances::Fresh, warm],
        None => vec![Instances::Fresh],
    };
    let mut outcomes: Vec<Vec<Outcome>> = Vec::new();
    for mode in &modes {
        formatter.set_instances(*mode)?;
        outcomes.push(
            cases
                .iter()
                .map(|case| testing::run_case(&formatter, case, &ctx))
                .collect(),
        );
    }
    let label = match modes.as_slice() {
        [_, _] => " (fresh and warm)",
        [Instances::Warm { .. }] => " (warm)",
        _ => "",
    };
    let (mut passed, mut failed) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let first = &outcomes[0][i];
        let second = outcomes.get(1).map(|o| &o[i]);
        match (first, second) {
            (Outcome::Pass, None | Some(Outcome::Pass)) => {
                passed += 1;
                println!("ok   {}{label}", case.name);
            }
            (Outcome::Pass, Some(warm)) => {
                failed += 1;
                let what = match warm {
                    Outcome::Mismatch(diff) => format!("\n{diff}"),
                    Outcome::Error(e) => format!(": {e}"),
                    Outcome::Pass => unreachable!(),
                };
                println!(
                    "FAIL {} (warm): passes in a fresh instance, not in a warm one after the \
                     cases before it: its result depends on state an earlier call left{what}",
                    case.name
                );
            }
            (Outcome::Mismatch(diff), _) => {
                failed += 1;
                println!("FAIL {}\n{diff}", case.name);
            }
            (Outcome::Error(e), _) => {
                failed += 1;
                println!("FAIL {}: {e}", case.name);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `tidings check`: the whole config must parse and validate; then every formatter is loaded
/// (validated, compiled, cached) and called once per hook it serves on a bundled sample build.
/// Formatters are compiled into the daemon's own cache (`<data_dir>/modules`), so a `serve`
/// after a `check` starts without compiling (large components take seconds).
fn check(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let host = &Host::new(HostOptions {
        cache_dir: Some(daemon::data_dir(&config, base).join("modules")),
        read_caches: tidings::formatter::default_cache_dir()
            .into_iter()
            .collect(),
        concurrency: None,
        memory_keep_resident: None,
        // As serve does: what check reports is what serve would meet.
        compile_in: tidings::formatter::ChildCompiler::this_executable().ok(),
    })?;
    let mut problems = 0;
    for entry in &config.formatter {
        let module = match entry.wasm_path(base) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("formatter {:?}: {e}", entry.name);
                problems += 1;
                continue;
            }
        };
        let loaded = host
            .load(&entry.name, &module, entry.limits(), entry.grants(base))
            .and_then(|mut f| f.set_instances(entry.instances(&f)).map(|()| f));
        let formatter = match loaded {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "formatter {:?} ({}): {}: {e}",
                    entry.name,
                    module.display(),
                    e.kind()
                );
                problems += 1;
                continue;
            }
        };
        let ctx = WrapContext {
            master: tidings_guest::Master {
                title: config.master.title.clone(),
                buildbot_url: config.master.buildbot_url.clone(),
            },
            ..WrapContext::default()
        };
        for hook in entry.hooks.clone().unwrap_or(vec![Hook::MessageFormatter]) {
            let request = Request::parse(SAMPLE_BUILD.as_bytes(), Some(hook), &ctx)?;
            // Warm, a second call by the same instance shows that it can answer again.
            let warm = formatter.instances() != Instances::Fresh;
            let answered = formatter.call(&request).and_then(|first| {
                if !warm {
                    return Ok(first);
                }
                formatter.call(&request).map_err(|e| {
                    tidings::formatter::FormatterError::InvalidModule {
                        reason: format!(
                            "cannot run warm: its second call by the same instance failed ({}: \
                         {e}); a component whose run cannot be called twice (a Rust \
                         wasm32-wasip2 program without the SDK, say) must run with instances = \
                         \"fresh\"",
                            e.kind()
                        ),
                    }
                })
            });
            match answered {
                Ok(_) if !warm => println!("formatter {:?}: {hook} ok", entry.name),
                Ok(_) => println!(
                    "formatter {:?}: {hook} ok (warm: answered twice by one instance)",
                    entry.name
                ),
                Err(e) => {
                    eprintln!(
                        "formatter {:?}: {hook} on the sample build: {}: {e}",
                        entry.name,
                        e.kind()
                    );
                    problems += 1;
                }
            }
        }
    }
    let built = match daemon::build_reporters(&config, base, None, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e:#}");
            problems += 1;
            Vec::new()
        }
    };
    for (kind, table) in config.reporter.all() {
        let s = tidings::config::CommonOptions::selection(table);
        let per_destination = built
            .iter()
            .any(|r| r.selection().name == s.name && !r.uses_mode());
        if per_destination {
            println!(
                "reporter {:?} ({kind}): no mode, each destination's notify events decide",
                s.name
            );
        } else {
            println!(
                "reporter {:?} ({kind}): mode {}",
                s.name,
                s.mode.0.join(", ")
            );
        }
    }
    if problems > 0 {
        bail!("{problems} problem(s) in {}", path.display());
    }
    println!("{} is valid", path.display());
    Ok(ExitCode::SUCCESS)
}
