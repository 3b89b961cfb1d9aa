//! `[[reporter.mail]]`: Buildbot's MailNotifier, delivered with lettre.
//!
//! - Build mails go to the blamelist (through `lookup`) and `extra_recipients`, by Buildbot's
//!   To/CC rule ([`message::recipients`]); a mail with no recipient is not sent (logged).
//! - Missing-worker mails go to the worker's `notify` list, with no To header, Buildbot's text.
//! - The body is the formatter's (`plain` or `html`; `json` is a `BadOutput`), else Buildbot's
//!   default mail, rendered natively by the same code as the `default-mail` formatter.
//! - The subject is the formatter's, else `subject` with `%(builder)s`, `%(result)s`,
//!   `%(title)s`, `%(projectName)s`; `extra_headers` values are templates too
//!   ([`crate::interpolate`]); besides Buildbot's headers every mail has `Message-ID`,
//!   `X-Tidings-Builder`, `X-Tidings-Result` and `X-Tidings-Build-Url`.

mod config;
pub mod message;
pub mod sink;
mod smtp;

pub use config::{MailConfig, MailTransport};

use crate::config::{CommonOptions, LogsWanted, RetrySettings, Secret, Selection, WorkerFilter};
use crate::event::{EventKind, Results, Subject};
use crate::formatter::Request;
use crate::interpolate::{Allowed, Context, Template};
use crate::outbox::Sink;
use crate::reporters::{HookCall, Output, RenderInput, Rendered, Reporter, message_hooks};
use anyhow::Context as _;
use config::check_config;
use lettre::message::Mailbox;
use message::{Mail as MailParts, compose, mailbox, recipients};
use sha2::{Digest, Sha256};
use sink::{MailSink, Payload};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tidings_guest::{Hook, MessageType};

/// The names a mail subject or header template may use besides properties and secrets.
pub(crate) const KW: &[&str] = &["builder", "result", "title", "projectName"];

/// Buildbot's subject when the formatter gives none.
const DEFAULT_SUBJECT: &str = "Buildbot %(result)s in %(title)s on %(builder)s";

/// A configured mail reporter.
pub struct Mail {
    selection: Selection,
    from: Mailbox,
    lookup: Option<String>,
    extra: Vec<String>,
    send_to_interested_users: bool,
    subject: Template,
    headers: Vec<(String, Template)>,
    secrets: BTreeMap<String, String>,
    add_logs: Option<LogsWanted>,
    add_patch: bool,
    /// `message_formatter_missing_worker`.
    missing_worker_formatter: Option<String>,
    retry: RetrySettings,
    sink: Arc<MailSink>,
}

impl Mail {
    /// Builds the reporter and its transport. `secrets` are the config's `[secrets]`; `dir`
    /// is where `transport = "file"` writes.
    pub fn new(
        c: &MailConfig,
        secrets: &BTreeMap<String, Secret>,
        dir: &Path,
    ) -> anyhow::Result<Mail> {
        let problems = check_config(c, secrets);
        if !problems.is_empty() {
            anyhow::bail!("{}", problems.join("; "));
        }
        let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
        let allowed = Allowed {
            kw: KW,
            secrets: &names,
        };
        let parse = |t: &str| Template::parse(t, &allowed).map_err(anyhow::Error::msg);
        let mut selection = c.selection();
        // MailNotifier's default generators report missing workers too.
        if selection.workers.is_none() {
            selection.workers = Some(WorkerFilter::All("all".into()));
        }
        // The logs to attach are fetched like `want_logs_content`; Buildbot's default template
        // (no formatter) lists the steps and their logs.
        let add_logs = c.add_logs.clone().and_then(LogsWanted::some);
        let wants = &mut selection.wants;
        wants.logs_content = LogsWanted::union(wants.logs_content.as_ref(), add_logs.as_ref());
        if wants.logs_content.is_some() || selection.message_formatter.is_none() {
            wants.steps = true;
        }
        Ok(Mail {
            selection,
            from: mailbox(&c.sender()).context("fromaddr")?,
            lookup: c.lookup.clone(),
            extra: c.extra_recipients.clone(),
            send_to_interested_users: c.send_to_interested_users,
            subject: parse(c.subject.as_deref().unwrap_or(DEFAULT_SUBJECT))?,
            headers: c
                .extra_headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), parse(v)?)))
                .collect::<anyhow::Result<_>>()?,
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
            add_logs,
            add_patch: c.add_patch,
            missing_worker_formatter: c.message_formatter_missing_worker.clone(),
            retry: c.retry(),
            sink: Arc::new(MailSink::new(c, dir)?),
        })
    }
}

