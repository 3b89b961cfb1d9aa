//! Wall-clock time as the store records it: Unix milliseconds.
//!
//! Everything that stamps a row (ingest, dispatch, the outbox) asks here, so there is one
//! definition of "now"; pure decisions ([`crate::outbox::RetryPolicy::outcome`]) take the time
//! as an argument instead, so tests pass their own.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in Unix milliseconds (0 if the system clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
