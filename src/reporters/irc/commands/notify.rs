//! `notify on|off|on-quiet|off-quiet|list [events…]`: what this channel (or, in private, this
//! nick) is told about. Persisted in the store.

use super::{Cx, Failure, split_args};
use crate::reporters::irc::notify::valid_event;

pub const DOC: &str = "notify me about build events";
pub const USAGE: &str = "notify on|off|list [_EVENT_] ... - notify me about build events;  event should be one or more of: 'started', 'finished', 'failure', 'success', 'exception', 'problem', 'recovery', 'better', or 'worse'";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let mut args = split_args(args)?;
    if args.is_empty() {
        return Err(Failure::Usage("Try 'notify on|off|list [_EVENT_]'.".into()));
    }
    let action = args.remove(0);
    if cx.req.channel.is_some()
        && matches!(action.as_str(), "on" | "off")
        && cx.op_required("notify")
    {
        cx.reply(&format!(
            "Only channel operators can change notified events for this channel. And you, {}, are neither!",
            cx.req.nick
        ));
        return Ok(());
    }
    let target = cx.req.reply_to.clone();
    if args.iter().any(|e| !valid_event(e)) {
        return Err(Failure::Usage("Try 'notify on|off _EVENT_'.".into()));
    }
    match action.as_str() {
        "on" | "on-quiet" => {
            let events = if args.is_empty() {
                vec!["started".to_owned(), "finished".to_owned()]
            } else {
                args
            };
            cx.bot.with_contact(&target, |c| c.events.extend(events));
            if action == "on" {
                list(cx);
            }
        }
        "off" | "off-quiet" => {
            cx.bot.with_contact(&target, |c| {
                if args.is_empty() {
                    c.events.clear();
                } else {
                    for e in &args {
                        c.events.remove(e);
                    }
                }
            });
            if action == "off" {
                list(cx);
            }
        }
        "list" => list(cx),
        _ => return Err(Failure::Usage("Try 'notify on|off|list [_EVENT_]'.".into())),
    }
    Ok(())
}

fn list(cx: &Cx<'_>) {
    let events: Vec<String> = cx
        .bot
        .with_contact(&cx.req.reply_to, |c| c.events.iter().cloned().collect());
    if events.is_empty() {
        cx.reply("No events are being notified.");
    } else {
        cx.reply(&format!(
            "The following events are being notified: {}.",
            events.join(", ")
        ));
    }
}
