//! The on-disk cache of compiled modules.
//!
//! Compiling a module with Cranelift takes ~100 ms for a small Rust formatter and seconds for
//! big ones; loading a precompiled artifact takes well under a millisecond. Artifacts are keyed
//! by the module's SHA-256 and the engine's compatibility hash (wasmtime version, target and
//! every setting that changes generated code), so a new tidings build or a changed engine
//! setting never loads a stale artifact.
//!
//! Deserializing an artifact runs native code from it, so wasmtime marks it `unsafe`: only
//! artifacts this host wrote may be loaded. Beside each artifact (`<name>.cwasm`) a checksum
//! file (`<name>.sum`) holds a magic line and the artifact's SHA-256; an artifact that fails
//! either check (truncated, corrupted, not ours, or without its checksum) is discarded and
//! rebuilt. A checked artifact is mapped from its file, not copied into memory: its pages are
//! shared with the page cache, and only those in use are resident (a Python component's
//! artifact is 36 MiB). Files here are only ever replaced by renaming a new one over them,
//! never written in place, so a mapped artifact does not change under a running module; do
//! not edit them in place either. The directory is created private to the user (0700), and an
//! existing directory is used only while it still is: owned by this user, no access for group
//! or others ([`private_dir_problem`]). A directory that is not private is refused (logged; the
//! module is compiled instead), since anyone who can write there could plant native code.

