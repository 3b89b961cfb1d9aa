//! `mute`: nothing is said here until `unmute` (channel operators, or nicks `authz` names for
//! `mute`). Persisted in the store.

use super::{Cx, Failure};

pub const DOC: &str = "suppress all messages until a corresponding 'unmute' is issued";
pub const USAGE: &str = "mute - suppress all messages until a corresponding 'unmute' is issued";

pub async fn run(cx: &Cx<'_>, _args: &str) -> Result<(), Failure> {
    if cx.op_required("mute") {
        cx.reply(&format!(
            "Only channel operators or explicitly allowed users can mute me here, {}... Blah, blah, blah...",
            cx.req.nick
        ));
        return Ok(());
    }
    // Said before muting, or it would not be said.
    cx.reply("Shutting up for now.");
    cx.bot.with_contact(&cx.req.reply_to, |c| c.muted = true);
    Ok(())
}
