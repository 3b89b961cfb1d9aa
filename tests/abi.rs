//! ABI v1: the JSON Schemas in guest-sdk/schema/ and the host's typed checks agree, on real
//! samples and on documents that must be refused; and a guest sees exactly the argv,
//! environment and clock the ABI promises.

mod support;

use jsonschema::Validator;
use serde_json::{Value, json};
use tidings::event::Build;
use tidings::formatter::abi::parse_output;
use tidings::formatter::{Grants, Limits, Request, WrapContext};
use tidings_guest::Hook;

use support::{SCHEMA_BASE as BASE, load_schema, validator};

fn assert_valid(v: &Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}");
}

fn all_case_files(suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for f in support::FORMATTERS {
        let dir = support::repo().join("formatters").join(f).join("tests");
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(suffix) {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 20, "too few case files: {}", files.len());
    files
}

#[test]
fn every_schema_is_a_valid_2020_12_schema() {
    for e in std::fs::read_dir(support::repo().join("guest-sdk/schema")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        let schema = load_schema(&name);
        assert!(jsonschema::meta::is_valid(&schema), "{name}");
        assert_eq!(schema["$id"], format!("{BASE}{name}"), "{name}");
        validator(&name);
    }
}

#[test]
fn the_samples_are_builds_for_both_schema_and_types() {
    let v = validator("build.schema.json");
    for e in std::fs::read_dir(support::repo().join("tests/data/buildbot")).unwrap() {
        let p = e.unwrap().path();
        let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_valid(&v, &doc, &p.display().to_string());
        let typed: Build = serde_json::from_value(doc.clone()).unwrap();
        // Nothing is lost on the way through the types.
        let mut back = serde_json::to_value(&typed).unwrap();
        strip_nulls_absent_from(&doc, &mut back);
        assert_eq!(back, doc, "{}", p.display());
    }
}

/// Removes from `out` the keys that are null there and absent from `orig` (the types write
/// `complete_at`/`results` as null even when a dict omits them).
fn strip_nulls_absent_from(orig: &Value, out: &mut Value) {
    match (orig, out) {
        (Value::Object(o), Value::Object(b)) => {
            b.retain(|k, v| !v.is_null() || o.contains_key(k));
            for (k, v) in b.iter_mut() {
                if let Some(ov) = o.get(k) {
                    strip_nulls_absent_from(ov, v);
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            for (ov, v) in o.iter().zip(b.iter_mut()) {
                strip_nulls_absent_from(ov, v);
            }
        }
        _ => {}
    }
}

#[test]
fn requests_the_host_writes_match_the_input_schemas() {
    for e in std::fs::read_dir(support::repo().join("tests/data/buildbot")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        for hook in Hook::ALL {
            let req = Request::parse(&bytes, Some(hook), &WrapContext::default()).unwrap();
            let stdin: Value = serde_json::from_slice(&req.to_stdin()).unwrap();
            assert_eq!(stdin["abi"], 1);
            assert_eq!(stdin["hook"], hook.name());
            assert_valid(
                &validator(&format!("{hook}.input.schema.json")),
                &stdin,
                hook.name(),
            );
            // And the request reads back as the same request.
            let again =
                Request::parse(&req.to_stdin(), Some(hook), &WrapContext::default()).unwrap();
            assert_eq!(again, req);
        }
    }
}

#[test]
fn the_build_is_the_last_member_of_every_request_the_host_writes() {
    // The Python and JavaScript SDKs decode `build` only when the formatter reads it, which
    // relies on it coming last: after the other arguments, an argument this host does not
    // model included.
    let bytes = support::sample("failure-full.json");
    for hook in [Hook::MessageFormatter, Hook::ReviewCb, Hook::StartCb] {
        let req = Request::parse(&bytes, Some(hook), &WrapContext::default()).unwrap();
        let mut doc: Value = serde_json::from_slice(&req.to_stdin()).unwrap();
        doc["newer_argument"] = json!({"from": "a newer master"});
        let again = Request::parse(
            &serde_json::to_vec(&doc).unwrap(),
            Some(hook),
            &WrapContext::default(),
        )
        .unwrap();
        let stdin = again.to_stdin();
        let text = std::str::from_utf8(&stdin).unwrap();
        let at = text.find(r#","build":"#).expect("a build member");
        let head: Value = serde_json::from_str(&format!("{}}}", &text[..at])).unwrap();
        assert_eq!(head["newer_argument"]["from"], "a newer master", "{hook}");
        let build: Value = serde_json::from_str(&text[at + 9..text.len() - 1]).unwrap();
        assert_eq!(build, doc["build"], "{hook}");
    }
}

#[test]
fn every_case_input_and_expected_result_fits_its_schema() {
    for p in all_case_files(".input.json") {
        let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let hook = match doc.get("hook").and_then(Value::as_str) {
            Some(h) => h.to_owned(),
            None => {
                assert_valid(
                    &validator("build.schema.json"),
                    &doc,
                    &p.display().to_string(),
                );
                "messageFormatter".to_owned()
            }
        };
        if doc.get("abi").is_some() {
            assert_valid(
                &validator(&format!("{hook}.input.schema.json")),
                &doc,
                &p.display().to_string(),
            );
        }
        let expected_path = p.to_string_lossy().replace(".input.json", ".expected.json");
        let expected = std::fs::read(&expected_path).unwrap();
        let out: Value = serde_json::from_slice(&expected).unwrap();
        assert_valid(
            &validator(&format!("{hook}.output.schema.json")),
            &out,
            &expected_path,
        );
        parse_output(hook.parse().unwrap(), &expected)
            .unwrap_or_else(|e| panic!("{expected_path}: {e}"));
    }
}

#[test]
fn schemas_and_types_accept_and_refuse_the_same_results() {
    // (hook, document, accepted?)
    let cases = [
        (Hook::MessageFormatter, json!(null), true),
        (
            Hook::MessageFormatter,
            json!({"body": "x", "type": "plain"}),
            true,
        ),
        (
            Hook::MessageFormatter,
            json!({"body": "<p>x</p>", "type": "html", "subject": "s"}),
            true,
        ),
        (
            Hook::MessageFormatter,
            json!({"body": {"any": [1]}, "type": "json"}),
            true,
        ),
        (
            Hook::MessageFormatter,
            json!({"body": "x", "type": "plain", "subject": null}),
            true,
        ),
        (Hook::MessageFormatter, json!({"body": "x"}), false),
        (
            Hook::MessageFormatter,
            json!({"body": "x", "type": "markdown"}),
            false,
        ),
        (
            Hook::MessageFormatter,
            json!({"body": 42, "type": "plain"}),
            false,
        ),
        (
            Hook::MessageFormatter,
            json!({"body": "x", "type": "plain", "subjet": "typo"}),
            false,
        ),
        (
            Hook::MessageFormatter,
            json!({"body": "x", "type": "plain", "subject": 1}),
            false,
        ),
        (Hook::MessageFormatter, json!("STATUS"), false),
        (Hook::ReviewCb, json!(null), true),
        (Hook::ReviewCb, json!({}), true),
        (
            Hook::ReviewCb,
            json!({"message": "m", "labels": {"Verified": -1}}),
            true,
        ),
        (Hook::ReviewCb, json!({"labels": {"Code-Review": 2}}), true),
        (Hook::ReviewCb, json!({"message": null}), true),
        (
            Hook::ReviewCb,
            json!({"message": "m", "labels": {"Verified": "+1"}}),
            false,
        ),
        (
            Hook::ReviewCb,
            json!({"message": "m", "verified": 1}),
            false,
        ),
        (Hook::ReviewCb, json!(["m", 1]), false),
        (Hook::StartCb, json!(null), true),
        (Hook::StartCb, json!({"message": "started"}), true),
        (Hook::StartCb, json!({}), false),
        (Hook::StartCb, json!({"message": 3}), false),
        (
            Hook::SummaryCb,
            json!({"message": "m", "labels": {"Verified": 1}}),
            true,
        ),
        (
            Hook::SummaryCb,
            json!({"message": "m", "labels": {"Verified": 1.5}}),
            false,
        ),
    ];
    for (hook, doc, accepted) in cases {
        let by_schema = validator(&format!("{hook}.output.schema.json")).is_valid(&doc);
        let by_types = parse_output(hook, doc.to_string().as_bytes()).is_ok();
        assert_eq!(by_schema, accepted, "schema on {hook} {doc}");
        assert_eq!(by_types, accepted, "types on {hook} {doc}");
    }
}

#[test]
fn a_review_with_nothing_in_it_means_no_review() {
    let out = parse_output(Hook::ReviewCb, b"{}").unwrap();
    assert_eq!(out.to_json(), Value::Null);
}

/// Copies its argv and environment buffers, then the real-time clock's nanoseconds, to stdout.
const PROBE: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $asz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $aget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $esz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $eget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $out (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (drop (call $asz (i32.const 16) (i32.const 20)))
    (drop (call $aget (i32.const 1024) (i32.const 4096)))
    (call $out (i32.const 4096) (i32.load (i32.const 20)))
    (drop (call $esz (i32.const 16) (i32.const 20)))
    (drop (call $eget (i32.const 1024) (i32.const 8192)))
    (call $out (i32.const 8192) (i32.load (i32.const 20)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 12288)))
    (call $out (i32.const 12288) (i32.const 8))))"#;

#[test]
fn a_guest_sees_argv_env_and_a_fixed_clock_as_promised() {
    let grants = Grants {
        env: vec![("TEAM".into(), "infra".into())],
        dir: None,
    };
    let mut f = support::shared_host()
        .load_bytes("probe", &support::wat(PROBE), Limits::default(), grants)
        .unwrap();
    f.set_deterministic(true);
    let out = f.call_raw(Hook::ReviewCb, b"{}").unwrap().stdout;
    let (argv, rest) = out.split_at(b"probe\0reviewCB\0".len());
    assert_eq!(argv, b"probe\0reviewCB\0");
    let env = b"TIDINGS_ABI=1\0TIDINGS_HOOK=reviewCB\0TEAM=infra\0";
    let (seen_env, clock) = rest.split_at(env.len());
    assert_eq!(
        String::from_utf8_lossy(seen_env),
        String::from_utf8_lossy(env)
    );
    let nanos = u64::from_le_bytes(clock.try_into().unwrap());
    assert_eq!(nanos, 1_767_225_600 * 1_000_000_000, "2026-01-01T00:00:00Z");
}

#[test]
fn a_guests_stderr_is_logged_under_its_name() {
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let wasm = support::wat(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 100) "looking up template\nusing fallback\n")
          (data (i32.const 200) "null")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 35))
            (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
            (i32.store (i32.const 0) (i32.const 200)) (i32.store (i32.const 4) (i32.const 4))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    );
    let f = support::shared_host()
        .load_bytes("chatty", &wasm, Limits::default(), Grants::default())
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        f.call_raw(Hook::MessageFormatter, b"{}").unwrap();
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, said) in lines.iter().zip(["looking up template", "using fallback"]) {
        assert!(line.contains("tidings::formatter::stderr"), "{text}");
        assert!(line.contains(&format!(": {said} ")), "{text}");
        assert!(line.ends_with("formatter=chatty"), "{text}");
    }
}

