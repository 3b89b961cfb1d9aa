//! Buildbot's data-API build dict, as HttpStatusPush sends it and as every hook receives it.
//!
//! The shapes follow the dicts a Buildbot 4.x master produces (see the samples captured from a
//! real master in the tidings repository). With the `unknown-fields` feature (the host has it on)
//! every struct keeps the fields it does not know in `extra`, so a newer master's additions reach
//! formatters untouched; without it (the default for guests, and much faster to decode) `extra`
//! stays empty: read such fields with a struct of your own. Timestamps are epoch
//! seconds; they are kept as JSON numbers (`serde_json::Number`) so an integer stays an integer
//! on the way through.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A build result, with Buildbot's integer codes (`buildbot.process.results`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Results {
    Success = 0,
    Warnings = 1,
    Failure = 2,
    Skipped = 3,
    Exception = 4,
    Retry = 5,
    Cancelled = 6,
}

impl Results {
    /// All results, in code order.
    pub const ALL: [Results; 7] = [
        Results::Success,
        Results::Warnings,
        Results::Failure,
        Results::Skipped,
        Results::Exception,
        Results::Retry,
        Results::Cancelled,
    ];

    /// The result for a Buildbot code, or `None` for codes Buildbot does not define (it uses
    /// `-1` for "not finished" in build requests and buildsets).
    pub fn from_code(code: i64) -> Option<Results> {
        Results::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// Buildbot's integer code.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// Buildbot's lower-case name: `success`, `warnings`, `failure`, `skipped`, `exception`,
    /// `retry`, `cancelled`.
    pub fn name(self) -> &'static str {
        match self {
            Results::Success => "success",
            Results::Warnings => "warnings",
            Results::Failure => "failure",
            Results::Skipped => "skipped",
            Results::Exception => "exception",
            Results::Retry => "retry",
            Results::Cancelled => "cancelled",
        }
    }

