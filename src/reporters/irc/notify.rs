//! Which events a channel is told about, and what it is told: Buildbot's notify events, their
//! transition rules (`words.py`'s `notify_for_finished`), and its texts and colours.

use super::text::{COLOR, RESET, clean};
use crate::event::{Build, Results};
use std::collections::BTreeSet;

/// The events a contact can ask for (besides the `<prev>To<Cur>` forms).
pub const EVENTS: [&str; 12] = [
    "started",
    "finished",
    "success",
    "warnings",
    "failure",
    "exception",
    "cancelled",
    "problem",
    "recovery",
    "worse",
    "better",
    "worker",
];

/// The results whose transitions count, mildest first (Buildbot's `results_severity`).
const SEVERITY: [Results; 6] = [
    Results::Skipped,
    Results::Success,
    Results::Warnings,
    Results::Failure,
    Results::Cancelled,
    Results::Exception,
];

/// Whether `event` is one a contact can ask for.
pub fn valid_event(event: &str) -> bool {
    if EVENTS.contains(&event) {
        return true;
    }
    const FROM: [&str; 4] = ["success", "warnings", "failure", "exception"];
    const TO: [&str; 4] = ["Success", "Warnings", "Failure", "Exception"];
    event
        .split_once("To")
        .is_some_and(|(a, b)| FROM.contains(&a) && TO.contains(&b))
}

/// Whether a contact asking for `events` is told that a build finished with `results`, the
/// previous build of its builder having finished with `prev` (Buildbot's rules).
pub fn finished_notified(events: &BTreeSet<String>, results: i64, prev: Option<i64>) -> bool {
    use Results::*;
    let wants = |e: &str| events.contains(e);
    let cur = Results::from_code(results);
    if wants("finished") || cur.is_some_and(|r| wants(r.name())) {
        return true;
    }
    let severity = |r: Results| SEVERITY.iter().position(|s| *s == r);
    let (Some(cur), Some(prev)) = (cur, prev.and_then(Results::from_code)) else {
        return false;
    };
    let (Some(cur_index), Some(prev_index)) = (severity(cur), severity(prev)) else {
        return false;
    };
    if (wants("better") && cur_index < prev_index) || (wants("worse") && cur_index > prev_index) {
        return true;
    }
    if wants("problem") && matches!(prev, Success | Warnings) && matches!(cur, Failure | Exception)
    {
        return true;
    }
    if wants("recovery") && matches!(prev, Failure | Exception) && matches!(cur, Success | Warnings)
    {
        return true;
    }
    let name = cur.name();
    let mut capitalised = name[..1].to_uppercase();
    capitalised.push_str(&name[1..]);
    wants(&format!("{}To{capitalised}", prev.name()))
}

/// A result's words and mIRC colour code, as Buildbot's IRC bot has them (long, short).
fn words(results: Option<i64>) -> (&'static str, &'static str, u8) {
    match results.and_then(Results::from_code) {
        Some(Results::Success) => ("completed successfully", ", Success", 3),
        Some(Results::Warnings) => ("completed with warnings", ", Warnings", 8),
        Some(Results::Failure) => ("failed", ", Failure", 4),
        Some(Results::Skipped) => ("was skipped", ", Skipped", 12),
        Some(Results::Exception) => ("stopped with exception", ", Exception", 6),
        Some(Results::Retry) => ("has been retried", ", Retry", 11),
        Some(Results::Cancelled) => ("was cancelled", ", Cancelled", 13),
        None => ("finished with an unknown result", ", Unknown", 14),
    }
}

