//! `watch <builder>`: announces, here, the end of each build running on the builder.

use super::data::{self, builder};
use super::{Cx, Failure, split_args};
use crate::reporters::irc::text::fold;

pub const DOC: &str = "announce the completion of an active build";
pub const USAGE: &str = "watch _which_ - announce the completion of an active build";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let args = split_args(args)?;
    let [which] = args.as_slice() else {
        return Err(Failure::Usage("Try 'watch _builder_'.".into()));
    };
    let b = builder(cx.bot, which).await?;
    let running = data::running(cx.bot, &b).await?;
    if running.is_empty() {
        cx.reply("There are no currently running builds.");
        return Ok(());
    }
    let texts = cx.bot.texts();
    for build in running {
        if let Some(id) = build.buildid {
            let target = &cx.req.reply_to;
            let mut st = cx.bot.state();
            if !st
                .watches
                .iter()
                .any(|(f, _, w)| *w == id && *f == fold(target))
            {
                st.watches.push((fold(target), target.clone(), id));
            }
        }
        cx.reply(&texts.watching(&build));
    }
    Ok(())
}
