//! `list [all|N] builders|workers|changes`: the builders (online ones, or `all`), the workers,
//! or the N most recent changes (10 by default, 100 with `all`).

use super::data::{self, builders};
use super::{Cx, Failure, split_args};
use serde_json::Value;

pub const DOC: &str = "list configured builders or workers";
pub const USAGE: &str = "list [all|N] builders|workers|changes - list configured builders, workers, or N recent changes";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let mut args = split_args(args)?;
    let mut all = false;
    let mut num = 10usize;
    if let Some(first) = args.first() {
        if let Ok(n) = first.parse::<usize>() {
            num = n;
            args.remove(0);
        } else if first == "all" {
            all = true;
            args.remove(0);
        }
    }
    let usage = || Failure::Usage("Try 'list [all|N] builders|workers|changes'.".into());
    match args.first().map(String::as_str) {
        Some("builders") => {
            let mut response = vec!["I found the following builders:".to_owned()];
            for b in builders(cx.bot).await? {
                // Without a master to ask, every builder the store knows counts as online.
                if b.online != Some(false) {
                    response.push(b.name);
                } else if all {
                    response.push(b.name);
                    response.push("[offline]".into());
                }
            }
            cx.reply(&response.join(" "));
        }
        Some("workers") => {
            let api = data::master(cx.bot, "listing workers")?;
            let mut response = vec!["I found the following workers:".to_owned()];
            for w in api
                .list("workers", "workers")
                .await
                .map_err(anyhow::Error::from)?
            {
                let name = w
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                let non_empty = |k: &str| {
                    w.get(k)
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
                };
                if non_empty("configured_on") {
                    response.push(name);
                    if !non_empty("connected_to") {
                        response.push("[disconnected]".into());
                    }
                } else if all {
                    response.push(name);
                    response.push("[offline]".into());
                }
            }
            cx.reply(&response.join(" "));
        }
        Some("changes") => {
            let api = data::master(cx.bot, "listing changes")?;
            if all {
                cx.reply(
                    "Do you really want me to list all changes? It can be thousands!\n\
                     If you want to be flooded, specify the maximum number of changes to show.\n\
                     Right now, I will show up to 100 recent changes.",
                );
                num = 100;
            }
            let changes = api
                .list(&format!("changes?order=-changeid&limit={num}"), "changes")
                .await
                .map_err(anyhow::Error::from)?;
            let mut response = vec!["I found the following recent changes:".to_owned()];
            for c in changes.iter().rev() {
                let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let comment = s("comments").lines().next().unwrap_or("").to_owned();
                let date = c
                    .get("when_timestamp")
                    .and_then(Value::as_i64)
                    .map_or_else(String::new, utc_minutes);
                response.push(format!(
                    "{comment})\nAuthor: {}\nDate: {date}\nRepository: {}\nBranch: {}\nRevision: {}\n",
                    s("author"),
                    s("repository"),
                    s("branch"),
                    s("revision")
                ));
            }
            cx.reply(&response.join("\n\n"));
        }
        _ => return Err(usage()),
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
fn utc_minutes(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let text = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {}", &text[..10], &text[11..16])
}
