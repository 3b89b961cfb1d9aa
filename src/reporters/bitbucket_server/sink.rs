//! Posts to Bitbucket Server: each delivery carries its path under `base_url`, its JSON body
//! and the status that means success (204 for build statuses, 201 for a comment; Bitbucket
//! answers anything else when it did not take it). 400, 401, 403 and 404 are dead letters with
//! Bitbucket's message; 5xx, 408/429 and connection errors retry.

use crate::outbox::{Outgoing, RetryClass, Sink, SinkError, SinkFuture};
use crate::reporters::http::{
    self, ClientOptions, HttpAuth, classify, retry_after, snippet, transport_error,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// One request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Under `base_url`, starting with `/`.
    pub path: String,
    pub body: serde_json::Value,
    /// The status that means "done" (204, or 201 for comments).
    pub expect: u16,
}

/// Posts to one Bitbucket Server.
pub struct BitbucketSink {
    client: reqwest::Client,
    base: String,
    auth: Option<HttpAuth>,
    /// Build statuses may be posted twice (the newest wins); comments may not.
    idempotent: bool,
}

/// Bitbucket's error message (`errors[0].message`), or the answer itself.
fn bitbucket_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.pointer("/errors/0/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| snippet(text))
}

impl BitbucketSink {
    pub fn new(
        base: &str,
        auth: Option<HttpAuth>,
        verify: bool,
        ca_file: Option<&Path>,
        timeout: Option<Duration>,
        idempotent: bool,
    ) -> anyhow::Result<BitbucketSink> {
        Ok(BitbucketSink {
            client: http::client(&ClientOptions {
                timeout: timeout.unwrap_or(Duration::from_secs(30)),
                verify,
                ca_file,
                client_cert: None,
                headers: None,
            })?,
            base: base.to_owned(),
            auth,
            idempotent,
        })
    }

    async fn post(&self, d: &Outgoing) -> Result<String, SinkError> {
        let p: Payload = serde_json::from_str(&d.payload).map_err(|e| {
            SinkError::new(
                RetryClass::Never,
                format!("the stored request is unreadable: {e}"),
            )
        })?;
        let mut req = self
            .client
            .post(format!("{}{}", self.base, p.path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(p.body.to_string());
        if let Some(a) = &self.auth {
            req = a.apply(req);
        }
        let response = req.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        if status.as_u16() == p.expect {
            return Ok(format!("HTTP {status}: {}", p.path));
        }
        let message = format!("HTTP {status}: {}", bitbucket_message(&text));
        let class = match status.as_u16() {
            400 | 401 | 403 | 404 => RetryClass::Never,
            s if (200..300).contains(&s) => RetryClass::Never,
            _ => classify(status, wait),
        };
        Err(SinkError::new(class, message))
    }
}

impl Sink for BitbucketSink {
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(async move {
            match batch.first() {
                Some(d) => self.post(d).await,
                None => Ok("nothing to send".into()),
            }
        })
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }
}
