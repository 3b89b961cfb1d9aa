//! Compiling a module in a child process: the daemon's way (see [`ChildCompiler`]).
//!
//! The parent runs `<executable> __compile module|component`, writes the WebAssembly binary to
//! its stdin and closes it; the child compiles with [`compile_config`] and answers on stdout
//! with the bytes `tidingsA`, the artifact's length (8 bytes, little-endian) and the artifact,
//! and exits 0. A module that does not compile makes it print wasmtime's message on stderr and
//! exit 1.
//! Anything else (no answer, a short one, a signal, the time limit) is an error of its own.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::{Config, Engine};

/// The first bytes of a compiler child's answer.
const MAGIC: &[u8; 8] = b"tidingsA";

/// The hidden subcommand of the `tidings` binary that compiles one module ([`child_main`]).
pub const SUBCOMMAND: &str = "__compile";

/// The default of [`ChildCompiler::time_limit`]. CPython's component, the largest module we
/// know, compiles in 10 s on 2 cores; a module that takes half an hour is a hostile one.
pub const DEFAULT_COMPILE_TIME_LIMIT: Duration = Duration::from_secs(600);

/// The settings every artifact is compiled with; the host's engine adds the pooling allocator,
/// which does not change the code (wasmtime checks that an artifact fits on deserialize).
pub fn compile_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config
}

/// Which of wasmtime's two binaries a module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A core WebAssembly module.
    Module,
    /// A component.
    Component,
}

impl Kind {
    fn arg(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Component => "component",
        }
    }
}

/// Compile in a child process, a `tidings` executable of this very build, instead of in the
/// host's own process. Set by `tidings serve` (the daemon runs for months) and `tidings
/// check` (which should meet what serve would); `render`, `test` and `run` compile in-process.
///
/// Why: compiling takes memory that a long-running process does not get back. Cranelift keeps
/// its working buffers for as long as an engine lives, sized to the largest function it
/// compiled, and the allocator keeps freed memory scattered in the arenas of the threads that
/// compiled: a daemon that compiled its ten formatters on start stayed at 60–81 MiB even after
/// compiling on an engine of its own and trimming the allocator (345 MiB before that), against
/// ~51 for one that found them in its cache. A child gives all of it back when it exits. And
/// a module that makes the compiler blow up (a function with millions of locals, say) costs
/// the child, not the daemon: killed at [`ChildCompiler::time_limit`], or by the kernel when
/// memory runs out, it is one formatter's load error.
#[derive(Debug, Clone)]
pub struct ChildCompiler {
    /// The `tidings` executable to run with [`SUBCOMMAND`]. It must be this same build:
    /// its artifacts are deserialized as native code (wasmtime refuses one of another version
    /// or settings, but cannot tell a forged one). [`ChildCompiler::this_executable`] names the
    /// running image itself.
    pub executable: PathBuf,
    /// A compile that runs longer is stopped (the child killed) and fails the load.
    pub time_limit: Duration,
}

impl ChildCompiler {
    /// The running executable, for a process that is the `tidings` binary: on Linux
    /// `/proc/self/exe`, which runs the same image even after an upgrade has replaced the file
    /// on disk (a new build's artifacts would not load into this engine).
    pub fn this_executable() -> std::io::Result<ChildCompiler> {
        let executable = if cfg!(target_os = "linux") {
            PathBuf::from("/proc/self/exe")
        } else {
            std::env::current_exe()?
        };
        Ok(ChildCompiler {
            executable,
            time_limit: DEFAULT_COMPILE_TIME_LIMIT,
        })
    }
}

/// Why a child compile gave no artifact.
#[derive(Debug)]
pub enum ChildError {
    /// The child could not be started (the caller compiles in-process instead).
    Spawn(std::io::Error),
    /// The module does not compile, or the child failed: the message says which.
    Failed(String),
}

