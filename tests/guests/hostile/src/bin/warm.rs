//! Fails on purpose, kept warm through the Rust SDK's `format` export (tests/guests.rs): an
//! error ends the call with status 1 and its message, a panic traps, a result over the output
//! cap and a call that never ends are stopped, and each costs only its instance.
use std::sync::atomic::{AtomicU32, Ordering};
use tidings_guest::Message;
use tidings_guest::serde::Deserialize;

/// Calls answered by this instance: the answer says it, so a reused instance shows.
static CALLS: AtomicU32 = AtomicU32::new(0);

#[derive(Deserialize)]
#[serde(crate = "tidings_guest::serde")]
struct Args {
    results: Option<i64>,
    results_text: String,
}

fn count(args: Args) -> Result<Option<Message>, String> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    match args.results {
        Some(2) => Err("the build failed".into()),
        Some(3) => panic!("a skipped build"),
        Some(4) => loop {
            std::hint::spin_loop();
        },
        None => Ok(Some(Message::plain("x".repeat(2 << 20)))),
        _ => Ok(Some(Message::plain(format!(
            "{} (call {calls})",
            args.results_text
        )))),
    }
}

tidings_guest::main!(message_formatter = count);
