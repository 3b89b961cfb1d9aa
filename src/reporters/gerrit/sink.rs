//! The sinks: ssh (the system OpenSSH client, run without a shell, host keys always checked)
//! and REST ([`super::rest`]).
//!
//! Before a review, `gerrit version` (cached 600 s) decides the flags. Unlike Buildbot, a failed
//! probe or a non-zero exit of `gerrit review` is a retryable delivery error, not a silent drop;
//! a refused login or a host key that is not the known one is dead-lettered with ssh's message.
//! A review whose ssh timed out may have been posted: it is dead-lettered, not repeated.

use super::ssh::{Version, command_line, review_args};
use super::{GerritConfig, Payload};
use crate::outbox::{Outgoing, RetryClass, Sink, SinkError, SinkFuture};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a probed version is trusted.
const VERSION_TTL: Duration = Duration::from_secs(600);

/// Sends reviews to one Gerrit, over ssh or REST.
pub enum GerritSink {
    Ssh(SshSink),
    Rest(super::rest::RestSink),
}

impl GerritSink {
    /// The sink `c.transport` asks for (REST: builds its HTTP client, reads `ca_file`).
    pub fn new(c: &GerritConfig, base: &Path) -> anyhow::Result<GerritSink> {
        Ok(match c.transport {
            super::Transport::Ssh => GerritSink::Ssh(SshSink::new(c, base)),
            super::Transport::Rest => GerritSink::Rest(super::rest::RestSink::new(c, base)?),
        })
    }
}

impl Sink for GerritSink {
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(async move {
            let Some(d) = batch.first() else {
                return Ok("nothing to send".into());
            };
            let value: serde_json::Value = serde_json::from_str(&d.payload).map_err(|e| {
                SinkError::new(
                    RetryClass::Never,
                    format!("the stored review is unreadable: {e}"),
                )
            })?;
            if let Some(why) = value.get("skip").and_then(serde_json::Value::as_str) {
                return Ok(format!("not sent: {why}"));
            }
            let p: Payload = serde_json::from_value(value).map_err(|e| {
                SinkError::new(
                    RetryClass::Never,
                    format!("the stored review is unreadable: {e}"),
                )
            })?;
            match self {
                GerritSink::Ssh(s) => s.review(&p).await,
                GerritSink::Rest(r) => r.review(&p).await,
            }
        })
    }
}

/// Sends reviews to one Gerrit over ssh.
pub struct SshSink {
    server: String,
    port: u16,
    username: String,
    identity_file: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    notify: Option<String>,
    timeout: Duration,
    /// The probed version; held while probing, so concurrent reviews wait for one probe.
    version: tokio::sync::Mutex<Option<(Instant, Version)>>,
}

/// What an ssh run was for: its failures are classed differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Probe,
    Review,
}

impl SshSink {
    pub fn new(c: &GerritConfig, base: &Path) -> SshSink {
        SshSink {
            server: c.server.clone(),
            port: c.port,
            username: c.username.clone(),
            identity_file: c.identity_file.as_ref().map(|p| base.join(p)),
            known_hosts: c.known_hosts.as_ref().map(|p| base.join(p)),
            notify: c.notify.clone(),
            timeout: c.timeout.map_or(Duration::from_secs(60), |t| t.0),
            version: tokio::sync::Mutex::new(None),
        }
    }

    /// ssh's arguments for `remote` (one string, split by Gerrit).
    pub fn argv(&self, remote: &str) -> Vec<String> {
        let mut a: Vec<String> = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
            .map(String::from)
            .to_vec();
        if let Some(k) = &self.known_hosts {
            a.push("-o".into());
            a.push(format!("UserKnownHostsFile={}", k.display()));
        }
        if let Some(i) = &self.identity_file {
            a.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into()]);
            a.push(i.display().to_string());
        }
        a.extend(["-o".into(), "ConnectTimeout=30".into(), "-p".into()]);
        a.push(self.port.to_string());
        a.push(format!("{}@{}", self.username, self.server));
        a.push("--".into());
        a.push(remote.to_owned());
        a
    }

    async fn run(&self, remote: &str, purpose: Purpose) -> Result<String, SinkError> {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(self.argv(remote))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let what = match purpose {
            Purpose::Probe => "gerrit version",
            Purpose::Review => "gerrit review",
        };
        let out = match tokio::time::timeout(self.timeout, cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(SinkError::new(
                    RetryClass::Never,
                    format!("cannot run ssh (is the OpenSSH client installed?): {e}"),
                ));
            }
            Err(_) => {
                let class = match purpose {
                    Purpose::Probe => RetryClass::Backoff,
                    Purpose::Review => RetryClass::MaybeDelivered,
                };
                return Err(SinkError::new(
                    class,
                    format!(
                        "{what} on {} timed out after {:?}",
                        self.server, self.timeout
                    ),
                ));
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let code = out.status.code();
        let refused = [
            "Host key verification failed",
            "REMOTE HOST IDENTIFICATION HAS CHANGED",
            "No ED25519 host key is known",
            "host key is known",
            "Permission denied",
            "no such identity",
        ];
        if code == Some(255) && refused.iter().any(|r| stderr.contains(r)) {
            return Err(SinkError::new(
                RetryClass::Never,
                format!("ssh to {}:{} refused: {stderr}", self.server, self.port),
            ));
        }
        let how = code.map_or("was killed".to_owned(), |c| format!("exited with {c}"));
        Err(SinkError::new(
            RetryClass::Backoff,
            format!("{what} on {} {how}: {stderr}", self.server),
        ))
    }

    /// The server's version: cached, or probed (once, however many reviews wait for it).
    async fn version(&self) -> Result<Version, SinkError> {
        let mut cached = self.version.lock().await;
        if let Some((at, v)) = &*cached
            && at.elapsed() < VERSION_TTL
        {
            return Ok(v.clone());
        }
        let stdout = self.run("gerrit version", Purpose::Probe).await?;
        let v = Version::parse(&stdout).ok_or_else(|| {
            SinkError::new(
                RetryClass::Backoff,
                format!(
                    "gerrit version on {} printed no version: {:?}",
                    self.server,
                    stdout.chars().take(200).collect::<String>()
                ),
            )
        })?;
        *cached = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    async fn review(&self, p: &Payload) -> Result<String, SinkError> {
        let version = self.version().await?;
        let (args, dropped) = review_args(p, &version, self.notify.as_deref());
        if !dropped.is_empty() {
            tracing::warn!(server = %self.server, version = ?version.0, labels = ?dropped, "Gerrit before 2.6 sets only Verified and Code-Review: labels left out");
        }
        self.run(&command_line(&args), Purpose::Review).await?;
        Ok(format!(
            "reviewed {} {} on Gerrit {}",
            p.project,
            p.revision,
            version
                .0
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".")
        ))
    }
}
