//! The reporters: what each kind renders from an event and how it delivers.
//!
//! Dispatch decides *whether* a reporter reports an event (filters, mode) and calls its
//! formatter once; the reporter turns the result into outbox payloads ([`Reporter::render`]);
//! its [`Sink`] delivers them later, from the outbox.

pub mod http_push;
pub mod mail;

use crate::config::{RetrySettings, Selection};
use crate::event::{Build, Event, EventKind};
use crate::formatter::Request;
use crate::outbox::Sink;
use std::sync::Arc;
use tidings_guest::Message;

/// What the formatter step produced for one reporter and event.
#[derive(Debug, Clone, PartialEq)]
pub enum Formatted {
    /// The reporter's built-in message; `degraded` says which formatter failed and how;
    /// `message` is the built-in formatter's output, for reporters that have one
    /// ([`Reporter::default_message`]).
    Default {
        degraded: Option<String>,
        message: Option<Message>,
    },
    /// The configured formatter's message.
    Custom(Message),
}

/// One event, as a reporter renders it.
pub struct RenderInput<'a> {
    /// The stored event's id (monotonic).
    pub event_id: i64,
    pub kind: EventKind,
    /// The stored event's key (unique per event).
    pub event_key: &'a str,
    pub event: &'a Event,
    /// The build as formatters saw it (completed from the master when configured), for build
    /// and build-request events; the first reported build of a buildset.
    pub build: Option<&'a Build>,
    /// The builds a buildset report covers (empty otherwise).
    pub builds: &'a [&'a Build],
    /// The blamelist (for a buildset: of every reported build); for a worker event, its
    /// `notify` list.
    pub users: &'a [String],
    /// What the built-in wire format sends: the build dict exactly as received (unknown fields
    /// kept) for build and build-request events; `{"buildset", "builds"}` with the reported
    /// builds for a buildset; the worker dict for a worker event.
    pub document: &'a str,
    pub message: &'a Formatted,
    /// `[master] title`.
    pub title: &'a str,
    /// Now, in Unix ms.
    pub now: i64,
}

/// A rendered delivery: where it goes and what is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub destination: String,
    pub payload: String,
}

/// A configured reporter.
pub trait Reporter: Send + Sync {
    /// The config table's kind: `http_push`, `mail`, …
    fn kind(&self) -> &'static str;
    /// Name, filters, mode, formatter.
    fn selection(&self) -> &Selection;
    /// Whether build starts are reported (they bypass the mode, as in Buildbot).
    fn report_new(&self) -> bool;
    /// The deliveries for one event.
    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered>;
    /// The reporter's built-in message for `request` (what its formatter would get), when it
    /// has a built-in formatter; `None` when its built-in payload needs no message.
    fn default_message(&self, _request: &Request) -> Option<Message> {
        None
    }
    /// Whether the reporter can send `message` (mail takes no `json`); the reason if not —
    /// the formatter's output then counts as a `BadOutput` failure.
    fn accepts(&self, _message: &Message) -> Result<(), String> {
        Ok(())
    }
    /// Where the deliveries go.
    fn sink(&self) -> Arc<dyn Sink>;
    /// How deliveries are retried.
    fn retry(&self) -> RetrySettings;
}