use sha2::{Digest, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

const MAGIC: &[u8] = b"TIDINGS-CWASM-2\n";

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

    /// The compiled module with `module_sha256`: from a valid artifact if there is one, else
    /// `compile`d (an artifact for `engine`) and stored. A cache that cannot be written is
    /// logged and otherwise ignored: the module still loads, it just compiles again next time.
    pub fn load(
        &self,
        engine: &Engine,
        module_sha256: &str,
        compile: impl FnOnce() -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<(Module, Origin)> {
        // SAFETY: `cached` passes only whole artifacts this host wrote (magic and checksum) from
        // a directory private to this user, of the module kind, named with this engine's
        // compatibility hash; wasmtime additionally checks the version and settings recorded
        // inside and refuses a mismatch.
        let de = |f, _: &Path| unsafe { Module::deserialize_open_file(engine, f) };
        if let Some(module) = self.cached(module_sha256, Precompiled::Module, de) {
            return Ok((module, Origin::Cached));
        }
        let artifact = compile()?;
        self.store(module_sha256, &artifact);
        // Mapped from the file just written, or else (the cache cannot be written) copied.
        let module = match self.cached(module_sha256, Precompiled::Module, de) {
            Some(m) => m,
            // SAFETY: `compile` produced it for this engine a moment ago.
            None => unsafe { Module::deserialize(engine, &artifact)? },
        };
        Ok((module, Origin::Compiled))
    }

    /// [`ArtifactCache::load`] for a component.
    pub fn load_component(
        &self,
        engine: &Engine,
        sha256: &str,
        compile: impl FnOnce() -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<(Component, Origin)> {
        // SAFETY: as for modules: our own artifact, checksummed, in a private directory.
        // Components are mapped by path (wasmtime takes no open file for them): the file checked
        // was opened under the same name, which is only ever replaced by a rename, with an
        // artifact of the same module from the same engine.
        let de = |_, path: &Path| unsafe { Component::deserialize_file(engine, path) };
        if let Some(component) = self.cached(sha256, Precompiled::Component, de) {
            return Ok((component, Origin::Cached));
        }
        let artifact = compile()?;
        self.store(sha256, &artifact);
        let component = match self.cached(sha256, Precompiled::Component, de) {
            Some(c) => c,
            // SAFETY: `compile` produced it for this engine a moment ago.
            None => unsafe { Component::deserialize(engine, &artifact)? },
        };
        Ok((component, Origin::Compiled))
    }

    fn store(&self, sha256: &str, artifact: &[u8]) {
        let path = self.path_for(sha256);
        if let Err(e) = self.write(&path, artifact) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the compiled-module cache");
        }
    }

    /// The artifact of the module with `sha256`, deserialized by `de` from its open file (and
    /// path), from this cache or else from one it also reads (then copied here). A damaged or
    /// unusable artifact of this cache is removed; one of another cache is only passed over.
    fn cached<T>(
        &self,
        sha256: &str,
        kind: Precompiled,
        de: impl Fn(fs::File, &Path) -> wasmtime::Result<T>,
    ) -> Option<T> {
        let name = self.file_name(sha256);
        for (i, dir) in std::iter::once(&self.dir).chain(&self.also).enumerate() {
            let own = i == 0;
            let path = dir.join(&name);
            let Some(file) = read_checked(dir, &path, kind, own) else {
                continue;
            };
            match de(file, &path) {
                Ok(v) => {
                    if !own {
                        tracing::debug!(from = %dir.display(), "compiled module taken from another tidings cache");
                        if let Ok(artifact) = fs::read(&path) {
                            self.store(sha256, &artifact);
                        }
                    }
                    return Some(v);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "passing over an unusable compiled artifact; recompiling");
                    if own {
                        remove(&path);
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
        // The old checksum goes first: until the new one is in place, the artifact reads as
        // damaged, never as a new artifact with an old checksum. Each file is written under a
        // temporary name and renamed, so a reader never sees half a file and a mapped artifact
        // is never changed.
        let sum = sum_path(path);
        match fs::remove_file(&sum) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let put = |to: &Path, parts: &[&[u8]]| -> std::io::Result<()> {
            let tmp = to.with_extension(format!("tmp.{}", std::process::id()));
            let mut f = fs::File::create(&tmp)?;
            for piece in parts.iter().flat_map(|p| p.chunks(PIECE)) {
                f.write_all(piece)?;
            }
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, to)
        };
        put(path, &[artifact])?;
        put(&sum, &[MAGIC, &Sha256::digest(artifact)])
    }
}

/// The size of the pieces an artifact is written and read in: small pieces keep it in small
/// pages of the page cache, which keeps the daemon's resident memory to the code it runs.
///
/// An artifact is mapped, and Linux (6.18 and later) maps a whole large folio of the page cache
/// on the first touch of any of its pages. The page cache sizes folios after the writes and
/// reads that filled it: an artifact written in one call sat in folios of up to 2 MiB, so one
/// call of a Python formatter made ~11 of its 16 MiB of code resident; written in 64 KiB
/// pieces, an idle daemon with ten formatters held ~9 MiB less (`cargo bench --bench memory`).
const PIECE: usize = 64 << 10;

/// Asks the kernel not to read ahead on `file`, so that an artifact no longer in the page cache
/// comes back in the small pages of [`PIECE`]-sized reads, not in large readahead folios. Only
/// advice: an error changes nothing and is ignored.
fn advise_small_pages(file: &fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: advice on an open descriptor of ours; it reads and writes no memory.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
}

/// The checksum file of artifact `path`.
fn sum_path(path: &Path) -> PathBuf {
    path.with_extension("sum")
}

/// Removes an artifact and its checksum.
fn remove(path: &Path) {
    let _ = fs::remove_file(sum_path(path));
    let _ = fs::remove_file(path);
}

/// The artifact at `path` in cache directory `dir`, open, when the directory is private to
/// this user and the file is whole (its checksum matches) and of `kind`. A damaged artifact
/// of our own cache (`own`) is removed.
fn read_checked(dir: &Path, path: &Path, kind: Precompiled, own: bool) -> Option<fs::File> {
    if let Some(why) = private_dir_problem(dir) {
        if own {
            tracing::warn!(dir = %dir.display(), "not using the compiled-module cache: {why}; modules are compiled instead");
        } else {
            tracing::debug!(dir = %dir.display(), "not reading another compiled-module cache: {why}");
        }
        return None;
    }
    let mut file = fs::File::open(path).ok()?;
    advise_small_pages(&file);
    let expected = fs::read(sum_path(path))
        .ok()
        .and_then(|s| s.strip_prefix(MAGIC).map(<[u8]>::to_vec))
        .filter(|s| s.len() == 32);
    // Hashed from the open file, which is what a module maps: what was checked is what runs.
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; PIECE];
    let whole = loop {
        match file.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => break false,
        }
    };
    let good = whole
        && expected.is_some_and(|e| hasher.finalize().as_slice() == e.as_slice())
        && Engine::detect_precompiled_file(path).ok().flatten() == Some(kind);
    if good {
        return Some(file);
    }
    tracing::warn!(path = %path.display(), "passing over a damaged compiled artifact; recompiling");
    if own {
        remove(path);
    }
    None
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
