//! What an HTTP push sends: the build dict as received (Buildbot 4.x), or the formatter's body.

use crate::event::EventKind;
use crate::reporters::{Formatted, Output, RenderInput};
use serde_json::json;
use tidings_guest::MessageType;

/// The POST body for one event. The built-in message is the build dict exactly as received,
/// unknown fields included; a formatter's `json` body is sent as that JSON value, a `plain` or
/// `html` body as a JSON string (what Buildbot's `post(json=body)` does).
pub fn body(input: &RenderInput<'_>) -> String {
    match input.message {
        Formatted::Custom(Output::Message(m)) => match m.message_type {
            MessageType::Json | MessageType::Plain | MessageType::Html => {
                serde_json::to_string(&m.body).expect("a JSON value serialises")
            }
        },
        // HTTP push asks for messageFormatter only; anything else posts the build dict.
        Formatted::Custom(_) | Formatted::Default { .. } => input.document.to_owned(),
    }
}

/// A 0.8 StatusPush packet around `body`: `{id, timestamp, project, event, payload: {<what>}}`,
/// `id` being the stored event's id (monotonic and persisted, as 0.8's was), `timestamp` Unix
/// seconds. Event names are 0.8's where it had one (`buildStarted`, `buildFinished`,
/// `requestSubmitted`, `requestCancelled`), else in its style.
pub fn packet(input: &RenderInput<'_>, body: &str) -> String {
    let (event, what) = match input.kind {
        EventKind::BuildStarted => ("buildStarted", "build"),
        EventKind::BuildFinished => ("buildFinished", "build"),
        EventKind::BuildsetComplete => ("buildsetFinished", "buildset"),
        EventKind::BuildrequestNew => ("requestSubmitted", "request"),
        EventKind::BuildrequestCancelled => ("requestCancelled", "request"),
        EventKind::WorkerMissing => ("workerMissing", "worker"),
        EventKind::WorkerConnected => ("workerConnected", "worker"),
    };
    let body: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::String(body.into()));
    json!({
        "id": input.event_id,
        "timestamp": input.now / 1000,
        "project": input.title,
        "event": event,
        "payload": { what: body },
    })
    .to_string()
}
