//! A client of a Buildbot master's web API: REST (`/api/v2`), `/config`, and the URL of its
//! WebSocket event stream (`/ws`). Used by `[source.buildbot]` (and, later, by the IRC bot's
//! `force` and `stop` commands).
//!
//! The master answers REST with `Content-Type: text/plain` although the body is JSON; this
//! client parses the body whatever the header says. Collections come as
//! `{"<type>": [...], "meta": {...}}`.
//!
//! The `*_dict` methods build what Buildbot's reporters send (its `getDetailsForBuild`): the
//! build with `properties`, `builder`, `buildrequest`, `buildset` (with its source stamps) and
//! `url`, so an event from the stream and the same build from HttpStatusPush are alike.

use crate::config::{BuildbotSource, LogsWanted, Secret};
use crate::history::Recent;
use anyhow::Context;
use serde_json::{Value, json};
use std::time::Duration;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: the answer is not JSON: {reason}")]
    Json { url: String, reason: String },
    /// The master refused a control call (JSON-RPC error).
    #[error("{url}: the master refused: {message}")]
    Refused { url: String, message: String },
}

/// How to authenticate to the master.
#[derive(Clone)]
enum Auth {
    Basic(String, Secret),
    Bearer(Secret),
}

/// A master's web API.
#[derive(Clone)]
pub struct BuildbotApi {
    /// The web root, ending in `/`.
    base: String,
    client: reqwest::Client,
    /// The TLS settings of both the REST client and the event stream.
    tls: std::sync::Arc<rustls::ClientConfig>,
    auth: Option<Auth>,
    /// Whether finished builds get their steps, and which logs' contents.
    want_steps: bool,
    want_logs: Option<LogsWanted>,
}

impl BuildbotApi {
    /// A client for `[source.buildbot]`.
    pub fn new(config: &BuildbotSource) -> anyhow::Result<BuildbotApi> {
        let mut base = config.url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let auth = match (&config.user, &config.password, &config.token) {
            (_, _, Some(t)) => Some(Auth::Bearer(t.clone())),
            (Some(u), Some(p), None) => Some(Auth::Basic(u.clone(), p.clone())),
            _ => None,
        };
        let tls = crate::tls::client_config(&crate::tls::TlsOptions {
            ca_file: config.tls_ca_file.as_deref(),
            ..Default::default()
        })
        .context("[source.buildbot] tls_ca_file")?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .use_preconfigured_tls(tls.as_ref().clone())
            .build()?;
        let want_logs = config
            .want_logs_content
            .clone()
            .filter(|w| *w != LogsWanted::All(false));
        Ok(BuildbotApi {
            base,
            client,
            tls,
            auth,
            want_steps: config.want_steps || want_logs.is_some(),
            want_logs,
        })
    }

