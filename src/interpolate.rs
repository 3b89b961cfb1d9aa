//! Buildbot's `Interpolate` for option values: `%(prop:name)s`, `%(kw:name)s`,
//! `%(secret:name)s`, `%(src:codebase:attr)s` (an attribute of the build's source stamp for
//! that codebase; an empty codebase is the default one: `%(src::revision)s`), and the bare
//! `%(name)s` of Buildbot's `%`-format subjects (a `kw`).
//!
//! After the key, an operator may choose what is rendered (Buildbot's forms):
//!
//! | form | renders |
//! |---|---|
//! | `%(prop:p)s` | the value, or nothing when absent |
//! | `%(prop:p:-text)s` | the value if present (even if false or empty), else `text` |
//! | `%(prop:p:~text)s` | the value if present and truthy, else `text` |
//! | `%(prop:p:+text)s` | `text` if present, else nothing |
//! | `%(prop:p:?\|yes\|no)s` | `yes` if present, else `no` (any delimiter but `(`) |
//! | `%(prop:p:#?\|yes\|no)s` | `yes` if truthy, else `no` |
//!
//! The texts are templates themselves (they nest: `%(prop:a:-%(prop:b)s)s`); `%%` is `%`.
//! Templates are parsed once, at config time ([`Template::parse`]): a malformed one, an unknown
//! selector, a `kw` the option does not offer or a `secret` the config does not define is a
//! config error naming it. Values that are not strings render as JSON (`true`, `["a","b"]`);
//! `null` renders as nothing.

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Lookup {
        selector: Selector,
        key: String,
        op: Op,
    },
}

/// Where a key is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// A build property.
    Prop,
    /// A value the option offers (`builder`, `result`, …).
    Kw,
    /// A `[secrets]` entry.
    Secret,
    /// A source stamp's attribute; the key is `codebase:attr`.
    Src,
}

/// The source stamp attributes `%(src:codebase:attr)s` may name (Buildbot's).
pub const SRC_ATTRS: [&str; 6] = [
    "repository",
    "branch",
    "revision",
    "project",
    "codebase",
    "ssid",
];

#[derive(Debug, Clone, PartialEq)]
enum Op {
    /// No operator: the value, or nothing.
    Plain,
    Default(Template),
    DefaultUnlessFalse(Template),
    Replace(Template),
    Ternary(Template, Template),
    TernaryTruthy(Template, Template),
}

/// What a template is rendered against.
pub trait Lookup {
    /// The value of `key` under `selector`, or `None` when absent.
    fn lookup(&self, selector: Selector, key: &str) -> Option<Value>;
}

/// Why a template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// What the option offers, checked at parse time.
pub struct Allowed<'a> {
    /// The `kw` names (and bare `%(name)s` names).
    pub kw: &'a [&'a str],
    /// The `[secrets]` names.
    pub secrets: &'a [&'a str],
}

impl Template {
    /// Parses `text`, checking every key against `allowed`.
    pub fn parse(text: &str, allowed: &Allowed<'_>) -> Result<Template, TemplateError> {
        let chars: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let t = parse_until(&chars, &mut pos, false, None, allowed)?;
        if pos != chars.len() {
            return Err(TemplateError(format!(
                "unexpected {:?} at character {pos} of {text:?}",
                chars[pos]
            )));
        }
        Ok(t)
    }

    /// A template that is only text.
    pub fn literal(text: &str) -> Template {
        Template(vec![Piece::Text(text.to_owned())])
    }

    /// Renders against `ctx`.
    pub fn render(&self, ctx: &dyn Lookup) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Lookup { selector, key, op } => {
                    let v = ctx.lookup(*selector, key);
                    let present = v.is_some();
                    let truthy = v.as_ref().is_some_and(truthy);
                    match op {
                        Op::Plain => out.push_str(&show(v.as_ref())),
                        Op::Default(t) if present => out.push_str(&show(v.as_ref())),
                        Op::Default(t) => out.push_str(&t.render(ctx)),
                        Op::DefaultUnlessFalse(_) if truthy => out.push_str(&show(v.as_ref())),
                        Op::DefaultUnlessFalse(t) => out.push_str(&t.render(ctx)),
                        Op::Replace(t) if present => out.push_str(&t.render(ctx)),
                        Op::Replace(_) => {}
                        Op::Ternary(a, b) => out.push_str(&if present { a } else { b }.render(ctx)),
                        Op::TernaryTruthy(a, b) => {
                            out.push_str(&if truthy { a } else { b }.render(ctx))
                        }
                    }
                }
            }
        }
        out
    }
}

