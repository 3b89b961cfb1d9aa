//! Sending a rendered mail: SMTP (STARTTLS required with `use_tls`, implicit TLS with
//! `use_smtps`, both through the shared [`crate::tls`] client; AUTH when a user and password are
//! set; certificates always verified), or `.eml` files in a directory (`transport = "file"`).
//!
//! SMTP replies map to retry classes where the client is: 4xx and connection failures back
//! off; 5xx (a refused recipient, failed authentication) and TLS that cannot be had (no
//! STARTTLS offered, a bad certificate) are permanent — the delivery is dead-lettered with the
//! server's reply, and nothing is ever sent in clear instead. A timeout is
//! [`RetryClass::MaybeDelivered`]: the server may have taken the mail, and mail is not
//! idempotent, so the outbox dead-letters it with that reason instead of repeating it.

use super::smtp::{Failure, Relay, Security};
use super::{MailConfig, MailTransport};
use crate::outbox::{Outgoing, RetryClass, Sink, SinkError, SinkFuture};
use crate::reporters::http::error_chain;
use crate::tls::TlsOptions;
use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use std::time::Duration;

/// An outbox row's payload: the envelope and the message bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub rcpt: Vec<String>,
    /// The whole message (RFC 5322), as sent.
    pub message: String,
}

enum Transport {
    Smtp(Relay),
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// Delivers mail for one `[[reporter.mail]]`.
pub struct MailSink {
    transport: Transport,
    dump: bool,
    /// The most one message may take, whatever the server does.
    timeout: Duration,
}

impl MailSink {
    /// Builds the transport (reads `tls_ca_file`; creates `dir`, where the file transport
    /// writes).
    pub fn new(c: &MailConfig, dir: &Path) -> anyhow::Result<MailSink> {
        let transport = match c.transport {
            MailTransport::File => {
                let dir = dir.to_path_buf();
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                Transport::File(AsyncFileTransport::new(&dir), dir)
            }
            MailTransport::Smtp => {
                let tls = || {
                    crate::tls::client_config(&TlsOptions {
                        ca_file: c.tls_ca_file.as_deref(),
                        ..Default::default()
                    })
                    .context("tls_ca_file")
                };
                let security = if c.use_smtps {
                    Security::Wrapper(tls()?)
                } else if c.use_tls {
                    Security::StartTls(tls()?)
                } else {
                    Security::None
                };
                Transport::Smtp(Relay {
                    host: c.relayhost.clone(),
                    port: c.smtp_port,
                    security,
                    credentials: match (&c.smtp_user, &c.smtp_password) {
                        (Some(user), Some(password)) => {
                            Some(Credentials::new(user.clone(), password.expose().to_owned()))
                        }
                        _ => None,
                    },
                })
            }
        };
        Ok(MailSink {
            transport,
            dump: c.dump_mails_to_log,
            timeout: timeout(c),
        })
    }

    async fn send(&self, d: &Outgoing) -> Result<String, SinkError> {
        let p: Payload = serde_json::from_str(&d.payload).map_err(|e| {
            SinkError::new(
                RetryClass::Never,
                format!("the outbox payload is not a mail: {e}"),
            )
        })?;
        let from = p
            .from
            .parse()
            .map_err(|e| SinkError::new(RetryClass::Never, format!("sender {:?}: {e}", p.from)))?;
        let rcpt = p
            .rcpt
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SinkError::new(RetryClass::Never, format!("a recipient: {e}")))?;
        let envelope = Envelope::new(Some(from), rcpt)
            .map_err(|e| SinkError::new(RetryClass::Never, e.to_string()))?;
        if self.dump {
            tracing::info!(to = ?p.rcpt, "mail data:\n{}", p.message);
        }
        match &self.transport {
            Transport::Smtp(relay) => {
                // Until the connection is ready nothing of the mail has been sent, so running
                // out of time there is an ordinary retry; after it, the server may have the mail.
                let mut conn = match tokio::time::timeout(self.timeout, relay.connect()).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => return Err(classify(e, false)),
                    Err(_) => {
                        return Err(SinkError::new(
                            RetryClass::Backoff,
                            format!(
                                "SMTP: no ready connection to {}:{} after {:?}",
                                relay.host, relay.port, self.timeout
                            ),
                        ));
                    }
                };
                let sent = tokio::time::timeout(
                    self.timeout,
                    Relay::send(&mut conn, &envelope, p.message.as_bytes()),
                )
                .await;
                match sent {
                    Ok(Ok(resp)) => Ok(format!(
                        "{} {}",
                        resp.code(),
                        resp.message().collect::<Vec<_>>().join(" ")
                    )),
                    Ok(Err(e)) => Err(classify(e, true)),
                    Err(_) => Err(SinkError::new(
                        RetryClass::MaybeDelivered,
                        format!("SMTP: timed out after {:?}", self.timeout),
                    )),
                }
            }
            Transport::File(t, dir) => match t.send_raw(&envelope, p.message.as_bytes()).await {
                Ok(id) => Ok(format!("written to {}/{id}.eml", dir.display())),
                Err(e) => Err(SinkError::new(
                    RetryClass::Backoff,
                    format!("cannot write the mail into {}: {e}", dir.display()),
                )),
            },
        }
    }
}

/// `timeout`, or its default.
fn timeout(c: &MailConfig) -> Duration {
    c.timeout.map_or(Duration::from_secs(60), |t| t.0)
}

/// The retry class of an SMTP failure; `sending` once the mail itself was on its way.
fn classify(f: Failure, sending: bool) -> SinkError {
    match f {
        Failure::Certificate(why) => SinkError::new(RetryClass::Never, format!("SMTP: TLS: {why}")),
        Failure::NoStartTls => SinkError::new(
            RetryClass::Never,
            "SMTP: use_tls is set and the server does not offer STARTTLS; nothing was sent in clear"
                .to_owned(),
        ),
        Failure::Refused { code, text } => SinkError::new(
            if code >= 500 {
                RetryClass::Never
            } else {
                RetryClass::Backoff
            },
            format!("SMTP: the server refused: {text}"),
        ),
        Failure::Connect(e) => SinkError::new(
            RetryClass::Backoff,
            format!("SMTP: cannot connect: {e}{}", error_chain(&e)),
        ),
        Failure::Smtp(e) => classify_smtp(&e, sending),
    }
}

/// The retry class of a failure in lettre's part of the dialogue.
fn classify_smtp(e: &lettre::transport::smtp::Error, sending: bool) -> SinkError {
    let text = format!("{e}{}", error_chain(e));
    if let Some(why) = crate::tls::certificate_problem(e) {
        return SinkError::new(RetryClass::Never, format!("SMTP: TLS: {why}"));
    }
    if e.is_timeout() && sending {
        // The server may have taken the mail before the time ran out (`tidings outbox retry
        // ID` sends it anyway; the Message-ID stays the same).
        return SinkError::new(
            RetryClass::MaybeDelivered,
            format!("SMTP: timed out: {text}"),
        );
    }
    let class = if e.is_permanent() || e.is_tls() || e.is_client() {
        RetryClass::Never
    } else {
        RetryClass::Backoff
    };
    SinkError::new(class, format!("SMTP: {text}"))
}

impl Sink for MailSink {
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(async move {
            let d = batch
                .first()
                .ok_or_else(|| SinkError::new(RetryClass::Never, "an empty batch".to_owned()))?;
            self.send(d).await
        })
    }
}
