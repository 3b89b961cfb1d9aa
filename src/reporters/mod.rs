//! The reporters: what each kind renders from an event and how it delivers.
//!
//! Dispatch decides *whether* a reporter reports an event (filters, mode) and calls its
//! formatter once; the reporter turns the result into outbox payloads ([`Reporter::render`]);
//! its [`Sink`] delivers them later, from the outbox.

pub mod http_push;

use crate::config::{RetrySettings, Selection};
use crate::event::{Event, EventKind};
use crate::outbox::Sink;
use std::sync::Arc;
use tidings_guest::Message;

/// What the formatter step produced for one reporter and event.
#[derive(Debug, Clone, PartialEq)]
pub enum Formatted {
    /// The reporter's built-in message; `degraded` says which formatter failed and how.
    Default { degraded: Option<String> },
    /// The configured formatter's message.
    Custom(Message),
}

/// One event, as a reporter renders it.
pub struct RenderInput<'a> {
    /// The stored event's id (monotonic).
    pub event_id: i64,
    pub kind: EventKind,
    pub event: &'a Event,
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
    /// Where the deliveries go.
    fn sink(&self) -> Arc<dyn Sink>;
    /// How deliveries are retried.
    fn retry(&self) -> RetrySettings;
}
