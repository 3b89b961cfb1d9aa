//! `default-mail`: Buildbot's default mail, as MailNotifier users know it — the plain-text body
//! and the subject of Buildbot 4.3's default `MessageFormatter(template_type="plain")`, to the
//! character. The test cases were produced by running Buildbot itself on builds captured from a
//! real master (`scripts/buildbot-default-mail-cases.py`).

use std::fmt::Write;
use tidings_guest::text::{projects, py_str, result_name_in_template, status_detected};
use tidings_guest::{Message, MessageArgs, Results};

/// The `messageFormatter` hook.
pub fn format(args: MessageArgs) -> Result<Option<Message>, String> {
    Ok(Some(
        Message::plain(body(&args)).with_subject(subject(&args)),
    ))
}

/// A property's value as a template prints it, or `default` when the build lacks it.
fn prop(args: &MessageArgs, name: &str, default: &str) -> String {
    args.build
        .property(name)
        .map_or_else(|| default.to_owned(), py_str)
}

fn body(args: &MessageArgs) -> String {
    let build = &args.build;
    let prev = args.prev_build.as_ref().and_then(|p| p.results);
    let mut out = String::with_capacity(1024);
    // `write!` to a String cannot fail.
    let _ = write!(
        out,
        "A {} has been detected on builder {} while building {}.\n\n\
         Full details are available at:\n    {}\n\n\
         Build state: {}\nRevision: {}\nWorker: {}\nBuild Reason: {}\nBlamelist: {}\n\n\
         Steps:\n",
        status_detected(&args.mode, args.results, prev),
        args.name,
        projects(build, &args.master.title),
        args.build_url,
        build.state_string.as_deref().unwrap_or("None"),
        prop(args, "got_revision", "(unknown)"),
        prop(args, "workername", "<unknown>"),
        prop(args, "reason", "(unknown)"),
        args.users.join(", "),
    );
    let steps = build.steps();
    if steps.is_empty() {
        out.push_str("\n- (no steps)\n");
        return out;
    }
    for step in steps {
        let _ = write!(
            out,
            "\n- {}: {} ( {} )\n",
            step.number,
            step.name,
            result_name_in_template(step.results)
        );
        if !step.logs.is_empty() {
            out.push_str("    Logs:");
            for log in &step.logs {
                let _ = write!(
                    out,
                    "\n        - {}: {}",
                    log.name,
                    log.url.as_deref().unwrap_or("None")
                );
            }
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

fn subject(args: &MessageArgs) -> String {
    let icon = match args.result() {
        Some(Results::Failure) => '☠',
        Some(Results::Success) => '☺',
        _ => '☝',
    };
    let branch = args
        .build
        .property("branch")
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
        .map(py_str);
    let which = branch.unwrap_or_else(|| prop(args, "got_revision", "(unknown revision)"));
    format!(
        "{icon} Buildbot ({}): {} - {} ({which})",
        args.master.title,
        args.name,
        args.build.state_string.as_deref().unwrap_or("None"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_guest::serde_json;

    /// Runs every case in tests/ natively; the same cases run under the sandbox via
    /// `tidings test formatters/default-mail`.
    #[test]
    fn matches_buildbot_on_every_case() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(case) = path.to_str().and_then(|p| p.strip_suffix(".input.json")) else {
                continue;
            };
            let args: MessageArgs = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let expected: serde_json::Value =
                serde_json::from_slice(&std::fs::read(format!("{case}.expected.json")).unwrap())
                    .unwrap();
            let got = serde_json::to_value(format(args).unwrap()).unwrap();
            assert_eq!(got, expected, "case {case}");
            n += 1;
        }
        assert!(n >= 5, "only {n} cases found");
    }
}
