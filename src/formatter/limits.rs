//! Per-formatter limits and grants. Defaults follow DESIGN.md: memory 64 MiB, time 250 ms,
//! stdin 4 MiB, stdout 1 MiB, stderr 64 KiB, no directory, no environment beyond the ABI's.

use std::path::PathBuf;
use std::time::Duration;

/// What one call of a formatter may use. Operators set these per formatter in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Linear memory (and table space) one instance may grow to, in bytes.
    pub memory: u64,
    /// Wall-clock time one call may run; the guest is interrupted at this deadline.
    pub timeout: Duration,
    /// Largest request (stdin) the host will hand to the guest, in bytes.
    pub max_input: usize,
    /// Largest result (stdout), in bytes; the guest is stopped at the write that exceeds it.
    pub max_output: usize,
    /// Largest stderr, in bytes; the guest is stopped at the write that exceeds it.
    pub max_stderr: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory: 64 << 20,
            timeout: Duration::from_millis(250),
            max_input: 4 << 20,
            max_output: 1 << 20,
            max_stderr: 64 << 10,
        }
    }
}

/// What a formatter is allowed to see, beyond stdin: extra environment variables and one
/// read-only directory. Both are granted by the operator, never by the module.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    /// Extra environment variables, after `TIDINGS_ABI` and `TIDINGS_HOOK`.
    pub env: Vec<(String, String)>,
    /// A host directory the guest may read (never write), seen by the guest as `/templates`.
    pub dir: Option<PathBuf>,
}

/// Where a granted directory appears inside the guest.
pub const GUEST_DIR: &str = "/templates";
