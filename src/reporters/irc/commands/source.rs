//! `source`: where the bot's source is.

use super::{Cx, Failure};

pub const DOC: &str = "the source code for tidings";
pub const USAGE: &str = "source - the source code for tidings";

pub async fn run(cx: &Cx<'_>, _args: &str) -> Result<(), Failure> {
    cx.reply(&format!(
        "I am tidings {}, Buildbot's reporters as one Rust daemon (licence {}); my source is the tidings repository your CI operator deployed me from.",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_LICENSE")
    ));
    Ok(())
}
