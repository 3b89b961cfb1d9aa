//! Running `tidings serve` as a process, and a scripted HTTP peer for it to push to.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the peer saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub key: String,
    /// The `Authorization` header, as sent.
    pub authorization: String,
    /// Every header.
    pub headers: HeaderMap,
    pub at: Instant,
    pub body: Value,
}

/// A status and an optional `Retry-After` in seconds.
pub type Answer = (u16, Option<u64>);

/// Extra answer headers: (name, value).
pub type Headers = Vec<(String, String)>;

/// What the peer answers, per path, in order; `200` once a script runs out.
#[derive(Default)]
pub struct Peer {
    pub script: Mutex<HashMap<String, VecDeque<Answer>>>,
    /// Extra headers for the answers on a path, in order (beside `script`).
    pub headers: Mutex<HashMap<String, VecDeque<Headers>>>,
    /// The body of every answer on a path (JSON), instead of "scripted answer".
    pub bodies: Mutex<HashMap<String, String>>,
    pub seen: Mutex<Vec<Seen>>,
}

async fn answer(
    State(peer): State<Arc<Peer>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    peer.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        key,
        authorization,
        headers: headers.clone(),
        at: Instant::now(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let next = peer
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|s| s.pop_front());
    let (status, retry_after) = next.unwrap_or((200, None));
    let extra = peer
        .headers
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|s| s.pop_front())
        .unwrap_or_default();
    let body = peer.bodies.lock().unwrap().get(&path).cloned();
    let mut r = match body {
        Some(b) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            b,
        )
            .into_response(),
        None => (StatusCode::from_u16(status).unwrap(), "scripted answer").into_response(),
    };
    for (k, v) in extra {
        r.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

/// Starts the peer on `addr` (port 0: any) in a thread of its own; it lives for the test.
pub fn start_peer(addr: SocketAddr, peer: Arc<Peer>) -> SocketAddr {
    let listener = std::net::TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let bound = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = Router::new().fallback(answer).with_state(peer);
            axum::serve(listener, app).await.unwrap();
        });
    });
    bound
}

/// A `tidings serve` process, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    /// Its log: shown only if the test fails. Declared last, so it is dropped (and shown)
    /// after the process was stopped.
    pub log: StderrLog,
}

/// A child process's stderr, captured in a file instead of the test run's output: a passing
/// test prints nothing, a failing one shows it (when this is dropped during the panic).
pub struct StderrLog {
    name: String,
    file: tempfile::NamedTempFile,
}

impl StderrLog {
    pub fn new(name: &str) -> StderrLog {
        StderrLog {
            name: name.to_owned(),
            file: tempfile::NamedTempFile::new().unwrap(),
        }
    }

    /// What the process wrote so far.
    pub fn contents(&self) -> String {
        std::fs::read_to_string(self.file.path()).unwrap_or_default()
    }

    fn stdio(&self) -> Stdio {
        Stdio::from(self.file.reopen().unwrap())
    }
}

impl Drop for StderrLog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- stderr of {} -----\n{}----- end of {} -----",
                self.name,
                self.contents(),
                self.name
            );
        }
    }
}

