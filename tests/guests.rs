//! Formatters in other languages than Rust (C, Zig, Go, AssemblyScript, JavaScript, Python), built by
//! `guest-sdk/build.sh` (which installs the toolchain when it is missing) and run under the
//! sandbox against the *same* cases as the Rust `short` (formatters/short/tests).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The C build, once per test binary (tests run in parallel and would write the same files).
fn build_c() -> PathBuf {
    static C: OnceLock<PathBuf> = OnceLock::new();
    C.get_or_init(|| build("c")).clone()
}

/// Builds `lang`'s short formatter; returns the `.wasm`.
fn build(lang: &str) -> PathBuf {
    build_sh(lang, None)
}

/// Builds `tests/guests/<lang>/<app>` with the language's SDK (`guest-sdk/build.sh LANG APP`).
fn build_app(lang: &str, app: &str) -> PathBuf {
    build_sh(
        lang,
        Some(&support::repo().join("tests/guests").join(lang).join(app)),
    )
}

/// `guest-sdk/build.sh LANG [APP]`; returns the `.wasm` it printed.
fn build_sh(lang: &str, app: Option<&std::path::Path>) -> PathBuf {
    let out = Command::new(support::repo().join("guest-sdk/build.sh"))
        .arg(lang)
        .args(app)
        .env("CARGO_TARGET_DIR", support::target_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "guest-sdk/build.sh {lang} {app:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn tidings(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .env(
            "TIDINGS_CACHE_DIR",
            support::target_dir().join("test-module-cache"),
        )
        .output()
        .unwrap()
}

/// Runs `tidings test wasm --cases <cases>`, checks that all `n` cases pass, and returns what
/// it printed.
fn passes(wasm: &std::path::Path, cases: &str, n: usize) -> String {
    let cases = support::repo().join(cases);
    let out = tidings(&[
        "test".as_ref(),
        wasm.as_os_str(),
        "--cases".as_ref(),
        cases.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        wasm.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("{n} passed, 0 failed")),
        "{stdout}"
    );
    stdout.into_owned()
}

/// The shared cases of `short`.
const SHORT: &str = "formatters/short/tests";

#[test]
fn the_c_short_passes_the_rust_shorts_cases() {
    let stdout = passes(&build_c(), SHORT, 5);
    // tidings.h's warm entry points: every case again in one warm instance.
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 5, "{stdout}");
}

#[test]
fn the_c_sdk_json_reader_passes_its_own_tests() {
    let wasm = build_c().with_file_name("tidings-h-test.wasm");
    let out = tidings(&["run".as_ref(), wasm.as_os_str()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
}

#[test]
fn the_go_short_and_html_log_tail_pass_the_rust_formatters_cases() {
    // build.sh also runs the Go SDK's own tests (go vet, go test) natively.
    let wasm = build("go");
    // Reactors (-buildmode=c-shared) with the warm entry points: every case fresh, then again
    // in one warm instance.
    let stdout = passes(&wasm, SHORT, 5);
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 5, "{stdout}");
    // The larger example: the Rust html-log-tail's HTML mail, character for character.
    let stdout = passes(
        &wasm.with_file_name("html-log-tail-go.wasm"),
        "formatters/html-log-tail/tests",
        6,
    );
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 6, "{stdout}");
}

#[test]
fn a_component_runs_the_same_cases_and_its_compilation_is_cached() {
    // The Rust `short` built for wasm32-wasip2 is a wasi:cli/command component that also
    // exports `format` (the SDK's `main!`): every case fresh, then in one warm instance.
    let wasm = support::component("short");
    let stdout = passes(&wasm, SHORT, 5);
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 5, "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let host = |_| {
        tidings::formatter::Host::new(tidings::formatter::HostOptions {
            cache_dir: Some(dir.path().join("cache")),
            ..Default::default()
        })
        .unwrap()
    };
    let load = |h: &tidings::formatter::Host| {
        h.load(
            "short",
            &wasm,
            tidings::formatter::Limits::default(),
            tidings::formatter::Grants::default(),
        )
        .unwrap()
        .origin()
    };
    assert_eq!(load(&host(1)), tidings::formatter::Origin::Compiled);
    assert_eq!(load(&host(2)), tidings::formatter::Origin::Cached);
}

#[test]
fn the_javascript_short_component_passes_the_rust_shorts_cases() {
    // It exports `format` (the world tidings:formatter/warm): every case fresh, then again in
    // one warm instance, through `format`. componentize-qjs (npm) builds a WASI preview 2
    // component; tidings runs it like a module.
    let stdout = passes(&build("javascript"), SHORT, 5);
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 5, "{stdout}");
}