    /// The web root this client talks to, ending in `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The WebSocket URL (`ws://…/ws` or `wss://…/ws`).
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}ws")
    }

    /// The TLS settings for the event stream (the same as the REST client's).
    pub fn tls(&self) -> std::sync::Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The `Authorization` header value, if any.
    pub fn authorization(&self) -> Option<String> {
        use base64::Engine as _;
        match &self.auth {
            Some(Auth::Basic(u, p)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()))
            )),
            Some(Auth::Bearer(t)) => Some(format!("Bearer {}", t.expose())),
            None => None,
        }
    }

    /// Sends `req` (to `url`) with the master's credentials: the status and the body.
    async fn send(
        &self,
        url: &str,
        mut req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), ApiError> {
        if let Some(a) = self.authorization() {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let http = |source| ApiError::Http {
            url: url.to_owned(),
            source,
        };
        let resp = req.send().await.map_err(http)?;
        let status = resp.status();
        Ok((status, resp.bytes().await.map_err(http)?))
    }

    /// [`ApiError::Status`] for an answer that is not a success.
    fn status_error(url: String, status: reqwest::StatusCode, body: &[u8]) -> ApiError {
        ApiError::Status {
            url,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        }
    }

    /// GETs `path` under the web root and parses the JSON answer.
    async fn get_json(&self, path: &str) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let (status, body) = self.send(&url, self.client.get(&url)).await?;
        if !status.is_success() {
            return Err(Self::status_error(url, status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::Json {
            url,
            reason: e.to_string(),
        })
    }

    /// Calls control method `method` on `api/v2/<path>` (Buildbot's JSON-RPC): `force` on
    /// `forceschedulers/<name>`, `stop` on `builds/<buildid>`. The master's refusal (a
    /// validation error, an unknown builder) is [`ApiError::Refused`] with its message.
    pub async fn control(
        &self,
        path: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, ApiError> {
        let url = format!("{}api/v2/{path}", self.base);
        let body =
            serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let req = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let (status, bytes) = self.send(&url, req).await?;
        let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
        if let Some(e) = answer.as_ref().and_then(|a| a.get("error")) {
            let message = match e.get("message") {
                Some(Value::String(m)) => m.clone(),
                Some(other) => other.to_string(),
                None => e.to_string(),
            };
            return Err(ApiError::Refused { url, message });
        }
        if !status.is_success() {
            return Err(Self::status_error(url, status, &bytes));
        }
        Ok(answer
            .and_then(|mut a| a.get_mut("result").map(Value::take))
            .unwrap_or(Value::Null))
    }

    /// GETs `api/v2/<path>` and returns the list under `kind`.
    pub async fn list(&self, path: &str, kind: &str) -> Result<Vec<Value>, ApiError> {
        let v = self.get_json(&format!("api/v2/{path}")).await?;
        Ok(match v.get(kind) {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        })
    }

    /// The first item of `api/v2/<path>` under `kind`.
    async fn one(&self, path: &str, kind: &str) -> Result<Option<Value>, ApiError> {
        Ok(self.list(path, kind).await?.into_iter().next())
    }

    /// The master's `buildbotURL` (from `/config`), the base of every URL it makes; the web
    /// root this client uses when the master does not say.
    pub async fn buildbot_url(&self) -> Result<String, ApiError> {
        let config = self.get_json("config").await?;
        Ok(config
            .get("buildbotURL")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map_or_else(|| self.base.clone(), str::to_owned))
    }

    /// The builds most recently created, newest first.
    pub async fn recent_builds(&self, limit: usize) -> Result<Vec<Value>, ApiError> {
        self.list(&format!("builds?order=-buildid&limit={limit}"), "builds")
            .await
    }

    /// `build` (a build dict as the data API or the event stream gives it) enriched as
    /// Buildbot's reporters enrich it; `buildbot_url` is the master's `buildbotURL`.
    pub async fn build_dict(
        &self,
        mut build: Value,
        buildbot_url: &str,
    ) -> Result<Value, ApiError> {
        let id = build.get("buildid").and_then(Value::as_i64).unwrap_or(0);
        if let Some(b) = self
            .one(&format!("builds/{id}?property=*"), "builds")
            .await?
            && let Some(p) = b.get("properties")
        {
            build["properties"] = p.clone();
        }
        if build.get("properties").is_none() {
            build["properties"] = json!({});
        }
        let builderid = build.get("builderid").and_then(Value::as_i64);
        if let Some(builderid) = builderid {
            build["builder"] = self
                .one(&format!("builders/{builderid}"), "builders")
                .await?
                .unwrap_or(Value::Null);
        }
        let brid = build.get("buildrequestid").and_then(Value::as_i64);
        let mut request = Value::Null;
        if let Some(brid) = brid {
            request = self
                .one(&format!("buildrequests/{brid}"), "buildrequests")
                .await?
                .unwrap_or(Value::Null);
        }
        let bsid = request.get("buildsetid").and_then(Value::as_i64);
        build["buildrequest"] = request;
        build["buildset"] = match bsid {
            Some(bsid) => self
                .one(&format!("buildsets/{bsid}"), "buildsets")
                .await?
                .unwrap_or(Value::Null),
            None => Value::Null,
        };
        build["parentbuild"] = Value::Null;
        build["parentbuilder"] = Value::Null;
        let number = build.get("number").and_then(Value::as_i64);
        if let (Some(builderid), Some(number)) = (builderid, number) {
            build["url"] = format!("{buildbot_url}#/builders/{builderid}/builds/{number}").into();
            let complete = build.get("complete").and_then(Value::as_bool) == Some(true);
            if self.want_steps && complete {
                build["steps"] = Value::Array(
                    self.steps(id, builderid, number, buildbot_url, self.want_logs.as_ref())
                        .await?,
                );
            }
        }
        Ok(build)
    }

    /// A build's steps with their logs (`stepname`, `url`, `url_raw`, `url_raw_inline`) and,
    /// for the logs `contents` names, `content: {logid, firstline, content}` with Buildbot's
    /// one-letter stream prefixes, as its reporters make them.
    async fn steps(
        &self,
        buildid: i64,
        builderid: i64,
        number: i64,
        buildbot_url: &str,
        contents: Option<&LogsWanted>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut steps = self
            .list(&format!("builds/{buildid}/steps"), "steps")
            .await?;
        for step in &mut steps {
            let stepid = step.get("stepid").and_then(Value::as_i64).unwrap_or(0);
            let stepnumber = step.get("number").and_then(Value::as_i64).unwrap_or(0);
            let stepname = step
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut logs = self.list(&format!("steps/{stepid}/logs"), "logs").await?;
            for log in &mut logs {
                let logid = log.get("logid").and_then(Value::as_i64).unwrap_or(0);
                let slug = log
                    .get("slug")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let name = log
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                log["stepname"] = stepname.clone().into();
                log["url"] = format!(
                    "{buildbot_url}#/builders/{builderid}/builds/{number}/steps/{stepnumber}/logs/{slug}"
                )
                .into();
                log["url_raw"] = format!("{buildbot_url}api/v2/logs/{logid}/raw").into();
                log["url_raw_inline"] =
                    format!("{buildbot_url}api/v2/logs/{logid}/raw_inline").into();
                log["content"] = Value::Null;
                if contents.is_some_and(|w| w.wants(&stepname, &name)) {
                    let chunks = self
                        .list(&format!("logs/{logid}/contents"), "logchunks")
                        .await?;
                    let content: String = chunks
                        .iter()
                        .filter_map(|c| c.get("content").and_then(Value::as_str))
                        .collect();
                    log["content"] = json!({"logid": logid, "firstline": 0, "content": content});
                }
            }
            step["logs"] = Value::Array(logs);
        }
        Ok(steps)
    }

    /// The partial build dict Buildbot's `BuildRequestGenerator` makes for build request
    /// `request` (a buildrequest dict): no build id or number; the request with its
    /// `buildername`, the buildset, the builder, the buildset's properties, the request's URL.
    pub async fn request_dict(
        &self,
        mut request: Value,
        buildbot_url: &str,
    ) -> Result<Value, ApiError> {
        let brid = request
            .get("buildrequestid")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let builderid = request.get("builderid").and_then(Value::as_i64);
        let builder = match builderid {
            Some(id) => self
                .one(&format!("builders/{id}"), "builders")
                .await?
                .unwrap_or(Value::Null),
            None => Value::Null,
        };
        if let Some(name) = builder.get("name") {
            request["buildername"] = name.clone();
        }
        let bsid = request.get("buildsetid").and_then(Value::as_i64);
        let (buildset, properties) = match bsid {
            Some(bsid) => (
                self.one(&format!("buildsets/{bsid}"), "buildsets")
                    .await?
                    .unwrap_or(Value::Null),
                self.one(&format!("buildsets/{bsid}/properties"), "properties")
                    .await?
                    .unwrap_or_else(|| json!({})),
            ),
            None => (Value::Null, json!({})),
        };
        Ok(json!({
            "buildrequestid": brid,
            "builderid": builderid,
            "buildrequest": request,
            "buildset": buildset,
            "builder": builder,
            "properties": properties,
            "url": format!("{buildbot_url}#/buildrequests/{brid}"),
            "results": null,
            "complete": false,
        }))
    }

    /// The builds of buildset `bsid` (of all its requests), enriched, oldest first.
    pub async fn buildset_builds(
        &self,
        bsid: i64,
        buildbot_url: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let mut builds = Vec::new();
        for r in self
            .list(&format!("buildrequests?buildsetid={bsid}"), "buildrequests")
            .await?
        {
            let Some(brid) = r.get("buildrequestid").and_then(Value::as_i64) else {
                continue;
            };
            for b in self
                .list(&format!("builds?buildrequestid={brid}"), "builds")
                .await?
            {
                builds.push(self.build_dict(b, buildbot_url).await?);
            }
        }
        builds.sort_by_key(|b| b.get("buildid").and_then(Value::as_i64));
        Ok(builds)
    }
}

/// [`crate::history::History`] over a master's REST API, for dispatch's thread. Answers only
/// for the master it follows (events whose master is its `buildbotURL`, asked once and then
/// remembered).
///
/// Dispatch has one thread, so a slow or dead master must not hold every reporter back: a
/// question waits at most [`RestHistory::TIMEOUT`], and a master that did not answer (timed out,
/// refused the connection) is not asked again for [`RestHistory::PAUSE`]: meanwhile every
/// question answers `None` at once and dispatch goes on with what it has (its own history, the
/// event as received). So one master down delays events by at most one timeout per pause.
pub struct RestHistory {
    api: BuildbotApi,
    runtime: tokio::runtime::Handle,
    /// The master's `buildbotURL`, once known.
    url: std::sync::Mutex<Option<String>>,
    /// Until when the master is taken to be unreachable.
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
    timeout: Duration,
    /// Recent answers: every reporter's lane asks about the same builds.
    changes: Recent<(String, i64), Option<Vec<crate::event::Change>>>,
    enriched: Recent<(String, i64, crate::config::Wants), Option<crate::event::Build>>,
    previous: Recent<(String, i64, i64), Option<crate::history::BuildRecord>>,
}

impl RestHistory {
    /// The longest a question may take before dispatch goes on without the answer.
    pub const TIMEOUT: Duration = Duration::from_secs(5);

    /// How long a master that did not answer is left alone.
    pub const PAUSE: Duration = Duration::from_secs(30);

    /// Answers kept per kind of question (two batches of dispatch).
    const RECENT: usize = 512;

    /// A history for `api`'s master; `runtime` runs the requests.
    pub fn new(api: BuildbotApi, runtime: tokio::runtime::Handle) -> RestHistory {
        RestHistory {
            api,
            runtime,
            url: std::sync::Mutex::new(None),
            down_until: std::sync::Mutex::new(None),
            timeout: Self::TIMEOUT,
            changes: Recent::new(Self::RECENT),
            enriched: Recent::new(Self::RECENT),
            previous: Recent::new(Self::RECENT),
        }
    }

    /// The same history with another bound per question (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> RestHistory {
        self.timeout = timeout;
        self
    }

    fn ask<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Option<T> {
        let now = std::time::Instant::now();
        {
            let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
            if down.is_some_and(|until| now < until) {
                tracing::debug!(master = %self.api.base(), "not asking the master for {what}: it did not answer recently");
                return None;
            }
        }
        let unreachable = match self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, f).await })
        {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => {
                tracing::warn!(master = %self.api.base(), error = %e, "cannot ask the master for {what}");
                matches!(&e, ApiError::Http { source, .. } if source.is_connect() || source.is_timeout())
            }
            Err(_) => {
                tracing::warn!(master = %self.api.base(), "the master did not say {what} within {:?}", self.timeout);
                true
            }
        };
        if unreachable {
            tracing::warn!(master = %self.api.base(), "not asking the master again for {:?}; events are dispatched with what tidings has", Self::PAUSE);
            *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + Self::PAUSE);
        }
        None
    }

    /// Whether `master` (an event's) is the master this history asks.
    fn is_ours(&self, master: &str) -> bool {
        let mut url = self.url.lock().unwrap_or_else(|e| e.into_inner());
        if url.is_none() {
            *url = self.ask("its buildbotURL", self.api.buildbot_url());
        }
        url.as_deref() == Some(master)
    }
}