/// The template-context fields the host computes for every guest language are Buildbot's own:
/// tests/data/template-context.json was made by Buildbot 4.3's `create_context_for_build`
/// (scripts/buildbot-template-context.py).
#[test]
fn the_template_context_fields_are_buildbots() {
    let table: Value =
        serde_json::from_str(&support::read("tests/data/template-context.json")).unwrap();
    let ctx = |mode: &Value| WrapContext {
        mode: serde_json::from_value(mode.clone()).unwrap(),
        master: tidings_guest::Master {
            title: table["title"].as_str().unwrap().into(),
            buildbot_url: table["buildbotURL"].as_str().unwrap().into(),
        },
        ..WrapContext::default()
    };
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 14);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut build: Value =
            serde_json::from_slice(&support::sample(case["sample"].as_str().unwrap())).unwrap();
        if !case["results"].is_null() {
            build["results"] = case["results"].clone();
        }
        if !case["sourcestamps"].is_null() {
            build["buildset"]["sourcestamps"] = case["sourcestamps"].clone();
        }
        if !case["prev_results"].is_null() {
            build["prev_build"] = json!({"results": case["prev_results"]});
        }
        let req = Request::parse(
            build.to_string().as_bytes(),
            Some(Hook::MessageFormatter),
            &ctx(&case["mode"]),
        )
        .unwrap();
        let Request::Message(mut args) = req else {
            panic!("{name}: not a message request")
        };
        // Dispatch says whether the build is reported in a buildset; the rest is computed.
        args.is_buildset = case["is_buildset"].as_bool().unwrap();
        let want = &case["expected"];
        let got = json!({
            "status_detected": args.status_detected,
            "summary": args.summary,
            "previous_results": args.previous_results,
            "projects": args.projects,
            "sourcestamps": args.sourcestamps,
            "is_buildset": args.is_buildset,
            "workername": args.workername,
            "buildbot_url": args.buildbot_url,
        });
        // Buildbot joins a set of projects in no fixed order; tidings sorts them.
        let set = |v: &Value| {
            let mut p: Vec<String> = v.as_str().unwrap().split(", ").map(String::from).collect();
            p.sort();
            p
        };
        assert_eq!(
            set(&got["projects"]),
            set(&want["projects"]),
            "{name}: projects"
        );
        let (mut got, mut want) = (got, want.clone());
        got["projects"] = Value::Null;
        want["projects"] = Value::Null;
        assert_eq!(got, want, "{name}");
        assert_eq!(
            args.result_name,
            tidings::event::Results::text_for(args.results),
            "{name}"
        );
    }
}

