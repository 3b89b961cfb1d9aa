//! `status [builder|all]`: what a builder is doing (idle, offline, or its running builds).

use super::data::{self, BuilderInfo, builder, builders};
use super::{Cx, Failure, split_args};
use crate::reporters::irc::notify::{describe, describe_short};
use crate::reporters::irc::text::clean;

pub const DOC: &str = "list status of a builder (or all builders)";
pub const USAGE: &str = "status [_which_] - list status of a builder (or all builders)";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let args = split_args(args)?;
    let which = match args.as_slice() {
        [] => "",
        [one] => one.as_str(),
        _ => return Err(Failure::Usage("Try 'status _builder_'.".into())),
    };
    let mut response = Vec::new();
    match which {
        "" | "all" => {
            for b in builders(cx.bot).await? {
                if which == "all" || b.online != Some(false) {
                    response.push(status(cx, &b, true).await?);
                }
            }
        }
        name => {
            let b = builder(cx.bot, name).await?;
            response.push(status(cx, &b, false).await?);
        }
    }
    if !response.is_empty() {
        cx.reply(&response.join("\n"));
    }
    Ok(())
}

/// One builder's line (Buildbot's `getBuildStatus`).
async fn status(cx: &Cx<'_>, b: &BuilderInfo, short: bool) -> anyhow::Result<String> {
    let colours = cx.bot.settings.use_colors;
    let mut response = format!("`{}`: ", clean(&b.name));
    let running = data::running(cx.bot, b).await?;
    if running.is_empty() {
        if b.online == Some(false) {
            response.push_str("offline");
            return Ok(response);
        }
        response.push_str("idle");
        if let Some(last) = data::last_completed(cx.bot, b).await? {
            let status = if short {
                describe_short(last.results, colours)
            } else {
                let mut s = format!(", {}", describe(last.results, colours));
                if last.results != Some(0)
                    && let Some(text) = &last.state_string
                {
                    s.push_str(": ");
                    s.push_str(&clean(text));
                }
                s
            };
            response.push_str(&format!("  last build {} ago{status}", data::ago(&last)));
        }
        return Ok(response);
    }
    response.push_str("running:");
    let info: Vec<String> = running
        .iter()
        .map(|r| {
            let step = r
                .state_string
                .as_deref()
                .map_or("(no current step)".to_owned(), |s| {
                    format!("({})", clean(s))
                });
            format!(
                "build [#{}]({}) {step}",
                r.number.unwrap_or_default(),
                clean(r.url.as_deref().unwrap_or(""))
            )
        })
        .collect();
    response.push(' ');
    response.push_str(&info.join(", "));
    Ok(response)
}
