//! Warm instances (`instances = "warm"`): one instance answers many calls through the warm
//! entry points (`tidings_alloc_v1`, `tidings_format_v1`), and whatever goes wrong in one of
//! them — a trap, a memory limit, a timeout, an error — is contained: counted, the instance
//! discarded, the next call answered by a new one. The hostile guests are WAT, so what they do
//! on which call is exact; the Rust SDK's warm export is checked on the real `short`.

mod support;

use std::process::Command;
use std::time::Duration;
use tidings::formatter::{
    Formatter, FormatterError, Grants, Instances, Limits, Request, WarmStats, WrapContext,
};
use tidings_guest::Hook;

/// A warm-capable guest that counts its calls in a global and answers `call <n>` (n < 10).
/// `_start` (a fresh instance's whole life) does the same once. `on_call` is WAT run at the
/// start of each call, after the count is updated (the count is in `$n`).
fn counting_guest(on_call: &str) -> Vec<u8> {
    let out = r#"{"body":"call ?","type":"plain"}"#;
    let digit_at = 1024 + out.find('?').unwrap();
    support::wat(&format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 1024) "{escaped}")
  (func $answer (result i32) (local $n i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (local.set $n (global.get $calls))
    {on_call}
    (i32.store8 (i32.const {digit_at}) (i32.add (i32.const 48) (local.get $n)))
    (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.const 0))
  (func (export "_start") (drop (call $answer)))
  (func (export "tidings_alloc_v1") (param i32) (result i32) (i32.const 65536))
  (func (export "tidings_format_v1") (param i32 i32) (result i32) (call $answer)))"#,
        escaped = out.replace('"', "\\\""),
        len = out.len(),
    ))
}

fn load(wasm: &[u8], limits: Limits, max_calls: u32) -> Formatter {
    let mut f = support::shared_host()
        .load_bytes("warm", wasm, limits, Grants::default())
        .unwrap();
    f.set_instances(Instances::warm(max_calls)).unwrap();
    f
}

fn request() -> Request {
    Request::parse(
        br#"{"results": 2}"#,
        Some(Hook::MessageFormatter),
        &WrapContext::default(),
    )
    .unwrap()
}

