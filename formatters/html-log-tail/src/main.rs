//! `html-log-tail`: the seed's HTML mail. Build status, worker, build URL, reason, source
//! stamps (branch, revision, patch), blamelist, a table of recent changes, and the last
//! [`TAIL_LINES`] lines of the last finished step's stdio log (stream prefixes removed,
//! HTML-escaped), with a link to the full log. Subject: `Buildbot <result> in <title> on
//! <builder>`, the subject MailNotifier falls back to.
//!
//! The log text comes from the request's `logs` (the reporter's `add_logs`) or, failing that,
//! from the build's own steps when the master sent log contents.

use std::fmt::Write;
use tidings_guest::build::{Log, SourceStamp};
use tidings_guest::text::{html_escape as esc, py_str};
use tidings_guest::{Message, MessageArgs, Results, Step};

/// How many log lines the mail shows.
const TAIL_LINES: usize = 80;

fn format(args: MessageArgs) -> Result<Option<Message>, String> {
    let subject = format!(
        "Buildbot {} in {} on {}",
        args.results_text, args.master.title, args.name
    );
    Ok(Some(Message::html(body(&args)).with_subject(subject)))
}

/// The colour Buildbot's web UI uses for a result.
fn colour(result: Option<Results>) -> &'static str {
    match result {
        Some(Results::Success) => "#8d4",
        Some(Results::Warnings) => "#fa3",
        Some(Results::Failure) => "#e88",
        Some(Results::Exception) => "#c6c",
        Some(Results::Retry | Results::Cancelled | Results::Skipped) => "#ecc",
        None => "#ccc",
    }
}

fn body(args: &MessageArgs) -> String {
    let b = &args.build;
    let mut o = String::with_capacity(8 * 1024);
    let number = b.number.map_or_else(String::new, |n| format!(" #{n}"));
    let _ = write!(
        o,
        "<html><body>\n<h2 style=\"background:{};padding:4px\">Build{number} of {}: {}</h2>\n",
        colour(args.result()),
        esc(&args.name),
        esc(&args.results_text.to_uppercase()),
    );
    o.push_str("<table>\n");
    let row = |o: &mut String, k: &str, v: &str| {
        let _ = writeln!(o, "<tr><th align=\"left\">{k}</th><td>{v}</td></tr>");
    };
    row(
        &mut o,
        "Status",
        &esc(b.state_string.as_deref().unwrap_or("")),
    );
    let worker = b.property("workername").map_or("(unknown)".into(), py_str);
    row(&mut o, "Worker", &esc(&worker));
    let url = esc(&args.build_url);
    row(&mut o, "Build", &format!("<a href=\"{url}\">{url}</a>"));
    let reason = b.property("reason").map_or("(unknown)".into(), py_str);
    row(&mut o, "Reason", &esc(&reason));
    let blame = if args.users.is_empty() {
        "(nobody)".to_owned()
    } else {
        args.users.join(", ")
    };
    row(&mut o, "Blamelist", &esc(&blame));
    o.push_str("</table>\n");

    source_stamps(
        &mut o,
        b.buildset.as_ref().map_or(&[][..], |bs| &bs.sourcestamps),
    );
    changes(&mut o, args);
    log_tail(&mut o, args);
    o.push_str("</body></html>\n");
    o
}

fn source_stamps(o: &mut String, stamps: &[SourceStamp]) {
    o.push_str("<h3>Source stamps</h3>\n");
    if stamps.is_empty() {
        o.push_str("<p>None.</p>\n");
        return;
    }
    o.push_str(
        "<table>\n<tr><th>Codebase</th><th>Branch</th><th>Revision</th><th>Patch</th></tr>\n",
    );
    for ss in stamps {
        let patch = match &ss.patch {
            None => "none".to_owned(),
            Some(p) => format!(
                "by {}: {}",
                esc(p.author.as_deref().unwrap_or("(unknown)")),
                esc(p.comment.as_deref().unwrap_or(""))
            ),
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{patch}</td></tr>",
            esc(ss.codebase.as_deref().unwrap_or("")),
            esc(ss.branch.as_deref().unwrap_or("")),
            esc(ss.revision.as_deref().unwrap_or("HEAD")),
        );
    }
    o.push_str("</table>\n");
}

