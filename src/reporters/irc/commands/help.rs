//! `help [command]`: every command with a line about it, or one command's usage.

use super::{Command, Cx, Failure, split_args};

pub const DOC: &str = "give help for a command or one of it's arguments";
pub const USAGE: &str =
    "help [_command_ _arg_ [_subarg_ ...]] - Give help for _command_ or one of it's arguments";

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let args = split_args(args)?;
    let Some(first) = args.first() else {
        let lines: Vec<String> = Command::NAMES
            .iter()
            .filter_map(|n| Command::parse(n))
            .map(|c| format!("{} - {}", c.name(), c.doc()))
            .collect();
        cx.reply(&lines.join("\n"));
        return Ok(());
    };
    let Some(command) = Command::parse(first) else {
        return Err(Failure::Usage(format!(
            "There is no such command '{first}'."
        )));
    };
    let usage = match (command, args.get(1).map(String::as_str)) {
        (_, None) => Some(command.usage()),
        (Command::Shutdown, Some(sub)) => super::shutdown::sub_usage(sub),
        _ => None,
    };
    match usage {
        Some(u) => cx.reply(&format!("Usage: {u}")),
        None => cx.reply(&format!(
            "No usage info for {}",
            args.iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
    Ok(())
}
