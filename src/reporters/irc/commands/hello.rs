//! `hello`: a greeting, in one of many languages (Buildbot's list, in part).

use super::{Cx, Failure};

pub const DOC: &str = "say hello";
pub const USAGE: &str = "hello - say hello";

const GREETINGS: [&str; 12] = [
    "Goeie dag",
    "Tungjatjeta",
    "hola",
    "kaixo",
    "Dobar dan",
    "Hello",
    "Bonjour",
    "Hallo",
    "Ciao",
    "Hej",
    "Konnichiwa",
    "Zdravstvuyte",
];

pub async fn run(cx: &Cx<'_>, _args: &str) -> Result<(), Failure> {
    let pick = (crate::clock::now_ms() as usize / 7) % GREETINGS.len();
    cx.reply(GREETINGS[pick]);
    Ok(())
}
