//! ABI v1 on the host side: the request written to a guest's stdin, and the check of what it
//! wrote to stdout. The types are `tidings-guest`'s, so guest and host cannot disagree; the
//! JSON Schemas in `guest-sdk/schema/` describe the same shapes for other languages (a test
//! checks that the schemas and these types accept and refuse the same documents).

use super::FormatterError;
use crate::event::{Build, Results};
use serde::Serialize;
use serde_json::Value;
use tidings_guest::abi::{
    BuildInfo, Hook, Master, Message, MessageArgs, MissingWorkerArgs, ReporterInfo, Review,
    ReviewArgs, StartArgs, StartMessage, SummaryArgs, WorkerInfo,
};
use tidings_guest::text;

/// One hook call's arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Message(Box<MessageArgs>),
    Review(Box<ReviewArgs>),
    Start(Box<StartArgs>),
    Summary(Box<SummaryArgs>),
    MissingWorker(Box<MissingWorkerArgs>),
}

/// What the host knows besides the build when it wraps a bare build dict into a request.
#[derive(Debug, Clone, PartialEq)]
pub struct WrapContext {
    /// The reporter's mode words.
    pub mode: Vec<String>,
    pub reporter: ReporterInfo,
    pub master: Master,
    /// `arg` for the Gerrit hooks.
    pub arg: Value,
}

impl Default for WrapContext {
    /// What `tidings render` and `tidings test` use: Buildbot's default mode and title.
    fn default() -> WrapContext {
        WrapContext {
            mode: ["failing", "passing", "warnings"]
                .map(String::from)
                .to_vec(),
            reporter: ReporterInfo {
                name: "cli".into(),
                kind: "cli".into(),
            },
            master: Master {
                title: "Buildbot".into(),
                buildbot_url: String::new(),
            },
            arg: Value::Null,
        }
    }
}

/// Why a request could not be built from the given JSON.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

impl Request {
    /// The hook this request is for.
    pub fn hook(&self) -> Hook {
        match self {
            Request::Message(_) => Hook::MessageFormatter,
            Request::Review(_) => Hook::ReviewCb,
            Request::Start(_) => Hook::StartCb,
            Request::Summary(_) => Hook::SummaryCb,
            Request::MissingWorker(_) => Hook::MessageFormatterMissingWorker,
        }
    }

