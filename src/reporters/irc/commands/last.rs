//! `last [builder|all]`: each builder's last finished build.

use super::data::{self, builder, builders};
use super::{Cx, Failure, split_args};
use crate::reporters::irc::notify::describe;
use crate::reporters::irc::text::clean;

pub const DOC: &str = "list last build status for a builder";
pub const USAGE: &str = "last [_which_] - list last build status for builder _which_";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let args = split_args(args)?;
    let list = match args.as_slice() {
        [] => builders(cx.bot)
            .await?
            .into_iter()
            .filter(|b| b.online != Some(false))
            .collect(),
        [all] if all == "all" => builders(cx.bot).await?,
        [name] => vec![builder(cx.bot, name).await?],
        _ => return Err(Failure::Usage("Try 'last _builder_'.".into())),
    };
    let mut messages = Vec::new();
    for b in list {
        let status = match data::last_completed(cx.bot, &b).await? {
            None => "no builds run since last restart".to_owned(),
            Some(last) => {
                let mut s = format!(
                    "last build {} ({} ago)",
                    describe(last.results, cx.bot.settings.use_colors),
                    data::ago(&last)
                );
                if last.results != Some(0) {
                    s.push_str(": ");
                    s.push_str(&clean(last.state_string.as_deref().unwrap_or("")));
                }
                s
            }
        };
        messages.push(format!("`{}`: {status}", clean(&b.name)));
    }
    if !messages.is_empty() {
        cx.reply(&messages.join("\n"));
    }
    Ok(())
}
