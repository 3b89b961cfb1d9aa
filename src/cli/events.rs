//! `tidings events list|show` and `tidings explain`: what came in, and what every reporter
//! decided about it and why.

use super::{Opened, Paint, about, ago, builders_of};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::process::ExitCode;
use tidings::dispatch::{Decision, Verdict};
use tidings::store::{Delivery, EventQuery, Store, StoredEvent};

/// Which events a command is about: `--builder`, `--kind`, `--since`.
#[derive(clap::Args, Clone, Default)]
pub struct Filter {
    /// Only events about this builder (a buildset counts when one of its builds is).
    #[arg(long)]
    pub builder: Option<String>,
    /// Only this kind: build_started, build_finished, buildset_complete, buildrequest_new,
    /// buildrequest_cancelled, worker_missing, worker_connected.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events received within this long ("30m", "2h", "1d").
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
}

impl Filter {
    /// Up to `limit` stored events matching the filter, newest first.
    pub fn newest(&self, store: &Store, limit: usize, now: i64) -> Result<Vec<StoredEvent>> {
        if let Some(k) = &self.kind
            && !tidings::event::EventKind::ALL.iter().any(|x| x.name() == k)
        {
            bail!(
                "--kind {k:?}: use one of {}",
                tidings::event::EventKind::ALL.map(|k| k.name()).join(", ")
            );
        }
        let since = match &self.since {
            Some(s) => Some(
                now - tidings::config::parse_duration(s)
                    .map_err(|e| anyhow::anyhow!("--since: {e}"))?
                    .as_millis() as i64,
            ),
            None => None,
        };
        let mut q = EventQuery {
            kind: self.kind.clone(),
            since,
            before: None,
        };
        let mut out = Vec::new();
        // Pages of stored events, filtered by builder here (it is inside the body).
        loop {
            let page = store.events_newest(&q, 500)?;
            let Some(last) = page.last().map(|r| r.id) else {
                break;
            };
            for row in page {
                let keep = match &self.builder {
                    Some(b) => builders_of(&row).iter().any(|x| x == b),
                    None => true,
                };
                if keep {
                    out.push(row);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            q.before = Some(last);
        }
        Ok(out)
    }
}

/// `tidings events list`.
pub fn list(o: &Opened, filter: &Filter, limit: usize, as_json: bool) -> Result<ExitCode> {
    let now = tidings::clock::now_ms();
    let rows = filter.newest(&o.store, limit, now)?;
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "kind": r.kind,
                    "source": r.source,
                    "key": r.key,
                    "received_at": r.received_at,
                    "about": about(r),
                    "deliveries": o.store.deliveries_of(r.id).map(|d| d.len()).unwrap_or(0),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no stored events match (in {})", o.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    for r in &rows {
        let n = o.store.deliveries_of(r.id)?.len();
        println!(
            "{:>7}  {:<22}  {:<10}  {:<14}  {:<3} {}  {}",
            r.id,
            r.kind,
            ago(r.received_at, now),
            r.source,
            n,
            if n == 1 { "delivery  " } else { "deliveries" },
            about(r),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `tidings events show ID`: the stored event as it was received, pretty.
pub fn show(o: &Opened, id: i64) -> Result<ExitCode> {
    let row = o.store.event(id)?.with_context(|| gone(id))?;
    let body: Value = serde_json::from_str(&row.body)
        .with_context(|| format!("event {id} is not JSON (stored as received)"))?;
    eprintln!(
        "event {id}: {} from {}, {} ({})",
        row.kind,
        row.source,
        ago(row.received_at, tidings::clock::now_ms()),
        about(&row)
    );
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(ExitCode::SUCCESS)
}

fn gone(id: i64) -> String {
    format!(
        "no stored event {id} (events are kept for [server] retention once dispatched: see `tidings events list`)"
    )
}

/// One decision with what the outbox did with each of its deliveries.
#[derive(serde::Serialize)]
struct Explained<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    outbox: Vec<Option<OutboxRow>>,
}

#[derive(serde::Serialize)]
struct OutboxRow {
    id: i64,
    state: &'static str,
    attempts: i64,
    last_error: Option<String>,
    /// Whether the payload enqueued is the one rendered now.
    same_payload: bool,
}

impl OutboxRow {
    fn of(d: &Delivery, payload: &str) -> OutboxRow {
        OutboxRow {
            id: d.id,
            state: d.state.as_str(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            same_payload: d.payload == payload,
        }
    }
}

/// `tidings explain ID`: every reporter of the config and what it decided about the event,
/// with what the outbox did.
pub fn explain(o: &Opened, id: i64, as_json: bool) -> Result<ExitCode> {
    let row = o.store.event(id)?.with_context(|| gone(id))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let planner = tidings::daemon::planner(
        &o.config,
        &o.base,
        o.store.clone(),
        &[],
        Some(runtime.handle()),
    )?;
    let decisions = match planner.plan(&row)? {
        Ok(d) => d,
        Err(reason) => bail!("event {id} cannot be read: {reason}"),
    };
    let stored = o.store.deliveries_of(id)?;
    let explained: Vec<Explained> = decisions
        .iter()
        .map(|d| Explained {
            decision: d,
            outbox: match &d.verdict {
                Verdict::Reported { deliveries, .. } => deliveries
                    .iter()
                    .map(|p| {
                        stored
                            .iter()
                            .find(|s| s.key == p.key)
                            .map(|s| OutboxRow::of(s, &p.payload))
                    })
                    .collect(),
                _ => Vec::new(),
            },
        })
        .collect();
    // Deliveries of this event that no reporter of this config would make (a reporter since
    // removed or renamed, a changed destination, a replay).
    let planned: Vec<&str> = decisions
        .iter()
        .flat_map(|d| match &d.verdict {
            Verdict::Reported { deliveries, .. } => {
                deliveries.iter().map(|p| p.key.as_str()).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    let other: Vec<&Delivery> = stored
        .iter()
        .filter(|s| !planned.contains(&s.key.as_str()))
        .collect();
    if as_json {
        let v = json!({
            "event": {
                "id": id,
                "kind": row.kind,
                "source": row.source,
                "key": row.key,
                "received_at": row.received_at,
                "about": about(&row),
            },
            "reporters": explained,
            "other_deliveries": other.iter().map(|d| json!({
                "id": d.id, "reporter": d.reporter, "destination": d.destination,
                "state": d.state.as_str(), "attempts": d.attempts,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let paint = Paint::stdout();
    let now = tidings::clock::now_ms();
    println!(
        "event {id}: {} from {}, {}: {}",
        row.kind,
        row.source,
        ago(row.received_at, now),
        paint.bold(&about(&row))
    );
    if decisions.is_empty() {
        println!("  the config has no reporters: nothing is ever sent");
    }
    let width = decisions
        .iter()
        .map(|d| d.reporter.len() + d.kind.len() + 3)
        .max()
        .unwrap_or(0);
    for e in &explained {
        let d = e.decision;
        let name = format!("{} ({})", d.reporter, d.kind);
        let (word, line) = match &d.verdict {
            Verdict::NotAsked { why } => (paint.dim("not asked"), why.clone()),
            Verdict::Filtered {
                filter,
                wanted,
                value,
            } if wanted.is_empty() => (
                paint.dim("filtered "),
                format!("{filter} filter does not take {value}"),
            ),
            Verdict::Filtered {
                filter,
                wanted,
                value,
            } => (
                paint.dim("filtered "),
                format!(
                    "{filter} [{}] does not take {}",
                    wanted.join(", "),
                    if value.is_empty() {
                        "a build without one".to_owned()
                    } else {
                        format!("{value:?}")
                    }
                ),
            ),
            Verdict::ModeMissed {
                mode,
                result,
                previous,
            } => (
                paint.dim("mode miss"),
                format!(
                    "mode [{}] does not report a {result} build after previous build {previous}",
                    mode.join(", ")
                ),
            ),
            Verdict::Nothing { why } => (paint.yellow("nothing  "), why.clone()),
            Verdict::Reported { why, .. } => (paint.green("reported "), why.clone()),
        };
        println!("  {name:<width$}  {word}  {line}");
        if let Verdict::Reported {
            formatter,
            deliveries,
            ..
        } = &d.verdict
        {
            let pad = " ".repeat(width + 4);
            let formatter = if formatter.contains("DEGRADED") {
                paint.red(formatter)
            } else {
                formatter.clone()
            };
            println!("{pad}message: {formatter}");
            if deliveries.is_empty() {
                println!(
                    "{pad}{}",
                    paint.yellow(
                        "no delivery: the reporter found no destination (a mail without recipients, a review without a change, no channel that wants it)"
                    )
                );
            }
            for (p, s) in deliveries.iter().zip(&e.outbox) {
                let outcome = match s {
                    None => {
                        paint.yellow("not in the outbox (the config or the store changed since)")
                    }
                    Some(s) => {
                        let state = match s.state {
                            "delivered" => paint.green(s.state),
                            "dead" => paint.red(s.state),
                            other => paint.yellow(other),
                        };
                        format!(
                            "delivery {}: {state}, {} attempt{}{}{}",
                            s.id,
                            s.attempts,
                            if s.attempts == 1 { "" } else { "s" },
                            s.last_error
                                .as_ref()
                                .map(|e| format!(", last error: {e}"))
                                .unwrap_or_default(),
                            if s.same_payload {
                                ""
                            } else {
                                " (the payload rendered now differs: see tidings replay)"
                            }
                        )
                    }
                };
                println!("{pad}→ {}  {outcome}", p.destination);
            }
        }
    }
    for d in other {
        println!(
            "  also in the outbox: delivery {} to {} by {:?} ({}), which this config would not make",
            d.id,
            d.destination,
            d.reporter,
            d.state.as_str()
        );
    }
    Ok(ExitCode::SUCCESS)
}