    /// The bytes for the guest's stdin: `{"abi":1,"hook":"…",…arguments}`. `abi` and `hook`
    /// come first, always in this form, so guests can recognise them without parsing it all;
    /// `build` comes after the other arguments, so a guest can leave it undecoded until it is
    /// read (the Python SDK does).
    pub fn to_stdin(&self) -> Vec<u8> {
        let args = match self {
            Request::Message(a) => to_json(a),
            Request::Review(a) => to_json(a),
            Request::Start(a) => to_json(a),
            Request::Summary(a) => to_json(a),
            Request::MissingWorker(a) => to_json(a),
        };
        let mut out = Vec::with_capacity(args.len() + 48);
        out.extend_from_slice(br#"{"abi":1,"hook":""#);
        out.extend_from_slice(self.hook().name().as_bytes());
        out.push(b'"');
        // `args` is a JSON object: splice its members after ours.
        if args.len() > 2 {
            out.push(b',');
            out.extend_from_slice(&args[1..]);
        } else {
            out.push(b'}');
        }
        out
    }

    /// Wraps a bare build dict into `hook`'s arguments, filling in what the host derives from
    /// it: the builder name, result code and text, build URL, blamelist (`owner`/`owners`
    /// properties), `prev_build` when the dict has one, and for `messageFormatter` what
    /// Buildbot's template context has (`status_detected`, `summary`, `result_name`,
    /// `previous_results`, `projects`, `sourcestamps`, `workername`, `buildbot_url`;
    /// `is_buildset` is set by the caller).
    pub fn from_build(hook: Hook, build: Build, ctx: &WrapContext) -> Request {
        let name = build.builder_name().unwrap_or_default().to_owned();
        let url = build.url.clone().unwrap_or_default();
        match hook {
            Hook::MessageFormatter => {
                let mut master = ctx.master.clone();
                if master.buildbot_url.is_empty() {
                    master.buildbot_url = url.split("#/").next().unwrap_or_default().to_owned();
                }
                let prev_build = build
                    .extra
                    .get("prev_build")
                    .and_then(|v| serde_json::from_value::<Build>(v.clone()).ok());
                let previous_results = prev_build.as_ref().and_then(|p| p.results);
                Request::Message(Box::new(MessageArgs {
                    status_detected: text::status_detected(
                        &ctx.mode,
                        build.results,
                        previous_results,
                    ),
                    summary: text::summary(build.results, build.state_string.as_deref()),
                    result_name: Results::text_for(build.results),
                    previous_results,
                    projects: text::projects(&build, &master.title),
                    sourcestamps: text::sourcestamps(&build),
                    is_buildset: false,
                    workername: text::workername(&build),
                    buildbot_url: master.buildbot_url.clone(),
                    mode: ctx.mode.clone(),
                    name,
                    results: build.results,
                    results_text: Results::text_for(build.results),
                    reporter: ctx.reporter.clone(),
                    master,
                    build_url: url,
                    // What the dict itself says of the blamelist; dispatch adds change authors.
                    users: {
                        let mut u = build.owners();
                        u.sort();
                        u.dedup();
                        u
                    },
                    changes: Vec::new(),
                    // Log contents a build dict carries stay in its steps; `logs` is for logs a
                    // reporter fetched besides (`add_logs`), so nothing is sent twice.
                    logs: Vec::new(),
                    prev_build,
                    build,
                    extra: Default::default(),
                }))
            }
            Hook::ReviewCb => Request::Review(Box::new(ReviewArgs {
                builder_name: name,
                result: build.results,
                build,
                arg: ctx.arg.clone(),
                extra: Default::default(),
            })),
            Hook::StartCb => Request::Start(Box::new(StartArgs {
                builder_name: name,
                build,
                arg: ctx.arg.clone(),
                extra: Default::default(),
            })),
            Hook::SummaryCb => {
                let results = build.results;
                Request::summary(vec![build], results, ctx.arg.clone())
            }
            // A build names its worker; the rest of the worker is unknown here (`tidings
            // render` and `check` with a build dict).
            Hook::MessageFormatterMissingWorker => Request::missing_worker(
                WorkerInfo {
                    name: text::workername(&build),
                    ..WorkerInfo::default()
                },
                ctx,
            ),
        }
    }

    /// `messageFormatterMissingWorker`'s arguments for `worker`.
    pub fn missing_worker(worker: WorkerInfo, ctx: &WrapContext) -> Request {
        Request::MissingWorker(Box::new(MissingWorkerArgs {
            worker,
            reporter: ctx.reporter.clone(),
            master: ctx.master.clone(),
            buildbot_title: ctx.master.title.clone(),
            buildbot_url: ctx.master.buildbot_url.clone(),
            extra: Default::default(),
        }))
    }

    /// `summaryCB`'s arguments for a completed buildset: `builds` (in the order given; dispatch
    /// sorts them by builder name, as Buildbot does), the buildset's result as a name
    /// (`"failure"`), and `arg`.
    pub fn summary(builds: Vec<Build>, buildset_results: Option<i64>, arg: Value) -> Request {
        Request::Summary(Box::new(SummaryArgs {
            build_info_list: builds
                .into_iter()
                .map(|build| BuildInfo {
                    name: build.builder_name().unwrap_or_default().to_owned(),
                    result: build.results,
                    result_text: BuildInfo::result_text_for(build.results),
                    text: build.state_string.clone().unwrap_or_default(),
                    url: build.url.clone(),
                    build,
                })
                .collect(),
            results: Results::text_for(buildset_results),
            arg,
            extra: Default::default(),
        }))
    }

    /// Reads a request from JSON that is either a full request (`{"abi": 1, "hook": …}`) or a
    /// bare build dict (wrapped with [`Request::from_build`] for `hook`, default
    /// `messageFormatter`). A full request's hook must agree with `hook` when both are given.
    pub fn parse(
        json: &[u8],
        hook: Option<Hook>,
        ctx: &WrapContext,
    ) -> Result<Request, RequestError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| RequestError(format!("the input is not JSON: {e}")))?;
        let Value::Object(mut obj) = value else {
            return Err(RequestError("the input is not a JSON object".into()));
        };
        let Some(abi) = obj.remove("abi") else {
            let build: Build = serde_json::from_value(Value::Object(obj))
                .map_err(|e| RequestError(format!("the input is not a build dict: {e}")))?;
            return Ok(Request::from_build(
                hook.unwrap_or(Hook::MessageFormatter),
                build,
                ctx,
            ));
        };
        if abi != 1 {
            return Err(RequestError(format!(
                "the request has abi {abi}; this host speaks 1"
            )));
        }
        let named = match obj.remove("hook") {
            Some(Value::String(s)) => s.parse::<Hook>().map_err(|e| RequestError(e.to_string()))?,
            _ => return Err(RequestError("the request has no \"hook\" string".into())),
        };
        if let Some(h) = hook
            && h != named
        {
            return Err(RequestError(format!("the request is for {named}, not {h}")));
        }
        let args = Value::Object(obj);
        let bad = |e: serde_json::Error| RequestError(format!("bad {named} arguments: {e}"));
        Ok(match named {
            Hook::MessageFormatter => Request::Message(serde_json::from_value(args).map_err(bad)?),
            Hook::ReviewCb => Request::Review(serde_json::from_value(args).map_err(bad)?),
            Hook::StartCb => Request::Start(serde_json::from_value(args).map_err(bad)?),
            Hook::SummaryCb => Request::Summary(serde_json::from_value(args).map_err(bad)?),
            Hook::MessageFormatterMissingWorker => {
                Request::MissingWorker(serde_json::from_value(args).map_err(bad)?)
            }
        })
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own types into a Vec cannot fail: no maps with non-string keys.
    serde_json::to_vec(v).expect("hook arguments serialise")
}