impl crate::history::History for RestHistory {
    fn enrich(
        &self,
        master: &str,
        build: &crate::event::Build,
        wants: &crate::config::Wants,
    ) -> Option<crate::event::Build> {
        let Some(id) = build.buildid else {
            return self.ask_enrich(master, build, wants);
        };
        self.enriched
            .get_or((master.to_owned(), id, wants.clone()), || {
                self.ask_enrich(master, build, wants)
            })
    }

    fn changes(&self, master: &str, buildid: i64) -> Option<Vec<crate::event::Change>> {
        self.changes.get_or((master.to_owned(), buildid), || {
            self.ask_changes(master, buildid)
        })
    }

    fn previous_build(
        &self,
        master: &str,
        builderid: i64,
        number: i64,
    ) -> Option<crate::history::BuildRecord> {
        self.previous
            .get_or((master.to_owned(), builderid, number), || {
                self.ask_previous_build(master, builderid, number)
            })
    }
}

impl RestHistory {
    fn ask_enrich(
        &self,
        master: &str,
        build: &crate::event::Build,
        wants: &crate::config::Wants,
    ) -> Option<crate::event::Build> {
        // What the reporter wants, and what `[source.buildbot]` adds for every reporter.
        let contents = crate::config::LogsWanted::union(
            wants.logs_content.as_ref(),
            self.api.want_logs.as_ref(),
        );
        let want_steps = wants.steps || self.api.want_steps || contents.is_some();
        let steps = build.steps.as_deref().unwrap_or_default();
        let lacks_content = contents.as_ref().is_some_and(|w| {
            steps.iter().any(|s| {
                s.logs
                    .iter()
                    .any(|l| l.content.is_none() && w.wants(&s.name, &l.name))
            })
        });
        if !want_steps || (!steps.is_empty() && !lacks_content) || !self.is_ours(master) {
            return None;
        }
        let (Some(id), Some(builder), Some(number)) =
            (build.buildid, build.builderid, build.number)
        else {
            return None;
        };
        let steps = self.ask(
            "a build's steps",
            self.api
                .steps(id, builder, number, master, contents.as_ref()),
        )?;
        let mut full = build.clone();
        full.steps = Some(
            steps
                .into_iter()
                .filter_map(|s| serde_json::from_value(s).ok())
                .collect(),
        );
        Some(full)
    }

