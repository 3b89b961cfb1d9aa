//! Hostile and broken modules: each must end with the right `FormatterError` within its
//! deadline + 50 ms, and the host must serve the next normal call correctly.

mod support;

use std::time::{Duration, Instant};
use tidings::formatter::{
    FormatterError, Grants, HookOutput, Instances, Limits, Request, Stream, WrapContext,
};
use tidings_guest::Hook;

/// The time limit the hostile calls run under (shorter than the default to keep tests quick).
const DEADLINE: Duration = Duration::from_millis(200);
/// What the issue allows beyond the deadline.
const SLACK: Duration = Duration::from_millis(50);

/// Every test of this file holds this while it runs: on two cores, a module compiling
/// (Cranelift uses every core) or spinning in another test delays a timed call's stop past the
/// slack, which would measure the test run, not the deadline.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// WASI imports the fixtures use, and a 2-page memory.
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; write(fd, ptr, len) via an iovec at 0
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
"#;

fn module(body: &str) -> Vec<u8> {
    support::wat(&format!("(module {PRELUDE} {body})"))
}

fn limits() -> Limits {
    Limits {
        timeout: DEADLINE,
        ..Limits::default()
    }
}

fn request() -> Request {
    let build = support::sample("failure-full.json");
    Request::parse(
        &build,
        Some(Hook::MessageFormatter),
        &WrapContext::default(),
    )
    .unwrap()
}

/// Runs `wasm` once and returns its error, checking the time bound and that a normal call on
/// the same host still works afterwards.
fn run_hostile(wasm: &[u8]) -> FormatterError {
    let host = support::shared_host();
    let f = host
        .load_bytes("hostile", wasm, limits(), Grants::default())
        .expect("load hostile module");
    let started = Instant::now();
    let err = f.call(&request()).expect_err("a hostile call must fail");
    let took = started.elapsed();
    assert!(
        took <= DEADLINE + SLACK,
        "{} took {took:?}, more than the deadline {DEADLINE:?} + {SLACK:?}",
        err.kind()
    );
    let short = support::load("short");
    let out = short
        .call(&request())
        .expect("normal call after a hostile one");
    assert_eq!(out.to_json()["body"], "STATUS: Failure");
    err
}