impl Reporter for Mail {
    fn kind(&self) -> &'static str {
        "mail"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        false
    }

    fn default_output(&self, request: &Request) -> Option<Output> {
        let message = match request {
            Request::MissingWorker(args) => default_mail::missing_worker((**args).clone()),
            _ => {
                let args: default_mail::Args = serde_json::from_slice(&request.to_stdin()).ok()?;
                default_mail::format(args)
            }
        };
        message.ok().flatten().map(Output::Message)
    }

    fn hook(&self, kind: EventKind) -> Option<HookCall> {
        let mut call = message_hooks(&self.selection, false, kind)?;
        if kind == EventKind::WorkerMissing {
            call.hook = Hook::MessageFormatterMissingWorker;
            call.formatter = self.missing_worker_formatter.clone();
        }
        Some(call)
    }

    fn accepts(&self, output: &Output) -> Result<(), String> {
        let Some(message) = output.message() else {
            return Err("a mail needs a messageFormatter result".into());
        };
        match (&message.message_type, &message.body) {
            (MessageType::Json, _) => Err("a mail body must be plain or html, not json".into()),
            (_, serde_json::Value::String(_)) => Ok(()),
            _ => Err("a plain or html body must be a string".into()),
        }
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let is_worker = input.kind == EventKind::WorkerMissing;
        let (subject, body, html) = if is_worker {
            let (Some(m), Subject::Worker(w)) = (input.message.message(), &input.event.subject)
            else {
                tracing::warn!(reporter = %self.selection.name, "no missing-worker message to mail");
                return Vec::new();
            };
            let subject = m
                .subject
                .clone()
                .unwrap_or_else(|| format!("Buildbot {} worker {} missing", input.title, w.name));
            (
                subject,
                m.body.as_str().unwrap_or_default().to_owned(),
                m.message_type == MessageType::Html,
            )
        } else {
            let Some(m) = input.message.message() else {
                tracing::warn!(reporter = %self.selection.name, "no message to mail");
                return Vec::new();
            };
            let builder = match (input.kind, input.builds.len()) {
                (EventKind::BuildsetComplete, _) | (_, 2..) => "whole buildset".to_owned(),
                _ => input
                    .build
                    .and_then(|b| b.builder_name())
                    .unwrap_or_default()
                    .to_owned(),
            };
            let results = match &input.event.subject {
                Subject::Buildset { buildset, .. } => buildset.results,
                _ => input.build.and_then(|b| b.results),
            };
            let subject = match &m.subject {
                Some(s) => s.clone(),
                None => self
                    .subject
                    .render(&self.context(input, &builder, results, false)),
            };
            (
                subject,
                m.body.as_str().unwrap_or_default().to_owned(),
                m.message_type == MessageType::Html,
            )
        };

        // Who it goes to.
        let (to, cc, rcpt) = if is_worker {
            let rcpt: Vec<String> = input
                .users
                .iter()
                .filter(|u| message::is_valid_email(u))
                .map(|u| message::parse_address(u).1)
                .collect();
            (Vec::new(), Vec::new(), rcpt)
        } else {
            let r = recipients(
                input.users,
                self.lookup.as_deref(),
                self.send_to_interested_users,
                &self.extra,
            );
            if !r.invalid.is_empty() {
                tracing::warn!(reporter = %self.selection.name, invalid = ?r.invalid, "INVALID EMAIL addresses dropped");
            }
            let rcpt =
                r.to.iter()
                    .chain(&r.cc)
                    .map(|a| message::parse_address(a).1)
                    .collect();
            (r.to, r.cc, rcpt)
        };
        if rcpt.is_empty() {
            tracing::info!(reporter = %self.selection.name, event = input.event_id, "no recipients (no interested user with a valid address, no extra_recipients): nothing mailed");
            return Vec::new();
        }

        // Extra headers: rendered with the build's properties when the mail covers one build.
        let one_build = (input.builds.len() <= 1).then_some(input.build).flatten();
        let results = one_build.and_then(|b| b.results);
        let builder = one_build
            .and_then(|b| b.builder_name())
            .unwrap_or("whole buildset")
            .to_owned();
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.render(&self.context(input, &builder, results, one_build.is_none())),
                )
            })
            .collect();
        if let Some(b) = input.build {
            headers.push((
                "X-Tidings-Builder".into(),
                b.builder_name().unwrap_or_default().to_owned(),
            ));
            headers.push(("X-Tidings-Result".into(), Results::text_for(b.results)));
            if let Some(u) = &b.url {
                headers.push(("X-Tidings-Build-Url".into(), u.clone()));
            }
        }
        let attachments = if is_worker {
            Vec::new()
        } else {
            message::attachments(input.builds, self.add_patch, self.add_logs.as_ref())
        };
        // Stable per delivery, so a retried mail has the same Message-ID.
        let digest = Sha256::digest(format!("{}|{}", input.event_key, self.selection.name));
        let id = hex::encode(&digest[..12]);
        let domain = self.from.email.domain().to_owned();
        let message_id = format!("<{id}.{}@{domain}>", input.event_id);
        let raw = match compose(&MailParts {
            from: &self.from,
            subject: &subject,
            html,
            body: &body,
            to: (!is_worker).then_some((&to[..], &cc[..])),
            headers: &headers,
            attachments: &attachments,
            message_id: &message_id,
            date: UNIX_EPOCH + Duration::from_millis(input.now.max(0) as u64),
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(reporter = %self.selection.name, error = %e, "cannot compose the mail");
                return Vec::new();
            }
        };
        let payload = Payload {
            from: self.from.email.to_string(),
            rcpt: rcpt.clone(),
            message: String::from_utf8_lossy(&raw).into_owned(),
        };
        vec![Rendered {
            destination: format!("mail:{}", rcpt.join(",")),
            payload: serde_json::to_string(&payload).expect("a payload serialises"),
        }]
    }

    fn sink(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    fn retry(&self) -> RetrySettings {
        self.retry
    }
}