/// The body of a call, or its error.
fn body(f: &Formatter) -> Result<String, FormatterError> {
    f.call(&request()).map(|out| {
        out.to_json()["body"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
}

fn bodies(f: &Formatter, n: usize) -> Vec<String> {
    (0..n).map(|_| body(f).unwrap()).collect()
}

fn stats(created: u64, reused: u64, discarded: u64) -> WarmStats {
    WarmStats {
        created,
        reused,
        discarded,
        retired: 0,
    }
}

#[test]
fn a_warm_instance_answers_many_calls_and_max_calls_replaces_it() {
    let wasm = counting_guest("");
    // Fresh: every call starts from nothing.
    let fresh = support::shared_host()
        .load_bytes("fresh", &wasm, Limits::default(), Grants::default())
        .unwrap();
    assert!(fresh.supports_warm());
    assert_eq!(bodies(&fresh, 3), ["call 1", "call 1", "call 1"]);
    // Warm: one instance, its global kept between calls.
    let warm = load(&wasm, Limits::default(), 1000);
    assert_eq!(bodies(&warm, 3), ["call 1", "call 2", "call 3"]);
    assert_eq!(warm.warm_stats(), stats(1, 2, 0));
    // At most max_calls calls per instance, then a new one.
    let warm = load(&wasm, Limits::default(), 2);
    assert_eq!(
        bodies(&warm, 5),
        ["call 1", "call 2", "call 1", "call 2", "call 1"]
    );
    assert_eq!(warm.warm_stats(), stats(3, 2, 0));
}

#[test]
fn a_trap_on_the_third_call_is_contained_and_the_next_call_is_answered() {
    let wasm = counting_guest("(if (i32.eq (local.get $n) (i32.const 3)) (then unreachable))");
    let warm = load(&wasm, Limits::default(), 1000);
    assert_eq!(bodies(&warm, 2), ["call 1", "call 2"]);
    let e = body(&warm).unwrap_err();
    assert!(matches!(e, FormatterError::Trap { .. }), "{e:?}");
    // A new instance: its count starts again.
    assert_eq!(bodies(&warm, 2), ["call 1", "call 2"]);
    assert_eq!(warm.warm_stats(), stats(2, 3, 1));
}

#[test]
fn a_guest_that_grows_its_memory_every_call_meets_the_limit_and_is_replaced() {
    // 4 pages to start, one more per call; the limit is 8 pages (512 KiB): calls 1-4 fit.
    let wasm = counting_guest("(drop (memory.grow (i32.const 1)))");
    let limits = Limits {
        memory: 8 << 16,
        ..Limits::default()
    };
    let warm = load(&wasm, limits, 1000);
    assert_eq!(bodies(&warm, 4), ["call 1", "call 2", "call 3", "call 4"]);
    let e = body(&warm).unwrap_err();
    assert!(matches!(e, FormatterError::MemoryLimit { .. }), "{e:?}");
    assert_eq!(bodies(&warm, 2), ["call 1", "call 2"]);
    assert_eq!(warm.warm_stats().discarded, 1);
}

#[test]
fn a_warm_call_that_runs_past_its_deadline_is_stopped_and_the_instance_replaced() {
    let wasm =
        counting_guest("(if (i32.eq (local.get $n) (i32.const 2)) (then (loop $l (br $l))))");
    let limits = Limits {
        timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let warm = load(&wasm, limits, 1000);
    assert_eq!(body(&warm).unwrap(), "call 1");
    let e = body(&warm).unwrap_err();
    assert!(matches!(e, FormatterError::Timeout { .. }), "{e:?}");
    // The deadline is per call: a new instance answers at once.
    assert_eq!(body(&warm).unwrap(), "call 1");
    assert_eq!(warm.warm_stats(), stats(2, 1, 1));
}

#[test]
fn a_warm_instance_idle_longer_than_max_idle_is_dropped_and_the_next_call_makes_a_new_one() {
    let wasm = counting_guest("");
    let mut warm = support::shared_host()
        .load_bytes("idle", &wasm, Limits::default(), Grants::default())
        .unwrap();
    warm.set_instances(Instances::Warm {
        max_calls: 1000,
        max_idle: Duration::from_millis(500),
    })
    .unwrap();
    assert_eq!(bodies(&warm, 2), ["call 1", "call 2"]);
    // The epoch ticker looks every second: within a few, the idle instance is gone.
    support::daemon::wait_until("the idle instance retired", Duration::from_secs(30), || {
        warm.warm_stats().retired > 0
    });
    // A new instance answers: its count starts again.
    assert_eq!(body(&warm).unwrap(), "call 1");
    assert_eq!(
        warm.warm_stats(),
        WarmStats {
            retired: 1,
            ..stats(2, 1, 0)
        }
    );
}

#[test]
fn a_module_without_the_warm_entry_points_runs_fresh_and_says_why_not_warm() {
    let wasm = support::constant_formatter(r#"{"body":"x","type":"plain"}"#);
    let mut f = support::shared_host()
        .load_bytes("plain", &wasm, Limits::default(), Grants::default())
        .unwrap();
    assert!(!f.supports_warm());
    let e = f
        .set_instances(Instances::warm(10))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tidings_format_v1") && e.contains("instances = \"fresh\""),
        "{e}"
    );
    assert_eq!(f.instances(), Instances::Fresh);

    // And in a config: `tidings check` names the formatter and the reason.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain.wasm"), &wasm).unwrap();
    std::fs::write(
        dir.path().join("tidings.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n\
         [[formatter]]\nname = \"plain\"\nmodule = \"plain.wasm\"\ninstances = \"warm\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["check", "--config"])
        .arg(dir.path().join("tidings.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("formatter \"plain\"") && err.contains("cannot run warm"),
        "{err}"
    );
}

#[test]
fn the_rust_sdk_answers_warm_as_it_answers_fresh_and_an_error_costs_only_its_instance() {
    let wasm = std::fs::read(support::guest("short")).unwrap();
    let sample = support::sample("failure-full.json");
    let ctx = WrapContext::default();
    let message = Request::parse(&sample, Some(Hook::MessageFormatter), &ctx).unwrap();
    let review = Request::parse(&sample, Some(Hook::ReviewCb), &ctx).unwrap();
    let fresh = support::shared_host()
        .load_bytes("short", &wasm, Limits::default(), Grants::default())
        .unwrap();
    assert!(fresh.supports_warm(), "main! exports the warm entry points");
    let warm = load(&wasm, Limits::default(), 1000);
    let expected = fresh.call(&message).unwrap().to_json();
    for _ in 0..3 {
        assert_eq!(warm.call(&message).unwrap().to_json(), expected);
    }
    // A hook short does not serve: exit status 1 with the SDK's sentence, as fresh.
    let e = warm.call(&review).unwrap_err().to_string();
    assert!(e.contains("does not implement the reviewCB hook"), "{e}");
    assert_eq!(warm.call(&message).unwrap().to_json(), expected);
    assert_eq!(warm.warm_stats(), stats(2, 3, 1));
}

#[test]
fn tidings_test_finds_a_case_that_depends_on_an_earlier_call() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("counting.wasm");
    std::fs::write(&wasm, counting_guest("")).unwrap();
    let cases = dir.path().join("tests");
    std::fs::create_dir(&cases).unwrap();
    for name in ["a", "b"] {
        std::fs::write(
            cases.join(format!("{name}.input.json")),
            r#"{"results": 2}"#,
        )
        .unwrap();
        std::fs::write(
            cases.join(format!("{name}.expected.json")),
            r#"{"body": "call 1", "type": "plain"}"#,
        )
        .unwrap();
    }
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("test")
            .arg(&wasm)
            .args(extra)
            .env("TIDINGS_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, report) = run(&[]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("ok   a (fresh and warm)"), "{report}");
    assert!(
        report.contains("FAIL b (warm): passes in a fresh instance, not in a warm one")
            && report.contains("+  \"body\": \"call 2\""),
        "{report}"
    );
    assert!(report.contains("1 passed, 1 failed"), "{report}");
    // Fresh only: both pass.
    let (code, report) = run(&["--instances", "fresh"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("ok   b\n"), "{report}");
}
