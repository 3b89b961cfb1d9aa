//! `[[reporter.http_push]]`: Buildbot's HttpStatusPush (4.x wire: one POST per event with the
//! build dict, or the formatter's JSON body) and the 0.8 StatusPush (batches of packets, as a
//! JSON array, when `buffer_delay` is set). Unlike Buildbot's, it retries, and every request
//! carries an `Idempotency-Key` so the peer can drop repeats.

mod config;
mod render;
mod sink;

pub use config::HttpPushConfig;
pub use render::packet;
pub use sink::{HttpPushSink, idempotency_key};

use crate::config::{CommonOptions, RetrySettings, Selection};
use crate::outbox::Sink;
use crate::reporters::{RenderInput, Rendered, Reporter};
use std::sync::Arc;

/// A configured HTTP push reporter.
pub struct HttpPush {
    selection: Selection,
    report_new: bool,
    batched: bool,
    url: String,
    retry: RetrySettings,
    sink: Arc<HttpPushSink>,
}

impl HttpPush {
    /// Builds the reporter and its HTTP client (reads the CA and client certificate files;
    /// relative paths are resolved against `base`, the config file's directory).
    pub fn new(config: &HttpPushConfig, base: &std::path::Path) -> anyhow::Result<HttpPush> {
        let sink = HttpPushSink::new(config, base)?;
        Ok(HttpPush {
            selection: config.selection(),
            report_new: config.report_new,
            batched: sink.batching().is_some(),
            url: config.server_url.clone(),
            retry: config.retry(),
            sink: Arc::new(sink),
        })
    }
}

impl Reporter for HttpPush {
    fn kind(&self) -> &'static str {
        "http_push"
    }

    fn selection(&self) -> &Selection {
        &self.selection
    }

    fn report_new(&self) -> bool {
        self.report_new
    }

    fn render(&self, input: &RenderInput<'_>) -> Vec<Rendered> {
        let body = render::body(input);
        let payload = if self.batched {
            render::packet(input, &body)
        } else {
            body
        };
        vec![Rendered {
            destination: self.url.clone(),
            payload,
        }]
    }

    fn sink(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    fn retry(&self) -> RetrySettings {
        self.retry
    }
}