    /// The result named `name` (Buildbot's lower-case names).
    pub fn from_name(name: &str) -> Option<Results> {
        Results::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The text for an optional result code, as `results_text` carries it: the result's name,
    /// `"not finished"` for `None`, `"unknown result N"` for a code Buildbot does not define.
    pub fn text_for(code: Option<i64>) -> String {
        match code {
            None => "not finished".to_owned(),
            Some(c) => match Results::from_code(c) {
                Some(r) => r.name().to_owned(),
                None => format!("unknown result {c}"),
            },
        }
    }
}

impl fmt::Display for Results {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One build property: `[value, source]` on the wire, e.g. `["main", "Build"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Property(pub Value, pub String);

/// Build properties by name.
pub type Properties = BTreeMap<String, Property>;

/// A build, as in Buildbot's data API with the reporter additions (`builder`, `buildset`,
/// `buildrequest`, `url`, optional `steps` and `prev_build`).
///
/// Build-request reports (a build that has not started) have no `buildid`, `number` or
/// `state_string`; hence the options.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct Build {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builderid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildrequestid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workerid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masterid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Number>,
    #[serde(default)]
    pub complete_at: Option<Number>,
    #[serde(default)]
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_string: Option<String>,
    /// Buildbot's result code; `None` while the build runs.
    #[serde(default)]
    pub results: Option<i64>,
    #[serde(default)]
    pub properties: Properties,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<Builder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildset: Option<Buildset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildrequest: Option<BuildRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// Fields this version does not model (`locks_duration_s`, `parentbuild`, `prev_build`, …),
    /// passed through untouched; filled only with the `unknown-fields` feature.
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

impl Build {
    /// The value of property `name`, without its source.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name).map(|p| &p.0)
    }

    /// Property `name` when it is a string.
    pub fn property_str(&self, name: &str) -> Option<&str> {
        self.property(name).and_then(Value::as_str)
    }

    /// The result, if the build finished with a code Buildbot defines.
    pub fn result(&self) -> Option<Results> {
        self.results.and_then(Results::from_code)
    }

    /// The builder's name, from the `builder` dict or the `buildername` property.
    pub fn builder_name(&self) -> Option<&str> {
        self.builder
            .as_ref()
            .and_then(|b| b.name.as_deref())
            .or_else(|| self.property_str("buildername"))
    }

    /// Who owns the build: the `owner` property (a string, or a list) and the `owners` property
    /// (a list), in that order, empty names dropped. Part of Buildbot's blamelist.
    pub fn owners(&self) -> Vec<String> {
        let mut out = Vec::new();
        for name in ["owner", "owners"] {
            match self.property(name) {
                Some(Value::String(s)) => out.push(s.clone()),
                Some(Value::Array(list)) => {
                    out.extend(list.iter().filter_map(Value::as_str).map(String::from))
                }
                _ => {}
            }
        }
        out.retain(|u| !u.is_empty());
        out
    }

    /// The steps, or an empty slice when the reporter sent none.
    pub fn steps(&self) -> &[Step] {
        self.steps.as_deref().unwrap_or(&[])
    }
}

/// A builder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct Builder {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builderid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// A buildset, with its source stamps.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct Buildset {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub complete: bool,
    /// Buildbot sends `-1` or `null` while the buildset is incomplete.
    #[serde(default)]
    pub results: Option<i64>,
    #[serde(default)]
    pub sourcestamps: Vec<SourceStamp>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// A source stamp: what was built.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct SourceStamp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssid: Option<i64>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub codebase: Option<String>,
    #[serde(default)]
    pub patch: Option<Patch>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// A patch applied on top of a source stamp. Its `body` is bytes in Buildbot and arrives as
/// `null` through HttpStatusPush.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct Patch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patchid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// A build request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct BuildRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildrequestid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildsetid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builderid: Option<i64>,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub results: Option<i64>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// A build step, with its logs when the reporter asked for them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct Step {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stepid: Option<i64>,
    #[serde(default)]
    pub number: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub state_string: Option<String>,
    #[serde(default)]
    pub results: Option<i64>,
    #[serde(default)]
    pub logs: Vec<Log>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// A step's log. `content` is present when the reporter fetched log contents; for stdio logs
/// each line starts with a one-letter stream prefix (`h` header, `o` stdout, `e` stderr), as
/// Buildbot stores it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct Log {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logid: Option<i64>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stepname: Option<String>,
    /// `s` stdio, `t` text, `h` html, `d` deleted.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub log_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_lines: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<LogContent>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// The text of a log, from line `firstline` on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logid: Option<i64>,
    #[serde(default)]
    pub firstline: i64,
    #[serde(default)]
    pub content: String,
}

impl LogContent {
    /// The lines of a stdio log without their one-letter stream prefix. For other log types
    /// (`prefixed == false`) the lines as stored.
    pub fn lines(&self, prefixed: bool) -> impl Iterator<Item = &str> {
        self.content.lines().map(move |l| {
            if prefixed {
                // The prefix is one ASCII letter; a line without one is kept whole.
                match l.as_bytes().first() {
                    Some(b'h' | b'o' | b'e') => &l[1..],
                    _ => l,
                }
            } else {
                l
            }
        })
    }
}

/// A change (commit) that went into a build; from the Buildbot data API.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(not(feature = "unknown-fields"), derive(Deserialize))]
pub struct Change {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changeid: Option<i64>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub committer: Option<String>,
    #[serde(default)]
    pub comments: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub revlink: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_timestamp: Option<Number>,
    #[cfg_attr(feature = "unknown-fields", serde(flatten))]
    #[cfg_attr(not(feature = "unknown-fields"), serde(skip))]
    pub extra: Map<String, Value>,
}

/// Decodes a struct whose unknown fields go to its `extra` map (with `unknown-fields`) without
/// `#[serde(flatten)]`, which buffers every field of the object before decoding any (twice the
/// allocations: a fifth of the daemon's ingest). Every field is optional, as with
/// `#[serde(default)]`; a field given twice takes its last value.
#[cfg(feature = "unknown-fields")]
macro_rules! known_fields {
    ($ty:ident { $($key:literal => $field:ident),* $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a ", stringify!($ty), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        let mut out = $ty::default();
                        while let Some(key) = map.next_key::<FieldName<'de>>()? {
                            match key.as_str() {
                                $($key => out.$field = map.next_value()?,)*
                                _ => {
                                    out.extra.insert(key.into_owned(), map.next_value()?);
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

/// An object's key, borrowed from the input when it can be (no escapes in it).
#[cfg(feature = "unknown-fields")]
enum FieldName<'de> {
    Borrowed(&'de str),
    Owned(String),
}

#[cfg(feature = "unknown-fields")]
impl FieldName<'_> {
    fn as_str(&self) -> &str {
        match self {
            FieldName::Borrowed(s) => s,
            FieldName::Owned(s) => s,
        }
    }

    fn into_owned(self) -> String {
        match self {
            FieldName::Borrowed(s) => s.to_owned(),
            FieldName::Owned(s) => s,
        }
    }
}

#[cfg(feature = "unknown-fields")]
impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FieldName<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<FieldName<'de>, E> {
                Ok(FieldName::Borrowed(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<FieldName<'de>, E> {
                Ok(FieldName::Owned(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<FieldName<'de>, E> {
                Ok(FieldName::Owned(s))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(feature = "unknown-fields")]
known_fields!(Build { "buildid" => buildid, "number" => number, "builderid" => builderid, "buildrequestid" => buildrequestid, "workerid" => workerid, "masterid" => masterid, "started_at" => started_at, "complete_at" => complete_at, "complete" => complete, "state_string" => state_string, "results" => results, "properties" => properties, "builder" => builder, "buildset" => buildset, "buildrequest" => buildrequest, "url" => url, "steps" => steps });
#[cfg(feature = "unknown-fields")]
known_fields!(Builder { "builderid" => builderid, "name" => name, "tags" => tags, "description" => description });
#[cfg(feature = "unknown-fields")]
known_fields!(Buildset { "bsid" => bsid, "reason" => reason, "complete" => complete, "results" => results, "sourcestamps" => sourcestamps });
#[cfg(feature = "unknown-fields")]
known_fields!(SourceStamp { "ssid" => ssid, "branch" => branch, "revision" => revision, "project" => project, "repository" => repository, "codebase" => codebase, "patch" => patch });
#[cfg(feature = "unknown-fields")]
known_fields!(Patch { "patchid" => patchid, "level" => level, "subdir" => subdir, "author" => author, "comment" => comment, "body" => body });
#[cfg(feature = "unknown-fields")]
known_fields!(BuildRequest { "buildrequestid" => buildrequestid, "buildsetid" => buildsetid, "builderid" => builderid, "complete" => complete, "results" => results });
#[cfg(feature = "unknown-fields")]
known_fields!(Step { "stepid" => stepid, "number" => number, "name" => name, "complete" => complete, "state_string" => state_string, "results" => results, "logs" => logs });
#[cfg(feature = "unknown-fields")]
known_fields!(Log { "logid" => logid, "name" => name, "slug" => slug, "stepname" => stepname, "type" => log_type, "num_lines" => num_lines, "url" => url, "content" => content });
#[cfg(feature = "unknown-fields")]
known_fields!(Change { "changeid" => changeid, "author" => author, "committer" => committer, "comments" => comments, "revision" => revision, "branch" => branch, "revlink" => revlink, "files" => files, "when_timestamp" => when_timestamp });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_and_names_round_trip() {
        for r in Results::ALL {
            assert_eq!(Results::from_code(r.code()), Some(r));
            assert_eq!(Results::from_name(r.name()), Some(r));
        }
        assert_eq!(Results::from_code(-1), None);
        assert_eq!(Results::from_code(7), None);
        assert_eq!(Results::text_for(None), "not finished");
        assert_eq!(Results::text_for(Some(2)), "failure");
        assert_eq!(Results::text_for(Some(9)), "unknown result 9");
    }

    #[cfg(feature = "unknown-fields")]
    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = r#"{"buildid":1,"complete":false,"complete_at":null,"results":null,"properties":{"a":[1,"B"]},
            "locks_duration_s":0,"parentbuild":null,"new_thing":{"x":[1,2]}}"#;
        let b: Build = serde_json::from_str(raw).unwrap();
        assert_eq!(b.extra["new_thing"], serde_json::json!({"x":[1,2]}));
        let back: Value = serde_json::to_value(&b).unwrap();
        let orig: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(back, orig);
    }

    /// The host's decoder (`unknown-fields`): known fields typed at every level, the others
    /// kept as they came, keys with escapes read as their text, errors where they are.
    #[cfg(feature = "unknown-fields")]
    #[test]
    fn unknown_fields_are_kept_at_every_level_and_known_ones_typed() {
        let raw = r#"{"buildid":7,"steps":[{"number":1,"name":"compile","hidden":false,
            "logs":[{"name":"stdio","\u0074ype":"s","num_lines":3,"new":1}]}],
            "builder":{"name":"b","tags":["t"],"projectid":null},
            "buildset":{"bsid":2,"sourcestamps":[{"branch":"main","patch":null,"created_at":5}]},
            "caf\u00e9":"x","buildid":8}"#;
        let b: Build = serde_json::from_str(raw).unwrap();
        assert_eq!(
            b.buildid,
            Some(8),
            "a field given twice takes its last value"
        );
        let step = &b.steps()[0];
        assert_eq!((step.number, step.name.as_str()), (1, "compile"));
        assert_eq!(step.extra["hidden"], Value::Bool(false));
        let log = &step.logs[0];
        assert_eq!(
            (log.log_type.as_deref(), log.num_lines),
            (Some("s"), Some(3))
        );
        assert_eq!(log.extra.keys().collect::<Vec<_>>(), ["new"]);
        let builder = b.builder.as_ref().unwrap();
        assert_eq!(
            (builder.name.as_deref(), builder.tags.len()),
            (Some("b"), 1)
        );
        assert_eq!(builder.extra["projectid"], Value::Null);
        let ss = &b.buildset.as_ref().unwrap().sourcestamps[0];
        assert_eq!(
            (ss.branch.as_deref(), ss.patch.is_none()),
            (Some("main"), true)
        );
        assert_eq!(ss.extra["created_at"], 5);
        assert_eq!(b.extra["café"], "x");
        // Read back from what it writes, and from a `Value` (no borrowed keys there).
        let again: Build = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(again, b);
        let from_value: Build = serde_json::from_value(serde_json::to_value(&b).unwrap()).unwrap();
        assert_eq!(from_value, b);
        let err = serde_json::from_str::<Build>("{\n\"steps\": [{\"number\": \"one\"}]}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected i64") && err.contains("line 2"),
            "{err}"
        );
        let err = serde_json::from_str::<Build>("[1]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a Build object"), "{err}");
    }

    #[test]
    fn stdio_prefixes_are_stripped() {
        let c = LogContent {
            content: "hcmd\noout\neerr\n".into(),
            ..Default::default()
        };
        assert_eq!(c.lines(true).collect::<Vec<_>>(), ["cmd", "out", "err"]);
        assert_eq!(c.lines(false).collect::<Vec<_>>(), ["hcmd", "oout", "eerr"]);
    }
}
