//! Test support: builds the repository's formatters for `wasm32-wasip1` (once per machine and
//! source state, shared by all test binaries), compiles WAT fixtures, and makes hosts.
//!
//! The guests are built by a nested `cargo build` into `<target>/guest-build` (a nested cargo
//! cannot use the outer build's target directory: it holds the lock) and copied to
//! `<target>/guests/<name>.wasm`. A missing `wasm32-wasip1` target is installed with rustup.
#![allow(dead_code)]

pub mod daemon;
pub mod irc;
pub mod sshd;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tidings::formatter::{Formatter, Grants, Host, HostOptions, Limits};

/// The formatter crates under `formatters/`, by package name.
pub const FORMATTERS: &[&str] = &["short", "html-log-tail", "default-mail", "gerrit"];

/// The repository root.
pub fn repo() -> PathBuf {
    // `cargo test` sets it at run time too; prefer that (a binary reused from another checkout's
    // build then still reads this checkout).
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The cargo target directory this test binary was built in.
pub fn target_dir() -> PathBuf {
    // <target>/debug/deps/<test-binary>
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir").to_owned()
}

/// The path of formatter `name` built for wasm32-wasip1 (built on first use).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_guests);
    dir.join(format!("{name}.wasm"))
}

fn build_guests() -> PathBuf {
    let target = target_dir();
    let out = target.join("guests");
    std::fs::create_dir_all(&out).expect("create guests dir");
    // Test binaries run in parallel processes: one builds, the others wait on the lock.
    let lock = std::fs::File::create(out.join(".lock")).expect("lock file");
    lock.lock().expect("lock guests dir");
    let build = || {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(repo())
            .envs(tidings::testing::GUEST_BUILD_ENV)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "--target-dir",
            ])
            .arg(target.join("guest-build"));
        for f in FORMATTERS {
            cmd.args(["-p", f]);
        }
        cmd.status().expect("run cargo")
    };
    let mut status = build();
    if !status.success() {
        // The usual cause on a fresh machine: the target is missing. Install it and retry.
        let _ = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip1"])
            .status();
        status = build();
    }
    assert!(
        status.success(),
        "building the formatters for wasm32-wasip1 failed (rustup target add wasm32-wasip1?)"
    );
    let built = target.join("guest-build/wasm32-wasip1/release");
    for f in FORMATTERS {
        let from = built.join(format!("{f}.wasm"));
        put_whole(&from, &out.join(format!("{f}.wasm")));
    }
    out
}

/// Puts a copy of `from` at `to` by renaming a whole copy over it: test processes read the
/// guests while another process installs them again, and a copy made in place would let them
/// read a file cut short (an empty `html-log-tail.wasm` did fail a test that way).
fn put_whole(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    if std::fs::read(to).is_ok_and(|old| old == bytes) {
        return;
    }
    let part = to.with_extension(format!("part-{}", std::process::id()));
    std::fs::write(&part, &bytes).unwrap_or_else(|e| panic!("write {}: {e}", part.display()));
    std::fs::rename(&part, to).unwrap_or_else(|e| panic!("rename to {}: {e}", to.display()));
}

/// WASI preview 2 components (`wasm32-wasip2`), built on first use: `short` (the formatter)
/// and the programs of `tests/guests/hostile` (`spin`, `bomb`, `sleeper`, `once`, `warm`).
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(build_components)
        .join(format!("{name}.component.wasm"))
}

fn build_components() -> PathBuf {
    let target = target_dir();
    let out = target.join("guests");
    std::fs::create_dir_all(&out).expect("create guests dir");
    let lock = std::fs::File::create(out.join(".lock-p2")).expect("lock file");
    lock.lock().expect("lock guests dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let _ = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    let dir = target.join("guest-build-p2");
    for manifest in ["Cargo.toml", "tests/guests/hostile/Cargo.toml"] {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(repo())
            .envs(tidings::testing::GUEST_BUILD_ENV)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(repo().join(manifest))
            .arg("--target-dir")
            .arg(&dir);
        if manifest == "Cargo.toml" {
            cmd.args(["-p", "short"]);
        } else {
            cmd.arg("--bins");
        }
        let status = cmd.status().expect("run cargo");
        assert!(
            status.success(),
            "building {manifest} for wasm32-wasip2 failed"
        );
    }
    for name in ["short", "spin", "bomb", "sleeper", "once", "warm"] {
        let from = dir.join(format!("wasm32-wasip2/release/{name}.wasm"));
        put_whole(&from, &out.join(format!("{name}.component.wasm")));
    }
    out
}

/// A host without a compiled-module cache.
pub fn host() -> Host {
    Host::new(HostOptions::default()).expect("host")
}

/// A host shared by a test binary (the engine and its ticker are made once).
pub fn shared_host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(host)
}

/// Loads formatter `name` from the repository with default limits.
pub fn load(name: &str) -> Formatter {
    shared_host()
        .load(name, &guest(name), Limits::default(), Grants::default())
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// Compiles WAT text to a binary.
pub fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap_or_else(|e| panic!("bad WAT fixture: {e}"))
}

/// A formatter (a WASI command) that prints `out` on stdout whatever it is asked.
pub fn constant_formatter(out: &str) -> Vec<u8> {
    let escaped: String = out.bytes().map(|b| format!("\\{b:02x}")).collect();
    wat(&format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "{escaped}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const {}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        out.len()
    ))
}

/// A captured Buildbot sample from `tests/data/buildbot/`.
pub fn sample(name: &str) -> Vec<u8> {
    let p = repo().join("tests/data/buildbot").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// A file under the repository, as text.
pub fn read(path: impl AsRef<Path>) -> String {
    let p = repo().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The `$id` prefix of the schemas in `guest-sdk/schema/`.
pub const SCHEMA_BASE: &str = "https://tidings.example/abi/1/";

/// A schema from `guest-sdk/schema/`, parsed.
pub fn load_schema(name: &str) -> serde_json::Value {
    serde_json::from_str(&read(format!("guest-sdk/schema/{name}"))).unwrap()
}

/// The validator for schema `name`, with the build schema registered so `$ref`s resolve
/// offline.
pub fn validator(name: &str) -> jsonschema::Validator {
    let build = jsonschema::Resource::from_contents(load_schema("build.schema.json")).unwrap();
    jsonschema::options()
        .with_resource(format!("{SCHEMA_BASE}build.schema.json"), build)
        .build(&load_schema(name))
        .unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

/// A port free on 127.0.0.1 at the time of asking (for peers whose config needs it up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs one of the project's install scripts (`scripts/install-buildbot`, …), which installs
/// a peer once per machine and prints where it is.
pub fn install(script: &str) -> PathBuf {
    let out = Command::new(repo().join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