/// Python's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Parses pieces to the end (top level), or, inside a lookup (`nested`), up to the `)` that
/// closes it or to `delim` (a ternary's delimiter). Literal parentheses inside a lookup must
/// balance, as in Buildbot.
fn parse_until(
    chars: &[char],
    pos: &mut usize,
    nested: bool,
    delim: Option<char>,
    allowed: &Allowed<'_>,
) -> Result<Template, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut depth = 0usize;
    while *pos < chars.len() {
        let c = chars[*pos];
        if nested && depth == 0 && (c == ')' || Some(c) == delim) {
            break;
        }
        if c == '%' {
            match chars.get(*pos + 1) {
                Some('%') => {
                    text.push('%');
                    *pos += 2;
                    continue;
                }
                Some('(') => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    *pos += 2;
                    pieces.push(parse_lookup(chars, pos, allowed)?);
                    continue;
                }
                _ => {
                    return Err(TemplateError(format!(
                        "a lone % at character {pos}: write %% for a percent sign",
                        pos = *pos
                    )));
                }
            }
        }
        if nested && c == '(' {
            depth += 1;
        } else if nested && c == ')' {
            depth -= 1;
        }
        text.push(c);
        *pos += 1;
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(Template(pieces))
}

/// Reads up to (not including) a `:` or `)`.
fn word(chars: &[char], pos: &mut usize) -> String {
    let mut w = String::new();
    while *pos < chars.len() && chars[*pos] != ':' && chars[*pos] != ')' {
        w.push(chars[*pos]);
        *pos += 1;
    }
    w
}

/// Parses `selector:key[:op])s` (or a bare `key)s`) after `%(`.
fn parse_lookup(
    chars: &[char],
    pos: &mut usize,
    allowed: &Allowed<'_>,
) -> Result<Piece, TemplateError> {
    let start = pos.saturating_sub(2);
    let first = word(chars, pos);
    let (selector, key) = if chars.get(*pos) == Some(&':') {
        *pos += 1;
        let selector = match first.as_str() {
            "prop" => Selector::Prop,
            "kw" => Selector::Kw,
            "secret" => Selector::Secret,
            "src" => Selector::Src,
            s => {
                return Err(TemplateError(format!(
                    "unknown selector {s:?} in %({s}:…): use prop, kw, secret or src"
                )));
            }
        };
        let key = word(chars, pos);
        if selector == Selector::Src {
            // `codebase:attr`; the codebase may be empty.
            if chars.get(*pos) != Some(&':') {
                return Err(TemplateError(format!(
                    "%(src:{key}…) needs a codebase and an attribute: %(src:codebase:attr)s or %(src::attr)s"
                )));
            }
            *pos += 1;
            let attr = word(chars, pos);
            if !SRC_ATTRS.contains(&attr.as_str()) {
                return Err(TemplateError(format!(
                    "unknown source stamp attribute {attr:?}; use {}",
                    SRC_ATTRS.join(", ")
                )));
            }
            (selector, format!("{key}:{attr}"))
        } else {
            (selector, key)
        }
    } else {
        (Selector::Kw, first)
    };
    if key.is_empty() {
        return Err(TemplateError(format!("an empty key at character {start}")));
    }
    match selector {
        Selector::Kw if !allowed.kw.contains(&key.as_str()) => {
            return Err(TemplateError(format!(
                "unknown key {key:?}; this option offers {}",
                if allowed.kw.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.kw.join(", ")
                }
            )));
        }
        Selector::Secret if !allowed.secrets.contains(&key.as_str()) => {
            return Err(TemplateError(format!(
                "secret {key:?} is not defined in [secrets]"
            )));
        }
        Selector::Prop
            if !key
                .chars()
                .all(|c| c.is_alphanumeric() || "._-".contains(c)) =>
        {
            return Err(TemplateError(format!("{key:?} is not a property name")));
        }
        _ => {}
    }
    let op = if chars.get(*pos) == Some(&':') {
        *pos += 1;
        parse_op(chars, pos, allowed)?
    } else {
        Op::Plain
    };
    if chars.get(*pos) != Some(&')') {
        return Err(TemplateError(format!(
            "unclosed %(…) starting at character {start}"
        )));
    }
    *pos += 1;
    if chars.get(*pos) != Some(&'s') {
        return Err(TemplateError(format!(
            "%(…{key}…) at character {start} must end with )s (the conversion is missing)"
        )));
    }
    *pos += 1;
    Ok(Piece::Lookup { selector, key, op })
}

