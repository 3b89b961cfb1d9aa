//! `force build [--codebase=] [--branch=] [--revision=] [--project=] [--props=k=v,…] <builder>
//! <reason>`: asks the followed master (`[source.buildbot]`) to build, through the JSON-RPC
//! `force` method of a force scheduler that serves the builder. Branch, revision and
//! properties are checked with Buildbot's default validation before anything is sent.

use super::data::{self, builder};
use super::{Cx, Failure, split_args};
use serde_json::{Map, Value, json};

pub const DOC: &str = "force a build";
pub const USAGE: &str = "force build [--codebase=CODEBASE] [--branch=branch] [--revision=revision] [--props=prop1=val1,prop2=val2...] _which_ _reason_ - Force a build";

/// Buildbot's `c['validation']` defaults.
fn branch_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || "_.+/~-".contains(c))
}
fn revision_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || " _.-/".contains(c))
}
fn property_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || "_.-/~:".contains(c))
}

/// The parsed command line.
#[derive(Debug, Default, PartialEq)]
pub struct ForceOptions {
    pub builder: Option<String>,
    pub reason: Option<String>,
    pub codebase: Option<String>,
    pub branch: Option<String>,
    pub revision: Option<String>,
    pub project: Option<String>,
    pub props: Vec<(String, String)>,
}

/// Parses `build …` (after `force`).
pub fn parse(args: &str) -> Result<ForceOptions, Failure> {
    let usage = || Failure::Usage(format!("Try '{USAGE}'"));
    let mut args = split_args(args)?.into_iter();
    if args.next().as_deref() != Some("build") {
        return Err(usage());
    }
    let mut o = ForceOptions::default();
    let mut positional = Vec::new();
    let mut props = None;
    while let Some(a) = args.next() {
        let Some(option) = a.strip_prefix("--") else {
            positional.push(a);
            continue;
        };
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => (
                option.to_owned(),
                args.next()
                    .ok_or_else(|| Failure::Usage(format!("option --{option} needs a value")))?,
            ),
        };
        let slot = match name.as_str() {
            "builder" => &mut o.builder,
            "reason" => &mut o.reason,
            "codebase" => &mut o.codebase,
            "branch" => &mut o.branch,
            "revision" => &mut o.revision,
            "project" => &mut o.project,
            "props" | "properties" => &mut props,
            _ => return Err(Failure::Usage(format!("option --{name} not recognized"))),
        };
        *slot = Some(value);
    }
    let mut positional = positional.into_iter();
    if let Some(b) = positional.next() {
        if o.builder.is_some() {
            return Err(Failure::Usage("--builder provided in two ways".into()));
        }
        o.builder = Some(b);
    }
    let rest: Vec<String> = positional.collect();
    if !rest.is_empty() {
        if o.reason.is_some() {
            return Err(Failure::Usage("--reason provided in two ways".into()));
        }
        o.reason = Some(rest.join(" "));
    }
    if o.builder.is_none() {
        return Err(Failure::Usage(format!(
            "you must provide a Builder, Try '{USAGE}'"
        )));
    }
    if let Some(p) = props {
        for pair in p.split(',') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            o.props.push((k.to_owned(), v.to_owned()));
        }
    }
    Ok(o)
}