fn changes(o: &mut String, args: &MessageArgs) {
    o.push_str("<h3>Recent changes</h3>\n");
    if args.changes.is_empty() {
        o.push_str("<p>No changes.</p>\n");
        return;
    }
    o.push_str("<table>\n<tr><th>Revision</th><th>Author</th><th>Comments</th></tr>\n");
    for c in &args.changes {
        let rev = c.revision.as_deref().unwrap_or("");
        let short = rev.get(..12).unwrap_or(rev);
        let rev_cell = match &c.revlink {
            Some(link) if !link.is_empty() => {
                format!("<a href=\"{}\">{}</a>", esc(link), esc(short))
            }
            _ => esc(short),
        };
        let first_line = c
            .comments
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        let _ = writeln!(
            o,
            "<tr><td>{rev_cell}</td><td>{}</td><td>{}</td></tr>",
            esc(c.author.as_deref().unwrap_or("")),
            esc(first_line),
        );
    }
    o.push_str("</table>\n");
}

/// The last finished step, and its stdio log.
fn last_finished_stdio(steps: &[Step]) -> Option<(&Step, Option<&Log>)> {
    let step = steps.iter().rev().find(|s| s.complete)?;
    Some((step, step.logs.iter().find(|l| l.name == "stdio")))
}

fn log_tail(o: &mut String, args: &MessageArgs) {
    let Some((step, log)) = last_finished_stdio(args.build.steps()) else {
        o.push_str("<p>No step finished.</p>\n");
        return;
    };
    let Some(log) = log else {
        let _ = writeln!(o, "<p>Step {} has no stdio log.</p>", esc(&step.name));
        return;
    };
    // Prefer the content the reporter attached in `logs`; fall back to the build's own.
    let content = args
        .logs
        .iter()
        .find(|l| l.logid.is_some() && l.logid == log.logid)
        .and_then(|l| l.content.as_ref())
        .or(log.content.as_ref());
    let link = log.url.as_deref().map(esc);
    match content {
        None => {
            let _ = write!(
                o,
                "<p>The log of step {} was not attached.",
                esc(&step.name)
            );
        }
        Some(c) => {
            let lines: Vec<&str> = c.lines(log.log_type.as_deref() == Some("s")).collect();
            let from = lines.len().saturating_sub(TAIL_LINES);
            let _ = writeln!(
                o,
                "<h3>Step {} (stdio), last {} lines</h3>\n<pre>",
                esc(&step.name),
                lines.len() - from
            );
            for line in &lines[from..] {
                o.push_str(&esc(line));
                o.push('\n');
            }
            o.push_str("</pre>\n<p>");
        }
    }
    if let Some(link) = link {
        let _ = write!(o, " <a href=\"{link}\">Full log</a>");
    }
    o.push_str("</p>\n");
}

tidings_guest::main!(message_formatter = format);

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_guest::Build;
    use tidings_guest::build::LogContent;

    fn args_with_log(content: &str) -> MessageArgs {
        let log = Log {
            logid: Some(4),
            name: "stdio".into(),
            log_type: Some("s".into()),
            url: Some("http://ci/log?a=1&b=2".into()),
            content: Some(LogContent {
                content: content.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        MessageArgs {
            name: "b".into(),
            results: Some(2),
            results_text: "failure".into(),
            build: Build {
                steps: Some(vec![Step {
                    name: "run".into(),
                    complete: true,
                    logs: vec![log],
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn shows_only_the_last_lines_escaped_without_prefixes() {
        let content: String = (0..100).map(|i| format!("oline {i} <x>\n")).collect();
        let html = body(&args_with_log(&content));
        assert!(html.contains("last 80 lines"));
        assert!(!html.contains("line 19 "), "line 19 should be cut");
        assert!(html.contains("line 20 &lt;x&gt;\n"));
        assert!(html.contains("line 99 &lt;x&gt;\n</pre>"));
        assert!(html.contains("<a href=\"http://ci/log?a=1&amp;b=2\">Full log</a>"));
    }
}
