//! `[[reporter.irc]]`: Buildbot's IRC bot (`reporters.IRC`, `words.py` and `irc.py`).
//!
//! The bot is a long-lived [`Service`](crate::reporters::Service) ([`bot::IrcBot`]): one
//! connection per configured bot ([`conn`]), kept across SIGHUP while the table is unchanged,
//! reconnecting forever, answering commands ([`commands`]). Notifications go through the
//! outbox like every delivery: [`Irc::render`] decides, per channel and pm nick, from each
//! one's notify events and Buildbot's transition rules ([`notify`]), which of them are told,
//! and makes one delivery per target with the text's lines; the sink ([`sink`]) writes them
//! when the bot is connected (a notification made while the server is down waits, and is said
//! once after the bot is back). Text from build data can never start an IRC command of its own
//! ([`text`]), and flood control ([`flood`]) paces every line.

mod bot;
mod commands;
mod config;
mod conn;
mod flood;
mod notify;
mod sink;
mod text;
mod wire;

pub use bot::IrcBot;
pub use config::{Acl, ChannelSpec, IrcConfig};
pub use notify::{finished_notified, valid_event};
pub use text::message_lines;

use crate::config::{RetrySettings, Selection, WorkerFilter};
use crate::event::{EventKind, Subject};
use crate::outbox::Sink;
use crate::reporters::{Formatted, HookCall, Output, RenderInput, Rendered, Reporter};
use notify::Texts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use text::{clean, fold, is_channel};

/// At most this many lines of a formatter's message are said.
pub const MAX_FORMATTER_LINES: usize = 5;

/// The lines a formatter's plain body is said as: one message per line, blank lines dropped,
/// control characters made spaces, at most [`MAX_FORMATTER_LINES`].
pub fn formatter_lines(body: &str) -> Vec<String> {
    body.lines()
        .map(clean)
        .filter(|l| !l.trim().is_empty())
        .take(MAX_FORMATTER_LINES)
        .collect()
}

/// What one delivery says: the lines, to its destination (a channel or a nick).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub lines: Vec<String>,
}

/// A configured IRC bot, as dispatch sees it.
pub struct Irc {
    selection: Selection,
    retry: RetrySettings,
    bot: Arc<IrcBot>,
    sink: Arc<sink::IrcSink>,
}

impl Irc {
    fn new(config: &IrcConfig, bot: Arc<IrcBot>) -> Irc {
        let mut selection = crate::config::CommonOptions::selection(config);
        // Every worker is followed; the `worker` notify event decides who is told.
        selection.workers = Some(WorkerFilter::All("all".into()));
        Irc {
            selection,
            retry: config.irc_retry(),
            sink: Arc::new(sink::IrcSink::new(bot.clone())),
            bot,
        }
    }

    /// The targets told about an event: each contact `wants` accepts, among the channels the
    /// bot is to be on and the nicks; muted ones are left out.
    fn targets(&self, wants: impl Fn(&BTreeSet<String>) -> bool) -> Vec<String> {
        let st = self.bot.state();
        st.contacts
            .iter()
            .filter(|(folded, c)| {
                !c.muted
                    && wants(&c.events)
                    && (!is_channel(&c.name) || st.channels.contains_key(*folded))
            })
            .map(|(_, c)| c.name.clone())
            .collect()
    }
}

impl IrcBot {
    /// How texts are written, from the settings.
    pub(crate) fn texts(&self) -> Texts {
        Texts {
            colours: self.settings.use_colors,
            use_revisions: self.settings.use_revisions,
            show_blame_list: self.settings.show_blame_list,
        }
    }
}

impl Reporter for Irc {
    fn kind(&self) -> &'static str {
        "irc"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        true
    }

    /// Each channel's notify events decide, not a mode.
    fn uses_mode(&self) -> bool {
        false
    }

    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        match kind {
            EventKind::BuildStarted | EventKind::BuildFinished => Some(HookCall::message(
                self.selection.message_formatter.as_deref(),
            )),
            EventKind::WorkerMissing | EventKind::WorkerConnected => Some(HookCall::message(None)),
            _ => None,
        }
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        match output.message() {
            Some(m) if m.message_type != tidings_guest::MessageType::Plain => Err(format!(
                "irc says plain text; the formatter returned type {:?}",
                m.message_type
            )),
            _ => Ok(()),
        }
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let texts = self.bot.texts();
        let (native, targets) = match (input.kind, input.build, &input.event.subject) {
            (EventKind::BuildStarted, Some(b), _) => {
                (texts.started(b), self.targets(|e| e.contains("started")))
            }
            (EventKind::BuildFinished, Some(b), _) => {
                let Some(results) = b.results else {
                    return Vec::new();
                };
                let prev = input.prev.and_then(|p| p.results);
                let mut targets = self.targets(|e| notify::finished_notified(e, results, prev));
                if let Some(id) = b.buildid {
                    let mut st = self.bot.state();
                    let (watched, rest): (Vec<_>, Vec<_>) =
                        st.watches.drain(..).partition(|(_, _, w)| *w == id);
                    st.watches = rest;
                    for (folded, target, _) in watched {
                        if !targets.iter().any(|t| fold(t) == folded) {
                            targets.push(target);
                        }
                    }
                }
                (texts.finished(b, input.users), targets)
            }
            (EventKind::WorkerMissing, _, Subject::Worker(w)) => {
                self.bot.state().missing_workers.insert(w.name.clone());
                self.bot.save_missing_workers();
                (
                    format!(
                        "Worker `{}` is missing. It was seen last on {}.",
                        clean(&w.name),
                        clean(w.last_connection.as_deref().unwrap_or("an unknown date"))
                    ),
                    self.targets(|e| e.contains("worker")),
                )
            }
            (EventKind::WorkerConnected, _, Subject::Worker(w)) => {
                if !self.bot.state().missing_workers.remove(&w.name) {
                    return Vec::new();
                }
                self.bot.save_missing_workers();
                (
                    format!("Worker `{}` is back online.", clean(&w.name)),
                    self.targets(|e| e.contains("worker")),
                )
            }
            _ => return Vec::new(),
        };
        let lines: Vec<String> = match input.message {
            Formatted::Custom(Output::Message(m)) => formatter_lines(m.body.as_str().unwrap_or("")),
            _ => vec![native],
        };
        if lines.is_empty() {
            return Vec::new();
        }
        let payload = serde_json::to_string(&Payload { lines }).expect("an IRC payload serialises");
        targets
            .into_iter()
            .map(|destination| Rendered {
                destination,
                payload: payload.clone(),
            })
            .collect()
    }

    fn sink(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    fn retry(&self) -> RetrySettings {
        self.retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatters_body_is_at_most_five_clean_lines() {
        let body = "one\n\ntwo\r\nthree\x01\nfour\nfive\nsix\nseven";
        assert_eq!(
            formatter_lines(body),
            ["one", "two", "three ", "four", "five"]
        );
    }
}
