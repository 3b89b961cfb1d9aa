//! Text helpers that Buildbot's templates use and formatters keep needing: HTML escaping,
//! Python's `str.title()`, and the "status detected" phrase of Buildbot's default mail.

use crate::build::{Build, Results};
use serde_json::Value;

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Python's `str.title()`: the first letter of every run of letters upper-cased, the rest
/// lower-cased (`"not finished"` → `"Not Finished"`).
pub fn title_case(s: &str) -> String {
    if s.is_ascii() {
        // The common case (result names): no Unicode case tables needed.
        let mut out = String::with_capacity(s.len());
        let mut in_word = false;
        for c in s.chars() {
            if c.is_ascii_alphabetic() {
                out.push(if in_word {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                });
                in_word = true;
            } else {
                out.push(c);
                in_word = false;
            }
        }
        return out;
    }
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if in_word {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            out.push(c);
            in_word = false;
        }
    }
    out
}

/// Buildbot's `status_detected` phrase for a build: `new failure`, `failed build`,
/// `problem in the build`, `restored build`, `passing build`, `build exception`, or
/// `<result> build`. `mode` is the reporter's mode words; `prev` the previous build's result.
pub fn status_detected(mode: &[String], results: Option<i64>, prev: Option<i64>) -> String {
    let has = |w: &str| mode.iter().any(|m| m == w);
    match results.and_then(Results::from_code) {
        Some(Results::Failure) => {
            let prev_not_failure = prev.is_some_and(|p| p != Results::Failure.code());
            if (has("change") || has("problem")) && prev_not_failure {
                "new failure".into()
            } else {
                "failed build".into()
            }
        }
        Some(Results::Warnings) => "problem in the build".into(),
        Some(Results::Success) => {
            if has("change") && prev.is_some_and(|p| p != Results::Success.code()) {
                "restored build".into()
            } else {
                "passing build".into()
            }
        }
        Some(Results::Exception) => "build exception".into(),
        _ => format!("{} build", Results::text_for(results)),
    }
}

/// Buildbot's `projects`: the distinct non-empty `project`s of the build's source stamps,
/// sorted and joined by `", "` (Buildbot joins a set, in no fixed order), or `fallback` (the
/// master's title) when there are none.
pub fn projects(build: &Build, fallback: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    if let Some(bs) = &build.buildset {
        for ss in &bs.sourcestamps {
            if let Some(p) = ss.project.as_deref().filter(|p| !p.is_empty()) {
                seen.push(p);
            }
        }
    }
    seen.sort_unstable();
    seen.dedup();
    if seen.is_empty() {
        fallback.to_owned()
    } else {
        seen.join(", ")
    }
}

/// Buildbot's `summary` line: `Build succeeded!`, `Build Had Warnings: <state>`, `Build was
/// cancelled`, or `BUILD FAILED: <state>` for any other result (the `: <state>` part is left
/// out when the build has no `state_string`).
pub fn summary(results: Option<i64>, state_string: Option<&str>) -> String {
    let state = state_string
        .filter(|s| !s.is_empty())
        .map_or(String::new(), |s| format!(": {s}"));
    match results.and_then(Results::from_code) {
        Some(Results::Success) => "Build succeeded!".into(),
        Some(Results::Warnings) => format!("Build Had Warnings{state}"),
        Some(Results::Cancelled) => "Build was cancelled".into(),
        _ => format!("BUILD FAILED{state}"),
    }
}

/// Buildbot's `sourcestamps` text: one line per source stamp,
/// `Build Source Stamp[ '<codebase>']: [branch <b>] <revision or HEAD>[ (plus patch)]`, each
/// ending in a newline.
pub fn sourcestamps(build: &Build) -> String {
    let mut out = String::new();
    for ss in build.buildset.iter().flat_map(|bs| &bs.sourcestamps) {
        let mut source = String::new();
        if let Some(b) = ss.branch.as_deref().filter(|b| !b.is_empty()) {
            source.push_str(&format!("[branch {b}] "));
        }
        match ss.revision.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => source.push_str(r),
            None => source.push_str("HEAD"),
        }
        if ss.patch.is_some() {
            source.push_str(" (plus patch)");
        }
        let which = match ss.codebase.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => format!(" '{c}'"),
            None => String::new(),
        };
        out.push_str(&format!("Build Source Stamp{which}: {source}\n"));
    }
    out
}

/// Buildbot's `workername`: the `workername` property as a template prints it, or
/// `<unknown>`.
pub fn workername(build: &Build) -> String {
    build
        .properties
        .get("workername")
        .map_or_else(|| "<unknown>".to_owned(), |p| py_str(&p.0))
}

/// How Python's `str()` (and so a Buildbot template) prints a JSON value: strings bare,
/// `None`, `True`/`False`, and lists/dicts in Python's repr with single-quoted strings.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::with_capacity(s.len() + 2);
            out.push(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
            out
        }
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Buildbot's `result_names[code]` in a template: the name for 0–6, Python's negative indexing
/// for −7…−1, and the empty string (Jinja's undefined) for anything else, including `None`.
pub fn result_name_in_template(code: Option<i64>) -> &'static str {
    let Some(c) = code else { return "" };
    let idx = if c < 0 { c + 7 } else { c };
    Results::from_code(idx).map_or("", Results::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_case_matches_python() {
        assert_eq!(title_case("not finished"), "Not Finished");
        assert_eq!(title_case("failure"), "Failure");
        assert_eq!(title_case("unknown result 9"), "Unknown Result 9");
        assert_eq!(title_case("it's"), "It'S");
    }

    #[test]
    fn py_str_matches_python() {
        use serde_json::json;
        assert_eq!(py_str(&json!("x")), "x");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(["a", 1, null])), "['a', 1, None]");
        assert_eq!(py_str(&json!({"k": "it's"})), r#"{'k': "it's"}"#);
        assert_eq!(result_name_in_template(Some(2)), "failure");
        assert_eq!(result_name_in_template(Some(-1)), "cancelled");
        assert_eq!(result_name_in_template(None), "");
        assert_eq!(result_name_in_template(Some(9)), "");
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn status_detected_follows_buildbot() {
        let m = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            status_detected(&m(&["failing"]), Some(2), Some(0)),
            "failed build"
        );
        assert_eq!(
            status_detected(&m(&["problem"]), Some(2), Some(0)),
            "new failure"
        );
        assert_eq!(
            status_detected(&m(&["change"]), Some(2), Some(2)),
            "failed build"
        );
        assert_eq!(
            status_detected(&m(&["change"]), Some(0), Some(2)),
            "restored build"
        );
        assert_eq!(
            status_detected(&m(&["passing"]), Some(0), Some(2)),
            "passing build"
        );
        assert_eq!(
            status_detected(&m(&[]), Some(1), None),
            "problem in the build"
        );
        assert_eq!(status_detected(&m(&[]), Some(4), None), "build exception");
        assert_eq!(status_detected(&m(&[]), Some(6), None), "cancelled build");
    }
}