fn coloured(text: &str, colour: u8, colours: bool) -> String {
    if colours {
        format!("{COLOR}{colour}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// How a finished build is described (Buildbot's `results_descriptions`), coloured as
/// Buildbot's IRC bot colours it when `colours`.
pub fn describe(results: Option<i64>, colours: bool) -> String {
    let (text, _, colour) = words(results);
    coloured(text, colour, colours)
}

/// The short form `status` uses (`, Failure`), coloured likewise.
pub fn describe_short(results: Option<i64>, colours: bool) -> String {
    let (_, text, colour) = words(results);
    coloured(text, colour, colours)
}

/// What the texts say about a build.
pub struct Texts {
    pub colours: bool,
    pub use_revisions: bool,
    pub show_blame_list: bool,
}

/// The build's short revisions (7 characters), from its source stamps or `got_revision`.
pub fn revisions(b: &Build) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(bs) = &b.buildset {
        for ss in &bs.sourcestamps {
            if let Some(r) = ss.revision.as_deref().filter(|r| !r.is_empty()) {
                out.push(r.chars().take(7).collect());
            }
        }
    }
    if out.is_empty() {
        match b.property("got_revision") {
            Some(serde_json::Value::String(r)) if !r.is_empty() => {
                out.push(r.chars().take(7).collect())
            }
            Some(serde_json::Value::Object(m)) => {
                for v in m.values() {
                    if let Some(r) = v.as_str().filter(|r| !r.is_empty()) {
                        out.push(r.chars().take(7).collect());
                    }
                }
            }
            _ => {}
        }
    }
    out.iter().map(|r| clean(r)).collect()
}

fn builder(b: &Build) -> String {
    clean(b.builder_name().unwrap_or("unknown builder"))
}

fn number(b: &Build) -> String {
    b.number.map_or("?".into(), |n| n.to_string())
}

fn url(b: &Build) -> String {
    clean(b.url.as_deref().unwrap_or(""))
}

impl Texts {
    /// ``Build [#12](URL) of `builder` started.``
    pub fn started(&self, b: &Build) -> String {
        let revs = revisions(b);
        if self.use_revisions && !revs.is_empty() {
            format!(
                "Build containing revision(s) {} on `{}` started.",
                revs.join(","),
                builder(b)
            )
        } else {
            format!(
                "Build [#{}]({}) of `{}` started.",
                number(b),
                url(b),
                builder(b)
            )
        }
    }

    /// ``Build [#12](URL) of `builder` failed: failed test`` (`.` after a success), then the
    /// blamelist after a build that did not succeed.
    pub fn finished(&self, b: &Build, users: &[String]) -> String {
        let revs = revisions(b);
        let status = describe(b.results, self.colours);
        let mut r = if self.use_revisions && !revs.is_empty() {
            format!(
                "Build on `{}` containing revision(s) {} {status}",
                builder(b),
                revs.join(",")
            )
        } else {
            format!(
                "Build [#{}]({}) of `{}` {status}",
                number(b),
                url(b),
                builder(b)
            )
        };
        match b.state_string.as_deref() {
            Some(s) if b.results != Some(Results::Success.code()) => {
                r.push_str(": ");
                r.push_str(&clean(s));
            }
            _ => r.push('.'),
        }
        if self.show_blame_list && b.results != Some(Results::Success.code()) && !users.is_empty() {
            let users: Vec<String> = users.iter().map(|u| clean(u)).collect();
            r.push_str("  blamelist: ");
            r.push_str(&users.join(", "));
        }
        r
    }

    /// ``Watching build [#12](URL) of `builder` until it finishes...``
    pub fn watching(&self, b: &Build) -> String {
        let revs = revisions(b);
        if self.use_revisions && !revs.is_empty() {
            format!(
                "Watching build on `{}` containing revision(s) {} until it finishes...",
                builder(b),
                revs.join(",")
            )
        } else {
            format!(
                "Watching build [#{}]({}) of `{}` until it finishes...",
                number(b),
                url(b),
                builder(b)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event, every (previous result, result) pair: what Buildbot 4.3's own
    /// `notify_for_finished` decides (`scripts/buildbot-irc-table.py`).
    const TABLE: &str = include_str!("../../../tests/data/irc-notify.json");

    #[test]
    fn every_transition_rule_is_buildbots() {
        let table: serde_json::Value = serde_json::from_str(TABLE).unwrap();
        let events: Vec<String> = table["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_owned())
            .collect();
        for e in &events {
            assert!(valid_event(e), "{e}");
        }
        let mut checked = 0;
        for row in table["rows"].as_array().unwrap() {
            let prev = row["prev"].as_i64();
            let results = row["results"].as_i64().unwrap();
            let expected: Vec<&str> = row["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            for e in &events {
                let set = BTreeSet::from([e.clone()]);
                assert_eq!(
                    finished_notified(&set, results, prev),
                    expected.contains(&e.as_str()),
                    "event {e}, previous {prev:?}, result {results}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 56 * events.len());
    }

    #[test]
    fn event_names_are_checked() {
        assert!(valid_event("failureToSuccess") && valid_event("worker"));
        assert!(!valid_event("failuretosuccess") && !valid_event("skippedToSuccess"));
        assert!(!valid_event("finish") && !valid_event("To"));
    }

    #[test]
    fn texts_are_buildbots() {
        let b: Build = serde_json::from_value(serde_json::json!({
            "number": 12, "results": 2, "state_string": "failed test",
            "url": "http://ci/#/builders/1/builds/12", "builder": {"name": "runtests"},
            "complete": true,
        }))
        .unwrap();
        let t = Texts {
            colours: false,
            use_revisions: false,
            show_blame_list: false,
        };
        assert_eq!(
            t.finished(&b, &[]),
            "Build [#12](http://ci/#/builders/1/builds/12) of `runtests` failed: failed test"
        );
        assert_eq!(
            t.started(&b),
            "Build [#12](http://ci/#/builders/1/builds/12) of `runtests` started."
        );
        let coloured = Texts {
            colours: true,
            show_blame_list: true,
            ..t
        };
        let revs = Texts {
            use_revisions: true,
            colours: false,
            show_blame_list: false,
        };
        let mut with_rev = b.clone();
        with_rev.properties.insert(
            "got_revision".into(),
            serde_json::from_value(serde_json::json!(["0123456789abcdef", "Git"])).unwrap(),
        );
        assert_eq!(
            revs.started(&with_rev),
            "Build containing revision(s) 0123456 on `runtests` started."
        );
        assert_eq!(
            revs.finished(&with_rev, &[]),
            "Build on `runtests` containing revision(s) 0123456 failed: failed test"
        );
        // No revision known: numbers, as without use_revisions.
        assert_eq!(revs.started(&b), t.started(&b));
        assert_eq!(
            coloured.finished(&b, &["alice".into()]),
            "Build [#12](http://ci/#/builders/1/builds/12) of `runtests` \x034failed\x0f: failed test  blamelist: alice"
        );
    }
}
