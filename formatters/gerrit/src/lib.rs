//! `gerrit`: the Gerrit callbacks of the seed configuration, in one module (the WASI command
//! in `main.rs`); the host uses [`default_review`] and [`summary`] as Buildbot's built-in
//! `defaultReviewCB` and `defaultSummaryCB`.
//!
//! - `reviewCB`: `Verified` +1 for SUCCESS, −1 otherwise, with a message naming the builder
//!   and the result (and the build URL when `arg` is truthy); RETRY gets no review.
//! - `startCB`: a message with the builder and the build URL.
//! - `summaryCB`: one line per build, `Builder <name> <resultText> (<text>) - <url>`, joined
//!   by blank lines; `Verified` +1 only when every build succeeded.
//!
//! These behave like the callbacks in Buildbot's documented example configuration, so a
//! master.cfg that used them gets the same reviews.

use tidings_guest::serde_json::Value;
use tidings_guest::{Results, Review, ReviewArgs, StartArgs, StartMessage, SummaryArgs};

/// Buildbot's `defaultReviewCB`: nothing for a retried build; otherwise the builder and the
/// result, `Verified` +1 for a success and −1 for anything else.
pub fn default_review(args: &ReviewArgs) -> Option<Review> {
    let result = args.result.and_then(Results::from_code);
    if result == Some(Results::Retry) {
        return None;
    }
    let message = format!(
        "Buildbot finished compiling your patchset\non configuration: {}\nThe result is: {}\n",
        args.builder_name,
        Results::text_for(args.result).to_uppercase()
    );
    let verified = if result == Some(Results::Success) {
        1
    } else {
        -1
    };
    Some(Review::new(message, "Verified", verified))
}

/// `reviewCB`: [`default_review`], with the build URL when `arg` is truthy.
pub fn review(args: ReviewArgs) -> Result<Option<Review>, String> {
    let Some(mut r) = default_review(&args) else {
        return Ok(None);
    };
    if truthy(&args.arg)
        && let Some(url) = &args.build.url
        && let Some(m) = &mut r.message
    {
        m.push_str(&format!("\nFor more details visit:\n{url}\n"));
    }
    Ok(Some(r))
}

/// `startCB`: the builder and the build URL.
pub fn start(args: StartArgs) -> Result<Option<StartMessage>, String> {
    let mut message = format!(
        "Buildbot started compiling your patchset\non configuration: {}\n",
        args.builder_name
    );
    if let Some(url) = &args.build.url {
        message.push_str(&format!("See your build here: {url}"));
    }
    Ok(Some(StartMessage {
        message,
        labels: Default::default(),
    }))
}

/// `summaryCB`, Buildbot's `defaultSummaryCB`: a line per build (`Builder <name> <resultText>
/// (<text>) - <url>`), blank lines between; `Verified` +1 only when every build succeeded.
pub fn summary(args: SummaryArgs) -> Result<Option<Review>, String> {
    if args.build_info_list.is_empty() {
        return Ok(None);
    }
    let lines: Vec<String> = args
        .build_info_list
        .iter()
        .map(|b| {
            let head = format!("Builder {} {} ({})", b.name, b.result_text, b.text);
            match &b.url {
                Some(url) if !url.is_empty() => format!("{head} - {url}"),
                _ => format!("{head}."),
            }
        })
        .collect();
    let all_ok = args
        .build_info_list
        .iter()
        .all(|b| b.result == Some(Results::Success.code()));
    let verified = if all_ok { 1 } else { -1 };
    Ok(Some(Review::new(lines.join("\n\n"), "Verified", verified)))
}

/// Python's truthiness of a JSON value, as Buildbot's callbacks test `arg`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_guest::{Build, BuildInfo};

    fn build(results: Option<i64>) -> Build {
        Build {
            results,
            url: Some("http://ci/#/builders/1/builds/7".into()),
            ..Default::default()
        }
    }

    #[test]
    fn retry_gets_no_review() {
        let args = ReviewArgs {
            builder_name: "b".into(),
            build: build(Some(5)),
            result: Some(5),
            ..Default::default()
        };
        assert_eq!(review(args).unwrap(), None);
    }

    #[test]
    fn verified_follows_the_result() {
        for (code, verified) in [(0, 1), (1, -1), (2, -1), (4, -1), (6, -1)] {
            let args = ReviewArgs {
                builder_name: "b".into(),
                build: build(Some(code)),
                result: Some(code),
                ..Default::default()
            };
            assert_eq!(review(args).unwrap().unwrap().labels["Verified"], verified);
        }
    }

    #[test]
    fn summary_is_positive_only_when_all_succeeded() {
        let info = |name: &str, code| BuildInfo {
            name: name.into(),
            result: Some(code),
            result_text: BuildInfo::result_text_for(Some(code)),
            text: "t".into(),
            url: None,
            build: build(Some(code)),
        };
        let ok = SummaryArgs {
            build_info_list: vec![info("a", 0), info("b", 0)],
            ..Default::default()
        };
        let r = summary(ok).unwrap().unwrap();
        assert_eq!(r.labels["Verified"], 1);
        assert_eq!(
            r.message.unwrap(),
            "Builder a succeeded (t).\n\nBuilder b succeeded (t)."
        );
        let mixed = SummaryArgs {
            build_info_list: vec![info("a", 0), info("b", 2)],
            ..Default::default()
        };
        assert_eq!(summary(mixed).unwrap().unwrap().labels["Verified"], -1);
    }
}
