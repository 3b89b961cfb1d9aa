//! The repository's formatters under the real sandbox: their cases through `tidings test` (the
//! command a formatter author runs), the compiled-module cache, concurrent calls, `tidings
//! render`, and `tidings run` as the cargo runner for a formatter's own unit tests in wasm.

mod support;

use std::process::Command;
use std::sync::Arc;
use tidings::formatter::{Grants, Host, HostOptions, Limits, Origin, Request, WrapContext};
use tidings_guest::Hook;

fn tidings() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidings"));
    // Keep the user's cache out of tests.
    c.env(
        "TIDINGS_CACHE_DIR",
        support::target_dir().join("test-module-cache"),
    );
    c
}

/// `tidings test <formatter's wasm> --cases <cases>`.
fn tidings_test(formatter: &str, cases: &std::path::Path) -> std::process::Output {
    tidings()
        .arg("test")
        .arg(support::guest(formatter))
        .arg("--cases")
        .arg(cases)
        .output()
        .unwrap()
}

#[test]
fn every_formatter_passes_its_cases_under_tidings_test() {
    for name in support::FORMATTERS {
        let out = tidings_test(
            name,
            &support::repo().join("formatters").join(name).join("tests"),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        assert!(last.ends_with(" passed, 0 failed"), "{name}: {last}");
        let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
        assert!(passed >= 5, "{name}: only {passed} cases ran");
    }
}

#[test]
fn tidings_test_shows_a_diff_and_fails_on_a_wrong_expectation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("failing.input.json"),
        support::sample("failure-full.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("failing.expected.json"),
        r#"{"body": "STATUS: Success", "type": "plain"}"#,
    )
    .unwrap();
    let out = tidings_test("short", dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("-  \"body\": \"STATUS: Success\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("+  \"body\": \"STATUS: Failure\""),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("0 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn tidings_test_refuses_an_input_without_its_expected_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lonely.input.json"), "{}").unwrap();
    let out = tidings_test("short", dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lonely has no lonely.expected.json"));
}

#[test]
fn render_wraps_a_build_dict_and_reports_errors_by_kind() {
    let sample = support::repo().join("tests/data/buildbot/failure-full.json");
    let out = tidings()
        .args(["render", "--formatter"])
        .arg(support::guest("short"))
        .arg("--input")
        .arg(&sample)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"body": "STATUS: Failure", "type": "plain"})
    );

    // `--input -` reads the build from stdin.
    let mut child = tidings()
        .args(["render", "--input", "-", "--formatter"])
        .arg(support::guest("short"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&support::sample("success-full.json"))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["body"], "STATUS: Success");

    // A hook the formatter does not implement: the guest exits 1 and says so.
    let out = tidings()
        .args(["render", "--hook", "reviewCB", "--formatter"])
        .arg(support::guest("short"))
        .arg("--input")
        .arg(&sample)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: Exit: exit status 1"), "{err}");
    assert!(
        err.contains("does not implement the reviewCB hook"),
        "{err}"
    );

    // --repeat prints per-call figures on stderr.
    let out = tidings()
        .args(["render", "--repeat", "20", "--formatter"])
        .arg(support::guest("short"))
        .arg("--input")
        .arg(&sample)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("per-call: min=")
            && err.contains(" median=")
            && err.contains(" p99=")
            && err.contains(" peak_memory="),
        "{err}"
    );
}

