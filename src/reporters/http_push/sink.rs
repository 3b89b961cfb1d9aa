//! The HTTP client side of HTTP push: one POST per delivery (or per batch), status codes mapped
//! to retry classes.

use crate::config::{HttpAuth, HttpPushConfig};
use crate::outbox::{Batching, RetryClass, Sink, SinkError, SinkFuture};
use crate::store::Delivery;
use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// Posts deliveries to one URL.
pub struct HttpPushSink {
    client: reqwest::Client,
    url: String,
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
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("tidings-{hex}")
}

impl HttpPushSink {
    /// Builds the client: auth, headers, TLS verification, extra CA, client certificate.
    pub fn new(c: &HttpPushConfig) -> anyhow::Result<HttpPushSink> {
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("header name {k:?} is not valid"))?;
            let value = HeaderValue::from_str(v)
                .with_context(|| format!("the value of header {k:?} is not valid"))?;
            headers.insert(name, value);
        }
        if let Some(auth) = &c.auth {
            let value = match auth {
                HttpAuth::Basic { user, password } => {
                    use base64::Engine;
                    let raw = format!("{user}:{}", password.expose());
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )
                }
                HttpAuth::Bearer { bearer } => format!("Bearer {}", bearer.expose()),
            };
            let mut value = HeaderValue::from_str(&value)
                .context("the credentials contain characters not allowed in a header")?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
            .timeout(c.timeout.map_or(Duration::from_secs(30), |t| t.0))
            .connect_timeout(Duration::from_secs(10))
            .danger_accept_invalid_certs(!c.verify);
        if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read ca_file {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("ca_file {} is not PEM", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        if let Some(path) = &c.client_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read client_cert {}", path.display()))?;
            let id = reqwest::Identity::from_pem(&pem).with_context(|| {
                format!(
                    "client_cert {} must hold a certificate and its key in PEM",
                    path.display()
                )
            })?;
            b = b.identity(id);
        }
        let batching = c.buffer_delay.map(|d| Batching {
            delay: d.0,
            chunk_size: c.chunk_size.unwrap_or(200).max(1),
            max_bytes: c.max_http_request_size.map_or(1 << 20, |s| s.0 as usize),
        });
        Ok(HttpPushSink {
            client: b.build().context("cannot build the HTTP client")?,
            url: c.server_url.clone(),
            batching,
        })
    }

    async fn post(&self, batch: &[Delivery]) -> Result<String, SinkError> {
        let body = if self.batching.is_some() {
            let parts: Vec<&str> = batch.iter().map(|d| d.payload.as_str()).collect();
            format!("[{}]", parts.join(","))
        } else {
            batch.first().map(|d| d.payload.clone()).unwrap_or_default()
        };
        let key = idempotency_key(batch.iter().map(|d| d.key.as_str()));
        let response = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &key)
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError::new(RetryClass::Backoff, describe(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        if status.is_success() {
            return Ok(format!("HTTP {status}"));
        }
        let text = response.text().await.unwrap_or_default();
        let snippet: String = text.chars().take(200).collect();
        let message = format!("HTTP {status}: {}", snippet.trim());
        Err(SinkError::new(classify(status, retry_after), message))
    }
}

/// Which failures are worth retrying: 408, 425, 429 and 5xx are transient (a `Retry-After`
/// says when to come back); any other status is permanent.
pub fn classify(status: StatusCode, retry_after: Option<Duration>) -> RetryClass {
    let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    match (transient, retry_after) {
        (true, Some(d)) => RetryClass::RetryAfter(d),
        (true, None) => RetryClass::Backoff,
        (false, _) => RetryClass::Never,
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// A transport error in words (reqwest's Display hides the cause).
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl Sink for HttpPushSink {
    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> SinkFuture<'a> {
        Box::pin(self.post(batch))
    }

    fn batching(&self) -> Option<Batching> {
        self.batching
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_classes() {
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(s(500), None), RetryClass::Backoff);
        assert_eq!(classify(s(503), None), RetryClass::Backoff);
        assert_eq!(
            classify(s(429), Some(Duration::from_secs(2))),
            RetryClass::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(classify(s(408), None), RetryClass::Backoff);
        assert_eq!(classify(s(400), None), RetryClass::Never);
        assert_eq!(classify(s(401), None), RetryClass::Never);
        assert_eq!(
            classify(s(404), Some(Duration::from_secs(2))),
            RetryClass::Never
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

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
