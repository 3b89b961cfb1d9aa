//! `commands`: the command list.

use super::{Command, Cx, Failure};

pub const DOC: &str = "list available commands";
pub const USAGE: &str = "commands - List available commands";

pub async fn run(cx: &Cx<'_>, _args: &str) -> Result<(), Failure> {
    cx.reply(&format!("Buildbot commands: {}", Command::NAMES.join(", ")));
    Ok(())
}
