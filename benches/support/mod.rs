//! What the daemon benchmarks share: starting `tidings serve` and finding the guests.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `tidings serve`, killed when dropped.
pub struct Daemon {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tidings serve` on the config at `config`, once it says where it listens.
#[allow(dead_code)] // each bench includes this module; not all of them call every function
pub fn serve(config: &Path) -> Daemon {
    serve_with(config, &[])
}

/// [`serve`] with more environment variables. The daemon is the `tidings` cargo built with
/// the bench, or the binary `TIDINGS_BIN` names (to compare two builds in one sitting).
pub fn serve_with(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
    let binary = std::env::var_os("TIDINGS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tidings")),
        PathBuf::from,
    );
    let mut command = Command::new(binary);
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("TIDINGS_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped());
    // Stopped with the bench also when the bench is killed (Ctrl-C, a timeout), which skips
    // `Drop`: the kernel sends it SIGKILL when its parent dies.
    // SAFETY: the closure only makes one async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("tidings listening on ")
        .unwrap_or_else(|| panic!("the daemon did not start: {line:?}"))
        .to_owned();
    Daemon { child, addr }
}

/// The guest `name` built by the tests (`<target>/guests/<name>.wasm`).
pub fn guest(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let p = target.join("guests").join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `cargo test` first",
        p.display()
    );
    p
}
