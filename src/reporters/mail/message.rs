//! The mail itself, as Buildbot's MailNotifier makes it: recipients from the blamelist
//! (`lookup`, the multiple-`@` trim, invalid addresses dropped), To/CC by Buildbot's rule, and
//! the MIME layout (one `text/plain|html; charset=utf-8` part, or `multipart/mixed` with the
//! body first and base64 `text/plain` attachments `source patch N` and `step.log`). Header
//! values never carry a control character, so nothing a build says can add a header.

use crate::config::LogsWanted;
use crate::event::Build;
use lettre::message::header::{
    self, ContentTransferEncoding, ContentType, HeaderName, HeaderValue,
};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use std::time::SystemTime;

/// Buildbot's address check (`VALID_EMAIL`): `local@domain.tld` (at least two labels of
/// letters, digits and `-`; an optional final dot), alone or as `Name <address>`.
pub fn is_valid_email(s: &str) -> bool {
    fn addr(a: &str) -> bool {
        if a.chars().any(char::is_whitespace) {
            return false;
        }
        let Some((local, domain)) = a.rsplit_once('@') else {
            return false;
        };
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let labels: Vec<&str> = domain.split('.').collect();
        !local.is_empty()
            && labels.len() >= 2
            && labels
                .iter()
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    }
    if addr(s) {
        return true;
    }
    let t = s.trim_end();
    let Some(inner) = t.strip_suffix('>') else {
        return false;
    };
    let Some((name, a)) = inner.rsplit_once('<') else {
        return false;
    };
    // `(.+\s+)?<addr>`: nothing before, or something followed by whitespace.
    (name.is_empty() || (name.trim_end().len() < name.len() && !name.trim().is_empty())) && addr(a)
}

/// `Name <addr>` or a bare address, split like Python's `parseaddr`: (name, address).
pub fn parse_address(s: &str) -> (String, String) {
    let s = s.trim();
    if let (Some(open), true) = (s.rfind('<'), s.ends_with('>')) {
        let name = s[..open].trim().trim_matches('"').trim().to_owned();
        (name, s[open + 1..s.len() - 1].trim().to_owned())
    } else {
        (String::new(), s.to_owned())
    }
}

/// A header-safe value: every control character (CR, LF, TAB, …) becomes a space.
pub fn header_safe(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The mailbox for `s` (`Name <addr>` or bare), if the address is one lettre accepts.
pub fn mailbox(s: &str) -> Option<Mailbox> {
    let (name, addr) = parse_address(s);
    let addr = addr.parse().ok()?;
    Some(Mailbox::new(
        (!name.is_empty()).then(|| header_safe(&name)),
        addr,
    ))
}

/// Who a build mail goes to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recipients {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Addresses dropped as invalid, for the log.
    pub invalid: Vec<String>,
}

/// Buildbot's rule: with `send_to_interested_users`, each user through `lookup` (a bare name
/// becomes `name@domain`), everything after the last `@` cut when there are two, invalid ones
/// dropped; To = those, sorted; `extra` goes to CC when any were found, else to To.
pub fn recipients(
    users: &[String],
    lookup: Option<&str>,
    send_to_interested_users: bool,
    extra: &[String],
) -> Recipients {
    let mut r = Recipients::default();
    if send_to_interested_users {
        for u in users {
            let mut a = match lookup {
                Some(domain) if !u.contains('@') => format!("{u}@{domain}"),
                _ => u.clone(),
            };
            if a.matches('@').count() > 1
                && let Some(i) = a.rfind('@')
            {
                a.truncate(i);
            }
            if is_valid_email(&a) && mailbox(&a).is_some() {
                r.to.push(a);
            } else {
                r.invalid.push(a);
            }
        }
    }
    r.to.sort();
    r.to.dedup();
    if send_to_interested_users && !r.to.is_empty() {
        r.cc = extra.to_vec();
    } else {
        r.to.extend(extra.iter().cloned());
    }
    r.to.sort();
    r.to.dedup();
    r.cc.sort();
    r.cc.dedup();
    r.cc.retain(|c| !r.to.contains(c));
    r
}

/// What goes into one mail.
pub struct Mail<'a> {
    pub from: &'a Mailbox,
    pub subject: &'a str,
    /// `plain` or `html`.
    pub html: bool,
    pub body: &'a str,
    /// To and CC headers; `None` for a missing-worker mail (Buildbot writes neither).
    pub to: Option<(&'a [String], &'a [String])>,
    /// `(name, value)` extra headers, values already rendered.
    pub headers: &'a [(String, String)],
    /// `(filename, text)` attachments.
    pub attachments: &'a [(String, String)],
    pub message_id: &'a str,
    pub date: SystemTime,
}

