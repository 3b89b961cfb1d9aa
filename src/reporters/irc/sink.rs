//! The IRC sink: says a delivery's lines to its target through the bot's connection.
//!
//! Not connected (or the connection lost before any line went): retried, so a notification
//! made while the server is down is said once the bot is back. A line that may have reached
//! the server is never repeated: the sink is not idempotent.

use super::Payload;
use super::bot::IrcBot;
use crate::outbox::{Outgoing, RetryClass, Sink, SinkError, SinkFuture};
use std::sync::Arc;
use std::time::Duration;

/// How long a delivery waits for the connection before it is retried later.
const WAIT_FOR_LINK: Duration = Duration::from_secs(10);

/// Delivers through one bot.
pub struct IrcSink {
    bot: Arc<IrcBot>,
}

impl IrcSink {
    pub fn new(bot: Arc<IrcBot>) -> IrcSink {
        IrcSink { bot }
    }

    async fn say(&self, d: &Outgoing) -> Result<String, SinkError> {
        let payload: Payload = serde_json::from_str(&d.payload).map_err(|e| {
            SinkError::new(
                RetryClass::Never,
                format!("the stored IRC payload is unreadable: {e}"),
            )
        })?;
        if !super::text::valid_target(&d.destination) {
            return Err(SinkError::new(
                RetryClass::Never,
                format!("{:?} is not an IRC target", d.destination),
            ));
        }
        self.bot
            .deliver(&d.destination, &payload.lines, WAIT_FOR_LINK)
            .await
    }
}

impl Sink for IrcSink {
    fn deliver<'a>(&'a self, batch: &'a [Outgoing]) -> SinkFuture<'a> {
        Box::pin(async move {
            match batch.first() {
                Some(d) => self.say(d).await,
                None => Ok("nothing to send".into()),
            }
        })
    }
}