fn parse_op(chars: &[char], pos: &mut usize, allowed: &Allowed<'_>) -> Result<Op, TemplateError> {
    let sub = |pos: &mut usize| parse_until(chars, pos, true, None, allowed);
    match chars.get(*pos) {
        Some('-') => {
            *pos += 1;
            Ok(Op::Default(sub(pos)?))
        }
        Some('~') => {
            *pos += 1;
            Ok(Op::DefaultUnlessFalse(sub(pos)?))
        }
        Some('+') => {
            *pos += 1;
            Ok(Op::Replace(sub(pos)?))
        }
        Some('?') => {
            *pos += 1;
            let (a, b) = ternary(chars, pos, allowed)?;
            Ok(Op::Ternary(a, b))
        }
        Some('#') if chars.get(*pos + 1) == Some(&'?') => {
            *pos += 2;
            let (a, b) = ternary(chars, pos, allowed)?;
            Ok(Op::TernaryTruthy(a, b))
        }
        other => Err(TemplateError(format!(
            "unknown operator {:?}: use :-, :~, :+, :? or :#?",
            other.map(|c| c.to_string()).unwrap_or_default()
        ))),
    }
}

/// `|yes|no` with any delimiter but `(`.
fn ternary(
    chars: &[char],
    pos: &mut usize,
    allowed: &Allowed<'_>,
) -> Result<(Template, Template), TemplateError> {
    let Some(&delim) = chars.get(*pos) else {
        return Err(TemplateError("a :? operator needs |yes|no".into()));
    };
    if delim == '(' || delim == ')' {
        return Err(TemplateError(
            "a :? operator's delimiter cannot be ( or )".into(),
        ));
    }
    *pos += 1;
    let yes = parse_until(chars, pos, true, Some(delim), allowed)?;
    if chars.get(*pos) != Some(&delim) {
        return Err(TemplateError(format!(
            "a :? operator needs {delim}yes{delim}no"
        )));
    }
    *pos += 1;
    let no = parse_until(chars, pos, true, Some(delim), allowed)?;
    Ok((yes, no))
}

/// Build properties (`{name: [value, source]}` as Buildbot sends them) and `kw` values, for
/// [`Template::render`].
pub struct Context<'a> {
    pub properties: Option<&'a crate::event::Properties>,
    pub kw: &'a [(&'a str, String)],
    pub secrets: &'a dyn Fn(&str) -> Option<String>,
    /// The build's source stamps, for `%(src:…)s`.
    pub sourcestamps: &'a [crate::event::SourceStamp],
}

/// `attr` of the source stamp of `codebase` (`""`: the default codebase, which is also what a
/// single source stamp without a codebase is).
pub fn source_stamp_attr(
    stamps: &[crate::event::SourceStamp],
    codebase: &str,
    attr: &str,
) -> Option<Value> {
    let ss = stamps
        .iter()
        .find(|s| s.codebase.as_deref().unwrap_or("") == codebase)?;
    let text = |v: &Option<String>| v.clone().map(Value::String);
    match attr {
        "repository" => text(&ss.repository),
        "branch" => text(&ss.branch),
        "revision" => text(&ss.revision),
        "project" => text(&ss.project),
        "codebase" => Some(Value::String(codebase.to_owned())),
        "ssid" => ss.ssid.map(Value::from),
        _ => None,
    }
}

