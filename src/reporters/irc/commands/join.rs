//! `join #channel…`: joins channels (until the bot restarts); they get the configured
//! `notify_events`.

use super::{Cx, Failure, split_args};
use crate::reporters::irc::text::{fold, is_channel, valid_target};

pub const DOC: &str = "join a channel";
pub const USAGE: &str = "join #channel - join a channel #channel";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let channels = split_args(args)?;
    if channels.is_empty() {
        return Err(Failure::Usage(format!("Usage: {USAGE}")));
    }
    for c in &channels {
        if !is_channel(c) || !valid_target(c) {
            return Err(Failure::Usage(format!("'{c}' is not a channel name")));
        }
    }
    let defaults = cx.bot.settings.notify_events.clone();
    for c in channels {
        cx.bot.state().channels.insert(fold(&c), (c.clone(), None));
        cx.bot.with_contact(&c, |contact| {
            contact.events.extend(defaults.iter().cloned())
        });
        cx.bot.raw(vec![format!("JOIN {c}")]);
    }
    Ok(())
}
