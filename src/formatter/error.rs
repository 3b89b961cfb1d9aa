//! `FormatterError`: why a formatter call failed, typed so that reporters can pick their
//! fallback, metrics can count by kind, and the CLI can name the kind on stderr.

use std::fmt;
use std::time::Duration;

/// Which output stream of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// A failed formatter call (or load). Every variant is a decision the caller can act on;
/// none carries text meant for end users of a notification.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatterError {
    /// The file is not a module tidings can run: not WebAssembly, a component, a precompiled
    /// artifact, wrong imports or exports, or more initial memory than the limit allows.
    #[error("invalid module: {reason}")]
    InvalidModule { reason: String },
    /// The call ran past its time limit (or asked to sleep past it) and was stopped.
    #[error("timed out: the call ran longer than its limit of {limit:?}")]
    Timeout { limit: Duration },
    /// The guest asked for more linear memory (or table space) than its limit.
    #[error("memory limit: the guest asked for more than {limit} bytes of memory")]
    MemoryLimit { limit: u64 },
    /// The guest wrote more than the limit to stdout or stderr; it was stopped at that write.
    #[error("output too large: more than {limit} bytes on {stream}")]
    OutputTooLarge { stream: Stream, limit: usize },
    /// The request was larger than the formatter's stdin limit; the guest was not started.
    #[error("input too large: the request is {size} bytes, the limit is {limit}")]
    InputTooLarge { size: usize, limit: usize },
    /// The guest trapped: `unreachable` (a Rust panic), stack overflow, out-of-bounds access…
    #[error("trap: {message}{}", tail_suffix(stderr_tail))]
    Trap {
        message: String,
        stderr_tail: String,
    },
    /// The guest exited with a non-zero status.
    #[error("exit status {code}{}", tail_suffix(stderr_tail))]
    Exit { code: i32, stderr_tail: String },
    /// The guest's stdout is not JSON, or not the hook's result schema.
    #[error("bad output: {reason}")]
    BadOutput { reason: String },
    /// The host could not run the call (for example, every sandbox slot was busy).
    #[error("host error: {message}")]
    Host { message: String },
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; stderr: {tail}")
    }
}

impl FormatterError {
    /// The variant's name, as used on the CLI's stderr and in metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            FormatterError::InvalidModule { .. } => "InvalidModule",
            FormatterError::Timeout { .. } => "Timeout",
            FormatterError::MemoryLimit { .. } => "MemoryLimit",
            FormatterError::OutputTooLarge { .. } => "OutputTooLarge",
            FormatterError::InputTooLarge { .. } => "InputTooLarge",
            FormatterError::Trap { .. } => "Trap",
            FormatterError::Exit { .. } => "Exit",
            FormatterError::BadOutput { .. } => "BadOutput",
            FormatterError::Host { .. } => "Host",
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> FormatterError {
        FormatterError::InvalidModule {
            reason: reason.into(),
        }
    }

    pub(crate) fn bad_output(reason: impl Into<String>) -> FormatterError {
        FormatterError::BadOutput {
            reason: reason.into(),
        }
    }
}

/// The last `max` bytes of a guest's stderr, cut at a character boundary, trimmed, so that
/// an error message carries the guest's own last words.
pub(crate) fn stderr_tail(stderr: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim_end();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}
