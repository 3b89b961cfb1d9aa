//! `tidings test`: run a formatter against a directory of cases under the real sandbox.
//!
//! A case is two files: `<case>.input.json` (a full request `{"abi": 1, "hook": …}`, or a bare
//! build dict, which is wrapped for `messageFormatter` with the CLI's defaults) and
//! `<case>.expected.json` (the result the formatter must print, compared as JSON). Calls are
//! deterministic: fixed clocks and seeded randomness, so outputs can be compared exactly.
//!
//! A formatter is given as a `.wasm` file, a directory holding one, a formatter project
//! (`formatter.toml`, made by `tidings new`) or a Rust crate directory (with `Cargo.toml`),
//! which are built first.

use crate::formatter::{Formatter, Request, WrapContext};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One case of a formatter's test directory.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub input: PathBuf,
    pub expected: PathBuf,
}

/// How one case went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    /// The result differs from the expected one: a unified diff, expected → actual.
    Mismatch(String),
    /// The case could not be run or the call failed.
    Error(String),
}

/// The cases in `dir`, sorted by name. An input without its expected file is an error, so a
/// forgotten file cannot turn into a silently skipped case.
pub fn discover(dir: &Path) -> Result<Vec<Case>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the cases directory {}: {e}", dir.display()))?;
    let mut cases = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".input.json"))
        else {
            continue;
        };
        let expected = dir.join(format!("{name}.expected.json"));
        if !expected.exists() {
            return Err(format!(
                "case {name} has no {}",
                expected.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
        cases.push(Case {
            name: name.to_owned(),
            input: path,
            expected,
        });
    }
    if cases.is_empty() {
        return Err(format!("no *.input.json cases in {}", dir.display()));
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(cases)
}

/// Runs one case.
pub fn run_case(formatter: &Formatter, case: &Case, ctx: &WrapContext) -> Outcome {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let (input, expected) = match (read(&case.input), read(&case.expected)) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(e), _) | (_, Err(e)) => return Outcome::Error(e),
    };
    let expected: serde_json::Value = match serde_json::from_slice(&expected) {
        Ok(v) => v,
        Err(e) => return Outcome::Error(format!("{} is not JSON: {e}", case.expected.display())),
    };
    let request = match Request::parse(&input, None, ctx) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("{}: {e}", case.input.display())),
    };
    match formatter.call(&request) {
        Err(e) => Outcome::Error(format!("{}: {e}", e.kind())),
        Ok(out) => {
            let actual = out.to_json();
            if actual == expected {
                Outcome::Pass
            } else {
                Outcome::Mismatch(diff(&expected, &actual))
            }
        }
    }
}

/// A unified diff of two JSON values, pretty-printed, with string values that span lines shown
/// line by line so a changed line of a mail body reads as one changed line.
pub fn diff(expected: &serde_json::Value, actual: &serde_json::Value) -> String {
    let pretty = |v: &serde_json::Value| {
        let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
        if let Some(body) = v.get("body").and_then(|b| b.as_str())
            && body.contains('\n')
        {
            s.push_str("\n--- body, line by line ---\n");
            s.push_str(body);
            s.push('\n');
        }
        s
    };
    let (e, a) = (pretty(expected), pretty(actual));
    similar::TextDiff::from_lines(&e, &a)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

/// A formatter to test, and where its cases are by default.
#[derive(Debug, Clone)]
pub struct Target {
    pub wasm: PathBuf,
    pub default_cases: PathBuf,
}

/// Works out the module to test from a path: a `.wasm` file (cases in `tests/` beside it), a
/// formatter project made by `tidings new` (built by [`crate::project::build`]; cases in its
/// `tests/`), a Rust crate (built with `cargo build --release --target wasm32-wasip1`; cases in its
/// `tests/`), or a directory with exactly one `.wasm` file.
pub fn resolve(path: &Path) -> Result<Target, String> {
    if path.is_file() {
        let cases = path.parent().unwrap_or(Path::new(".")).join("tests");
        return Ok(Target {
            wasm: path.to_owned(),
            default_cases: cases,
        });
    }
    if !path.is_dir() {
        return Err(format!(
            "{} is neither a .wasm file nor a directory",
            path.display()
        ));
    }
    let default_cases = path.join("tests");
    if crate::project::is_project(path) {
        let wasm = crate::project::build(path)?;
        return Ok(Target {
            wasm,
            default_cases,
        });
    }
    if path.join("Cargo.toml").is_file() {
        let wasm = cargo_build_wasm(path)?;
        return Ok(Target {
            wasm,
            default_cases,
        });
    }
    let wasms: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    match wasms.as_slice() {
        [one] => Ok(Target {
            wasm: one.clone(),
            default_cases,
        }),
        [] => Err(format!(
            "{} has no formatter.toml, no Cargo.toml and no .wasm file: build the formatter \
             first, or start a project there with `tidings new <language> DIR`",
            path.display()
        )),
        _ => Err(format!(
            "{} has several .wasm files: name one",
            path.display()
        )),
    }
}

/// The environment for building guests: link-time optimisation in one codegen unit, which makes a
/// formatter like `default-mail` ~30 % faster per call. Set for guest builds only, so building
/// the host (wasmtime) in release mode does not pay for LTO.
pub const GUEST_BUILD_ENV: [(&str, &str); 2] = [
    ("CARGO_PROFILE_RELEASE_LTO", "true"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
];

/// Builds the binary of the crate at `dir` for `wasm32-wasip1` (with [`GUEST_BUILD_ENV`]) and
/// returns the `.wasm` path, read from cargo's own artifact messages. If the build fails and
/// rustup is there, the target is installed (the usual cause on a new machine) and the build
/// tried once more.
pub fn cargo_build_wasm(dir: &Path) -> Result<PathBuf, String> {
    let build = || {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "--message-format=json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(dir.join("Cargo.toml"))
            .envs(GUEST_BUILD_ENV)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))
    };
    let mut out = build()?;
    if !out.status.success() && target_missing() {
        eprintln!("installing the wasm32-wasip1 target with rustup");
        let _ = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip1"])
            .status();
        out = build()?;
    }
    if !out.status.success() {
        return Err(format!(
            "cargo build of {} failed (is the target installed? rustup target add wasm32-wasip1)",
            dir.display()
        ));
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && let Some(exe) = msg["executable"].as_str()
            && exe.ends_with(".wasm")
        {
            wasm = Some(PathBuf::from(exe));
        }
    }
    wasm.ok_or_else(|| format!("cargo built no .wasm binary for {}", dir.display()))
}

/// True when rustup is available and does not list wasm32-wasip1 as installed.
fn target_missing() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip1"))
}