impl Mail {
    /// The template context: the build's properties (unless `no_props`), the subject keys,
    /// and the secrets.
    fn context<'a>(
        &'a self,
        input: &'a RenderInput<'a>,
        builder: &str,
        results: Option<i64>,
        no_props: bool,
    ) -> OwnedContext<'a> {
        OwnedContext {
            properties: if no_props {
                None
            } else {
                input.build.map(|b| &b.properties)
            },
            kw: vec![
                ("builder", builder.to_owned()),
                ("result", Results::text_for(results)),
                ("title", input.title.to_owned()),
                ("projectName", input.title.to_owned()),
            ],
            secrets: &self.secrets,
            sourcestamps: input
                .build
                .and_then(|b| b.buildset.as_ref())
                .map_or(&[], |bs| &bs.sourcestamps[..]),
        }
    }
}

/// [`Context`] with owned `kw` values.
struct OwnedContext<'a> {
    properties: Option<&'a crate::event::Properties>,
    kw: Vec<(&'static str, String)>,
    secrets: &'a BTreeMap<String, String>,
    sourcestamps: &'a [crate::event::SourceStamp],
}

impl crate::interpolate::Lookup for OwnedContext<'_> {
    fn lookup(
        &self,
        selector: crate::interpolate::Selector,
        key: &str,
    ) -> Option<serde_json::Value> {
        let secrets = |k: &str| self.secrets.get(k).cloned();
        Context {
            properties: self.properties,
            kw: &self.kw,
            secrets: &secrets,
            sourcestamps: self.sourcestamps,
        }
        .lookup(selector, key)
    }
}
