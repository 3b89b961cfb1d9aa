//! Posts GitLab commit statuses: `POST {base_url}/api/v4/projects/{id}/statuses/{sha}` with
//! `PRIVATE-TOKEN`. A project named by `owner/repo` is looked up once (`GET
//! /api/v4/projects/owner%2Frepo`) and its id remembered.
//!
//! Answers: 200, 201 and 204 are delivered; a project that is not there (404), and 400/422
//! (GitLab refuses a state transition, say) are dead letters with GitLab's `message`; 5xx,
//! 408/429 and connection errors retry. A status posted twice is harmless: idempotent.

use super::Payload;
use crate::config::Secret;
use crate::outbox::{Outgoing, RetryClass, Sink, SinkError, SinkFuture};
use crate::reporters::http::{
    self, ClientOptions, classify, encode_segment, retry_after, snippet, transport_error,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Posts statuses to one GitLab.
pub struct GitLabSink {
    client: reqwest::Client,
    base: String,
    token: Secret,
    /// Project ids by `owner/repo`.
    ids: Mutex<HashMap<String, String>>,
}

/// GitLab's `message` from an error answer, or the answer itself.
fn gitlab_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("message").map(|m| match m {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| snippet(text))
}

impl GitLabSink {
    pub fn new(
        base: &str,
        token: &Secret,
        ca_file: Option<&Path>,
        timeout: Option<Duration>,
    ) -> anyhow::Result<GitLabSink> {
        Ok(GitLabSink {
            client: http::client(&ClientOptions {
                timeout: timeout.unwrap_or(Duration::from_secs(30)),
                verify: true,
                ca_file,
                client_cert: None,
                headers: None,
            })?,
            base: base.to_owned(),
            token: token.clone(),
            ids: Mutex::new(HashMap::new()),
        })
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Option<Duration>, String), SinkError> {
        let response = req
            .header("PRIVATE-TOKEN", self.token.expose())
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let wait = retry_after(response.headers());
        Ok((status, wait, response.text().await.unwrap_or_default()))
    }

    fn failure(status: reqwest::StatusCode, wait: Option<Duration>, text: &str) -> SinkError {
        let class = match status.as_u16() {
            400 | 404 | 422 => RetryClass::Never,
            _ => classify(status, wait),
        };
        SinkError::new(class, format!("HTTP {status}: {}", gitlab_message(text)))
    }

    /// The project id of `path` (`owner/repo`): remembered, or looked up.
    async fn project_id(&self, path: &str) -> Result<String, SinkError> {
        if let Some(id) = self.ids.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
            return Ok(id.clone());
        }
        let url = format!("{}/api/v4/projects/{}", self.base, encode_segment(path));
        let (status, wait, text) = self.send(self.client.get(&url)).await?;
        if !status.is_success() {
            let mut e = Self::failure(status, wait, &text);
            e.message = format!("looking up the GitLab project {path}: {}", e.message);
            return Err(e);
        }
        let id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("id")
                    .map(|id| id.to_string().trim_matches('"').to_owned())
            })
            .ok_or_else(|| {
                SinkError::new(
                    RetryClass::Never,
                    format!(
                        "GitLab's answer for project {path} has no id: {}",
                        snippet(&text)
                    ),
                )
            })?;
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned(), id.clone());
        Ok(id)
    }

    async fn post(&self, d: &Outgoing) -> Result<String, SinkError> {
        let p: Payload = serde_json::from_str(&d.payload).map_err(|e| {
            SinkError::new(
                RetryClass::Never,
                format!("the stored status is unreadable: {e}"),
            )
        })?;
        let id = match &p.project_id {
            Some(id) => id.clone(),
            None => self.project_id(&p.path).await?,
        };
        let url = format!(
            "{}/api/v4/projects/{}/statuses/{}",
            self.base,
            encode_segment(&id),
            encode_segment(&p.sha)
        );
        let req = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_string(&p.status).expect("a status serialises"));
        let (status, wait, text) = self.send(req).await?;
        if matches!(status.as_u16(), 200 | 201 | 204) {
            return Ok(format!(
                "HTTP {status}: {} for project {id} at {}",
                p.status.get("state").map_or("", String::as_str),
                p.sha
            ));
        }
        Err(Self::failure(status, wait, &text))
    }
}

impl Sink for GitLabSink {
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(async move {
            match batch.first() {
                Some(d) => self.post(d).await,
                None => Ok("nothing to send".into()),
            }
        })
    }

    /// The newest status wins: posting one twice changes nothing.
    fn idempotent(&self) -> bool {
        true
    }
}