/// The message bytes. Errors only on an address lettre refuses (checked at config time).
pub fn compose(m: &Mail<'_>) -> Result<Vec<u8>, String> {
    let mut b = lettre::Message::builder()
        .from(m.from.clone())
        .date(m.date)
        .subject(header_safe(m.subject))
        .message_id(Some(m.message_id.to_owned()));
    for (name, value) in m.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| format!("header name {name:?} is not valid"))?;
        b = b.raw_header(HeaderValue::new(name, header_safe(value)));
    }
    if let Some((to, cc)) = m.to {
        for a in to {
            b = b.to(mailbox(a).ok_or_else(|| format!("{a:?} is not an address"))?);
        }
        for a in cc {
            b = b.cc(mailbox(a).ok_or_else(|| format!("{a:?} is not an address"))?);
        }
    }
    // Without To/CC headers lettre cannot derive the envelope; the sink uses its own anyway.
    b = b.envelope(
        lettre::address::Envelope::new(Some(m.from.email.clone()), vec![m.from.email.clone()])
            .map_err(|e| e.to_string())?,
    );
    // The body ends with one line break, and no blank lines are added: lettre ends the part
    // with a CRLF of its own, so a final line break of the formatter's is left to it. (Buildbot's
    // MailNotifier appends "\n\n" to a body that does not end with it: with the part's own
    // line end, blank lines nobody asked for. A formatter's own blank lines are kept.)
    let body = m.body.strip_suffix('\n').unwrap_or(m.body).to_owned();
    let content_type = if m.html {
        ContentType::parse("text/html; charset=utf-8")
    } else {
        ContentType::parse("text/plain; charset=utf-8")
    }
    .expect("a valid content type");
    // Buildbot's: 7bit for ASCII, 8bit otherwise; quoted-printable only if a line is too long.
    let encoding = if body.is_ascii() {
        ContentTransferEncoding::SevenBit
    } else {
        ContentTransferEncoding::EightBit
    };
    let text = Body::new_with_encoding(body.clone(), encoding).unwrap_or_else(|_| Body::new(body));
    let first = SinglePart::builder().header(content_type).body(text);
    let message = if m.attachments.is_empty() {
        b.singlepart(first)
    } else {
        let mut parts = MultiPart::mixed().singlepart(first);
        for (name, text) in m.attachments {
            let data = Body::new_with_encoding(text.clone(), ContentTransferEncoding::Base64)
                .map_err(|_| "cannot encode an attachment".to_owned())?;
            parts = parts.singlepart(Attachment::new(header_safe(name)).body(
                data,
                ContentType::parse("text/plain; charset=utf-8").expect("a valid content type"),
            ));
        }
        b.multipart(parts)
    }
    .map_err(|e| e.to_string())?;
    let _ = header::MIME_VERSION_1_0;
    Ok(message.formatted())
}

