//! `tidings outbox`: list, show, retry and drop deliveries (beside a running daemon).

use super::{Opened, readable_payload};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use tidings::store::State;

#[derive(Subcommand)]
pub enum OutboxAction {
    /// Deliveries, newest first, with a count per state.
    List {
        /// Only this state: pending, inflight, delivered, dead.
        #[arg(long)]
        state: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One delivery: why it exists (reporter, mode, filters, formatter), its payload and every
    /// attempt.
    Show { id: i64 },
    /// Make a pending or dead delivery due now, with a fresh budget of attempts.
    Retry { id: i64 },
    /// Give a delivery up (dead-lettered, "dropped by hand").
    Drop { id: i64 },
    /// Stored events dispatch could not read (kept, tried again at every start), with why.
    Unreadable,
}

pub fn outbox(config: Option<PathBuf>, action: OutboxAction) -> Result<ExitCode> {
    let Opened { store, dir, .. } = super::open(config)?;
    let now = tidings::clock::now_ms();
    let when = |ms: i64| {
        let d = (ms - now) / 1000;
        if d > 0 {
            format!("in {d}s")
        } else {
            format!("{}s ago", -d)
        }
    };
    match action {
        OutboxAction::List { state, limit } => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(
                    [
                        State::Pending,
                        State::InFlight,
                        State::Delivered,
                        State::Dead,
                    ]
                    .into_iter()
                    .find(|x| x.as_str() == s)
                    .with_context(|| {
                        format!("--state {s:?}: use pending, inflight, delivered or dead")
                    })?,
                ),
            };
            let counts = store.counts()?;
            let summary: Vec<String> = counts
                .iter()
                .map(|(s, n)| format!("{} {n}", s.as_str()))
                .collect();
            println!(
                "outbox in {}: {}",
                dir.display(),
                if summary.is_empty() {
                    "empty".into()
                } else {
                    summary.join(", ")
                }
            );
            let unreadable = store.unreadable_count()?;
            if unreadable > 0 {
                println!(
                    "{unreadable} stored event(s) cannot be read and wait for an upgrade: tidings outbox unreadable"
                );
            }
            for d in store.list(state, limit)? {
                println!(
                    "{:>6}  {:<9}  {:<16}  attempts {:<2}  next {:<10}  {}{}{}",
                    d.id,
                    d.state.as_str(),
                    d.reporter,
                    d.attempts,
                    if d.state == State::Pending {
                        when(d.next_attempt_at)
                    } else {
                        "-".into()
                    },
                    d.destination,
                    if d.degraded {
                        "  DEGRADED (the formatter failed: outbox show)"
                    } else {
                        ""
                    },
                    d.last_error
                        .map(|e| format!("  last error: {e}"))
                        .unwrap_or_default()
                );
            }
        }
        OutboxAction::Show { id } => {
            let d = store
                .delivery(id)?
                .with_context(|| format!("no delivery with id {id}"))?;
            println!("delivery {}: {}", d.id, d.state.as_str());
            println!("key:         {}", d.key);
            println!("reporter:    {}", d.reporter);
            println!("destination: {}", d.destination);
            println!("event:       {}", d.event_id);
            if let Some(o) = &d.order_key {
                println!("order key:   {o}");
            }
            println!("why:         {}", d.explanation);
            println!("attempts:    {}", d.attempts);
            if d.state == State::Pending {
                println!("next:        {}", when(d.next_attempt_at));
            }
            if let Some(e) = &d.last_error {
                println!("last error:  {e}");
            }
            println!("log:");
            for l in store.log(id)? {
                println!(
                    "  attempt {} {} {}: {}",
                    l.attempt,
                    when(l.at),
                    l.result,
                    l.detail
                );
            }
            println!("payload:\n{}", readable_payload(&d.payload));
        }
        OutboxAction::Retry { id } => {
            store.retry(id, now)?;
            println!("delivery {id} is due now");
        }
        OutboxAction::Drop { id } => {
            store.drop_delivery(id, now)?;
            println!("delivery {id} dropped");
        }
        OutboxAction::Unreadable => {
            let events = store.unreadable()?;
            println!(
                "{} stored event(s) cannot be read; each is tried again when tidings starts",
                events.len()
            );
            for (ev, reason) in events {
                println!(
                    "{:>6}  {:<16}  {}  from {}: {reason}",
                    ev.id, ev.kind, ev.key, ev.source
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
