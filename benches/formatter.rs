//! Per-call cost of formatters under the sandbox, against the same work done natively.
//!
//! - `call/noop`: a hand-written WASI command that prints `null` (the sandbox's fixed cost);
//! - `call/short`, `call/default-mail`: real formatters on the failing sample captured from a
//!   Buildbot master (`tests/data/buildbot/failure-full.json`), a fresh instance per call;
//! - `warm/short`, `warm/default-mail`: the same, one instance kept for many calls
//!   (`instances = "warm"`, the Rust SDK's warm entry point);
//! - `native/short`, `native/default-mail`: the same formatter code called natively on the same
//!   request bytes through the SDK's glue (decode, format, encode) — the floor;
//! - `load/compile` vs `load/cached`: loading a module without and with the artifact cache.
//!
//! The guests are built by the tests' support code (`cargo test` once before `cargo bench`),
//! or by hand: `cargo build --release --target wasm32-wasip1 -p short -p default-mail`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::PathBuf;
use std::time::Duration;
use tidings::formatter::{Grants, Host, HostOptions, Instances, Limits, Request, WrapContext};
use tidings_guest::Hook;

const NOOP: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "null")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 4))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn guest(name: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    for p in [
        target.join("guests").join(format!("{name}.wasm")),
        target
            .join("wasm32-wasip1/release")
            .join(format!("{name}.wasm")),
    ] {
        if let Ok(b) = std::fs::read(&p) {
            return b;
        }
    }
    panic!("{name}.wasm not built: run `cargo build --release --target wasm32-wasip1 -p {name}`")
}

fn request() -> Request {
    let build = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/buildbot/failure-full.json"
    ))
    .unwrap();
    Request::parse(
        &build,
        Some(Hook::MessageFormatter),
        &WrapContext::default(),
    )
    .unwrap()
}

fn calls(c: &mut Criterion) {
    let host = Host::new(HostOptions::default()).unwrap();
    let req = request();
    let stdin = req.to_stdin();
    let mut g = c.benchmark_group("call");
    for (name, wasm) in [
        ("noop", wat::parse_str(NOOP).unwrap()),
        ("short", guest("short")),
        ("default-mail", guest("default-mail")),
    ] {
        let f = host
            .load_bytes(name, &wasm, Limits::default(), Grants::default())
            .unwrap();
        f.call(&req).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| f.call_raw(Hook::MessageFormatter, &stdin).unwrap())
        });
    }
    g.finish();

    // The same formatters kept warm: one instance answers every call (max_calls 1000, so a
    // fresh one is made every 1000 calls, as in the daemon).
    let mut g = c.benchmark_group("warm");
    for name in ["short", "default-mail"] {
        let mut f = host
            .load_bytes(name, &guest(name), Limits::default(), Grants::default())
            .unwrap();
        f.set_instances(Instances::warm(tidings::formatter::DEFAULT_MAX_CALLS))
            .unwrap();
        f.call(&req).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| f.call_raw(Hook::MessageFormatter, &stdin).unwrap())
        });
    }
    g.finish();

    // The pooling tunable that decides how a fresh instance's memory is provided.
    let mut g = c.benchmark_group("keep_resident/short");
    let short = guest("short");
    for kib in [0usize, 256, 1024, 4096] {
        let host = Host::new(HostOptions {
            read_caches: Vec::new(),
            memory_keep_resident: Some(kib << 10),
            ..HostOptions::default()
        })
        .unwrap();
        let f = host
            .load_bytes("short", &short, Limits::default(), Grants::default())
            .unwrap();
        g.bench_function(format!("{kib}KiB"), |b| {
            b.iter(|| f.call_raw(Hook::MessageFormatter, &stdin).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("native");
    // Through the SDK's own glue, as the guest runs it (it decodes only the request's head
    // when the formatter's arguments have no `build`).
    g.bench_function("short", |b| {
        b.iter(|| tidings_guest::call(&stdin, short::format).unwrap())
    });
    g.bench_function("default-mail", |b| {
        b.iter(|| tidings_guest::call(&stdin, default_mail::format).unwrap())
    });
    g.finish();
}

fn loads(c: &mut Criterion) {
    let wasm = guest("short");
    let mut g = c.benchmark_group("load");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let plain = Host::new(HostOptions::default()).unwrap();
    g.bench_function("compile", |b| {
        b.iter(|| {
            plain
                .load_bytes("short", &wasm, Limits::default(), Grants::default())
                .unwrap()
        })
    });
    // As the daemon compiles: in a child process of the tidings binary.
    let in_child = Host::new(HostOptions {
        compile_in: Some(tidings::formatter::ChildCompiler {
            executable: env!("CARGO_BIN_EXE_tidings").into(),
            time_limit: tidings::formatter::compiler::DEFAULT_COMPILE_TIME_LIMIT,
        }),
        ..HostOptions::default()
    })
    .unwrap();
    g.bench_function("compile in a child", |b| {
        b.iter(|| {
            in_child
                .load_bytes("short", &wasm, Limits::default(), Grants::default())
                .unwrap()
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let cached = Host::new(HostOptions {
        cache_dir: Some(dir.path().join("cache")),
        concurrency: None,
        read_caches: Vec::new(),
        memory_keep_resident: None,
        compile_in: None,
    })
    .unwrap();
    cached
        .load_bytes("short", &wasm, Limits::default(), Grants::default())
        .unwrap();
    g.sample_size(100).measurement_time(Duration::from_secs(5));
    g.bench_function("cached", |b| {
        b.iter(|| {
            cached
                .load_bytes("short", &wasm, Limits::default(), Grants::default())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, calls, loads);
criterion_main!(benches);