    fn ask_changes(&self, master: &str, buildid: i64) -> Option<Vec<crate::event::Change>> {
        if !self.is_ours(master) {
            return None;
        }
        let list = self.ask(
            "a build's changes",
            self.api
                .list(&format!("builds/{buildid}/changes"), "changes"),
        )?;
        Some(
            list.into_iter()
                .filter_map(|c| serde_json::from_value(c).ok())
                .collect(),
        )
    }

    fn ask_previous_build(
        &self,
        master: &str,
        builderid: i64,
        number: i64,
    ) -> Option<crate::history::BuildRecord> {
        if !self.is_ours(master) {
            return None;
        }
        let builds = self.ask(
            "a previous build",
            self.api.list(
                &format!(
                    "builders/{builderid}/builds?number__lt={number}&complete=true&order=-number&limit=50"
                ),
                "builds",
            ),
        )?;
        let prev = builds.into_iter().find(|b| {
            b.get("results").and_then(Value::as_i64) != Some(crate::event::Results::Retry.code())
        })?;
        let dict = self.ask("a previous build", self.api.build_dict(prev, master))?;
        Some(crate::history::BuildRecord {
            master: master.to_owned(),
            buildid: dict.get("buildid").and_then(Value::as_i64)?,
            builderid,
            number: dict.get("number").and_then(Value::as_i64)?,
            complete: true,
            results: dict.get("results").and_then(Value::as_i64),
            body: dict.to_string(),
            event_id: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str) -> BuildbotApi {
        BuildbotApi::new(&BuildbotSource {
            url: url.into(),
            user: None,
            password: None,
            token: None,
            tls_ca_file: None,
            want_steps: false,
            want_logs_content: None,
        })
        .unwrap()
    }

    #[test]
    fn a_silent_master_is_asked_once_per_pause() {
        use crate::history::History;
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A master that accepts connections and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(c);
            }
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let history = RestHistory::new(api(&format!("http://{addr}/")), rt.handle().clone())
            .with_timeout(Duration::from_millis(200));
        let master = format!("http://{addr}/");
        assert_eq!(history.changes(&master, 1), None);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Every later question, of any kind, answers at once without asking.
        for id in 2..20 {
            assert_eq!(history.changes(&master, id), None);
            assert_eq!(history.previous_build(&master, 1, id), None);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "asked again during the pause"
        );
        rt.shutdown_background();
    }

    #[test]
    fn the_stream_url_follows_the_web_root() {
        assert_eq!(
            api("http://127.0.0.1:8010").ws_url(),
            "ws://127.0.0.1:8010/ws"
        );
        assert_eq!(
            api("https://ci.example.org/bb/").ws_url(),
            "wss://ci.example.org/bb/ws"
        );
        assert_eq!(api("http://x/").base(), "http://x/");
    }
}
