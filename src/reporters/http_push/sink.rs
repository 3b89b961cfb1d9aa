//! The HTTP client side of HTTP push: one POST per delivery (or per batch), answers mapped to
//! retry classes by the shared defaults ([`crate::reporters::http::classify`]). Every request
//! carries an `Idempotency-Key`, so the sink is idempotent: a request that may have reached
//! the peer (a timeout while waiting for the answer) is sent again with the same key.

use super::HttpPushConfig;
use crate::outbox::{Batching, Outgoing, Sink, SinkError, SinkFuture};
use crate::reporters::http::{
    self, ClientOptions, HttpAuth, classify, retry_after, snippet, transport_error,
};
use reqwest::header::CONTENT_TYPE;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// Posts deliveries to one URL.
pub struct HttpPushSink {
    client: reqwest::Client,
    auth: Option<HttpAuth>,
    url: String,
    /// `url` parsed once, not at every request (a URL that does not parse is left to the
    /// request, which fails with reqwest's reason).
    parsed: Option<reqwest::Url>,
    batching: Option<Batching>,
}

/// The `Idempotency-Key` of a request carrying `keys` (one delivery, or a batch): a hash, so
/// that it is a valid header value whatever the builder and master names are.
pub fn idempotency_key<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0]);
    }
    format!("tidings-{}", hex::encode(&h.finalize()[..16]))
}

impl HttpPushSink {
    /// Builds the client: auth, headers, TLS verification, extra CA, client certificate
    /// (relative paths against `base`).
    pub fn new(c: &HttpPushConfig, base: &Path) -> anyhow::Result<HttpPushSink> {
        let ca_file = c.ca_file.as_ref().map(|p| base.join(p));
        let client_cert = c.client_cert.as_ref().map(|p| base.join(p));
        let client = http::client(&ClientOptions {
            timeout: c.timeout.map_or(Duration::from_secs(30), |t| t.0),
            verify: c.verify,
            ca_file: ca_file.as_deref(),
            client_cert: client_cert.as_deref(),
            headers: Some(&c.headers),
        })?;
        let batching = c.buffer_delay.map(|d| Batching {
            delay: d.0,
            chunk_size: c.chunk_size.unwrap_or(200).max(1),
            max_bytes: c.max_http_request_size.map_or(1 << 20, |s| s.0 as usize),
        });
        Ok(HttpPushSink {
            client,
            auth: c.auth.clone(),
            url: c.server_url.clone(),
            parsed: reqwest::Url::parse(&c.server_url).ok(),
            batching,
        })
    }

    async fn post(&self, batch: &[Outgoing]) -> Result<String, SinkError> {
        let body = if self.batching.is_some() {
            let parts: Vec<&str> = batch.iter().map(|d| d.payload.as_str()).collect();
            format!("[{}]", parts.join(","))
        } else {
            batch.first().map(|d| d.payload.clone()).unwrap_or_default()
        };
        let key = idempotency_key(batch.iter().map(|d| d.key.as_str()));
        let request = match &self.parsed {
            Some(url) => self.client.post(url.clone()),
            None => self.client.post(&self.url),
        };
        let mut request = request
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &key)
            .body(body);
        if let Some(auth) = &self.auth {
            request = auth.apply(request);
        }
        let response = request.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        if status.is_success() {
            return Ok(format!("HTTP {status}"));
        }
        let text = response.text().await.unwrap_or_default();
        let message = format!("HTTP {status}: {}", snippet(&text));
        Err(SinkError::new(classify(status, wait), message))
    }
}

impl Sink for HttpPushSink {
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(self.post(batch))
    }

    fn batching(&self) -> Option<Batching> {
        self.batching
    }

    /// Every request carries an `Idempotency-Key`: the peer can drop a repeat.
    fn idempotent(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_header_safe_and_stable() {
        let k = idempotency_key(["http://ci/|build/1/build_finished|push|http://x"]);
        assert_eq!(
            k,
            idempotency_key(["http://ci/|build/1/build_finished|push|http://x"])
        );
        assert!(k.starts_with("tidings-") && k.len() == 8 + 32);
        assert_ne!(k, idempotency_key(["a", "b"]));
        assert_ne!(idempotency_key(["ab"]), idempotency_key(["a", "b"]));
    }
}
