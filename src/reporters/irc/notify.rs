//! Which events a channel is told about, and what it is told: Buildbot's notify events, their
//! transition rules (`words.py`'s `notify_for_finished`), and its texts and colours.

use super::text::{COLOR, RESET, clean};
use crate::event::Build;
use std::collections::BTreeSet;

/// Buildbot's result codes, in its order.
const SUCCESS: i64 = 0;
const WARNINGS: i64 = 1;
const FAILURE: i64 = 2;
const SKIPPED: i64 = 3;
const EXCEPTION: i64 = 4;
const RETRY: i64 = 5;
const CANCELLED: i64 = 6;

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
const SEVERITY: [i64; 6] = [SKIPPED, SUCCESS, WARNINGS, FAILURE, CANCELLED, EXCEPTION];

/// Buildbot's name of a result (`statusToString`, lower case).
pub fn result_name(results: i64) -> &'static str {
    match results {
        SUCCESS => "success",
        WARNINGS => "warnings",
        FAILURE => "failure",
        SKIPPED => "skipped",
        EXCEPTION => "exception",
        RETRY => "retry",
        CANCELLED => "cancelled",
        _ => "unknown",
    }
}

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
    let wants = |e: &str| events.contains(e);
    if wants("finished") || wants(result_name(results)) {
        return true;
    }
    let (Some(cur), Some(prev)) = (
        SEVERITY.iter().position(|r| *r == results),
        prev.and_then(|p| SEVERITY.iter().position(|r| *r == p)),
    ) else {
        return false;
    };
    let prev_code = SEVERITY[prev];
    if (wants("better") && cur < prev) || (wants("worse") && cur > prev) {
        return true;
    }
    if wants("problem")
        && matches!(prev_code, SUCCESS | WARNINGS)
        && matches!(results, FAILURE | EXCEPTION)
    {
        return true;
    }
    if wants("recovery")
        && matches!(prev_code, FAILURE | EXCEPTION)
        && matches!(results, SUCCESS | WARNINGS)
    {
        return true;
    }
    let name = result_name(results);
    let mut capitalised = name[..1].to_uppercase();
    capitalised.push_str(&name[1..]);
    wants(&format!("{}To{capitalised}", result_name(prev_code)))
}

/// How a finished build is described (Buildbot's `results_descriptions`), coloured as
/// Buildbot's IRC bot colours it when `colours`.
pub fn describe(results: Option<i64>, colours: bool) -> String {
    let (text, colour) = match results {
        Some(SUCCESS) => ("completed successfully", 3),
        Some(WARNINGS) => ("completed with warnings", 8),
        Some(FAILURE) => ("failed", 4),
        Some(SKIPPED) => ("was skipped", 12),
        Some(EXCEPTION) => ("stopped with exception", 6),
        Some(RETRY) => ("has been retried", 11),
        Some(CANCELLED) => ("was cancelled", 13),
        _ => ("finished with an unknown result", 14),
    };
    if colours {
        format!("{COLOR}{colour}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// The short form `status` uses (`, Failure`), coloured likewise.
pub fn describe_short(results: Option<i64>, colours: bool) -> String {
    let (text, colour) = match results {
        Some(SUCCESS) => (", Success", 3),
        Some(WARNINGS) => (", Warnings", 8),
        Some(FAILURE) => (", Failure", 4),
        Some(SKIPPED) => (", Skipped", 12),
        Some(EXCEPTION) => (", Exception", 6),
        Some(RETRY) => (", Retry", 11),
        Some(CANCELLED) => (", Cancelled", 13),
        _ => (", Unknown", 14),
    };
    if colours {
        format!("{COLOR}{colour}{text}{RESET}")
    } else {
        text.to_owned()
    }
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
            Some(s) if b.results != Some(SUCCESS) => {
                r.push_str(": ");
                r.push_str(&clean(s));
            }
            _ => r.push('.'),
        }
        if self.show_blame_list && b.results != Some(SUCCESS) && !users.is_empty() {
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
