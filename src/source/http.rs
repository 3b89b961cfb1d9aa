//! The HTTP ingest source.
//!
//! `POST /api/v1/buildbot` takes Buildbot's HttpStatusPush body as it is: one build dict, a
//! start or a finish by its `complete`. Point a master at it with
//! `HttpStatusPush(serverUrl="http://<tidings>/api/v1/buildbot", auth=(user, password))`.
//!
//! `POST /api/v1/events` takes the native envelope ([`crate::event::Envelope`], JSON Schema in
//! `guest-sdk/schema/event.schema.json`): any CI or script can report builds, buildsets, build
//! requests and workers with it.
//!
//! Answers: 202 with `{"id": …, "duplicate": …}` once the event is committed to the store (so
//! an acknowledged event survives `kill -9`); 400 with the reason for a body that is not a build
//! dict; 401 without valid credentials (compared in constant time); 413 above `max_body`; 503
//! if the store cannot commit (the sender should retry; nothing was stored). Nothing panics on
//! any input.
//!
//! Concurrent requests share one transaction: the store's [`Committer`] thread takes every event
//! waiting and commits them together (group commit), so durability does not cap throughput.

use crate::config::Secret;
use crate::dispatch::ReadEvent;
use crate::event::{BodyFormat, Build, Envelope, Event};
use crate::metrics::Metrics;
use crate::store::{Committer, Store};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who may ingest: a bearer token, HTTP Basic credentials, either, or (both `None`) anyone.
#[derive(Clone, Default)]
pub struct IngestAuth {
    pub token: Option<Secret>,
    pub basic: Option<(String, Secret)>,
}

impl IngestAuth {
    /// Whether the request's `Authorization` header is acceptable.
    fn allows(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() && self.basic.is_none() {
            return true;
        }
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer`, `BASIC` are fine.
        let (scheme, given) = value.trim().split_once(' ').unwrap_or((value, ""));
        let given = given.trim_start();
        if let Some(token) = &self.token
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()));
        }
        if let Some((user, password)) = &self.basic
            && scheme.eq_ignore_ascii_case("basic")
        {
            let expected = format!("{user}:{}", password.expose());
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(given.trim())
                .unwrap_or_default();
            return bool::from(decoded.as_slice().ct_eq(expected.as_bytes()));
        }
        false
    }
}

/// What the ingest endpoints need.
#[derive(Clone)]
pub struct Ingest {
    pub committer: Committer,
    /// The store the committer writes to (`/healthz` says when it is full).
    pub store: Arc<Store>,
    pub auth: IngestAuth,
    /// Largest body accepted, in bytes.
    pub max_body: usize,
    /// How long a client may take to send the body (then 408).
    pub body_timeout: std::time::Duration,
    /// Where accepted events are counted.
    pub metrics: Arc<Metrics>,
}

/// The ingest routes: `POST /api/v1/buildbot`, `POST /api/v1/events`, `GET /healthz`.
pub fn router(ingest: Ingest) -> Router {
    Router::new()
        .route("/api/v1/buildbot", post(buildbot))
        .route("/api/v1/events", post(native))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(ingest))
}

/// The body of an authenticated request: at most `max_body` bytes (else 413) within
/// `body_timeout` (else 408). Credentials are checked first, so nobody without them can make the
/// daemon read (or wait for) a body.
async fn read_body(ingest: &Ingest, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    if !ingest.auth.allows(headers) {
        return Err(unauthorized());
    }
    match tokio::time::timeout(
        ingest.body_timeout,
        axum::body::to_bytes(body, ingest.max_body),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_too_large(&e) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than max_body ({} bytes)",
                ingest.max_body
            ),
        )),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within body_timeout ({:?})",
                ingest.body_timeout
            ),
        )),
    }
}

/// Whether reading a body failed because it is over the limit.
fn is_too_large(e: &axum::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// `GET /healthz`: `ok`, or 503 with the reason while the store cannot take new events.
async fn healthz(State(ingest): State<Arc<Ingest>>) -> Response {
    let store = ingest.store.clone();
    let unhealthy = match tokio::task::spawn_blocking(move || store.full()).await {
        Ok(Ok(None)) => return "ok\n".into_response(),
        Ok(Ok(Some(why))) => why,
        Ok(Err(e)) => format!("the store cannot be read: {e}"),
        Err(e) => format!("the health check failed: {e}"),
    };
    (StatusCode::SERVICE_UNAVAILABLE, format!("{unhealthy}\n")).into_response()
}

/// A refusal (or failure) with its reason, logged: a warning for a refused request, an error
/// when tidings could not do its part.
fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    let reason = reason.into();
    if status.is_client_error() {
        tracing::warn!(
            status = status.as_u16(),
            "ingest refused a request: {reason}"
        );
    }
    (status, axum::Json(json!({ "error": reason }))).into_response()
}

fn unauthorized() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"tidings\""),
    );
    r
}

async fn buildbot(State(ingest): State<Arc<Ingest>>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&ingest, &headers, body).await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let parse = |body: &[u8]| {
        let build: Build = serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a Buildbot build dict: {e}"))?;
        Event::from_build(build)
    };
    ingest_one(&ingest, &body, parse, "http_buildbot", BodyFormat::Build).await
}

async fn native(State(ingest): State<Arc<Ingest>>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&ingest, &headers, body).await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let parse = |body: &[u8]| {
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
            format!("the body is not a tidings event envelope (schema_version 1): {e}")
        })?;
        Event::from_envelope(envelope)
    };
    ingest_one(&ingest, &body, parse, "http_events", BodyFormat::Envelope).await
}

/// Parses an authenticated body into an event (400 with the reason if it is not one) and
/// commits it, stored as received (`Event::from_stored` reads either form back).
async fn ingest_one(
    ingest: &Ingest,
    body: &[u8],
    parse: impl FnOnce(&[u8]) -> Result<Event, String>,
    source: &'static str,
    format: BodyFormat,
) -> Response {
    // Only a JSON object can be an event: serde would read a struct from an array too.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object (one event)",
        );
    }
    let event = match parse(body) {
        Ok(e) => e,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let body = String::from_utf8_lossy(body).into_owned();
    // Dispatch gets the event as parsed here, and need not parse the stored body again.
    let read = Arc::new(ReadEvent::new(event, format, &body));
    accept(ingest, read, source, body, format).await
}

/// Commits a checked event and answers 202 (or 503 when the store cannot take it).
async fn accept(
    ingest: &Ingest,
    read: Arc<ReadEvent>,
    source: &'static str,
    body: String,
    format: BodyFormat,
) -> Response {
    let event = read.event();
    match ingest
        .committer
        .commit(
            event.key(),
            event.kind.name(),
            source,
            body,
            format,
            Some(read.clone()),
        )
        .await
    {
        Ok(stored) => {
            super::log_accepted(event, source, stored);
            ingest
                .metrics
                .event(source, event.kind.name(), stored.duplicate);
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "id": stored.id, "duplicate": stored.duplicate })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot commit an ingested event");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the event could not be stored, retry later: {e}"),
            )
        }
    }
}
