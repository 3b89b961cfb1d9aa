//! Flood control: a token bucket, so that the server never drops the bot for flooding. A burst
//! of `burst` lines goes out at once; after that one line per `interval`.

use std::time::Duration;
use tokio::time::Instant;

/// A token bucket.
#[derive(Debug)]
pub struct Bucket {
    burst: f64,
    interval: Duration,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(burst: u32, interval: Duration, now: Instant) -> Bucket {
        Bucket {
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let gained =
            now.saturating_duration_since(self.at).as_secs_f64() / self.interval.as_secs_f64();
        self.tokens = (self.tokens + gained).min(self.burst);
        self.at = now;
    }

    /// When the next line may go: `now` if a token is there.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + self.interval.mul_f64(1.0 - self.tokens)
        }
    }

    /// Takes a token (call when [`Bucket::ready_at`] has come).
    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_interval() {
        let t0 = Instant::now();
        let mut b = Bucket::new(4, Duration::from_secs(2), t0);
        let mut sent = Vec::new();
        let mut now = t0;
        for _ in 0..8 {
            now = b.ready_at(now);
            b.take(now);
            sent.push(now.duration_since(t0).as_secs_f64());
        }
        let rounded: Vec<u64> = sent.iter().map(|s| s.round() as u64).collect();
        assert_eq!(rounded, [0, 0, 0, 0, 2, 4, 6, 8]);
        // Idle time refills it, up to the burst.
        let later = now + Duration::from_secs(60);
        assert_eq!(b.ready_at(later), later);
        for _ in 0..4 {
            b.take(later);
        }
        assert!(b.ready_at(later) > later);
    }
}
