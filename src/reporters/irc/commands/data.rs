//! What the commands know about builders, workers and builds: tidings' own store (the builds it
//! has seen) and, when `[source.buildbot]` is configured, the master's REST API (builders and
//! workers it has not reported yet, running builds as the master sees them).

use super::Failure;
use crate::event::Build;
use crate::reporters::irc::bot::IrcBot;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A builder the bot knows.
#[derive(Debug, Clone)]
pub struct BuilderInfo {
    pub name: String,
    pub builderid: Option<i64>,
    /// The master key the store files its builds under (when the store has seen one).
    pub master: Option<String>,
    /// Whether a connected worker serves it (known only from the master).
    pub online: Option<bool>,
}

fn api(bot: &IrcBot) -> Option<crate::buildbot_api::BuildbotApi> {
    bot.api.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The builder ids served by a connected worker, from the master's `workers`.
async fn online_builders(api: &crate::buildbot_api::BuildbotApi) -> anyhow::Result<BTreeSet<i64>> {
    let mut out = BTreeSet::new();
    for w in api.list("workers", "workers").await? {
        let connected = w
            .get("connected_to")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if !connected {
            continue;
        }
        for b in w
            .get("configured_on")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = b.get("builderid").and_then(Value::as_i64) {
                out.insert(id);
            }
        }
    }
    Ok(out)
}

/// Every builder: those the store has builds of, and the master's.
pub async fn builders(bot: &IrcBot) -> anyhow::Result<Vec<BuilderInfo>> {
    let mut by_name: BTreeMap<String, BuilderInfo> = BTreeMap::new();
    if let Some(store) = bot.store() {
        for r in store.latest_builds()? {
            let Ok(b) = serde_json::from_str::<Build>(&r.body) else {
                continue;
            };
            let Some(name) = b.builder_name() else {
                continue;
            };
            by_name.entry(name.to_owned()).or_insert(BuilderInfo {
                name: name.to_owned(),
                builderid: Some(r.builderid),
                master: Some(r.master.clone()),
                online: None,
            });
        }
    }
    if let Some(api) = api(bot) {
        let online = online_builders(&api).await?;
        for b in api.list("builders", "builders").await? {
            let (Some(name), Some(id)) = (
                b.get("name").and_then(Value::as_str),
                b.get("builderid").and_then(Value::as_i64),
            ) else {
                continue;
            };
            let e = by_name.entry(name.to_owned()).or_insert(BuilderInfo {
                name: name.to_owned(),
                builderid: Some(id),
                master: None,
                online: None,
            });
            e.builderid = Some(id);
            e.online = Some(online.contains(&id));
        }
    }
    Ok(by_name.into_values().collect())
}

/// The builder called `name`, or Buildbot's usage error.
pub async fn builder(bot: &IrcBot, name: &str) -> Result<BuilderInfo, Failure> {
    builders(bot)
        .await?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| Failure::Usage(format!("no such builder '{name}'")))
}

/// A build from the master's API, with its URL (the API's build dicts carry none).
async fn from_api(api: &crate::buildbot_api::BuildbotApi, v: Value, name: &str) -> Option<Build> {
    let mut b: Build = serde_json::from_value(v).ok()?;
    if b.url.is_none()
        && let (Some(id), Some(n)) = (b.builderid, b.number)
    {
        let root = api
            .buildbot_url()
            .await
            .unwrap_or_else(|_| api.base().to_owned());
        b.url = Some(format!("{root}#/builders/{id}/builds/{n}"));
    }
    if b.builder.is_none() {
        b.builder = serde_json::from_value(serde_json::json!({ "name": name })).ok();
    }
    Some(b)
}

