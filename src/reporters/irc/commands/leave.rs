//! `leave #channel…`: leaves channels (until the bot restarts, for configured ones).

use super::{Cx, Failure, split_args};
use crate::reporters::irc::text::{fold, is_channel, valid_target};

pub const DOC: &str = "leave a channel";
pub const USAGE: &str = "leave #channel - leave a channel #channel";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let channels = split_args(args)?;
    if channels.is_empty() {
        return Err(Failure::Usage(format!("Usage: {USAGE}")));
    }
    for c in channels {
        if !is_channel(&c) || !valid_target(&c) {
            return Err(Failure::Usage(format!("'{c}' is not a channel name")));
        }
        cx.bot.state().channels.remove(&fold(&c));
        cx.bot.raw(vec![format!(
            "PART {c} :leaving, as {} asked",
            crate::reporters::irc::text::clean(&cx.req.nick)
        )]);
    }
    Ok(())
}