impl Lookup for Context<'_> {
    fn lookup(&self, selector: Selector, key: &str) -> Option<Value> {
        match selector {
            Selector::Prop => self
                .properties
                .and_then(|p| p.get(key))
                .map(|p| p.0.clone()),
            Selector::Kw => self
                .kw
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| Value::String(v.clone())),
            Selector::Secret => (self.secrets)(key).map(Value::String),
            Selector::Src => {
                let (codebase, attr) = key.split_once(':')?;
                source_stamp_attr(self.sourcestamps, codebase, attr)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Map(HashMap<(u8, String), Value>);

    impl Lookup for Map {
        fn lookup(&self, selector: Selector, key: &str) -> Option<Value> {
            let s = match selector {
                Selector::Prop => 0,
                Selector::Kw => 1,
                Selector::Secret => 2,
                Selector::Src => 3,
            };
            self.0.get(&(s, key.to_owned())).cloned()
        }
    }

    const ALLOWED: Allowed<'static> = Allowed {
        kw: &["builder", "result"],
        secrets: &["token"],
    };

    fn render(t: &str) -> String {
        let ctx = Map(HashMap::from([
            ((0, "branch".into()), json!("main")),
            ((0, "empty".into()), json!("")),
            ((0, "none".into()), Value::Null),
            ((0, "flag".into()), json!(false)),
            ((0, "list".into()), json!(["a", "b"])),
            ((1, "builder".into()), json!("runtests")),
            ((2, "token".into()), json!("s3cret")),
            ((3, ":revision".into()), json!("abc123")),
            ((3, "lib:branch".into()), json!("dev")),
        ]));
        Template::parse(t, &ALLOWED)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .render(&ctx)
    }

    #[test]
    fn source_stamps_by_codebase() {
        assert_eq!(render("%(src::revision)s"), "abc123");
        assert_eq!(render("%(src:lib:branch)s"), "dev");
        assert_eq!(render("%(src:lib:revision:-HEAD)s"), "HEAD");
        for bad in ["%(src:revision)s", "%(src::colour)s"] {
            assert!(Template::parse(bad, &ALLOWED).is_err(), "{bad}");
        }
        let stamps: Vec<crate::event::SourceStamp> = serde_json::from_value(json!([
            {"codebase": "", "revision": "r1", "branch": "main", "ssid": 7},
            {"codebase": "lib", "revision": "r2", "repository": "https://x/lib.git"}
        ]))
        .unwrap();
        let ctx = Context {
            properties: None,
            kw: &[],
            secrets: &|_| None,
            sourcestamps: &stamps,
        };
        let t = |s: &str| Template::parse(s, &ALLOWED).unwrap().render(&ctx);
        assert_eq!(
            t("%(src::revision)s@%(src::branch)s#%(src::ssid)s"),
            "r1@main#7"
        );
        assert_eq!(
            t("%(src:lib:repository)s %(src:lib:revision)s"),
            "https://x/lib.git r2"
        );
        assert_eq!(t("[%(src:nope:revision)s]"), "[]");
    }

    #[test]
    fn renders_buildbot_forms() {
        assert_eq!(render("on %(prop:branch)s"), "on main");
        assert_eq!(render("[%(prop:missing)s]"), "[]");
        assert_eq!(render("[%(prop:none)s]"), "[]");
        assert_eq!(render("%(prop:list)s"), r#"["a","b"]"#);
        assert_eq!(render("%(prop:missing:-dflt)s"), "dflt");
        assert_eq!(render("[%(prop:empty:-dflt)s]"), "[]");
        assert_eq!(render("%(prop:empty:~dflt)s"), "dflt");
        assert_eq!(render("%(prop:flag:~no)s"), "no");
        assert_eq!(render("%(prop:branch:+has)s|%(prop:missing:+has)s"), "has|");
        assert_eq!(render("%(prop:branch:?|yes|no)s"), "yes");
        assert_eq!(render("%(prop:missing:?|yes|no)s"), "no");
        assert_eq!(render("%(prop:flag:#?/yes/no)s"), "no");
        assert_eq!(render("%(prop:missing:-%(prop:branch)s)s"), "main");
        assert_eq!(
            render("%(prop:missing:-%(kw:builder)s on %(prop:branch)s)s"),
            "runtests on main"
        );
        assert_eq!(
            render("Buildbot %(result)s on %(builder)s"),
            "Buildbot  on runtests"
        );
        assert_eq!(render("100%% %(secret:token)s"), "100% s3cret");
        assert_eq!(render("(plain) text)"), "(plain) text)");
        assert_eq!(render("%(prop:missing:-(none))s"), "(none)");
    }

    #[test]
    fn refuses_what_buildbot_would_not_render() {
        for (t, why) in [
            ("%(prop:x)", "must end with )s"),
            ("%(prop:x", "unclosed"),
            ("%(source::revision)s", "unknown selector \"source\""),
            ("%(src::colour)s", "unknown source stamp attribute"),
            ("%(kw:nope)s", "unknown key \"nope\""),
            ("%(projectName)s", "unknown key \"projectName\""),
            ("%(secret:other)s", "not defined in [secrets]"),
            ("%(prop:x:!y)s", "unknown operator"),
            ("50% off", "lone %"),
            ("%(prop:x:?|yes)s", "needs |yes|no"),
        ] {
            let e = Template::parse(t, &ALLOWED).unwrap_err().to_string();
            assert!(e.contains(why), "{t}: {e}");
        }
    }
}
