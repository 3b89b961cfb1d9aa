//! The operator's commands that read (and sometimes act on) a data directory beside a running
//! daemon: `outbox`, `events`, `explain`, `replay`, and `config default`. Each opens the store
//! shared ([`Store::open_shared`]): no lock is taken, and SQLite's WAL mode lets the daemon go on
//! writing while they read.

pub mod events;
pub mod outbox;
pub mod replay;

use anyhow::Result;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use tidings::config::Config;
use tidings::daemon;
use tidings::event::{Event, Subject};
use tidings::store::{Store, StoredEvent};

/// A config and the store of its data directory.
pub struct Opened {
    pub config: Config,
    /// The config file's directory (relative paths in it are resolved against it).
    pub base: PathBuf,
    /// The data directory.
    pub dir: PathBuf,
    pub store: Arc<Store>,
}

/// Opens the config at `path` (the embedded default without one) and its store, shared.
pub fn open(path: Option<PathBuf>) -> Result<Opened> {
    let source = daemon::ConfigSource { path };
    let config = source.load()?;
    let base = source.base();
    let dir = daemon::data_dir(&config, &base);
    let store = Arc::new(Store::open_shared(&dir)?);
    Ok(Opened {
        config,
        base,
        dir,
        store,
    })
}

/// `3m ago`, `in 20s`: a time (Unix ms) relative to `now`.
pub fn ago(ms: i64, now: i64) -> String {
    let secs = (now - ms) / 1000;
    let span = |s: i64| humantime::format_duration(std::time::Duration::from_secs(s as u64));
    if secs >= 0 {
        // Coarse: the largest unit or two is what a person reads.
        let s = secs as u64;
        let rounded = match s {
            0..=119 => s,
            120..=7199 => s / 60 * 60,
            _ => s / 3600 * 3600,
        };
        format!("{} ago", span(rounded as i64))
    } else {
        format!("in {}", span(-secs))
    }
}

/// Colour for a terminal that wants it (not when piped, not with `NO_COLOR`).
#[derive(Clone, Copy)]
pub struct Paint(bool);

impl Paint {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set.
    pub fn stdout() -> Paint {
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn green(self, t: &str) -> String {
        self.wrap("32", t)
    }
    pub fn red(self, t: &str) -> String {
        self.wrap("31", t)
    }
    pub fn yellow(self, t: &str) -> String {
        self.wrap("33", t)
    }
    pub fn dim(self, t: &str) -> String {
        self.wrap("2", t)
    }
    pub fn bold(self, t: &str) -> String {
        self.wrap("1", t)
    }
}

/// What a stored event is about, in a few words ([`Event::describe`]); the reason when it
/// cannot be read.
pub fn about(ev: &StoredEvent) -> String {
    match Event::from_stored(&ev.body, ev.format) {
        Ok((event, _)) => event.describe(),
        Err(reason) => format!("unreadable: {reason}"),
    }
}

/// The builder a stored event is about, if it is about one (every build of a buildset counts).
pub fn builders_of(ev: &StoredEvent) -> Vec<String> {
    let Ok((event, _)) = Event::from_stored(&ev.body, ev.format) else {
        return Vec::new();
    };
    match &event.subject {
        Subject::Build(b) => b.builder_name().map(str::to_owned).into_iter().collect(),
        Subject::Buildset { builds, .. } => builds
            .iter()
            .filter_map(|b| b.builder_name().map(str::to_owned))
            .collect(),
        Subject::Worker(_) => Vec::new(),
    }
}

/// A payload as a person reads it: a mail as the message it is (envelope, then headers and
/// body with plain line ends), JSON pretty-printed, anything else as it is.
pub fn readable_payload(payload: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) else {
        return payload.to_owned();
    };
    if let (Some(from), Some(rcpt), Some(message)) = (
        value.get("from").and_then(|v| v.as_str()),
        value.get("rcpt").and_then(|v| v.as_array()),
        value.get("message").and_then(|v| v.as_str()),
    ) {
        let rcpt: Vec<&str> = rcpt.iter().filter_map(|r| r.as_str()).collect();
        return format!(
            "(envelope from {from} to {})\n{}",
            rcpt.join(", "),
            message.replace("\r\n", "\n").trim_end()
        );
    }
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| payload.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_payload_reads_as_a_message() {
        let p = r#"{"from":"ci@example.org","rcpt":["a@example.org","b@example.org"],"message":"Subject: hi\r\nTo: a@example.org\r\n\r\nbody line\r\n"}"#;
        assert_eq!(
            readable_payload(p),
            "(envelope from ci@example.org to a@example.org, b@example.org)\nSubject: hi\nTo: a@example.org\n\nbody line"
        );
        assert_eq!(readable_payload("{\"a\":1}"), "{\n  \"a\": 1\n}");
        assert_eq!(readable_payload("PRIVMSG #x :hi"), "PRIVMSG #x :hi");
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(0, 5_000), "5s ago");
        assert_eq!(ago(0, 185_000), "3m ago");
        assert_eq!(ago(0, 2 * 3_600_000 + 61_000), "2h ago");
        assert_eq!(ago(10_000, 0), "in 10s");
    }
}