#[test]
fn infinite_loop_times_out() {
    let _serial = serial();
    let err = run_hostile(&module(r#"(func (export "_start") (loop $l (br $l)))"#));
    assert_eq!(err, FormatterError::Timeout { limit: DEADLINE });
}

#[test]
fn memory_grow_bomb_hits_the_memory_limit() {
    let _serial = serial();
    let err = run_hostile(&module(
        r#"(func (export "_start") (loop $l (drop (memory.grow (i32.const 16))) (br $l)))"#,
    ));
    assert_eq!(err, FormatterError::MemoryLimit { limit: 64 << 20 });
}

#[test]
fn stdout_flood_is_output_too_large() {
    let _serial = serial();
    // Writes 64 KiB chunks forever, ignoring errors.
    let err = run_hostile(&module(
        r#"(func (export "_start") (loop $l (call $write (i32.const 1) (i32.const 1024) (i32.const 65536)) (br $l)))"#,
    ));
    assert_eq!(
        err,
        FormatterError::OutputTooLarge {
            stream: Stream::Stdout,
            limit: 1 << 20
        }
    );
}

#[test]
fn stderr_flood_is_output_too_large() {
    let _serial = serial();
    let err = run_hostile(&module(
        r#"(func (export "_start") (loop $l (call $write (i32.const 2) (i32.const 1024) (i32.const 4096)) (br $l)))"#,
    ));
    assert_eq!(
        err,
        FormatterError::OutputTooLarge {
            stream: Stream::Stderr,
            limit: 64 << 10
        }
    );
}

#[test]
fn unreachable_is_a_trap() {
    let _serial = serial();
    let err = run_hostile(&module(r#"(func (export "_start") unreachable)"#));
    match err {
        FormatterError::Trap { message, .. } => {
            assert!(message.contains("unreachable"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap() {
    let _serial = serial();
    let err = run_hostile(&module(r#"(func $f (export "_start") (call $f))"#));
    match err {
        FormatterError::Trap { message, .. } => assert!(message.contains("stack"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn exit_3_carries_the_stderr_message() {
    let _serial = serial();
    let err = run_hostile(&module(
        r#"(data (i32.const 1024) "template missing: mail.html\n")
           (func (export "_start")
             (call $write (i32.const 2) (i32.const 1024) (i32.const 28))
             (call $proc_exit (i32.const 3)))"#,
    ));
    assert_eq!(
        err,
        FormatterError::Exit {
            code: 3,
            stderr_tail: "template missing: mail.html".into()
        }
    );
}

#[test]
fn non_json_output_is_bad_output() {
    let _serial = serial();
    let err = run_hostile(&module(
        r#"(data (i32.const 1024) "STATUS: fine")
           (func (export "_start") (call $write (i32.const 1) (i32.const 1024) (i32.const 12)))"#,
    ));
    match err {
        FormatterError::BadOutput { reason } => assert!(reason.contains("not JSON"), "{reason}"),
        other => panic!("expected BadOutput, got {other:?}"),
    }
}

#[test]
fn wrong_shape_is_bad_output() {
    let _serial = serial();
    let err = run_hostile(&module(
        r#"(data (i32.const 1024) "{\"subject\": 42}")
           (func (export "_start") (call $write (i32.const 1) (i32.const 1024) (i32.const 15)))"#,
    ));
    match err {
        FormatterError::BadOutput { reason } => {
            assert!(reason.contains("messageFormatter result"), "{reason}")
        }
        other => panic!("expected BadOutput, got {other:?}"),
    }
}

#[test]
fn a_10s_sleep_is_stopped_at_once() {
    let _serial = serial();
    // poll_oneoff with one relative clock subscription of 10 s, retried forever.
    let err = run_hostile(&module(
        r#"           ;; subscription at 64: userdata 0, tag 0 (clock), id 1 (monotonic), timeout 10 s
           (data (i32.const 80) "\01\00\00\00\00\00\00\00\00\e4\0b\54\02\00\00\00")
           (func (export "_start")
             (loop $l (drop (call $poll (i32.const 64) (i32.const 256) (i32.const 1) (i32.const 512))) (br $l)))"#,
    ));
    assert_eq!(err, FormatterError::Timeout { limit: DEADLINE });
}

#[test]
fn a_short_sleep_returns_at_once() {
    let _serial = serial();
    // A 1 ms sleep is within the deadline: it returns immediately (virtual time) and the
    // guest goes on to print its result.
    let host = support::shared_host();
    let wasm = module(
        r#"           (data (i32.const 80) "\01\00\00\00\00\00\00\00\40\42\0f\00\00\00\00\00")
           (data (i32.const 1024) "null")
           (func (export "_start")
             (if (call $poll (i32.const 64) (i32.const 256) (i32.const 1) (i32.const 512))
               (then unreachable))
             (if (i32.ne (i32.load (i32.const 512)) (i32.const 1)) (then unreachable))
             (call $write (i32.const 1) (i32.const 1024) (i32.const 4)))"#,
    );
    let f = host
        .load_bytes("sleeper", &wasm, limits(), Grants::default())
        .unwrap();
    assert_eq!(
        f.call(&request()).unwrap().to_json(),
        serde_json::Value::Null
    );
}

/// Tries to read /etc/passwd, list /, and see more environment than the ABI's two variables;
/// exits 10, 11, 12 or 13 if any of it works, else prints a valid message.
const SNOOP: &str = r#"
          (data (i32.const 1024) "/etc/passwd")
  (data (i32.const 1100) "{\"body\":\"sandboxed\",\"type\":\"plain\"}")
  (func (export "_start")
    ;; no preopened directory at all
    (if (i32.eqz (call $prestat (i32.const 3) (i32.const 2048))) (then (call $proc_exit (i32.const 10))))
    ;; open /etc/passwd through fds 3..5 or the root
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const 11)
                   (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 2048)))
      (then (call $proc_exit (i32.const 11))))
    ;; list /
    (if (i32.eqz (call $fd_readdir (i32.const 3) (i32.const 4096) (i32.const 1024) (i64.const 0) (i32.const 2048)))
      (then (call $proc_exit (i32.const 12))))
    ;; exactly TIDINGS_ABI and TIDINGS_HOOK
    (drop (call $env_sizes (i32.const 2048) (i32.const 2052)))
    (if (i32.ne (i32.load (i32.const 2048)) (i32.const 2)) (then (call $proc_exit (i32.const 13))))
    (call $write (i32.const 1) (i32.const 1100) (i32.const 35)))
"#;

#[test]
fn files_directories_and_the_environment_are_out_of_reach() {
    let _serial = serial();
    let host = support::shared_host();
    let f = host
        .load_bytes("snoop", &module(SNOOP), limits(), Grants::default())
        .unwrap();
    let out = f.call(&request()).unwrap_or_else(|e| panic!("snoop: {e}"));
    assert_eq!(out.to_json()["body"], "sandboxed");
}

#[test]
fn a_non_wasi_import_is_refused_at_load() {
    let _serial = serial();
    let wasm = support::wat(
        r#"(module (import "env" "host_secret" (func)) (memory (export "memory") 1)
             (func (export "_start")))"#,
    );
    let err = support::shared_host()
        .load_bytes("bad", &wasm, limits(), Grants::default())
        .err()
        .expect("refused");
    match err {
        FormatterError::InvalidModule { reason } => {
            assert!(reason.contains("env::host_secret"), "{reason}");
            assert!(reason.contains("wasi_snapshot_preview1"), "{reason}");
        }
        other => panic!("expected InvalidModule, got {other:?}"),
    }
}

#[test]
fn a_component_that_is_not_a_command_is_refused_with_what_was_expected() {
    let _serial = serial();
    let wasm = support::wat("(component)");
    let err = support::shared_host()
        .load_bytes("component", &wasm, limits(), Grants::default())
        .err()
        .expect("refused");
    match err {
        FormatterError::InvalidModule { reason } => {
            assert!(reason.contains("wasi:cli/command"), "{reason}");
            assert!(reason.contains("wasi:cli/run"), "{reason}");
        }
        other => panic!("expected InvalidModule, got {other:?}"),
    }
}

/// Loads a hostile component (tests/guests/hostile) and runs it as [`run_hostile`] does.
fn run_hostile_component(name: &str) -> FormatterError {
    run_hostile(&std::fs::read(support::component(name)).unwrap())
}

#[test]
fn a_spinning_component_times_out() {
    let _serial = serial();
    assert_eq!(
        run_hostile_component("spin"),
        FormatterError::Timeout { limit: DEADLINE }
    );
}

#[test]
fn a_memory_bomb_component_hits_the_memory_limit() {
    let _serial = serial();
    assert_eq!(
        run_hostile_component("bomb"),
        FormatterError::MemoryLimit { limit: 64 << 20 }
    );
}

#[test]
fn a_component_sleeping_in_the_host_is_stopped_on_time() {
    let _serial = serial();
    assert_eq!(
        run_hostile_component("sleeper"),
        FormatterError::Timeout { limit: DEADLINE }
    );
}

#[test]
fn reactors_modules_without_memory_and_non_wasm_are_refused() {
    let _serial = serial();
    let host = support::shared_host();
    let cases = [
        (
            support::wat(r#"(module (memory (export "memory") 1) (func (export "_initialize")))"#),
            "reactor",
        ),
        (
            support::wat(r#"(module (func (export "_start")))"#),
            "memory",
        ),
        (b"#!/bin/sh\necho hi\n".to_vec(), "not a WebAssembly binary"),
        (
            wasmtime::Engine::default()
                .precompile_module(&support::wat(
                    r#"(module (memory (export "memory") 1) (func (export "_start")))"#,
                ))
                .unwrap(),
            "precompiled",
        ),
        (
            support::wat(r#"(module (memory (export "memory") 2000) (func (export "_start")))"#),
            "initial memory",
        ),
    ];
    for (wasm, expect) in cases {
        match host.load_bytes("bad", &wasm, limits(), Grants::default()) {
            Err(FormatterError::InvalidModule { reason }) => {
                assert!(reason.contains(expect), "{expect}: {reason}")
            }
            Err(other) => panic!("{expect}: expected InvalidModule, got {other:?}"),
            Ok(_) => panic!("{expect}: loaded"),
        }
    }
}

/// A reactor with ABI v1's warm entry points: `_initialize` must have run (else status 7), the
/// request must be the host's (else status 3); it answers `null`, or `status` when non-zero.
fn reactor(status: i32) -> Vec<u8> {
    module(&format!(
        r#"(global $ready (mut i32) (i32.const 0))
           (data (i32.const 16) "null\n")
           (func (export "_initialize") (global.set $ready (i32.const 1)))
           (func (export "tidings_alloc_v1") (param i32) (result i32) (i32.const 4096))
           (func (export "tidings_format_v1") (param $ptr i32) (param $len i32) (result i32)
             (if (i32.eqz (global.get $ready)) (then (return (i32.const 7))))
             (if (i32.ne (i32.load8_u (local.get $ptr)) (i32.const 123))
               (then (return (i32.const 3))))
             (if (i32.ne (i32.const {status}) (i32.const 0)) (then (return (i32.const {status}))))
             (call $write (i32.const 1) (i32.const 16) (i32.const 5))
             (i32.const 0))"#
    ))
}

#[test]
fn a_reactor_with_the_warm_entry_points_runs_fresh_and_warm() {
    let _serial = serial();
    let host = support::shared_host();
    let mut f = host
        .load_bytes("reactor", &reactor(0), limits(), Grants::default())
        .unwrap();
    // Fresh: an instance per call, `_initialize`, then the entry points once.
    for _ in 0..2 {
        assert!(matches!(f.call(&request()), Ok(HookOutput::Message(None))));
    }
    f.set_instances(Instances::warm(1000)).unwrap();
    for _ in 0..3 {
        assert!(matches!(f.call(&request()), Ok(HookOutput::Message(None))));
    }
    let stats = f.warm_stats();
    assert_eq!((stats.created, stats.reused), (1, 2), "{stats:?}");
    // Its status is the call's exit status, fresh and warm.
    let mut failing = host
        .load_bytes("reactor", &reactor(5), limits(), Grants::default())
        .unwrap();
    for warm in [false, true] {
        if warm {
            failing.set_instances(Instances::warm(1000)).unwrap();
        }
        match failing.call(&request()) {
            Err(FormatterError::Exit { code: 5, .. }) => {}
            other => panic!("warm {warm}: {other:?}"),
        }
    }
}

#[test]
fn an_oversize_request_is_refused_before_the_guest_runs() {
    let _serial = serial();
    let f = support::shared_host()
        .load_bytes(
            "short",
            &std::fs::read(support::guest("short")).unwrap(),
            Limits {
                max_input: 1000,
                ..limits()
            },
            Grants::default(),
        )
        .unwrap();
    match f.call(&request()) {
        Err(FormatterError::InputTooLarge { size, limit: 1000 }) => assert!(size > 1000),
        other => panic!("expected InputTooLarge, got {other:?}"),
    }
}

/// Reads `<granted dir>/<path>` and prints it; exits 5 if it cannot be opened.
fn reader(path: &str) -> Vec<u8> {
    module(&format!(
        r#"                      (data (i32.const 1024) "{path}")
           (func (export "_start")
             (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const {len})
                   (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 2048))
               (then (call $proc_exit (i32.const 5))))
             ;; read up to 4 KiB into 8192 and print what was read
             (i32.store (i32.const 16) (i32.const 8192))
             (i32.store (i32.const 20) (i32.const 4096))
             (drop (call $fd_read (i32.load (i32.const 2048)) (i32.const 16) (i32.const 1) (i32.const 24)))
             (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 24))))"#,
        len = path.len()
    ))
}

#[test]
fn a_granted_directory_is_readable_and_cannot_be_escaped() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let granted = root.path().join("templates");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(
        granted.join("msg.json"),
        r#"{"body":"from a template","type":"plain"}"#,
    )
    .unwrap();
    std::fs::write(
        root.path().join("secret.json"),
        r#"{"body":"secret","type":"plain"}"#,
    )
    .unwrap();
    let grants = Grants {
        env: Vec::new(),
        dir: Some(granted),
    };
    let host = support::shared_host();
    let ok = host
        .load_bytes("reader", &reader("msg.json"), limits(), grants.clone())
        .unwrap();
    assert_eq!(
        ok.call(&request()).unwrap().to_json()["body"],
        "from a template"
    );

    let escape = host
        .load_bytes("escaper", &reader("../secret.json"), limits(), grants)
        .unwrap();
    match escape.call(&request()) {
        Err(FormatterError::Exit { code: 5, .. }) => {}
        other => panic!("escaping the granted directory must fail, got {other:?}"),
    }
}

#[test]
fn calls_beyond_the_concurrency_bound_wait_their_turn() {
    let _serial = serial();
    // One slot: two 100 ms spinners on two threads must run one after the other.
    let host = tidings::formatter::Host::new(tidings::formatter::HostOptions {
        concurrency: Some(1),
        ..Default::default()
    })
    .unwrap();
    let limits = Limits {
        timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let f = std::sync::Arc::new(
        host.load_bytes(
            "spin",
            &module(r#"(func (export "_start") (loop $l (br $l)))"#),
            limits,
            Grants::default(),
        )
        .unwrap(),
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || f.call(&request()).unwrap_err())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().kind(), "Timeout");
    }
    // A lower bound only: a busy machine can make this slower, never faster.
    assert!(
        started.elapsed() >= Duration::from_millis(195),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn one_slow_formatter_cannot_take_every_call_slot() {
    let _serial = serial();
    // One call of a formatter at a time, two of all formatters: while a spinner holds its slot
    // (and a second call of it waits for that slot), another formatter's call runs at once
    // instead of waiting for the spinner's deadline.
    let host = tidings::formatter::Host::new(tidings::formatter::HostOptions {
        concurrency: Some(1),
        ..Default::default()
    })
    .unwrap();
    let deadline = Duration::from_secs(3);
    let spin = std::sync::Arc::new(
        host.load_bytes(
            "spin",
            &module(r#"(func (export "_start") (loop $l (br $l)))"#),
            Limits {
                timeout: deadline,
                ..Limits::default()
            },
            Grants::default(),
        )
        .unwrap(),
    );
    let quick = host
        .load_bytes(
            "quick",
            &module(
                r#"(data (i32.const 16) "null")
                   (func (export "_start") (call $write (i32.const 1) (i32.const 16) (i32.const 4)))"#,
            ),
            limits(),
            Grants::default(),
        )
        .unwrap();
    let started = Instant::now();
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let f = spin.clone();
            std::thread::spawn(move || f.call(&request()).unwrap_err())
        })
        .collect();
    // Wait until the spinner holds its call slot (and so one of the host's).
    while spin.calls_in_progress() == 0 {
        assert!(started.elapsed() < deadline, "the spinner never started");
        std::thread::yield_now();
    }
    let asked = Instant::now();
    let answer = quick.call(&request());
    assert!(
        matches!(answer, Ok(tidings::formatter::HookOutput::Message(None))),
        "{answer:?}"
    );
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "another formatter's call waited {took:?} behind the spinner"
    );
    for t in spinners {
        assert_eq!(t.join().unwrap().kind(), "Timeout");
    }
    // The spinner's two calls ran one after the other (its own bound is one).
    assert!(started.elapsed() >= deadline * 2, "{:?}", started.elapsed());
}

#[test]
fn a_component_whose_format_has_another_signature_says_which_it_needs() {
    use tidings::formatter::{FormatterError, Grants, Instances, Limits, Request, WrapContext};
    // A wasi:cli/command whose `format` takes a string but returns a number.
    let wasm = support::wat(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "run") (result i32) i32.const 0)
    (func (export "format") (param i32 i32) (result i32) i32.const 7)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 64))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.12" (instance $cli))
  (func (export "format") (param "request" string) (result u32)
    (canon lift (core func $i "format") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc")))))"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.wasm");
    std::fs::write(&path, wasm).unwrap();
    let mut f = support::shared_host()
        .load("odd", &path, Limits::default(), Grants::default())
        .unwrap();
    f.set_instances(Instances::warm(1000)).unwrap();
    let request = Request::parse(
        &support::sample("failure-full.json"),
        None,
        &WrapContext::default(),
    )
    .unwrap();
    match f.call(&request) {
        Err(FormatterError::Trap { message, .. }) => assert!(
            message.contains("exports format with a signature other than")
                && message.contains("func(request: string) -> result<string, string>"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
}