/// The builder's builds, newest first: `complete` or running.
async fn builds(
    bot: &IrcBot,
    b: &BuilderInfo,
    complete: bool,
    limit: usize,
) -> anyhow::Result<Vec<Build>> {
    if let (Some(api), Some(id)) = (api(bot), b.builderid) {
        let path = format!("builds?builderid={id}&complete={complete}&order=-number&limit={limit}");
        let mut out = Vec::new();
        for v in api.list(&path, "builds").await? {
            if let Some(b) = from_api(&api, v, &b.name).await {
                out.push(b);
            }
        }
        return Ok(out);
    }
    let (Some(store), Some(master), Some(id)) = (bot.store(), &b.master, b.builderid) else {
        return Ok(Vec::new());
    };
    Ok(store
        .builds_of(master, id, 50)?
        .into_iter()
        .filter(|r| r.complete == complete)
        .filter_map(|r| serde_json::from_str::<Build>(&r.body).ok())
        .take(limit)
        .collect())
}

/// The builder's running builds, oldest first.
pub async fn running(bot: &IrcBot, b: &BuilderInfo) -> anyhow::Result<Vec<Build>> {
    let mut out = builds(bot, b, false, 20).await?;
    out.reverse();
    Ok(out)
}

/// The builder's last finished build.
pub async fn last_completed(bot: &IrcBot, b: &BuilderInfo) -> anyhow::Result<Option<Build>> {
    Ok(builds(bot, b, true, 1).await?.into_iter().next())
}

/// The master's API, or the reply that it is not configured.
pub fn master(bot: &IrcBot, what: &str) -> Result<crate::buildbot_api::BuildbotApi, Failure> {
    api(bot).ok_or_else(|| {
        Failure::Usage(format!(
            "Sorry, {what} is not configured: tidings follows no Buildbot master ([source.buildbot])."
        ))
    })
}

/// Buildbot's `fuzzyInterval`.
pub fn fuzzy_interval(seconds: i64) -> String {
    let round = |x: f64| x.round_ties_even() as i64;
    if seconds <= 1 {
        return "a moment".into();
    }
    if seconds < 20 {
        return format!("{seconds} seconds");
    }
    if seconds < 55 {
        return format!("{} seconds", round(seconds as f64 / 10.0) * 10);
    }
    let minutes = round(seconds as f64 / 60.0);
    if minutes == 1 {
        return "a minute".into();
    }
    if minutes < 20 {
        return format!("{minutes} minutes");
    }
    if minutes < 55 {
        return format!("{} minutes", round(minutes as f64 / 10.0) * 10);
    }
    let hours = round(minutes as f64 / 60.0);
    if hours == 1 {
        return "an hour".into();
    }
    if hours < 24 {
        return format!("{hours} hours");
    }
    let days = (hours + 6) / 24;
    if days == 1 {
        return "a day".into();
    }
    if days < 30 {
        return format!("{days} days");
    }
    let months = ((days as f64 + 10.0) / 30.5) as i64;
    if months == 1 {
        return "a month".into();
    }
    if months < 12 {
        return format!("{months} months");
    }
    let years = round(days as f64 / 365.25);
    if years == 1 {
        "a year".into()
    } else {
        format!("{years} years")
    }
}

/// How long ago the build finished, as `last` and `status` say it.
pub fn ago(b: &Build) -> String {
    match b.complete_at.as_ref().and_then(|n| n.as_f64()) {
        Some(at) => {
            let now = crate::clock::now_ms() as f64 / 1000.0;
            fuzzy_interval((now - at).max(0.0) as i64)
        }
        None => "??".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_buildbots() {
        let cases = [
            (1, "a moment"),
            (7, "7 seconds"),
            (34, "30 seconds"),
            (70, "a minute"),
            (600, "10 minutes"),
            (2000, "30 minutes"),
            (3600, "an hour"),
            (7 * 3600, "7 hours"),
            (30 * 3600, "a day"),
            (10 * 86400, "10 days"),
            (40 * 86400, "a month"),
            (400 * 86400, "a year"),
        ];
        for (s, text) in cases {
            assert_eq!(fuzzy_interval(s), text, "{s}");
        }
    }
}