/// Why these options cannot be sent (Buildbot's replies), if they cannot.
pub fn invalid(o: &ForceOptions) -> Option<String> {
    if let Some(b) = &o.branch
        && !branch_ok(b)
    {
        return Some(format!("Sorry, bad branch '{b}'"));
    }
    if let Some(r) = &o.revision
        && !revision_ok(r)
    {
        return Some(format!("Sorry, bad revision '{r}'"));
    }
    for (k, v) in &o.props {
        if k.is_empty() || !property_ok(k) || !property_ok(v) {
            return Some(format!("Sorry, bad property name='{k}', value='{v}'"));
        }
    }
    for (what, v) in [("codebase", &o.codebase), ("project", &o.project)] {
        if let Some(v) = v
            && !branch_ok(v)
        {
            return Some(format!("Sorry, bad {what} '{v}'"));
        }
    }
    None
}

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let o = parse(args)?;
    if let Some(why) = invalid(&o) {
        cx.reply(&crate::reporters::irc::text::clean(&why));
        return Ok(());
    }
    let api = data::master(cx.bot, "forcing builds")?;
    let name = o.builder.clone().unwrap_or_default();
    let b = builder(cx.bot, &name).await?;
    let schedulers = api
        .list("forceschedulers", "forceschedulers")
        .await
        .map_err(anyhow::Error::from)?;
    let scheduler = schedulers.iter().find_map(|s| {
        let serves = s
            .get("builder_names")
            .and_then(Value::as_array)
            .is_some_and(|n| n.iter().any(|x| x.as_str() == Some(name.as_str())));
        serves
            .then(|| s.get("name").and_then(Value::as_str))
            .flatten()
    });
    let Some(scheduler) = scheduler else {
        cx.reply(&format!(
            "I can't: no force scheduler of the master builds `{}`",
            crate::reporters::irc::text::clean(&name)
        ));
        return Ok(());
    };
    // A codebase's fields are named `<codebase>_branch` and so on, the default one's plainly.
    let prefix = o
        .codebase
        .as_deref()
        .filter(|c| !c.is_empty())
        .map_or(String::new(), |c| format!("{c}_"));
    let mut params = Map::new();
    params.insert("builderid".into(), json!(b.builderid));
    params.insert("owner".into(), json!(cx.user()));
    params.insert(
        "reason".into(),
        json!(format!(
            "forced: by {}: {}",
            cx.user(),
            o.reason.as_deref().unwrap_or("")
        )),
    );
    for (field, v) in [
        ("branch", &o.branch),
        ("revision", &o.revision),
        ("project", &o.project),
    ] {
        if let Some(v) = v {
            params.insert(format!("{prefix}{field}"), json!(v));
        }
    }
    for (k, v) in &o.props {
        params.insert(k.clone(), json!(v));
    }
    match api
        .control(
            &format!("forceschedulers/{scheduler}"),
            "force",
            Value::Object(params),
        )
        .await
    {
        Ok(_) => cx.reply("Force build successfully requested."),
        Err(crate::buildbot_api::ApiError::Refused { message, .. }) => {
            cx.reply(&format!("I can't: {message}"))
        }
        Err(e) => return Err(Failure::Broken(e.into())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_buildbots() {
        let o = match parse("build --branch=dev --props=a=1,b=x/y runtests fix the thing") {
            Ok(o) => o,
            Err(_) => panic!("parse"),
        };
        assert_eq!(o.builder.as_deref(), Some("runtests"));
        assert_eq!(o.reason.as_deref(), Some("fix the thing"));
        assert_eq!(o.branch.as_deref(), Some("dev"));
        assert_eq!(
            o.props,
            [("a".into(), "1".into()), ("b".into(), "x/y".into())]
        );
        assert_eq!(invalid(&o), None);
        assert!(
            matches!(parse("build"), Err(Failure::Usage(u)) if u.starts_with("you must provide a Builder"))
        );
        assert!(matches!(parse("nonsense"), Err(Failure::Usage(_))));
        let bad = parse("build --branch=x;rm b r").ok().unwrap();
        assert_eq!(invalid(&bad).as_deref(), Some("Sorry, bad branch 'x;rm'"));
        let bad = parse("build --revision=$(id) b r").ok().unwrap();
        assert_eq!(
            invalid(&bad).as_deref(),
            Some("Sorry, bad revision '$(id)'")
        );
        let bad = parse("build --props=x=`id` b r").ok().unwrap();
        assert_eq!(
            invalid(&bad).as_deref(),
            Some("Sorry, bad property name='x', value='`id`'")
        );
    }
}
