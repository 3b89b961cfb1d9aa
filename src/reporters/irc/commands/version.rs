//! `version`: which tidings answers.

use super::{Cx, Failure};

pub const DOC: &str = "show tidings' version";
pub const USAGE: &str = "version - show tidings' version";

pub async fn run(cx: &Cx<'_>, _args: &str) -> Result<(), Failure> {
    cx.reply(&format!(
        "This is tidings-{} at your service",
        env!("CARGO_PKG_VERSION")
    ));
    Ok(())
}