#[test]
fn the_cache_is_used_and_a_corrupted_artifact_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory of its own: the cache creates it private (tempdir's own is 0755).
    let dir = tmp.path().join("cache");
    let wasm = std::fs::read(support::guest("short")).unwrap();
    let host = || {
        Host::new(HostOptions {
            cache_dir: Some(dir.clone()),
            concurrency: None,
            read_caches: Vec::new(),
            memory_keep_resident: None,
            compile_in: None,
        })
        .unwrap()
    };
    let load = |h: &Host| {
        h.load_bytes("short", &wasm, Limits::default(), Grants::default())
            .unwrap()
    };
    let call = call_short;

    let first = load(&host());
    assert_eq!(first.origin(), Origin::Compiled);
    // A new host (a restart) finds the artifact.
    let second = load(&host());
    assert_eq!(second.origin(), Origin::Cached);
    assert_eq!(call(&second), "STATUS: Failure");

    let artifact = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("an artifact was written");
    assert!(
        artifact
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(first.sha256())
    );

    // Damage is done in place, as a disk or a hand would: first let go of the modules that
    // map the file (tidings itself only ever replaces an artifact by renaming).
    drop((first, second));

    // Flip bytes in the middle of the artifact: detected, discarded, rebuilt.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&artifact, &bytes).unwrap();
    let third = load(&host());
    assert_eq!(third.origin(), Origin::Compiled);
    assert_eq!(call(&third), "STATUS: Failure");
    drop(third);
    assert_eq!(
        load(&host()).origin(),
        Origin::Cached,
        "the rebuilt artifact is used again"
    );
    // Without its checksum file an artifact is not trusted.
    let sum = artifact.with_extension("sum");
    std::fs::remove_file(&sum).unwrap();
    assert_eq!(load(&host()).origin(), Origin::Compiled);
    assert!(sum.exists(), "written again with the artifact");

    // A truncated artifact, and a file that is not ours at all.
    for damage in [bytes[..100].to_vec(), b"not an artifact".to_vec()] {
        std::fs::write(&artifact, damage).unwrap();
        let f = load(&host());
        assert_eq!(f.origin(), Origin::Compiled);
        assert_eq!(call(&f), "STATUS: Failure");
    }
}

#[test]
fn a_cache_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("modules");
    let wasm = std::fs::read(support::guest("short")).unwrap();
    let host = || {
        Host::new(HostOptions {
            cache_dir: Some(cache.clone()),
            ..HostOptions::default()
        })
        .unwrap()
    };
    let load = |h: &Host| {
        h.load_bytes("short", &wasm, Limits::default(), Grants::default())
            .unwrap()
            .origin()
    };
    assert_eq!(load(&host()), Origin::Compiled);
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the cache directory is created private");
    assert_eq!(load(&host()), Origin::Cached);
    // Opened to the group (say, by a careless chmod): its artifacts are no longer loaded.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o770)).unwrap();
    assert_eq!(load(&host()), Origin::Compiled);
    assert!(
        tidings::formatter::private_dir_problem(&cache)
            .unwrap()
            .contains("chmod 700")
    );
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(load(&host()), Origin::Cached);
}

#[test]
fn an_unwritable_cache_costs_a_compile_and_nothing_else() {
    // The cache directory cannot be created (its parent is a file): as on a full or read-only
    // disk, the write fails. The module must still load and answer; the failure is only logged.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let host = Host::new(HostOptions {
        cache_dir: Some(blocker.join("modules")),
        ..HostOptions::default()
    })
    .unwrap();
    let wasm = std::fs::read(support::guest("short")).unwrap();
    for _ in 0..2 {
        let f = host
            .load_bytes("short", &wasm, Limits::default(), Grants::default())
            .unwrap();
        assert_eq!(f.origin(), Origin::Compiled);
        let req = Request::parse(
            &support::sample("failure-full.json"),
            None,
            &WrapContext::default(),
        )
        .unwrap();
        assert_eq!(f.call(&req).unwrap().to_json()["body"], "STATUS: Failure");
    }
}

#[test]
fn concurrent_calls_give_the_sequential_outputs() {
    let samples = [
        "started-full.json",
        "success-full.json",
        "failure-full.json",
        "cancelled-full.json",
    ];
    let formatters: Vec<_> = ["short", "html-log-tail", "default-mail"]
        .iter()
        .map(|n| Arc::new(support::load(n)))
        .collect();
    let requests: Vec<Request> = samples
        .iter()
        .map(|s| Request::parse(&support::sample(s), None, &WrapContext::default()).unwrap())
        .collect();
    let sequential: Vec<Vec<serde_json::Value>> = formatters
        .iter()
        .map(|f| {
            requests
                .iter()
                .map(|r| f.call(r).unwrap().to_json())
                .collect()
        })
        .collect();

    let threads: Vec<_> = (0..8)
        .map(|t| {
            let formatters = formatters.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for i in 0..30 {
                    let (fi, ri) = ((t + i) % formatters.len(), (t * 7 + i) % requests.len());
                    seen.push((
                        fi,
                        ri,
                        formatters[fi].call(&requests[ri]).unwrap().to_json(),
                    ));
                }
                seen
            })
        })
        .collect();
    let mut calls = 0;
    for t in threads {
        for (fi, ri, out) in t.join().unwrap() {
            assert_eq!(out, sequential[fi][ri], "formatter {fi} on sample {ri}");
            calls += 1;
        }
    }
    assert_eq!(calls, 240);
}

