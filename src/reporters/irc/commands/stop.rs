//! `stop build <builder> <reason>`: stops every running build of the builder, through the
//! followed master's JSON-RPC `stop` method.

use super::data::{self, builder};
use super::{Cx, Failure, split_args};
use crate::reporters::irc::text::clean;
use serde_json::json;

pub const DOC: &str = "stop a running build";
pub const USAGE: &str = "stop build _which_ _reason_ - Stop a running build";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let args = split_args(args)?;
    if args.len() < 3 || args[0] != "build" {
        return Err(Failure::Usage("Try 'stop build _which_ _reason_'.".into()));
    }
    let which = &args[1];
    let reason = format!("stopped: by {}: {}", cx.user(), args[2..].join(" "));
    let api = data::master(cx.bot, "stopping builds")?;
    let b = builder(cx.bot, which).await?;
    let running = data::running(cx.bot, &b).await?;
    if running.is_empty() {
        cx.reply("Sorry, no build is currently running.");
        return Ok(());
    }
    for r in running {
        let Some(id) = r.buildid else { continue };
        match api
            .control(&format!("builds/{id}"), "stop", json!({ "reason": reason }))
            .await
        {
            Ok(_) => {}
            Err(crate::buildbot_api::ApiError::Refused { message, .. }) => {
                cx.reply(&format!("I can't: {message}"));
                continue;
            }
            Err(e) => return Err(Failure::Broken(e.into())),
        }
        let texts = cx.bot.texts();
        let revs = crate::reporters::irc::notify::revisions(&r);
        if texts.use_revisions && !revs.is_empty() {
            cx.reply(&format!(
                "Build containing revision(s) {} interrupted",
                revs.join(",")
            ));
        } else {
            cx.reply(&format!(
                "Build [#{}]({}) of `{}` interrupted.",
                r.number.unwrap_or_default(),
                clean(r.url.as_deref().unwrap_or("")),
                clean(which)
            ));
        }
    }
    Ok(())
}
