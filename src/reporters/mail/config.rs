//! `[[reporter.mail]]`: the table, its checks, and how it is built.

use super::message::{self, mailbox};
use super::{KW, Mail};
use crate::config::{DurationStr, LogsWanted, Secret, reporter_config};
use crate::interpolate::{Allowed, Template};
use crate::reporters::{BuildContext, CheckContext, Reporter, ReporterConfig, same_table};
use serde::Deserialize;
use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

reporter_config! {
    /// One `[[reporter.mail]]`: Buildbot's MailNotifier. Missing workers are reported to their
    /// `notify` lists unless `workers = []` (Buildbot's default generators report them too).
    pub struct MailConfig {
        /// `From:` as written; the envelope sender is its address [default: `tidings
        /// <tidings@HOSTNAME>`, this machine's name].
        #[serde(default)]
        pub fromaddr: Option<String>,
        /// `smtp` (deliver to `relayhost`) or `file` (write `.eml` files into `directory`).
        #[serde(default)]
        pub transport: MailTransport,
        /// Where `transport = "file"` writes [default: `<data_dir>/mail`].
        #[serde(default)]
        pub directory: Option<PathBuf>,
        /// The SMTP server [default localhost].
        #[serde(default = "default_relayhost")]
        pub relayhost: String,
        /// Its port [default 25].
        #[serde(default = "default_smtp_port")]
        pub smtp_port: u16,
        /// Require STARTTLS; never fall back to plain text.
        #[serde(default)]
        pub use_tls: bool,
        /// Implicit TLS (SMTPS, usually port 465).
        #[serde(default)]
        pub use_smtps: bool,
        /// An extra CA certificate (PEM) to trust; certificates are always verified.
        #[serde(default)]
        pub tls_ca_file: Option<PathBuf>,
        /// SMTP AUTH user; AUTH is used only when `smtp_password` is set too.
        #[serde(default)]
        pub smtp_user: Option<String>,
        /// SMTP AUTH password.
        #[serde(default)]
        pub smtp_password: Option<Secret>,
        /// A domain: a user name without `@` becomes `user@domain`.
        #[serde(default)]
        pub lookup: Option<String>,
        /// Always sent to (CC when interested users were found, else To).
        #[serde(default)]
        pub extra_recipients: Vec<String>,
        /// Send to the blamelist [default true].
        #[serde(default = "crate::config::yes")]
        pub send_to_interested_users: bool,
        /// Extra headers; values may use `%(prop:…)s`, `%(kw:…)s`, `%(secret:…)s`.
        #[serde(default)]
        pub extra_headers: BTreeMap<String, String>,
        /// Log every message sent (info level).
        #[serde(default)]
        pub dump_mails_to_log: bool,
        /// Attach log contents: `true` or `log` / `step.log` names.
        #[serde(default)]
        pub add_logs: Option<LogsWanted>,
        /// Attach the source stamps' patches [default true].
        #[serde(default = "crate::config::yes")]
        pub add_patch: bool,
        /// The subject when the formatter gives none; `%(builder)s`, `%(result)s`, `%(title)s`,
        /// `%(projectName)s` [default `Buildbot %(result)s in %(title)s on %(builder)s`].
        #[serde(default)]
        pub subject: Option<String>,
        /// Per-message time limit [default 60s].
        #[serde(default)]
        pub timeout: Option<DurationStr>,
        /// A `[[formatter]]` serving `messageFormatterMissingWorker`, for missing-worker
        /// mails (Buildbot's `MessageFormatterMissingWorker`); Buildbot's default text otherwise.
        #[serde(default)]
        pub message_formatter_missing_worker: Option<String>,
    }
}

/// How mail leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    #[default]
    Smtp,
    File,
}

fn default_relayhost() -> String {
    "localhost".into()
}

fn default_smtp_port() -> u16 {
    25
}

impl MailConfig {
    /// `fromaddr`, else `tidings <tidings@HOSTNAME>`.
    pub fn sender(&self) -> String {
        match &self.fromaddr {
            Some(f) => f.clone(),
            None => format!("tidings <tidings@{}>", hostname()),
        }
    }
}

/// This machine's name, as a mail domain; `localhost` when it has none that can be one.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let usable = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if usable { name } else { "localhost".into() }
}

/// Problems with a mail reporter's settings (empty when fine).
pub(super) fn check_config(c: &MailConfig, secrets: &BTreeMap<String, Secret>) -> Vec<String> {
    let mut p = Vec::new();
    if mailbox(&c.sender()).is_none() {
        p.push(format!(
            "fromaddr {:?} is not an e-mail address",
            c.sender()
        ));
    }
    for r in &c.extra_recipients {
        if !message::is_valid_email(r) || mailbox(r).is_none() {
            p.push(format!(
                "extra recipient {r:?} is not a valid e-mail address"
            ));
        }
    }
    if c.use_tls && c.use_smtps {
        p.push("use_tls (STARTTLS) and use_smtps (implicit TLS) exclude each other".into());
    }
    if c.smtp_user.is_some() != c.smtp_password.is_some() {
        p.push("smtp_user and smtp_password go together (AUTH needs both)".into());
    }
    let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
    let allowed = Allowed {
        kw: KW,
        secrets: &names,
    };
    if let Some(s) = &c.subject {
        if s.contains(['\n', '\r']) {
            p.push("subject cannot contain a newline".into());
        }
        if let Err(e) = Template::parse(s, &allowed) {
            p.push(format!("subject: {e}"));
        }
    }
    for (k, v) in &c.extra_headers {
        let printable = !k.is_empty() && k.bytes().all(|b| (33..=126).contains(&b) && b != b':');
        if !printable || lettre::message::header::HeaderName::new_from_ascii(k.clone()).is_err() {
            p.push(format!(
                "extra header name {k:?} is not a valid header name"
            ));
        }
        let reserved = [
            "from",
            "to",
            "cc",
            "bcc",
            "subject",
            "date",
            "message-id",
            "mime-version",
            "content-type",
            "content-transfer-encoding",
        ];
        if reserved.contains(&k.to_ascii_lowercase().as_str())
            || k.to_ascii_lowercase().starts_with("x-tidings-")
        {
            // Buildbot logs such a header and adds it twice; a mail must not carry two.
            p.push(format!(
                "extra header {k:?} is one tidings writes itself; choose another name"
            ));
        }
        if let Err(e) = Template::parse(v, &allowed) {
            p.push(format!("extra header {k:?}: {e}"));
        }
    }
    p
}

impl ReporterConfig for MailConfig {
    fn check(&self, cx: &CheckContext<'_>) -> Vec<String> {
        let mut p = check_config(self, cx.secrets);
        if let Some(f) = &self.message_formatter_missing_worker
            && !cx.formatters.contains(f.as_str())
        {
            p.push(format!(
                "message_formatter_missing_worker {f:?} is not a [[formatter]] name"
            ));
        }
        p
    }

    fn build(&self, cx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
        let dir = match &self.directory {
            Some(d) => cx.base.join(d),
            None => cx.data_dir.join("mail"),
        };
        Ok(Arc::new(Mail::new(self, cx.secrets, &dir)?))
    }

    fn same_as(&self, other: &dyn ReporterConfig) -> bool {
        same_table(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