/// Starts `cmd` with its stdout piped and its stderr captured (see [`StderrLog`]) and returns
/// it with the first line it printed (servers print their readiness there).
pub fn spawn_until_first_line(cmd: &mut Command, name: &str) -> (Child, String, StderrLog) {
    let log = StderrLog::new(name);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(log.stdio())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{name} exited before it was ready:\n{}", log.contents());
    }
    (child, line, log)
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_after(config, None)
    }

    /// As [`Daemon::start`], but run by `sh -c '<shell>; exec tidings serve …'` (to set
    /// `ulimit`s, say); the daemon keeps the shell's process id.
    pub fn start_after(config: &Path, shell: Option<&str>) -> Daemon {
        Daemon::spawn(
            config,
            shell,
            Some("warn,tidings::outbox=error,tidings::daemon=info"),
            &[],
        )
    }

    /// As [`Daemon::start`], with `TIDINGS_LOG=log` and more environment.
    pub fn start_with(config: &Path, log: &str, env: &[(&str, &Path)]) -> Daemon {
        Daemon::spawn(config, None, Some(log), env)
    }

    /// As [`Daemon::start`], logging as an operator's daemon does: `TIDINGS_LOG` unset.
    pub fn start_with_default_log(config: &Path) -> Daemon {
        Daemon::spawn(config, None, None, &[])
    }

    fn spawn(
        config: &Path,
        shell: Option<&str>,
        log: Option<&str>,
        env: &[(&str, &Path)],
    ) -> Daemon {
        let mut cmd = match shell {
            None => Command::new(env!("CARGO_BIN_EXE_tidings")),
            Some(shell) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{shell}; exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_tidings"));
                c
            }
        };
        cmd.args(["serve", "--config"]).arg(config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        match log {
            Some(filter) => cmd.env("TIDINGS_LOG", filter),
            None => cmd.env_remove("TIDINGS_LOG"),
        };
        let (child, line, log) = spawn_until_first_line(&mut cmd, "tidings serve");
        let addr = line
            .trim()
            .strip_prefix("tidings listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Daemon { child, addr, log }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    pub fn post(&self, body: &Value) -> Value {
        let r = client::blocking_post(&format!("{}/api/v1/buildbot", self.addr), body);
        assert_eq!(r.0, 202, "{}", r.1);
        serde_json::from_str(&r.1).unwrap()
    }

    /// POSTs a native envelope to `/api/v1/events`.
    pub fn post_event(&self, body: &Value) -> Value {
        let r = client::blocking_post(&format!("{}/api/v1/events", self.addr), body);
        assert_eq!(r.0, 202, "{}", r.1);
        serde_json::from_str(&r.1).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking client over reqwest's async one (reqwest's blocking feature is off).
pub mod client {
    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    pub fn get(url: &str) -> String {
        block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
    }

    /// GETs `url`; returns the status and the answer.
    pub fn get_with_status(url: &str) -> (u16, String) {
        block_on(async {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    /// POSTs `body` as `content_type`; returns the status and the answer.
    pub fn blocking_post_raw(url: &str, content_type: &str, body: String) -> (u16, String) {
        try_post_raw(url, content_type, body).unwrap_or_else(|e| panic!("POST {url}: {e:?}"))
    }

    /// [`blocking_post_raw`], with a failure to reach the server or read its answer returned.
    pub fn try_post_raw(
        url: &str,
        content_type: &str,
        body: String,
    ) -> Result<(u16, String), reqwest::Error> {
        block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await?;
            Ok((r.status().as_u16(), r.text().await?))
        })
    }

    pub fn blocking_post(url: &str, body: &serde_json::Value) -> (u16, String) {
        blocking_post_raw(url, "application/json", body.to_string())
    }
}

/// Writes `tidings.toml` into `dir`: a listener on a free port, data in `dir/data`, a master
/// titled "Example CI", then `body`.
pub fn config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("tidings.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nshutdown_grace = \"2s\"\n\n\
             [master]\ntitle = \"Example CI\"\nbuildbot_url = \"http://127.0.0.1:8010/\"\n\n{body}"
        ),
    )
    .unwrap();
    path
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the daemon keeping its data in `data` has nothing more to do: dispatch has passed
/// every stored event, and no delivery is pending or in flight. Tests wait for this, then
/// assert what arrived: "nothing more arrives" without a fixed sleep.
pub fn settled(data: &Path) -> bool {
    use tidings::store::{State, Store};
    let Ok(store) = Store::open_shared(data) else {
        return false;
    };
    // Every lane (and the history step before them) has passed every stored event.
    let dispatched = tidings::dispatch::dispatched(&store)
        .and_then(|c| store.events_after(c, 1))
        .is_ok_and(|rest| rest.is_empty());
    let idle = store.counts().is_ok_and(|counts| {
        counts
            .iter()
            .all(|(s, n)| *n == 0 || matches!(s, State::Delivered | State::Dead))
    });
    dispatched && idle
}

/// Every delivery in the store under `data`, one line each (`reporter destination State last
/// error`), each followed by its attempts (`  attempt result detail`): for assertions on what
/// the outbox did.
pub fn attempts(data: &Path) -> String {
    use tidings::store::Store;
    let Ok(store) = Store::open_shared(data) else {
        return String::new();
    };
    let mut out = String::new();
    for d in store.list(None, 1000).unwrap_or_default() {
        out.push_str(&format!(
            "{} {} {:?} {}\n",
            d.reporter,
            d.destination,
            d.state,
            d.last_error.unwrap_or_default()
        ));
        for e in store.log(d.id).unwrap_or_default() {
            out.push_str(&format!("  {} {} {}\n", e.attempt, e.result, e.detail));
        }
    }
    out
}

/// The requests the peer saw on `path`, in arrival order.
pub fn seen_on(peer: &Peer, path: &str) -> Vec<Seen> {
    let seen = peer.seen.lock().unwrap();
    seen.iter().filter(|s| s.path == path).cloned().collect()
}
