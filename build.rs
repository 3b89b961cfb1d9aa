//! Embeds the WASI WIT packages that a component formatter's world refers to (`wasi:cli`,
//! `wasi:io`, …), so that `tidings build` can build Python and JavaScript formatters outside a
//! checkout. They come from the wasmtime-wasi crate cargo fetched for this build (the host runs
//! exactly these interfaces): its `src/p2/wit/deps/*.wit`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let deps = wasi_wit_dir(&manifest_dir).unwrap_or_else(|e| {
        panic!("cannot find the WASI WIT packages of the wasmtime-wasi crate: {e}")
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(&deps)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", deps.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wit"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .wit files in {}", deps.display());
    let mut out = String::from("&[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_string_lossy();
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            f.display().to_string()
        ));
    }
    out.push_str("]\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("wasi_wit.rs");
    std::fs::write(&dest, out).unwrap();
}

/// `src/p2/wit/deps` of the locked wasmtime-wasi: in cargo's registry sources (where cargo
/// unpacked it before running this script), else wherever `cargo metadata` says it is (a
/// vendored or patched copy).
fn wasi_wit_dir(manifest_dir: &Path) -> Result<PathBuf, String> {
    let lock = std::fs::read_to_string(manifest_dir.join("Cargo.lock")).unwrap_or_default();
    let version = locked_version(&lock, "wasmtime-wasi");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let (Some(version), Some(home)) = (&version, cargo_home)
        && let Ok(registries) = std::fs::read_dir(home.join("registry/src"))
    {
        for registry in registries.flatten() {
            let deps = registry
                .path()
                .join(format!("wasmtime-wasi-{version}/src/p2/wit/deps"));
            if deps.is_dir() {
                return Ok(deps);
            }
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(&target)
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The manifest path of the wasmtime-wasi package, without a JSON parser: the text after
    // its `"name":"wasmtime-wasi"` up to the next `"manifest_path":"…"`.
    let at = text.find("\"name\":\"wasmtime-wasi\"").ok_or_else(|| {
        format!("cargo metadata does not list wasmtime-wasi (version {version:?})")
    })?;
    let rest = &text[at..];
    let key = "\"manifest_path\":\"";
    let start = rest.find(key).ok_or("no manifest_path for wasmtime-wasi")? + key.len();
    let end = rest[start..]
        .find('"')
        .ok_or("unterminated manifest_path")?;
    let manifest = PathBuf::from(&rest[start..start + end]);
    let deps = manifest.parent().unwrap().join("src/p2/wit/deps");
    if deps.is_dir() {
        Ok(deps)
    } else {
        Err(format!("{} is not a directory", deps.display()))
    }
}

/// The version of `name` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}
