//! The on-disk cache of compiled modules.
//!
//! Compiling a module with Cranelift takes ~100 ms for a small Rust formatter and seconds for
//! big ones; loading a precompiled artifact takes well under a millisecond. Artifacts are keyed
//! by the module's SHA-256 and the engine's compatibility hash (wasmtime version, target and
//! every setting that changes generated code), so a new tidings build or a changed engine
//! setting never loads a stale artifact.
//!
//! Deserializing an artifact runs native code from it, so wasmtime marks it `unsafe`: only
//! artifacts this host wrote may be loaded. Each file therefore starts with a magic line and
//! the SHA-256 of the artifact; a file that fails either check (truncated, corrupted, or not
//! ours) is discarded and rebuilt. The directory is created private to the user (0700), and an
//! existing directory is used only while it still is: owned by this user, no access for group
//! or others ([`private_dir_problem`]). A directory that is not private is refused (logged; the
//! module is compiled instead), since anyone who can write there could plant native code.

use sha2::{Digest, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

const MAGIC: &[u8] = b"TIDINGS-CWASM-1\n";

/// Where an artifact came from: how `load` got the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now (no cache, a miss, or a discarded artifact).
    Compiled,
    /// Loaded from a valid cached artifact.
    Cached,
}

/// A directory of precompiled artifacts written by this host, and other such directories it
/// may read from (never write): the daemon reads the user's cache, where `tidings render`,
/// `test` and `check` compiled, so a module is compiled once per machine and user.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    also: Vec<PathBuf>,
    engine_key: String,
}

impl ArtifactCache {
    /// A cache in `dir` (created on first write) for artifacts of `engine`, also reading
    /// artifacts from `also` (an artifact found there is copied into `dir`).
    pub fn new(dir: PathBuf, also: Vec<PathBuf>, engine: &Engine) -> ArtifactCache {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = hex::encode(&h.0.finalize()[..8]);
        let also = also.into_iter().filter(|d| *d != dir).collect();
        ArtifactCache {
            dir,
            also,
            engine_key,
        }
    }

    fn file_name(&self, module_sha256: &str) -> String {
        format!("{module_sha256}-{}.cwasm", self.engine_key)
    }

    /// The artifact file for a module with this SHA-256 (hex).
    pub fn path_for(&self, module_sha256: &str) -> PathBuf {
        self.dir.join(self.file_name(module_sha256))
    }

    /// The compiled module for `wasm`: from a valid artifact if there is one, else compiled and
    /// stored. A cache that cannot be written is logged and otherwise ignored: the module still
    /// loads, it just compiles again next time.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        module_sha256: &str,
    ) -> wasmtime::Result<(Module, Origin)> {
        // SAFETY: `cached` passes only whole artifacts this host wrote (magic and checksum) from
        // a directory private to this user, of the module kind, named with this engine's
        // compatibility hash; wasmtime additionally checks the version and settings recorded
        // inside and refuses a mismatch.
        if let Some(module) = self.cached(module_sha256, Precompiled::Module, |a| unsafe {
            Module::deserialize(engine, a)
        }) {
            return Ok((module, Origin::Cached));
        }
        let artifact = engine.precompile_module(wasm)?;
        self.store(module_sha256, &artifact);
        // SAFETY: `artifact` was produced by `precompile_module` on this very engine a moment ago.
        let module = unsafe { Module::deserialize(engine, &artifact)? };
        Ok((module, Origin::Compiled))
    }

    /// [`ArtifactCache::load`] for a component.
    pub fn load_component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, Origin)> {
        // SAFETY: as for modules: our own artifact, checksummed, in a private directory.
        if let Some(component) = self.cached(sha256, Precompiled::Component, |a| unsafe {
            Component::deserialize(engine, a)
        }) {
            return Ok((component, Origin::Cached));
        }
        let artifact = engine.precompile_component(wasm)?;
        self.store(sha256, &artifact);
        // SAFETY: produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, Origin::Compiled))
    }

    fn store(&self, sha256: &str, artifact: &[u8]) {
        let path = self.path_for(sha256);
        if let Err(e) = self.write(&path, artifact) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compiled-module cache");
        }
    }

    /// The artifact of the module with `sha256`, deserialized by `de`, from this cache or else
    /// from one it also reads (then copied here). A damaged or unusable artifact of this cache
    /// is removed; one of another cache is only passed over.
    fn cached<T>(
        &self,
        sha256: &str,
        kind: Precompiled,
        de: impl Fn(&[u8]) -> wasmtime::Result<T>,
    ) -> Option<T> {
        let name = self.file_name(sha256);
        for (i, dir) in std::iter::once(&self.dir).chain(&self.also).enumerate() {
            let own = i == 0;
            let path = dir.join(&name);
            let Some(artifact) = read_checked(dir, &path, kind, own) else {
                continue;
            };
            match de(&artifact) {
                Ok(v) => {
                    if !own {
                        tracing::debug!(from = %dir.display(), "compiled module taken from another tidings cache");
                        self.store(sha256, &artifact);
                    }
                    return Some(v);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "passing over an unusable compiled artifact; recompiling");
                    if own {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        None
    }

    fn write(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        if let Some(why) = private_dir_problem(&self.dir) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                why,
            ));
        }
        // Write to a temporary name and rename, so a reader never sees half a file.
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&Sha256::digest(artifact))?;
        f.write_all(artifact)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    }
}

/// The artifact at `path` in cache directory `dir` when the directory is private to this user
/// and the file is whole (magic, checksum) and of `kind`. A damaged file of our own cache
/// (`own`) is removed.
fn read_checked(dir: &Path, path: &Path, kind: Precompiled, own: bool) -> Option<Vec<u8>> {
    if let Some(why) = private_dir_problem(dir) {
        if own {
            tracing::warn!(dir = %dir.display(), "not using the compiled-module cache: {why}; modules are compiled instead");
        } else {
            tracing::debug!(dir = %dir.display(), "not reading another compiled-module cache: {why}");
        }
        return None;
    }
    let bytes = fs::read(path).ok()?;
    let artifact = bytes
        .strip_prefix(MAGIC)
        .filter(|rest| rest.len() > 32)
        .map(|rest| rest.split_at(32))
        .filter(|(sum, artifact)| Sha256::digest(artifact).as_slice() == *sum)
        .map(|(_, artifact)| artifact)
        .filter(|artifact| Engine::detect_precompiled(artifact) == Some(kind));
    match artifact {
        Some(a) => Some(a.to_vec()),
        None => {
            tracing::warn!(path = %path.display(), "passing over a damaged compiled artifact; recompiling");
            if own {
                let _ = fs::remove_file(path);
            }
            None
        }
    }
}

/// Why `dir` cannot hold artifacts this process will load, if it cannot: it must be a real
/// directory (not a symlink) owned by the effective user, with no permissions for group or
/// others (0700). `None` also when it does not exist yet.
pub fn private_dir_problem(dir: &Path) -> Option<String> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("cannot inspect it: {e}")),
    };
    if !meta.file_type().is_dir() {
        return Some("it is not a directory (or is a symlink)".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Some(format!(
                "it belongs to uid {}, not to this user (uid {me})",
                meta.uid()
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Some(format!(
                "its mode is {:04o}; it must be private to its owner (chmod 700)",
                meta.mode() & 0o7777
            ));
        }
    }
    None
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Feeds `Hash` output into SHA-256, giving a hash that is stable across processes (unlike
/// `DefaultHasher`, whose algorithm may change between Rust releases).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }
}
