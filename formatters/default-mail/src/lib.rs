//! `default-mail`: Buildbot's default mail, as MailNotifier users know it — the plain-text body
//! and the subject of Buildbot 4.3's default `MessageFormatter(template_type="plain")`, to the
//! character. The test cases were produced by running Buildbot itself on builds captured from a
//! real master (`scripts/buildbot-default-mail-cases.py`).

use std::fmt::Write;
use tidings_guest::build::Property;
use tidings_guest::serde::Deserialize;
use tidings_guest::text::{py_str, result_name_in_template, status_detected};
use tidings_guest::{Master, Message, MissingWorkerArgs, Results};

// The request, as far as Buildbot's template reads it. Naming only these fields lets serde skip
// the rest (log contents, changes, the other properties) without building it: decoding the
// whole `MessageArgs` would cost this formatter more than everything else it does.

/// The `messageFormatter` arguments default-mail uses.
#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct Args {
    pub mode: Vec<String>,
    pub name: String,
    pub build: BuildView,
    pub results: Option<i64>,
    pub master: Master,
    pub build_url: String,
    pub users: Vec<String>,
    pub prev_build: Option<PrevView>,
}

/// The build fields the template reads.
#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct BuildView {
    pub state_string: Option<String>,
    pub properties: Props,
    pub steps: Option<Vec<StepView>>,
    pub buildset: Option<BuildsetView>,
}

/// The properties the template reads.
#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct Props {
    pub got_revision: Option<Property>,
    pub workername: Option<Property>,
    pub reason: Option<Property>,
    pub branch: Option<Property>,
}

#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct StepView {
    pub number: i64,
    pub name: String,
    pub results: Option<i64>,
    pub logs: Vec<LogView>,
}

#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct LogView {
    pub name: String,
    pub url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct BuildsetView {
    pub sourcestamps: Vec<StampView>,
}

#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct StampView {
    pub project: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(crate = "tidings_guest::serde", default)]
pub struct PrevView {
    pub results: Option<i64>,
}

/// The `messageFormatter` hook.
pub fn format(args: Args) -> Result<Option<Message>, String> {
    Ok(Some(
        Message::plain(body(&args)).with_subject(subject(&args)),
    ))
}

/// The `messageFormatterMissingWorker` hook: Buildbot's `MessageFormatterMissingWorker`
/// default mail, its plain text and subject.
pub fn missing_worker(args: MissingWorkerArgs) -> Result<Option<Message>, String> {
    let w = &args.worker;
    let mut body = format!(
        "The Buildbot worker named {} went away.\n\nIt last disconnected at {}.\n\n",
        w.name,
        // Buildbot's template prints a missing time as Python's None.
        w.last_connection.as_deref().unwrap_or("None"),
    );
    if let Some(admin) = w.workerinfo.get("admin").and_then(|a| a.as_str()) {
        body.push_str(&format!(
            "\nThe admin on record (as reported by WORKER:info/admin) was {admin}.\n"
        ));
    }
    let title = if args.buildbot_title.is_empty() {
        &args.master.title
    } else {
        &args.buildbot_title
    };
    Ok(Some(Message::plain(body).with_subject(format!(
        "Buildbot {title} worker {} missing",
        w.name
    ))))
}

/// A property's value as a template prints it, or `default` when the build lacks it.
fn prop(p: &Option<Property>, default: &str) -> String {
    p.as_ref()
        .map_or_else(|| default.to_owned(), |p| py_str(&p.0))
}

/// Buildbot's `projects`: the distinct non-empty source-stamp projects, sorted (Buildbot joins
/// a set, in no fixed order), or the master's title.
fn projects(args: &Args) -> String {
    let mut seen: Vec<&str> = args
        .build
        .buildset
        .iter()
        .flat_map(|bs| &bs.sourcestamps)
        .filter_map(|ss| ss.project.as_deref())
        .filter(|p| !p.is_empty())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.is_empty() {
        args.master.title.clone()
    } else {
        seen.join(", ")
    }
}

fn body(args: &Args) -> String {
    let build = &args.build;
    let props = &build.properties;
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
        projects(args),
        args.build_url,
        build.state_string.as_deref().unwrap_or("None"),
        prop(&props.got_revision, "(unknown)"),
        prop(&props.workername, "<unknown>"),
        prop(&props.reason, "(unknown)"),
        args.users.join(", "),
    );
    let steps = build.steps.as_deref().unwrap_or(&[]);
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

fn subject(args: &Args) -> String {
    let icon = match args.results.and_then(Results::from_code) {
        Some(Results::Failure) => '☠',
        Some(Results::Success) => '☺',
        _ => '☝',
    };
    let props = &args.build.properties;
    let branch = props
        .branch
        .as_ref()
        .map(|p| &p.0)
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
        .map(py_str);
    let which = branch.unwrap_or_else(|| prop(&props.got_revision, "(unknown revision)"));
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
        // Cargo sets CARGO_MANIFEST_DIR when it runs the test too: prefer that one, so a test
        // binary reused from a build in another checkout still reads this checkout's cases.
        let root = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
        let dir = std::path::Path::new(&root).join("tests");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Some(case) = path.to_str().and_then(|p| p.strip_suffix(".input.json")) else {
                continue;
            };
            let input = std::fs::read(&path).unwrap();
            let expected: serde_json::Value =
                serde_json::from_slice(&std::fs::read(format!("{case}.expected.json")).unwrap())
                    .unwrap();
            let request: serde_json::Value = serde_json::from_slice(&input).unwrap();
            let got = if request["hook"] == "messageFormatterMissingWorker" {
                let args: MissingWorkerArgs = serde_json::from_slice(&input).unwrap();
                serde_json::to_value(missing_worker(args).unwrap()).unwrap()
            } else {
                let args: Args = serde_json::from_slice(&input).unwrap();
                serde_json::to_value(format(args).unwrap()).unwrap()
            };
            assert_eq!(got, expected, "case {case}");
            n += 1;
        }
        assert!(n >= 5, "only {n} cases found");
    }
}
