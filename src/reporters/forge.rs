//! What the forge reporters (GitHub, GitLab, Bitbucket Server, and their comments) share:
//! Buildbot's status generators (a build request, a start, an end), their default texts, and
//! how a formatter's text replaces them.

use crate::config::Secret;
use crate::event::EventKind;
use crate::reporters::{Formatted, HookCall, Output};
use std::collections::BTreeMap;

/// The hook of Buildbot's status generators for `kind`: build starts and ends, and build
/// requests (submitted, cancelled) when `requests`; `messageFormatter` with `formatter`.
pub fn status_hook(kind: EventKind, formatter: Option<&str>, requests: bool) -> Option<HookCall> {
    let wanted = match kind {
        EventKind::BuildStarted | EventKind::BuildFinished => true,
        EventKind::BuildrequestNew | EventKind::BuildrequestCancelled => requests,
        _ => false,
    };
    wanted.then(|| HookCall::message(formatter))
}

/// The hook of a comment reporter: finished builds only.
pub fn comment_hook(kind: EventKind, formatter: Option<&str>) -> Option<HookCall> {
    (kind == EventKind::BuildFinished).then(|| HookCall::message(formatter))
}

/// Refuses a formatter result that is not text (`what`: "a GitHub status description", …).
pub fn text_only(output: &Output, what: &str) -> Result<(), String> {
    match output.message() {
        Some(m) if !m.body.is_string() => {
            Err(format!("{what} is text; the formatter returned JSON"))
        }
        _ => Ok(()),
    }
}

/// The configured formatter's text, when it gave one (the built-in texts otherwise).
pub fn formatter_text(message: &Formatted) -> Option<String> {
    match message {
        Formatted::Custom(Output::Message(m)) => {
            Some(m.body.as_str().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

/// Buildbot's default texts of the status generators, or the configured ones.
#[derive(Debug, Clone)]
pub struct Descriptions {
    pub pending: String,
    pub start: String,
    pub end: String,
}

impl Descriptions {
    /// The configured texts, Buildbot's (`Build pending.`, `Build started.`, `Build done.`)
    /// where none is given.
    pub fn new(
        pending: &Option<String>,
        start: &Option<String>,
        end: &Option<String>,
    ) -> Descriptions {
        let or = |t: &Option<String>, d: &str| t.clone().unwrap_or_else(|| d.to_owned());
        Descriptions {
            pending: or(pending, "Build pending."),
            start: or(start, "Build started."),
            end: or(end, "Build done."),
        }
    }

    /// The text for an event of `kind` (a cancelled request keeps the pending text, as
    /// Buildbot's); the formatter's, when it gave one.
    pub fn for_event(&self, kind: EventKind, message: &Formatted) -> String {
        formatter_text(message).unwrap_or_else(|| {
            match kind {
                EventKind::BuildrequestNew | EventKind::BuildrequestCancelled => &self.pending,
                EventKind::BuildStarted => &self.start,
                _ => &self.end,
            }
            .clone()
        })
    }
}

/// `[secrets]` with their values, for `%(secret:…)s` in templates.
pub fn secret_values(secrets: &BTreeMap<String, Secret>) -> BTreeMap<String, String> {
    secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect()
}