/// Compiles `wasm` in a child process, as [`ChildCompiler`] describes.
pub fn compile_in_child(
    compiler: &ChildCompiler,
    kind: Kind,
    wasm: &[u8],
) -> Result<Vec<u8>, ChildError> {
    let mut command = Command::new(&compiler.executable);
    command
        .arg(SUBCOMMAND)
        .arg(kind.arg())
        // It reads untrusted input: none of the daemon's environment (secrets may be there),
        // nothing of its working directory. RAYON_NUM_THREADS bounds the compiling threads.
        .env_clear()
        .envs(std::env::var_os("RAYON_NUM_THREADS").map(|n| ("RAYON_NUM_THREADS", n)))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // `ps` shows `tidings __compile …`, not the name of the link it was started by.
        command.arg0("tidings");
        // SAFETY: prctl and setrlimit are async-signal-safe system calls that touch only the
        // child. A child outlives neither the thread that waits for it nor a daemon killed with
        // -9 (Linux), and a crash leaves no core file of a compiler's memory behind.
        unsafe {
            command.pre_exec(|| {
                #[cfg(target_os = "linux")]
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn().map_err(ChildError::Spawn)?;
    let (mut stdin, mut stdout, mut stderr) = (
        child.stdin.take().expect("piped"),
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let child = Arc::new(Mutex::new(child));
    let (done, finished) = mpsc::channel::<()>();
    let time_limit = compiler.time_limit;
    let watchdog = {
        let child = child.clone();
        std::thread::Builder::new()
            .name("tidings-compile-watch".into())
            .spawn(move || {
                if finished.recv_timeout(time_limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                    // Under the lock and only while not reaped: the pid is still this child's.
                    let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
                    if matches!(child.try_wait(), Ok(None)) {
                        let _ = child.kill();
                        return true;
                    }
                }
                false
            })
    };
    let watchdog = match watchdog {
        Ok(w) => w,
        Err(e) => {
            let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
            let _ = child.kill();
            let _ = child.wait();
            return Err(ChildError::Spawn(e));
        }
    };
    // The child reads all of stdin before it writes anything, but its stderr is read on a
    // thread of its own all the same, so that no order of writes can block both sides.
    let errors = std::thread::Builder::new()
        .name("tidings-compile-err".into())
        .spawn(move || {
            let mut text = Vec::new();
            let _ = (&mut stderr).take(64 << 10).read_to_end(&mut text);
            // Whatever else it writes is drained so that the child never blocks on it.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&text).into_owned()
        });
    // A child that died early makes this fail with EPIPE: its exit status tells why.
    let written = stdin.write_all(wasm);
    drop(stdin);
    let answer = read_answer(&mut stdout);
    drop(stdout);
    let _ = done.send(());
    let status = child.lock().unwrap_or_else(|e| e.into_inner()).wait();
    let timed_out = watchdog.join().unwrap_or(false);
    let message = match errors {
        Ok(errors) => errors.join().unwrap_or_default(),
        Err(_) => String::new(),
    };
    let message = message.trim();
    if timed_out {
        return Err(ChildError::Failed(format!(
            "compiling took longer than {} s and was stopped",
            time_limit.as_secs_f64()
        )));
    }
    let status = status
        .map_err(|e| ChildError::Failed(format!("cannot wait for the compiler process: {e}")))?;
    match (status.success(), answer) {
        (true, Ok(artifact)) => Ok(artifact),
        (true, Err(e)) => Err(ChildError::Failed(format!(
            "the compiler process ({}) gave no artifact: {e}{}",
            compiler.executable.display(),
            if message.is_empty() {
                String::new()
            } else {
                format!("; it said: {message}")
            }
        ))),
        (false, _) if status.code() == Some(1) && !message.is_empty() => {
            Err(ChildError::Failed(message.to_owned()))
        }
        (false, _) => Err(ChildError::Failed(format!(
            "the compiler process failed ({}){}{}",
            describe(status),
            match &written {
                Err(e) => format!(" before it had read the module ({e})"),
                Ok(()) => String::new(),
            },
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ))),
    }
}

/// Reads a child's answer: [`MAGIC`], the length, the artifact, and then nothing more.
fn read_answer(stdout: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(16);
    stdout.take(16).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "it wrote nothing",
        ));
    }
    if !head.starts_with(MAGIC) && !MAGIC.starts_with(&head) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it does not speak the compile protocol (is it a tidings executable of this build?)",
        ));
    }
    let Ok(len) = <[u8; 8]>::try_from(&head[8.min(head.len())..]) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("it ended after {} bytes", head.len()),
        ));
    };
    let len = u64::from_le_bytes(len);
    let len = usize::try_from(len).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "an impossible length")
    })?;
    let mut artifact = Vec::new();
    artifact
        .try_reserve_exact(len)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e.to_string()))?;
    stdout.take(len as u64).read_to_end(&mut artifact)?;
    if artifact.len() != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} of {len} bytes", artifact.len()),
        ));
    }
    Ok(artifact)
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let hint = match signal {
                libc::SIGKILL => ": killed, perhaps by the kernel for want of memory",
                libc::SIGSEGV | libc::SIGBUS => ": a crash",
                libc::SIGABRT => ": aborted",
                _ => "",
            };
            return format!("signal {signal}{hint}");
        }
    }
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

/// The child's side (`tidings __compile module|component`): reads a module from stdin,
/// compiles it and writes the answer to stdout. Returns the process's exit code.
pub fn child_main(args: &[String]) -> i32 {
    let kind = match args {
        [k] if k == "module" => Kind::Module,
        [k] if k == "component" => Kind::Component,
        _ => {
            eprintln!("usage: tidings {SUBCOMMAND} module|component < module.wasm");
            return 2;
        }
    };
    // Its name in `top` and the kernel's log (else "exe", after /proc/self/exe).
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"tidings-compile".as_ptr());
    }
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut wasm) {
        eprintln!("cannot read the module from stdin: {e}");
        return 2;
    }
    let artifact = Engine::new(&compile_config()).and_then(|engine| match kind {
        Kind::Module => engine.precompile_module(&wasm),
        Kind::Component => engine.precompile_component(&wasm),
    });
    let artifact = match artifact {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(MAGIC)
        .and_then(|()| out.write_all(&(artifact.len() as u64).to_le_bytes()))
        .and_then(|()| out.write_all(&artifact))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write the artifact: {e}");
            3
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_answer;

    #[test]
    fn an_answer_must_be_whole_and_marked() {
        let mut whole = b"tidingsA".to_vec();
        whole.extend(3u64.to_le_bytes());
        whole.extend(b"abc");
        assert_eq!(read_answer(&mut whole.as_slice()).unwrap(), b"abc");
        let short = &whole[..whole.len() - 1];
        let e = read_answer(&mut &short[..]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        let e = read_answer(&mut &b"hello, world, this is not it"[..]).unwrap_err();
        assert!(e.to_string().contains("compile protocol"), "{e}");
        let e = read_answer(&mut &b"tidingsA\x03"[..]).unwrap_err();
        assert!(e.to_string().contains("after 9 bytes"), "{e}");
        let e = read_answer(&mut &b"hi"[..]).unwrap_err();
        assert!(e.to_string().contains("compile protocol"), "{e}");
        let e = read_answer(&mut &b""[..]).unwrap_err();
        assert!(e.to_string().contains("nothing"), "{e}");
    }
}
