//! `unmute`: undoes `mute`.

use super::{Cx, Failure};
use crate::reporters::irc::text::fold;

pub const DOC: &str = "disable a previous 'mute'";
pub const USAGE: &str = "unmute - disable a previous 'mute'";

pub async fn run(cx: &Cx<'_>, _args: &str) -> Result<(), Failure> {
    let target = &cx.req.reply_to;
    let muted = cx
        .bot
        .state()
        .contacts
        .get(&fold(target))
        .is_some_and(|c| c.muted);
    if !muted {
        cx.reply("No one had told me to be quiet, but it's the thought that counts, right?");
        return Ok(());
    }
    if cx.op_required("mute") {
        return Ok(());
    }
    cx.bot.with_contact(target, |c| c.muted = false);
    cx.reply("I'm baaaaaaaaaaack!");
    Ok(())
}
