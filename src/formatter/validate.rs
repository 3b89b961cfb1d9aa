//! Load-time checks of a formatter binary: a core WebAssembly module that is a WASI preview 1
//! *command* — it exports `_start` and `memory` and imports only from
//! `wasi_snapshot_preview1` — or a WASI preview 2 component (checked to be a
//! `wasi:cli/command` when it is linked). Every refusal says what was found and what is expected, because
//! the person reading it is usually a formatter author with the wrong build flags.

use super::FormatterError;
use wasmtime::{ExternType, Module};

/// What kind of file `bytes` is, judged from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A core WebAssembly module (what `wasm32-wasip1` produces).
    CoreModule,
    /// A component (WASI preview 2, what componentize-py and componentize-js produce).
    Component,
    /// An artifact precompiled by wasmtime (`.cwasm`): refused, only source modules are taken.
    Precompiled,
    /// Anything else.
    NotWasm,
}

/// Classifies a binary by its header.
pub fn binary_kind(bytes: &[u8]) -> BinaryKind {
    if wasmtime::Engine::detect_precompiled(bytes).is_some() {
        BinaryKind::Precompiled
    } else if bytes.starts_with(b"\0asm\x0d\0\x01\0") {
        // The binary preamble: magic, then version 0x0d and layer 1 for components.
        BinaryKind::Component
    } else if bytes.starts_with(b"\0asm\x01\0\0\0") {
        BinaryKind::CoreModule
    } else {
        BinaryKind::NotWasm
    }
}

/// Refuses anything but a core module, before spending time compiling it.
pub fn check_header(bytes: &[u8]) -> Result<BinaryKind, FormatterError> {
    match binary_kind(bytes) {
        kind @ (BinaryKind::CoreModule | BinaryKind::Component) => Ok(kind),
        BinaryKind::Precompiled => Err(FormatterError::invalid(
            "found a precompiled wasmtime artifact (.cwasm); give the .wasm module instead: \
             tidings compiles and caches it itself",
        )),
        BinaryKind::NotWasm => Err(FormatterError::invalid(format!(
            "not a WebAssembly binary (it starts with {:02x?}); expected a .wasm module \
             starting with \\0asm",
            &bytes[..bytes.len().min(8)]
        ))),
    }
}

/// True for a command that Go built (`GOOS=wasip1` in its default build mode; Go marks its
/// modules with a `go:buildid` custom section). Go runs its exported functions only after
/// `_start`, which ends the program, so such a module cannot run warm even when it exports the
/// entry points; built with `-buildmode=c-shared`, a reactor, it can.
pub fn is_go_command(module: &Module, bytes: &[u8]) -> bool {
    module.get_export("_start").is_some() && custom_sections(bytes).any(|n| n == b"go:buildid")
}

/// The names of a core module's custom sections, in order; stops at the first malformed
/// section header.
fn custom_sections(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    /// An unsigned LEB128 at `*at`, moving past it.
    fn leb(bytes: &[u8], at: &mut usize) -> Option<usize> {
        let mut value = 0usize;
        for shift in (0..35).step_by(7) {
            let b = *bytes.get(*at)?;
            *at += 1;
            value |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut at = 8;
    std::iter::from_fn(move || {
        loop {
            let id = *bytes.get(at)?;
            at += 1;
            let size = leb(bytes, &mut at)?;
            let end = at.checked_add(size).filter(|&e| e <= bytes.len())?;
            let body = at;
            at = end;
            if id == 0 {
                let mut name_at = body;
                let len = leb(bytes, &mut name_at)?;
                return bytes.get(name_at..name_at.checked_add(len)?.min(end));
            }
        }
    })
}

/// Checks imports and exports of a compiled module, and that its initial memory fits
/// `memory_limit`.
pub fn check_command(module: &Module, memory_limit: u64) -> Result<(), FormatterError> {
    let foreign: Vec<String> = module
        .imports()
        .filter(|i| i.module() != "wasi_snapshot_preview1")
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if !foreign.is_empty() {
        return Err(FormatterError::invalid(format!(
            "imports {} — a formatter may import only from wasi_snapshot_preview1",
            foreign.join(", ")
        )));
    }

    let start = module.get_export("_start");
    match start {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
        Some(_) => {
            return Err(FormatterError::invalid(
                "exports _start with a signature other than () -> (); expected a WASI command",
            ));
        }
        // A reactor that exports ABI v1's warm entry points: each fresh call is `_initialize`
        // and one call of them (guest-sdk/README.md, "Warm instances").
        None if super::sandbox::supports_warm(module) => {}
        None if module.get_export("_initialize").is_some() => {
            return Err(FormatterError::invalid(
                "is a WASI reactor (exports _initialize, no _start) without ABI v1's warm entry \
                 points (tidings_alloc_v1, tidings_format_v1); expected a WASI command with a \
                 main function, or a reactor that exports them",
            ));
        }
        None => {
            return Err(FormatterError::invalid(
                "does not export _start; expected a WASI preview 1 command (a program with main)",
            ));
        }
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) => {
            let page = m.page_size();
            let initial = m.minimum().saturating_mul(page);
            if initial > memory_limit {
                return Err(FormatterError::invalid(format!(
                    "declares {initial} bytes of initial memory, more than its memory limit of \
                     {memory_limit} bytes; raise the limit or shrink the module's memory"
                )));
            }
        }
        _ => {
            return Err(FormatterError::invalid(
                "does not export its memory as \"memory\"; expected a WASI command",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::custom_sections;

    #[test]
    fn custom_section_names_are_read_and_a_malformed_header_ends_the_walk() {
        // A type section (id 1) of 1 byte, then custom sections named "go:buildid" and "x".
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend([1, 1, 0]);
        wasm.extend([0, 12, 10]);
        wasm.extend(b"go:buildid\x07");
        wasm.extend([0, 2, 1, b'x']);
        let names: Vec<&[u8]> = custom_sections(&wasm).collect();
        assert_eq!(names, [&b"go:buildid"[..], b"x"]);
        // A section longer than the file, a name longer than its section, an endless LEB128,
        // a truncated file: no panic, the walk stops.
        for bad in [
            &b"\0asm\x01\0\0\0\0\x7f\x01a"[..],
            b"\0asm\x01\0\0\0\0\x02\x09a",
            b"\0asm\x01\0\0\0\0\xff\xff\xff\xff\xff\xff\x01",
            b"\0asm\x01\0\0\0\0",
            b"\0asm",
        ] {
            assert!(custom_sections(bad).all(|n| n.len() <= 1), "{bad:?}");
        }
    }
}