#[test]
fn the_python_short_component_passes_the_rust_shorts_cases() {
    // componentize-py (PyPI) builds a WASI preview 2 component with CPython inside; it
    // defines `WitWorld` (the world tidings:formatter/warm): every case fresh, then warm.
    let stdout = passes(&build("python"), SHORT, 5);
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 5, "{stdout}");
}

#[test]
fn the_assemblyscript_short_passes_the_rust_shorts_cases() {
    // A reactor (it re-exports the warm entry points): every case fresh, then in one instance.
    let stdout = passes(&build("assemblyscript"), SHORT, 5);
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 5, "{stdout}");
}

#[test]
fn the_zig_short_passes_the_rust_shorts_cases() {
    // build.sh also runs the Zig SDK's own tests (zig test) natively.
    let stdout = passes(&build("zig"), SHORT, 5);
    // tidings.zig's warm entry points: every case again in one warm instance.
    assert_eq!(stdout.matches(" (fresh and warm)").count(), 5, "{stdout}");
}

#[test]
fn a_zig_formatter_runs_warm_and_an_error_costs_only_its_instance() {
    let f = warm_app_that_fails_a_failing_build(tidings::project::Language::Zig, "fails.zig");
    assert_eq!(warm_counts(&f), (2, 2, 1));
}