#[test]
fn a_bad_result_names_every_wrong_field_by_its_path() {
    use tidings::formatter::abi::parse_output;
    let reason = |hook: Hook, out: &str| match parse_output(hook, out.as_bytes()) {
        Err(tidings::formatter::FormatterError::BadOutput { reason }) => reason,
        other => panic!("expected BadOutput for {out}, got {other:?}"),
    };
    let r = reason(
        Hook::MessageFormatter,
        r#"{"body": "all green", "type": "text", "subject": ["a"]}"#,
    );
    assert_eq!(
        r,
        "stdout is not a messageFormatter result: type: expected \"plain\", \"html\" or \"json\", \
         got \"text\"; subject: expected a string, got an array; at: {\"body\": \"all green\", \
         \"type\": \"text\", \"subject\": [\"a\"]}"
    );
    // The excerpt starts near the first bad field, not at the start of a long result.
    let long = format!(
        r#"{{"body": "{}", "type": "plain", "subject": 7}}"#,
        "x".repeat(300)
    );
    let r = reason(Hook::MessageFormatter, &long);
    assert!(
        r.starts_with("stdout is not a messageFormatter result: subject: expected a string, got an integer; at: …"),
        "{r}"
    );
    assert!(r.contains("\"subject\": 7}"), "{r}");
    let r = reason(
        Hook::MessageFormatter,
        r#"{"type": "plain", "body": {"a": 1}}"#,
    );
    assert!(
        r.contains("body: expected a string, got an object (only type \"json\" takes any JSON)"),
        "{r}"
    );
    let r = reason(
        Hook::ReviewCb,
        r#"{"message": 1, "labels": {"Verified": "+1", "Code-Review": 2}}"#,
    );
    assert!(
        r.contains("message: expected a string, got an integer; labels.Verified: expected an integer, got a string"),
        "{r}"
    );
    let r = reason(Hook::StartCb, r#"{"labels": []}"#);
    assert!(
        r.contains(
            "message: missing; labels: expected an object of label name to integer, got an array"
        ),
        "{r}"
    );
    let r = reason(Hook::MessageFormatter, "[1]");
    assert!(
        r.contains("the result: expected an object (or null to send nothing), got an array"),
        "{r}"
    );
    // What is right still parses.
    assert!(parse_output(Hook::MessageFormatter, br#"{"type": "json", "body": [1]}"#).is_ok());
    assert!(parse_output(Hook::ReviewCb, br#"{"labels": {"Verified": -1}}"#).is_ok());
    assert!(parse_output(Hook::StartCb, b"null").is_ok());
}

#[test]
fn the_reference_page_says_what_the_schemas_say() {
    // guest-sdk/REFERENCE.md is generated from the schemas; a schema changed without running
    // the script (or a page edited by hand) fails here.
    let out = std::process::Command::new("python3")
        .arg(support::repo().join("scripts/reference.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