#[test]
fn async_calls_run_off_the_runtime_workers() {
    let f = Arc::new(support::load("short"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let outs = rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let f = f.clone();
                let req = Request::parse(
                    &support::sample("success-full.json"),
                    Some(Hook::MessageFormatter),
                    &WrapContext::default(),
                )
                .unwrap();
                tokio::spawn(async move { f.call_async(req).await })
            })
            .collect();
        let mut outs = Vec::new();
        for t in tasks {
            outs.push(t.await.unwrap().unwrap().to_json());
        }
        outs
    });
    assert!(outs.iter().all(|o| o["body"] == "STATUS: Success"));
}

#[test]
fn tidings_run_is_a_cargo_runner_for_wasm_unit_tests() {
    // The formatters' own unit tests, compiled for wasm32-wasip1 and run by `tidings run`.
    let runner = format!("{} run", env!("CARGO_BIN_EXE_tidings"));
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(support::repo())
        .env("CARGO_TARGET_WASM32_WASIP1_RUNNER", runner)
        .args([
            "test",
            "--target",
            "wasm32-wasip1",
            "-p",
            "short",
            "-p",
            "gerrit",
            "--target-dir",
        ])
        .arg(support::target_dir().join("guest-build"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("short.wasm") || stderr.contains("short-"),
        "{stderr}"
    );
    assert!(
        stdout.contains("test tests::titles_the_result_name ... ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("test tests::retry_gets_no_review ... ok"),
        "{stdout}"
    );
}

/// `text` (WAT) built into `<dir>/<name>.wasm`.
fn wasm_file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let wasm = dir.path().join(format!("{name}.wasm"));
    std::fs::write(&wasm, support::wat(text)).unwrap();
    wasm
}

#[test]
fn tidings_run_says_a_reactor_runs_only_as_a_formatter() {
    // A reactor with the warm entry points is a formatter, but it has no main for `run`.
    let dir = tempfile::tempdir().unwrap();
    let wasm = wasm_file(
        &dir,
        "reactor",
        r#"(module
            (memory (export "memory") 1)
            (func (export "_initialize"))
            (func (export "tidings_alloc_v1") (param i32) (result i32) (i32.const 4096))
            (func (export "tidings_format_v1") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    let out = tidings().arg("run").arg(&wasm).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("a reactor (no _start) runs only as a formatter"),
        "{err}"
    );
}

#[test]
fn tidings_run_passes_exit_codes_and_grants_only_what_is_asked() {
    // Exits with the number of environment variables it can see.
    let dir = tempfile::tempdir().unwrap();
    let wasm = wasm_file(
        &dir,
        "envcount",
        r#"(module
            (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start")
              (drop (call $sizes (i32.const 0) (i32.const 4)))
              (call $exit (i32.add (i32.const 7) (i32.load (i32.const 0))))))"#,
    );
    // The host process has a secret in its environment; the guest must not see it.
    let out = tidings()
        .env("SECRET_TOKEN", "x")
        .arg("run")
        .arg(&wasm)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "no environment unless granted");
    let out = tidings()
        .args(["run", "--env", "A=1", "--env", "B=2"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(9),
        "exactly the two granted variables"
    );
}

/// Writes `toml` as `dir/name` and runs `tidings check --config` on it.
fn check_config(dir: &std::path::Path, name: &str, toml: &str) -> std::process::Output {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    tidings()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn a_module_compiled_by_render_or_check_is_not_compiled_again_by_serve() {
    use support::daemon::{Daemon, client};
    let dir = tempfile::tempdir().unwrap();
    let user_cache = dir.path().join("user-cache");
    std::fs::copy(support::guest("short"), dir.path().join("short.wasm")).unwrap();
    let sample = support::repo().join("tests/data/buildbot/failure-full.json");
    // Runs tidings with `cache` as the user's cache; it must succeed.
    let run = |cache: &std::path::Path, args: &[&std::ffi::OsStr]| {
        let out = tidings()
            .env("TIDINGS_CACHE_DIR", cache)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // `render` compiles into the user's cache.
    let wasm = dir.path().join("short.wasm");
    run(
        &user_cache,
        &[
            "render".as_ref(),
            "--formatter".as_ref(),
            wasm.as_os_str(),
            "--input".as_ref(),
            sample.as_os_str(),
        ],
    );
    let config = support::daemon::config(
        dir.path(),
        "[[formatter]]\nname = \"short\"\nmodule = \"short.wasm\"\n",
    );
    let loads = |daemon: &Daemon| {
        let m = client::get(&format!("{}/metrics", daemon.addr));
        m.lines()
            .filter(|l| l.starts_with("tidings_formatter_loads_total{"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let log = "warn,tidings::daemon=info,tidings::formatter=debug";
    {
        let daemon = Daemon::start_with(&config, log, &[("TIDINGS_CACHE_DIR", &user_cache)]);
        assert_eq!(
            loads(&daemon),
            ["tidings_formatter_loads_total{formatter=\"short\",origin=\"cached\"} 1"]
        );
        let text = daemon.log.contents();
        assert!(
            text.contains("compiled module taken from another tidings cache"),
            "{text}"
        );
    }
    // `check` compiles into the daemon's own cache (<data_dir>/modules): with another, empty
    // user cache, serve still compiles nothing.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let other = dir.path().join("other-cache");
    run(
        &other,
        &["check".as_ref(), "--config".as_ref(), config.as_os_str()],
    );
    let daemon = Daemon::start_with(&config, log, &[("TIDINGS_CACHE_DIR", &other)]);
    assert_eq!(
        loads(&daemon),
        ["tidings_formatter_loads_total{formatter=\"short\",origin=\"cached\"} 1"]
    );
    assert!(
        daemon.log.contents().contains("origin=Cached"),
        "{}",
        daemon.log.contents()
    );
    drop(daemon);
    // With neither cache, serve compiles: in a child process of its own executable.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let empty = dir.path().join("empty-cache");
    let daemon = Daemon::start_with(&config, log, &[("TIDINGS_CACHE_DIR", &empty)]);
    assert_eq!(
        loads(&daemon),
        ["tidings_formatter_loads_total{formatter=\"short\",origin=\"compiled\"} 1"]
    );
    let text = daemon.log.contents();
    assert!(text.contains("compiled in a child process"), "{text}");
}

#[test]
fn the_example_config_passes_check_as_it_is_in_a_clone() {
    // Its formatters are crates of this repository, which check builds; its data directory
    // (./tidings-data, ignored by git) holds the compiled modules afterwards.
    let out = tidings()
        .args(["check", "--config"])
        .arg(support::repo().join("tidings.example.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "formatter \"short\": messageFormatter ok",
        "formatter \"gerrit\": summaryCB ok",
        "tidings.example.toml is valid",
    ] {
        assert!(stdout.contains(line), "{line:?} not in {stdout}");
    }
}

#[test]
fn check_loads_and_calls_every_formatter_of_a_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(support::guest("short"), dir.path().join("short.wasm")).unwrap();
    std::fs::copy(support::guest("gerrit"), dir.path().join("gerrit.wasm")).unwrap();
    std::fs::write(
        dir.path().join("loop.wasm"),
        support::wat(
            r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#,
        ),
    )
    .unwrap();
    let out = check_config(
        dir.path(),
        "good.toml",
        r#"
[[formatter]]
name = "short"
module = "short.wasm"

[[formatter]]
name = "gerrit"
module = "gerrit.wasm"
hooks = ["reviewCB", "startCB", "summaryCB"]
"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("formatter \"gerrit\": summaryCB ok"),
        "{stdout}"
    );
    assert!(stdout.contains("good.toml is valid"), "{stdout}");

    // A reporter that names a formatter that does not exist: refused before anything loads.
    let out = check_config(
        dir.path(),
        "dangling.toml",
        "[[reporter.http_push]]\nname = \"p\"\nserver_url = \"http://127.0.0.1:9/\"\nmessage_formatter = \"shrot\"\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("message_formatter \"shrot\" is not a [[formatter]] name"),
        "{err}"
    );

    let out = check_config(
        dir.path(),
        "bad.toml",
        r#"
[[formatter]]
name = "spinner"
module = "loop.wasm"
timeout = "50ms"

[[formatter]]
name = "missing"
module = "nowhere.wasm"
"#,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("formatter \"spinner\": messageFormatter on the sample build: Timeout"),
        "{err}"
    );
    assert!(
        err.contains("formatter \"missing\"") && err.contains("InvalidModule"),
        "{err}"
    );
    assert!(err.contains("2 problem(s)"), "{err}");

    let out = check_config(
        dir.path(),
        "typo.toml",
        "[[formatter]]\nname = \"s\"\nmodule = \"short.wasm\"\ntimeuot_ms = 5\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("timeuot_ms") && err.contains("line 4"),
        "{err}"
    );
}

/// A host that compiles in children of `executable` (as `tidings serve` does with itself),
/// stopping them after `time_limit`, with a cache in `cache`.
fn child_host(
    executable: &std::path::Path,
    time_limit: std::time::Duration,
    cache: Option<&std::path::Path>,
) -> Host {
    Host::new(HostOptions {
        cache_dir: cache.map(std::path::Path::to_path_buf),
        compile_in: Some(tidings::formatter::ChildCompiler {
            executable: executable.to_path_buf(),
            time_limit,
        }),
        ..HostOptions::default()
    })
    .unwrap()
}

/// `short` called on the failing sample: its body.
fn call_short(f: &tidings::formatter::Formatter) -> serde_json::Value {
    let req = Request::parse(
        &support::sample("failure-full.json"),
        None,
        &WrapContext::default(),
    )
    .unwrap();
    f.call(&req).unwrap().to_json()["body"].clone()
}

#[test]
fn modules_and_components_compiled_in_a_child_load_into_the_host_and_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_tidings"));
    let limit = std::time::Duration::from_secs(300);
    for path in [support::guest("short"), support::component("short")] {
        let wasm = std::fs::read(&path).unwrap();
        // Without a cache: the child's artifact is deserialized as it comes.
        let f = child_host(exe, limit, None)
            .load_bytes("short", &wasm, Limits::default(), Grants::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(f.origin(), Origin::Compiled);
        assert_eq!(call_short(&f), "STATUS: Failure");
        // With one: stored, and then taken by a host that compiles in-process (the same
        // settings, or wasmtime would refuse it and the second load would compile again).
        let f = child_host(exe, limit, Some(&cache))
            .load_bytes("short", &wasm, Limits::default(), Grants::default())
            .unwrap();
        assert_eq!(f.origin(), Origin::Compiled);
        let in_process = Host::new(HostOptions {
            cache_dir: Some(cache.clone()),
            ..HostOptions::default()
        })
        .unwrap();
        let f = in_process
            .load_bytes("short", &wasm, Limits::default(), Grants::default())
            .unwrap();
        assert_eq!(f.origin(), Origin::Cached);
        assert_eq!(call_short(&f), "STATUS: Failure");
    }
}

#[test]
fn a_module_that_does_not_compile_in_a_child_says_what_wasmtime_says() {
    // Valid as text, invalid as WebAssembly: `i32.add` with nothing on the stack.
    let wasm = support::wat(
        r#"(module (memory (export "memory") 1) (func (export "_start") i32.add drop))"#,
    );
    let reason =
        |host: &Host| match host.load_bytes("bad", &wasm, Limits::default(), Grants::default()) {
            Err(tidings::formatter::FormatterError::InvalidModule { reason }) => reason,
            Err(other) => panic!("expected InvalidModule, got {other:?}"),
            Ok(_) => panic!("loaded"),
        };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_tidings"));
    let in_child = reason(&child_host(exe, std::time::Duration::from_secs(60), None));
    assert!(in_child.starts_with("does not compile: "), "{in_child}");
    assert!(in_child.contains("type mismatch"), "{in_child}");
    assert_eq!(in_child, reason(&support::host()));
}

/// A stand-in for the compiler: a shell script in `dir` with `body`.
fn fake_compiler(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_compiler_child_that_hangs_crashes_or_babbles_fails_only_that_load_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(support::guest("short")).unwrap();
    let pid_file = dir.path().join("pid");
    let cases = [
        (
            // Reads nothing and never answers: killed at the time limit.
            format!("echo $$ > {}\nexec sleep 60", pid_file.display()),
            "compiling took longer than 1 s and was stopped",
        ),
        (
            "cat > /dev/null\nkill -SEGV $$".to_owned(),
            "the compiler process failed (signal 11: a crash)",
        ),
        (
            "cat > /dev/null\nkill -KILL $$".to_owned(),
            "signal 9: killed, perhaps by the kernel for want of memory",
        ),
        (
            "cat > /dev/null\necho 'Cranelift gave up' >&2\nexit 1".to_owned(),
            "does not compile: Cranelift gave up",
        ),
        (
            "cat > /dev/null\necho 'hello'".to_owned(),
            "does not speak the compile protocol",
        ),
        (
            // The right start, then less than it announced.
            "cat > /dev/null\nprintf 'tidingsA\\377\\000\\000\\000\\000\\000\\000\\000abc'"
                .to_owned(),
            "3 of 255 bytes",
        ),
        (
            "exit 7".to_owned(),
            "the compiler process failed (exit status 7",
        ),
        (
            // None of the daemon's environment (HOME stands for its secrets), its working
            // directory, or core files.
            "cat > /dev/null\necho \"home=[$HOME] cwd=$(pwd) core=$(ulimit -c)\" >&2\nexit 1"
                .to_owned(),
            "does not compile: home=[] cwd=/ core=0",
        ),
    ];
    for (i, (body, expect)) in cases.iter().enumerate() {
        let exe = fake_compiler(dir.path(), &format!("compiler-{i}"), body);
        let host = child_host(&exe, std::time::Duration::from_secs(1), None);
        let started = std::time::Instant::now();
        match host.load_bytes("short", &wasm, Limits::default(), Grants::default()) {
            Err(tidings::formatter::FormatterError::InvalidModule { reason }) => {
                assert!(reason.contains(expect), "{body}: {reason}")
            }
            Err(other) => panic!("{body}: expected InvalidModule, got {other:?}"),
            Ok(_) => panic!("{body}: loaded"),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{body}: took {:?}",
            started.elapsed()
        );
    }
    // The hanging child was killed and reaped, not left behind.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the compiler child {pid} is still there"
    );
}

#[test]
fn a_compiler_that_cannot_be_started_leaves_the_compile_to_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = child_host(
        &dir.path().join("no-such-tidings"),
        std::time::Duration::from_secs(60),
        None,
    );
    let wasm = std::fs::read(support::guest("short")).unwrap();
    let f = host
        .load_bytes("short", &wasm, Limits::default(), Grants::default())
        .unwrap();
    assert_eq!(f.origin(), Origin::Compiled);
    assert_eq!(call_short(&f), "STATUS: Failure");
}

#[test]
fn check_compiles_in_a_child_as_serve_does() {
    let dir = tempfile::tempdir().unwrap();
    // A module no cache has seen: its answer names this directory.
    let body = format!(
        r#"{{"body":"checked in {}","type":"plain","subject":"s"}}"#,
        dir.path().display()
    );
    std::fs::write(
        dir.path().join("fresh.wasm"),
        support::constant_formatter(&body),
    )
    .unwrap();
    let config = dir.path().join("fresh.toml");
    std::fs::write(
        &config,
        "[[formatter]]\nname = \"fresh\"\nmodule = \"fresh.wasm\"\n",
    )
    .unwrap();
    let out = tidings()
        .env("TIDINGS_LOG", "warn,tidings::formatter=debug")
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("compiled in a child process"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("formatter \"fresh\": messageFormatter ok"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
