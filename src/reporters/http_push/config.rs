//! `[[reporter.http_push]]`: the table, its checks, and how it is built.

use super::HttpPush;
use crate::config::{DurationStr, Size, reporter_config};
use crate::reporters::http::HttpAuth;
use crate::reporters::{BuildContext, CheckContext, Reporter, ReporterConfig, same_table};
use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.http_push]]`: Buildbot's HttpStatusPush (and the 0.8 StatusPush).
    pub struct HttpPushConfig {
        /// Where to POST.
        pub server_url: String,
        /// `{ user = "…", password = "…" }` (basic) or `{ bearer = "…" }`.
        #[serde(default)]
        pub auth: Option<HttpAuth>,
        /// Extra request headers.
        #[serde(default)]
        pub headers: BTreeMap<String, String>,
        /// Verify the server's certificate [default true].
        #[serde(default = "crate::config::yes")]
        pub verify: bool,
        /// An extra CA certificate (PEM) to trust.
        #[serde(default)]
        pub ca_file: Option<PathBuf>,
        /// A client certificate and its private key, both in one PEM file.
        #[serde(default)]
        pub client_cert: Option<PathBuf>,
        /// Also report builds when they start (Buildbot's `report_new`) [default true].
        #[serde(default = "crate::config::yes")]
        pub report_new: bool,
        /// Per-request time limit [default 30s].
        #[serde(default)]
        pub timeout: Option<DurationStr>,
        /// Collect events this long into one POST of a JSON array (0.8 StatusPush); off when
        /// absent.
        #[serde(default)]
        pub buffer_delay: Option<DurationStr>,
        /// Most events per batched POST.
        #[serde(default)]
        pub chunk_size: Option<usize>,
        /// Largest batched POST body.
        #[serde(default)]
        pub max_http_request_size: Option<Size>,
    }
}

impl ReporterConfig for HttpPushConfig {
    fn check(&self, _cx: &CheckContext<'_>) -> Vec<String> {
        let u = &self.server_url;
        let mut p = Vec::new();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            p.push(format!(
                "server_url {u:?} is not an http:// or https:// URL"
            ));
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        Ok(Arc::new(HttpPush::new(self, cx.base)?))
    }

    fn same_as(&self, other: &dyn ReporterConfig) -> bool {
        same_table(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