/// `tests/guests/<lang>/<app>` built as its author builds it (`tidings new`, the app, `tidings
/// build`) and loaded warm. It answers the success sample twice from one instance (`success
/// (call N)`), fails the failing one (status 1, `BuildFailed` on stderr), and then answers
/// from a new instance, which counts from 1 again.
fn warm_app_that_fails_a_failing_build(
    lang: tidings::project::Language,
    app: &str,
) -> tidings::formatter::Formatter {
    use tidings::formatter::FormatterError;
    let project = project_app(lang, app);
    let f = loaded_warm(&tidings::project::build(&project.path().join("p")).unwrap());
    let success = request("success-full.json", None);
    assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
    assert_eq!(body(f.call(&success).unwrap()), "success (call 2)");
    match f.call(&request("failure-full.json", None)) {
        Err(FormatterError::Exit {
            code: 1,
            stderr_tail,
        }) => assert!(stderr_tail.contains("BuildFailed"), "{stderr_tail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
    f
}

/// A warm formatter's instances so far: (created, reused, discarded).
fn warm_counts(f: &tidings::formatter::Formatter) -> (u64, u64, u64) {
    let s = f.warm_stats();
    (s.created, s.reused, s.discarded)
}

/// The formatter `wasm`, which can run warm and prefers to, loaded to run warm.
fn loaded_warm(wasm: &std::path::Path) -> tidings::formatter::Formatter {
    use tidings::formatter::{Grants, Instances, Limits};
    let mut f = support::shared_host()
        .load("warm", wasm, Limits::default(), Grants::default())
        .unwrap();
    assert!(f.prefers_warm());
    f.set_instances(Instances::warm(1000)).unwrap();
    f
}

/// The messageFormatter request for a sample build, its `results` replaced when given.
fn request(sample: &str, results: Option<i64>) -> tidings::formatter::Request {
    let mut build: serde_json::Value = serde_json::from_slice(&support::sample(sample)).unwrap();
    if let Some(r) = results {
        build["results"] = r.into();
    }
    tidings::formatter::Request::parse(
        &serde_json::to_vec(&build).unwrap(),
        None,
        &tidings::formatter::WrapContext::default(),
    )
    .unwrap()
}

/// Checks that a call ended with exit status `code` and a stderr whose last line ends `last`.
fn exits_saying(
    result: Result<tidings::formatter::HookOutput, tidings::formatter::FormatterError>,
    code: i32,
    last: &str,
) {
    match result {
        Err(tidings::formatter::FormatterError::Exit {
            code: c,
            stderr_tail,
        }) if c == code => assert!(stderr_tail.trim_end().ends_with(last), "{stderr_tail}"),
        other => panic!("expected exit status {code}: {other:?}"),
    }
}

/// The body of a message a call answered.
fn body(out: tidings::formatter::HookOutput) -> String {
    out.to_json()["body"].as_str().unwrap().to_owned()
}

#[test]
fn a_go_formatter_runs_warm_and_an_error_exit_or_panic_costs_only_its_instance() {
    use tidings::formatter::FormatterError;
    // A reactor (`tidings build` passes -buildmode=c-shared).
    let f = warm_app_that_fails_a_failing_build(tidings::project::Language::Go, "fails.go");
    let success = request("success-full.json", None);
    match f.call(&request("started-full.json", None)) {
        Err(FormatterError::Exit { code: 3, .. }) => {}
        other => panic!("os.Exit(3): {other:?}"),
    }
    assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
    exits_saying(
        f.call(&request("success-full.json", Some(4))),
        2,
        "panic: an exception, and a panic (main.go:32, in main.main.func1)",
    );
    assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
    assert_eq!(warm_counts(&f), (4, 4, 3));
}

#[test]
fn an_assemblyscript_reactor_that_gives_no_formatter_fails_each_call_saying_so() {
    let project = project_app(tidings::project::Language::AssemblyScript, "nohandler.ts");
    let wasm = tidings::project::build(&project.path().join("p")).unwrap();
    for instances in ["fresh", "warm"] {
        let sample = support::repo().join("tests/data/buildbot/failure-full.json");
        let out = render(&wasm, &sample, &["--instances", instances]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{instances}: {err}");
        assert!(
            err.contains("exit status 1")
                && err.contains("no formatter: pass your code to messageFormatter"),
            "{instances}: {err}"
        );
    }
}

#[test]
fn check_compiles_components_into_the_daemons_cache() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(support::component("short"), dir.path().join("short.wasm")).unwrap();
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        "[server]\ndata_dir = \"data\"\n\n[[formatter]]\nname = \"short\"\nmodule = \"short.wasm\"\n",
    )
    .unwrap();
    let out = tidings(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("data/modules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
}

/// `tidings render` of `wasm` on the failing sample.
fn render_sample(wasm: &std::path::Path) -> std::process::Output {
    let sample = support::repo().join("tests/data/buildbot/failure-full.json");
    render(wasm, &sample, &[])
}

/// `tidings render --formatter wasm --input input`, then `more` arguments.
fn render(wasm: &std::path::Path, input: &std::path::Path, more: &[&str]) -> std::process::Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "render".as_ref(),
        "--formatter".as_ref(),
        wasm.as_os_str(),
        "--input".as_ref(),
        input.as_os_str(),
    ];
    args.extend(more.iter().map(|a| std::ffi::OsStr::new(*a)));
    tidings(&args)
}

/// [`render_sample`] of a formatter that fails: its stderr (the error).
fn render_error(wasm: &std::path::Path) -> String {
    let out = render_sample(wasm);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_python_exception_arrives_with_its_file_and_line() {
    let err = render_error(&build_app("python", "raises.py"));
    // An exit with the traceback, not a trap; the last frame said in the last line.
    assert!(
        err.contains("error: Exit: exit status 1; stderr: Traceback"),
        "{err}"
    );
    assert!(err.contains("line 12, in format"), "{err}");
    assert!(
        err.trim_end()
            .ends_with("KeyError: 'buildUrl' (raises.py, line 8, in link)"),
        "{err}"
    );
    assert!(
        !err.contains("tidings.py"),
        "the SDK's own frames are left out: {err}"
    );
    // Raised in `Run.run`, outside the hook wrapper: the same report, not a runtime panic.
    let err = render_error(&build_app("python", "raises_in_run.py"));
    assert!(
        err.contains("error: Exit: exit status 1; stderr: Traceback"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "no runtime panic: {err}");
    assert!(
        err.trim_end()
            .ends_with("KeyError: 'branch' (raises_in_run.py, line 10, in run)"),
        "{err}"
    );
}

#[test]
fn a_javascript_exception_arrives_with_its_file_and_line() {
    let err = render_error(&build_app("javascript", "raises.js"));
    assert!(err.contains("error: Exit: exit status 1; stderr:"), "{err}");
    assert!(!err.contains("panicked"), "no runtime panic: {err}");
    assert!(err.contains("at link ("), "{err}");
    assert!(
        err.trim_end()
            .ends_with("TypeError: cannot read property 'href' of undefined (raises.js:6:10)"),
        "{err}"
    );
}

/// A project made by `tidings new LANG` (in a temporary directory, `<tmp>/p`) whose formatter is
/// `tests/guests/<lang>/<app>`: render and test build it first.
fn project_app(lang: tidings::project::Language, app: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let out = tidings(&["new".as_ref(), lang.name().as_ref(), dir.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        support::repo()
            .join("tests/guests")
            .join(lang.name())
            .join(app),
        dir.join(lang.source()),
    )
    .unwrap();
    tmp
}

#[test]
fn every_sdks_helpers_agree_with_the_rust_sdk() {
    // What the helpers should say of the failing sample, from the Rust SDK's own types.
    let text =
        std::fs::read_to_string(support::repo().join("tests/data/buildbot/failure-full.json"))
            .unwrap();
    let build: tidings_guest::Build = serde_json::from_str(&text).unwrap();
    let failed: Vec<&tidings_guest::build::Step> = build
        .steps()
        .iter()
        .filter(|s| matches!(s.results, Some(2 | 4)))
        .collect();
    let names: Vec<String> = failed
        .iter()
        .map(|s| {
            let name = tidings_guest::Results::from_code(s.results.unwrap())
                .unwrap()
                .name();
            format!("{} ({name})", s.name)
        })
        .collect();
    let log = &failed.last().unwrap().logs[0];
    let lines: Vec<&str> = log
        .content
        .as_ref()
        .unwrap()
        .lines(log.log_type.as_deref() == Some("s"))
        .collect();
    let expected = format!(
        "{} steps; failed: {}\n{}",
        build.steps().len(),
        names.join(", "),
        lines[lines.len() - 2..].join("\n")
    );
    let check = |lang: &str, out: std::process::Output| {
        assert!(
            out.status.success(),
            "{lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["body"], expected.as_str(), "{lang}");
    };
    for (lang, app) in [("python", "helpers.py"), ("javascript", "helpers.js")] {
        check(lang, render_sample(&build_app(lang, app)));
    }
    // Zig and AssemblyScript, built as their authors build them: `tidings new`, then render.
    use tidings::project::Language;
    for (lang, app) in [
        (Language::Zig, "helpers.zig"),
        (Language::AssemblyScript, "helpers.ts"),
    ] {
        let project = project_app(lang, app);
        check(lang.name(), render_sample(&project.path().join("p")));
    }
}

#[test]
fn text_outside_ascii_crosses_the_javascript_sdk_unchanged() {
    let wasm = build_app("javascript", "echo.js");
    let dir = tempfile::tempdir().unwrap();
    let mut build: serde_json::Value = serde_json::from_slice(
        &std::fs::read(support::repo().join("tests/data/buildbot/failure-full.json")).unwrap(),
    )
    .unwrap();
    // ASCII, Latin-1, a 3-byte CJK sequence, an emoji (a surrogate pair in JavaScript), a
    // character JSON escapes, and one long enough to cross the SDK's 4096-unit slices; echo.js
    // adds a lone surrogate, which must arrive as U+FFFD.
    let said = format!(
        "failed — tést 日本 💥 \"q\" lone surrogate {}ü",
        "x".repeat(5000)
    );
    build["state_string"] = said.clone().into();
    let input = dir.path().join("build.json");
    std::fs::write(&input, build.to_string()).unwrap();
    for instances in ["fresh", "warm"] {
        let out = render(&wasm, &input, &["--instances", instances, "--repeat", "3"]);
        assert!(
            out.status.success(),
            "{instances}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            result["body"],
            format!("«{said}»\u{fffd}").as_str(),
            "{instances}"
        );
        let subject = result["subject"].as_str().unwrap_or_default();
        assert!(subject.contains(&said), "{instances}: {subject}");
    }
}

#[test]
fn python_and_javascript_components_answer_warm_and_a_failure_costs_only_its_instance() {
    use tidings::formatter::{FormatterError, Grants, Instances, Limits};
    for lang in ["python", "javascript"] {
        // Every shared case, in order, by one kept instance.
        let cases = support::repo().join(SHORT);
        let out = tidings(&[
            "test".as_ref(),
            build(lang).as_os_str(),
            "--cases".as_ref(),
            cases.as_os_str(),
            "--instances".as_ref(),
            "warm".as_ref(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{lang}: {stdout}");
        assert_eq!(stdout.matches(" (warm)").count(), 5, "{lang}: {stdout}");
    }
    // An exception ends the call (exit status 1, its traceback) and its instance; the next
    // call gets a new one, which fails the same way for the same request.
    let mut f = support::shared_host()
        .load(
            "raises",
            &build_app("python", "raises.py"),
            Limits::default(),
            Grants::default(),
        )
        .unwrap();
    f.set_instances(Instances::warm(1000)).unwrap();
    let request = request("failure-full.json", None);
    for _ in 0..2 {
        match f.call(&request) {
            Err(FormatterError::Exit {
                code: 1,
                stderr_tail,
            }) => {
                assert!(
                    stderr_tail.contains("KeyError: 'buildUrl'"),
                    "{stderr_tail}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    let stats = f.warm_stats();
    assert_eq!((stats.created, stats.discarded), (2, 2), "{stats:?}");
}

#[test]
fn a_component_format_call_that_throws_overflows_or_never_ends_costs_only_its_instance() {
    use tidings::formatter::{FormatterError, Grants, Instances, Limits};
    for (lang, wasm, error) in [
        (
            "javascript",
            build_app("javascript", "warm.js"),
            "Error: the build failed (warm.js:11:40)",
        ),
        (
            "python",
            build_app("python", "warm.py"),
            "RuntimeError: the build failed (warm.py, line 15, in count)",
        ),
        // The Rust SDK built for wasm32-wasip2.
        (
            "rust",
            support::component("warm"),
            "tidings-guest: the build failed",
        ),
    ] {
        // Exports `format`: the world tidings:formatter/warm, warm by default.
        let mut f = support::shared_host()
            .load("warm", &wasm, Limits::default(), Grants::default())
            .unwrap();
        assert!(f.prefers_warm(), "{lang}");
        let (success, failure) = (
            request("success-full.json", None),
            request("failure-full.json", None),
        );
        let thrown = |r| exits_saying(r, 1, error);
        // Fresh, through `run`: the same answers.
        assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
        thrown(f.call(&failure));

        f.set_instances(Instances::warm(1000)).unwrap();
        assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
        assert_eq!(body(f.call(&success).unwrap()), "success (call 2)");
        thrown(f.call(&failure));
        assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
        match f.call(&request("started-full.json", None)) {
            Err(FormatterError::OutputTooLarge { .. }) => {}
            other => panic!("{lang}: 2 MiB of result: {other:?}"),
        }
        assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
        match f.call(&request("success-full.json", Some(4))) {
            Err(FormatterError::Timeout { .. }) => {}
            other => panic!("{lang}: a call that never ends: {other:?}"),
        }
        assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
        assert_eq!(warm_counts(&f), (4, 4, 3), "{lang}");
    }
}

#[test]
fn a_rust_component_that_panics_in_format_traps_with_the_panic_and_costs_only_its_instance() {
    use tidings::formatter::FormatterError;
    let f = loaded_warm(&support::component("warm"));
    let success = request("success-full.json", None);
    assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
    assert_eq!(body(f.call(&success).unwrap()), "success (call 2)");
    match f.call(&request("success-full.json", Some(3))) {
        Err(FormatterError::Trap { stderr_tail, .. }) => assert!(
            stderr_tail.contains("panicked at src/bin/warm.rs")
                && stderr_tail.contains("a skipped build"),
            "{stderr_tail}"
        ),
        other => panic!("a panic: {other:?}"),
    }
    assert_eq!(body(f.call(&success).unwrap()), "success (call 1)");
    assert_eq!(warm_counts(&f), (2, 2, 1));
}

#[test]
fn a_request_that_is_not_utf8_reaches_a_warm_component_with_replacement_characters() {
    // `Formatter::call_raw` takes any bytes; a component's `format` takes a string. A byte that
    // is not UTF-8 arrives as U+FFFD, and the instance answers and is kept.
    let f = loaded_warm(&support::component("warm"));
    let success = request("success-full.json", None);
    let mut raw = success.to_stdin();
    let at = raw
        .windows(8)
        .position(|w| w == br#""name":""#)
        .expect("a name in the request")
        + 8;
    raw.insert(at, 0xff);
    assert!(std::str::from_utf8(&raw).is_err());
    let report = f.call_raw(success.hook(), &raw).unwrap();
    let out = tidings::formatter::abi::parse_output(success.hook(), &report.stdout).unwrap();
    assert_eq!(body(out), "success (call 1)");
    assert_eq!(body(f.call(&success).unwrap()), "success (call 2)");
    assert_eq!(warm_counts(&f), (1, 1, 0));
}

#[test]
fn a_component_whose_run_cannot_be_called_twice_is_refused_warm_by_check() {
    // A Rust wasm32-wasip2 program without the SDK (no `format` export) traps when its `run`
    // is called a second time.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tidings.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n\
             [[formatter]]\nname = \"rust-component\"\nmodule = \"{}\"\ninstances = \"warm\"\n",
            support::component("once").display()
        ),
    )
    .unwrap();
    let config = dir.path().join("tidings.toml");
    let out = tidings(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("formatter \"rust-component\"")
            && err.contains("its second call by the same instance failed")
            && err.contains("must run with instances = \"fresh\""),
        "{err}"
    );
}
