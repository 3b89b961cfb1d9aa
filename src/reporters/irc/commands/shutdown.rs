//! `shutdown check|start|stop|now`: this daemon's graceful shutdown. `start` stops it once the
//! outbox has drained (what is queued is delivered first), `stop` calls that off, `now` stops
//! it at once (as SIGTERM: in-flight deliveries get `shutdown_grace`; the rest waits in the
//! store for the next start).

use super::{Cx, Failure};
use crate::reporters::Shutdown;

pub const DOC: &str = "shutdown tidings";
pub const USAGE: &str = "shutdown check|start|stop|now - shutdown tidings";

/// `help shutdown <sub>`.
pub fn sub_usage(sub: &str) -> Option<&'static str> {
    Some(match sub {
        "check" => "shutdown check - check if tidings is running or shutting down",
        "start" => {
            "shutdown start - start a clean shutdown (once every queued notification is delivered)"
        }
        "stop" => "shutdown stop - stop the clean shutdown",
        "now" => "shutdown now - shutdown immediately without waiting for the outbox to drain",
        _ => return None,
    })
}

pub async fn run(cx: &Cx<'_>, args: &str) -> Result<(), Failure> {
    let control = cx
        .bot
        .control
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let state = control.shutdown_state();
    match args {
        "check" => cx.reply(if state == Shutdown::Running {
            "Status: tidings is running."
        } else {
            "Status: tidings is shutting down."
        }),
        "start" => {
            if state == Shutdown::Running {
                cx.reply("Starting clean shutdown.");
                control.request_shutdown(Shutdown::WhenDrained);
            } else {
                cx.reply("Shutdown already started.");
            }
        }
        "stop" => {
            if state == Shutdown::WhenDrained {
                cx.reply("Stopping clean shutdown.");
                control.request_shutdown(Shutdown::Running);
            } else {
                cx.reply("There is no ongoing shutdown to stop.");
            }
        }
        "now" => {
            cx.reply("Stopping tidings.");
            control.request_shutdown(Shutdown::Now);
        }
        _ => {
            return Err(Failure::Usage(
                "Try 'shutdown check|start|stop|now'.".into(),
            ));
        }
    }
    Ok(())
}
