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

/// A directory of precompiled artifacts written by this host.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    /// A cache in `dir` (created on first write) for artifacts of `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> ArtifactCache {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = hex::encode(&h.0.finalize()[..8]);
        ArtifactCache { dir, engine_key }
    }

    /// The artifact file for a module with this SHA-256 (hex).
    pub fn path_for(&self, module_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{module_sha256}-{}.cwasm", self.engine_key))
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
        let path = self.path_for(module_sha256);
        if let Some(module) = self.read(engine, &path) {
            return Ok((module, Origin::Cached));
        }
        let artifact = engine.precompile_module(wasm)?;
        if let Err(e) = self.write(&path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compiled-module cache");
        }
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
        let path = self.path_for(sha256);
        if let Some(artifact) = self.read_checked(&path, Precompiled::Component) {
            // SAFETY: as for modules: our own artifact, checksummed, in a private directory.
            match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(c) => return Ok((c, Origin::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding an unusable compiled-component artifact; recompiling");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let artifact = engine.precompile_component(wasm)?;
        if let Err(e) = self.write(&path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compiled-module cache");
        }
        // SAFETY: produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, Origin::Compiled))
    }

    /// The artifact at `path` when it is whole (magic, checksum) and of `kind`; a damaged one
    /// is removed.
    fn read_checked(&self, path: &Path, kind: Precompiled) -> Option<Vec<u8>> {
        if !self.is_private() {
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
                tracing::warn!(path = %path.display(), "discarding a damaged compiled artifact; recompiling");
                let _ = fs::remove_file(path);
                None
            }
        }
    }

    fn read(&self, engine: &Engine, path: &Path) -> Option<Module> {
        if !self.is_private() {
            return None;
        }
        let bytes = fs::read(path).ok()?;
        let checked = bytes
            .strip_prefix(MAGIC)
            .filter(|rest| rest.len() > 32)
            .map(|rest| rest.split_at(32))
            .filter(|(sum, artifact)| Sha256::digest(artifact).as_slice() == *sum)
            .map(|(_, artifact)| artifact)
            .filter(|artifact| Engine::detect_precompiled(artifact) == Some(Precompiled::Module));
        let Some(artifact) = checked else {
            tracing::warn!(path = %path.display(), "discarding a damaged compiled-module artifact; recompiling");
            let _ = fs::remove_file(path);
            return None;
        };
        // SAFETY: the artifact carries our magic and its own SHA-256, so it is a file this host
        // wrote with `precompile_module` (the cache directory is private to this user), and
        // its name carries the engine's compatibility hash. wasmtime additionally checks the
        // version and settings recorded inside and refuses a mismatch.
        match unsafe { Module::deserialize(engine, artifact) } {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding an unusable compiled-module artifact; recompiling");
                let _ = fs::remove_file(path);
                None
            }
        }
    }

    /// Whether the directory may be read from: private, or not there yet (it is then created
    /// private on the first write). A refusal is logged.
    fn is_private(&self) -> bool {
        match private_dir_problem(&self.dir) {
            None => true,
            Some(why) => {
                tracing::warn!(dir = %self.dir.display(), "not using the compiled-module cache: {why}; modules are compiled instead");
                false
            }
        }
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