/// The attachments Buildbot adds: the source stamps' patches (`source patch N`, when
/// `add_patch`), then the wanted logs' texts without the stream prefixes (`step.log`, or
/// `builder.step.log` when the mail covers several builds).
pub fn attachments(
    builds: &[&Build],
    add_patch: bool,
    add_logs: Option<&LogsWanted>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if add_patch {
        let patches = builds
            .iter()
            .filter_map(|b| b.buildset.as_ref())
            .flat_map(|bs| bs.sourcestamps.iter())
            .filter_map(|ss| ss.patch.as_ref())
            .filter_map(|p| p.body.clone());
        for (i, body) in patches.enumerate() {
            out.push((format!("source patch {i}"), body));
        }
    }
    if let Some(wanted) = add_logs {
        for b in builds {
            for step in b.steps.iter().flatten() {
                for log in &step.logs {
                    let Some(content) = &log.content else {
                        continue;
                    };
                    if !wanted.wants(&step.name, &log.name) {
                        continue;
                    }
                    let prefixed = log.log_type.as_deref().is_none_or(|t| t == "s");
                    let mut text: String =
                        content.lines(prefixed).flat_map(|l| [l, "\n"]).collect();
                    if text.is_empty() {
                        text.push('\n');
                    }
                    let name = format!("{}.{}", step.name, log.name);
                    let name = if builds.len() > 1 {
                        format!("{}.{name}", b.builder_name().unwrap_or_default())
                    } else {
                        name
                    };
                    out.push((name, text));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_as_buildbot_checks_them() {
        for ok in [
            "me@example.org",
            "me@example.org.",
            "Big Bob <bob@mayhem.net>",
            "<bob@mayhem.net>",
            "a+b@x-y.example.co",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "me",
            "me@localhost",
            "me@@",
            "Bob<bob@x.org>",
            "a b@x.org",
            "",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn recipients_follow_buildbots_rule() {
        let users = [
            "tester <tester@example.org>".to_owned(),
            "alice".to_owned(),
            "'Git' <git@x.org>@example.org".to_owned(),
            "nobody@localhost".to_owned(),
        ];
        let extra = ["ops@example.org".to_owned()];
        let r = recipients(&users, Some("example.org"), true, &extra);
        assert_eq!(
            r.to,
            [
                "'Git' <git@x.org>",
                "alice@example.org",
                "tester <tester@example.org>"
            ]
        );
        assert_eq!(r.cc, ["ops@example.org"]);
        assert_eq!(r.invalid, ["nobody@localhost"]);
        // No interested user found: the extra recipients go to To.
        let r = recipients(&["nobody".into()], None, true, &extra);
        assert_eq!((r.to.as_slice(), r.cc.is_empty()), (&extra[..], true));
        let r = recipients(&users, None, false, &extra);
        assert_eq!(r.to, extra);
    }

    #[test]
    fn patches_and_logs_become_buildbots_attachments() {
        let mut b: Build = serde_json::from_str(include_str!(
            "../../../tests/data/buildbot/failure-full.json"
        ))
        .unwrap();
        let patch = crate::event::Patch {
            body: Some("--- a\n+++ b\n".into()),
            ..Default::default()
        };
        b.buildset.as_mut().unwrap().sourcestamps[0].patch = Some(patch);
        let names = |a: Vec<(String, String)>| a.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(names(attachments(&[&b], true, None)), ["source patch 0"]);
        assert!(attachments(&[&b], false, None).is_empty());
        let all = LogsWanted::All(true);
        assert_eq!(
            names(attachments(&[&b], false, Some(&all))),
            ["greet.stdio", "run.stdio"]
        );
        let mut other = b.clone();
        other.builder.as_mut().unwrap().name = Some("lint".into());
        let two = names(attachments(
            &[&b, &other],
            false,
            Some(&LogsWanted::Named(vec!["run.stdio".into()])),
        ));
        assert_eq!(two, ["runtests.run.stdio", "lint.run.stdio"]);
    }

    /// A plain mail to a@example.org with `subject` and `body`, as text.
    fn plain_mail(subject: &str, body: &str) -> String {
        let from = mailbox("CI <ci@example.org>").unwrap();
        let raw = compose(&Mail {
            from: &from,
            subject,
            html: false,
            body,
            to: Some((&["a@example.org".into()], &[])),
            headers: &[],
            attachments: &[],
            message_id: "<1@tidings>",
            date: SystemTime::UNIX_EPOCH,
        })
        .unwrap();
        String::from_utf8(raw).unwrap()
    }

    #[test]
    fn a_non_ascii_subject_is_encoded() {
        let text = plain_mail("☠ Buildbot: runtests échoué", "corps: é");
        let subject = text.lines().find(|l| l.starts_with("Subject:")).unwrap();
        assert!(
            subject.is_ascii() && subject.contains("=?utf-8?"),
            "{subject}"
        );
        assert!(text.contains("Content-Transfer-Encoding: 8bit"), "{text}");
        assert!(text.contains("MIME-Version: 1.0"), "{text}");
    }

    #[test]
    fn a_body_ends_with_one_line_break_and_no_added_blank_lines() {
        let body_of = |body: &str| {
            let text = plain_mail("s", body);
            let at = text.find("\r\n\r\n").unwrap();
            text[at + 4..].replace("\r\n", "\n")
        };
        assert_eq!(body_of("STATUS: Failure"), "STATUS: Failure\n");
        assert_eq!(body_of("line one\nline two\n"), "line one\nline two\n");
        // The formatter's own blank line is its business.
        assert_eq!(body_of("text\n\n"), "text\n\n");
    }

    #[test]
    fn no_header_value_can_add_a_header() {
        let from = mailbox("CI <ci@example.org>").unwrap();
        let raw = compose(&Mail {
            from: &from,
            subject: "ok\r\nBcc: victim@example.org",
            html: false,
            body: "hi",
            to: Some((&["a@example.org".into()], &[])),
            headers: &[("X-Builder".into(), "x\nInjected: yes".into())],
            attachments: &[],
            message_id: "<1@tidings>",
            date: SystemTime::UNIX_EPOCH,
        })
        .unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            !text.contains("\nBcc:") && !text.contains("\r\nBcc:"),
            "{text}"
        );
        assert!(!text.contains("\nInjected:"), "{text}");
    }
}
