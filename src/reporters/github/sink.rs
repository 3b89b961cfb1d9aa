//! Posts commit statuses: `POST {base_url}/repos/{owner}/{repo}/statuses/{sha}` with
//! `Authorization: token …`.
//!
//! Answers: 2xx delivered; 422 (a bad status, an unknown sha) and 404 (no such repository, or
//! a token that may not see it) are dead letters with GitHub's message; 403 or 429 with
//! `X-RateLimit-Remaining: 0` waits until `X-RateLimit-Reset`, or `Retry-After` when given;
//! any other 403 is a dead letter; 5xx and connection errors back off. Posting a status twice
//! is harmless (the newest wins), so the sink is idempotent.

use super::{GitHubConfig, Payload};
use crate::config::Secret;
use crate::outbox::{Outgoing, RetryClass, Sink, SinkError, SinkFuture};
use crate::reporters::http::{
    self, ClientOptions, classify, encode_segment, retry_after, snippet, transport_error,
};
use reqwest::header::HeaderMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Posts statuses (or, for `github_comment`, pull request comments) to one GitHub.
pub struct GitHubSink {
    client: reqwest::Client,
    base: String,
    token: Secret,
    /// Comments (`POST …/issues/{n}/comments`) instead of statuses.
    comments: bool,
}

/// How long GitHub's rate limit says to wait: until `X-RateLimit-Reset` when
/// `X-RateLimit-Remaining` is 0, else `Retry-After`.
pub fn rate_limit_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if header("x-ratelimit-remaining") == Some("0")
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok())
    {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    retry_after(headers)
}

/// GitHub's `message` from an error answer, or the answer itself.
fn github_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| snippet(text))
}

impl GitHubSink {
    pub fn new(c: &GitHubConfig, base: &Path) -> anyhow::Result<GitHubSink> {
        let ca_file = c.ca_file.as_ref().map(|p| base.join(p));
        GitHubSink::build(
            &c.base(),
            &c.token,
            ca_file.as_deref(),
            c.timeout.map(|t| t.0),
            false,
        )
    }

    /// A sink of pull request comments.
    pub fn comments(
        base: &str,
        token: &Secret,
        ca_file: Option<&Path>,
        timeout: Option<Duration>,
    ) -> anyhow::Result<GitHubSink> {
        GitHubSink::build(base, token, ca_file, timeout, true)
    }

    fn build(
        base: &str,
        token: &Secret,
        ca_file: Option<&Path>,
        timeout: Option<Duration>,
        comments: bool,
    ) -> anyhow::Result<GitHubSink> {
        let client = http::client(&ClientOptions {
            timeout: timeout.unwrap_or(Duration::from_secs(30)),
            verify: true,
            ca_file,
            client_cert: None,
            headers: None,
        })?;
        Ok(GitHubSink {
            client,
            base: base.to_owned(),
            token: token.clone(),
            comments,
        })
    }

    /// The URL and body of a stored delivery.
    fn request(&self, payload: &str) -> Result<(String, String, String), SinkError> {
        let unreadable = |e: serde_json::Error| {
            SinkError::new(
                RetryClass::Never,
                format!("the stored delivery is unreadable: {e}"),
            )
        };
        if self.comments {
            let c: super::CommentPayload = serde_json::from_str(payload).map_err(unreadable)?;
            let url = format!(
                "{}/repos/{}/{}/issues/{}/comments",
                self.base,
                encode_segment(&c.owner),
                encode_segment(&c.repo),
                c.issue
            );
            let what = format!("comment on {}/{}#{}", c.owner, c.repo, c.issue);
            return Ok((url, serde_json::json!({ "body": c.body }).to_string(), what));
        }
        let p: Payload = serde_json::from_str(payload).map_err(unreadable)?;
        let url = format!(
            "{}/repos/{}/{}/statuses/{}",
            self.base,
            encode_segment(&p.owner),
            encode_segment(&p.repo),
            encode_segment(&p.sha)
        );
        let what = format!("{} for {}/{}@{}", p.status.state, p.owner, p.repo, p.sha);
        Ok((
            url,
            serde_json::to_string(&p.status).expect("a status serialises"),
            what,
        ))
    }

    async fn post(&self, d: &Outgoing) -> Result<String, SinkError> {
        let (url, body, what) = self.request(&d.payload)?;
        let response = self
            .client
            .post(&url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("token {}", self.token.expose()),
            )
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let wait = rate_limit_wait(response.headers(), SystemTime::now());
        let limited = response
            .headers()
            .get("x-ratelimit-remaining")
            .is_some_and(|v| v == "0")
            || response.headers().contains_key("retry-after");
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(format!("HTTP {status}: {what}"));
        }
        let message = format!("HTTP {status}: {}", github_message(&text));
        let class = match status.as_u16() {
            403 | 429 if limited => RetryClass::RetryAfter(wait.unwrap_or(Duration::from_secs(60))),
            403 | 404 | 422 => RetryClass::Never,
            _ => classify(status, wait),
        };
        Err(SinkError::new(class, message))
    }
}

impl Sink for GitHubSink {
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(async move {
            match batch.first() {
                Some(d) => self.post(d).await,
                None => Ok("nothing to send".into()),
            }
        })
    }

    /// The newest status wins: posting one twice changes nothing. A comment posted twice is
    /// there twice: comments are not idempotent.
    fn idempotent(&self) -> bool {
        !self.comments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_says_how_long_to_wait() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset", "1030".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, now), Some(Duration::from_secs(30)));
        h.insert("x-ratelimit-reset", "900".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, now), Some(Duration::from_secs(1)));
        let mut r = HeaderMap::new();
        r.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limit_wait(&r, now), Some(Duration::from_secs(7)));
        assert_eq!(
            github_message("{\"message\":\"Validation Failed\"}"),
            "Validation Failed"
        );
    }
}