/// A hook's result, checked. `None` everywhere means "send nothing".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HookOutput {
    Message(Option<Message>),
    Review(Option<Review>),
    Start(Option<StartMessage>),
}

impl HookOutput {
    /// The result as JSON, as the guest meant it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("hook results serialise")
    }
}

/// Checks a guest's stdout against `hook`'s result schema: exactly one JSON value (surrounding
/// whitespace allowed), of the hook's shape, with no unknown fields.
pub fn parse_output(hook: Hook, stdout: &[u8]) -> Result<HookOutput, FormatterError> {
    let text = std::str::from_utf8(stdout)
        .map_err(|e| FormatterError::bad_output(format!("stdout is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(FormatterError::bad_output(
            "stdout is empty; a formatter must print its result, or null to send nothing",
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        FormatterError::bad_output(format!("stdout is not JSON ({e}): {}", snippet(text)))
    })?;
    let problems = shape_problems(hook, &value);
    if let Some((first, _)) = problems.first() {
        let said: Vec<&str> = problems.iter().map(|(_, p)| p.as_str()).collect();
        return Err(FormatterError::bad_output(format!(
            "stdout is not a {hook} result: {}; at: {}",
            said.join("; "),
            snippet_at(text, first)
        )));
    }
    let shape = |e: serde_json::Error| {
        FormatterError::bad_output(format!(
            "stdout is not a {hook} result ({e}): {}",
            snippet(text)
        ))
    };
    match hook {
        Hook::MessageFormatter | Hook::MessageFormatterMissingWorker => {
            let msg: Option<Message> = serde_json::from_value(value).map_err(shape)?;
            Ok(HookOutput::Message(msg))
        }
        Hook::ReviewCb | Hook::SummaryCb => {
            let review: Option<Review> = serde_json::from_value(value).map_err(shape)?;
            Ok(HookOutput::Review(review.filter(|r| !r.is_empty())))
        }
        Hook::StartCb => {
            let start: Option<StartMessage> = serde_json::from_value(value).map_err(shape)?;
            Ok(HookOutput::Start(start))
        }
    }
}

/// What a JSON value is, as a problem names it: `a string`, `an array`, …
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Every field of a hook's result that does not have the shape the hook's output schema says,
/// as (the key to point the excerpt at, `path: expected …, got …`). Empty when the shape is
/// right (`null`, "send nothing", always is).
fn shape_problems(hook: Hook, value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(obj) = value.as_object() else {
        if !value.is_null() {
            out.push((
                String::new(),
                format!(
                    "the result: expected an object (or null to send nothing), got {}",
                    kind_of(value)
                ),
            ));
        }
        return out;
    };
    let mut bad = |key: &str, path: String, said: String| {
        out.push((format!("\"{key}\""), format!("{path}: {said}")));
    };
    let string_or_null = |v: Option<&Value>| v.is_none_or(|v| v.is_string() || v.is_null());
    match hook {
        Hook::MessageFormatter | Hook::MessageFormatterMissingWorker => {
            let kind = match obj.get("type") {
                None => {
                    bad(
                        "type",
                        "type".into(),
                        "missing (\"plain\", \"html\" or \"json\")".into(),
                    );
                    None
                }
                Some(Value::String(t)) if ["plain", "html", "json"].contains(&t.as_str()) => {
                    Some(t.as_str())
                }
                Some(Value::String(t)) => {
                    bad(
                        "type",
                        "type".into(),
                        format!("expected \"plain\", \"html\" or \"json\", got {t:?}"),
                    );
                    None
                }
                Some(v) => {
                    bad(
                        "type",
                        "type".into(),
                        format!("expected a string, got {}", kind_of(v)),
                    );
                    None
                }
            };
            match obj.get("body") {
                None => bad("body", "body".into(), "missing".into()),
                Some(Value::String(_)) => {}
                Some(v) if kind != Some("json") => bad(
                    "body",
                    "body".into(),
                    format!(
                        "expected a string, got {} (only type \"json\" takes any JSON)",
                        kind_of(v)
                    ),
                ),
                Some(_) => {}
            }
            if !string_or_null(obj.get("subject")) {
                let v = &obj["subject"];
                bad(
                    "subject",
                    "subject".into(),
                    format!("expected a string, got {}", kind_of(v)),
                );
            }
        }
        Hook::ReviewCb | Hook::SummaryCb => {
            if !string_or_null(obj.get("message")) {
                let v = &obj["message"];
                bad(
                    "message",
                    "message".into(),
                    format!("expected a string, got {}", kind_of(v)),
                );
            }
            label_problems(obj, &mut bad);
        }
        Hook::StartCb => {
            match obj.get("message") {
                None => bad("message", "message".into(), "missing".into()),
                Some(Value::String(_)) => {}
                Some(v) => bad(
                    "message",
                    "message".into(),
                    format!("expected a string, got {}", kind_of(v)),
                ),
            }
            label_problems(obj, &mut bad);
        }
    }
    out
}

/// The problems of a result's `labels` (an object of label name to integer), said to `bad`.
fn label_problems(obj: &serde_json::Map<String, Value>, bad: &mut dyn FnMut(&str, String, String)) {
    match obj.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, v) in map {
                if !(v.is_i64() || v.is_u64()) {
                    bad(
                        "labels",
                        format!("labels.{name}"),
                        format!("expected an integer, got {}", kind_of(v)),
                    );
                }
            }
        }
        Some(v) => bad(
            "labels",
            "labels".into(),
            format!(
                "expected an object of label name to integer, got {}",
                kind_of(v)
            ),
        ),
    }
}

/// The excerpt of `text` around the first occurrence of `needle` (its start when absent).
fn snippet_at(text: &str, needle: &str) -> String {
    let t = text.trim();
    let at = if needle.is_empty() {
        None
    } else {
        t.find(needle)
    };
    match at {
        // From a little before the key (on a character boundary), or from the start when
        // the key is near it.
        Some(i) if i > 40 => {
            let start = t[..i].char_indices().rev().nth(19).map_or(0, |(j, _)| j);
            format!("…{}", snippet(&t[start..]))
        }
        Some(_) => snippet(t),
        None => snippet(t),
    }
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}
