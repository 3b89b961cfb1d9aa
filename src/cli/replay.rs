//! `tidings replay`: stored events through dispatch as a config (and formatter builds) would
//! have it now, compared with what was sent; `--deliver` enqueues the result for real.

use super::events::Filter;
use super::{Opened, Paint, about, readable_payload};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tidings::dispatch::{Planned, Verdict};
use tidings::store::{NewDelivery, StoredEvent};

/// More deliveries than this need `--yes` to be enqueued.
const CONFIRM_ABOVE: usize = 100;

/// `tidings replay`'s options.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Use this module for the `[[formatter]]` NAME instead of the config's (a .wasm file, a
    /// directory with one, or a Rust formatter crate, built first). Repeatable.
    #[arg(long = "formatter", value_name = "NAME=PATH")]
    pub formatters: Vec<String>,
    /// Replay this one event.
    #[arg(long, conflicts_with_all = ["last", "builder", "kind", "since"])]
    pub event: Option<i64>,
    /// Replay the newest N events (that match --builder, --kind, --since).
    #[arg(long)]
    pub last: Option<usize>,
    #[command(flatten)]
    pub filter: Filter,
    /// Enqueue what the replay renders, for real, under new idempotency keys marked as replays
    /// (to resend after an outage, or to send with a fixed formatter). Running the same replay
    /// again enqueues nothing new.
    #[arg(long)]
    pub deliver: bool,
    /// Confirm --deliver of more than 100 deliveries.
    #[arg(long)]
    pub yes: bool,
    /// Also list the deliveries that would be sent unchanged.
    #[arg(long)]
    pub all: bool,
    /// JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// How a delivery rendered now compares with what the outbox holds under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    /// Sent (or queued) with the same payload.
    Same,
    /// Sent (or queued) with another payload.
    Changed,
    /// Not made when the event was dispatched.
    New,
    /// Made then, not now.
    Gone,
}

#[derive(serde::Serialize)]
struct Line {
    event: i64,
    reporter: String,
    destination: String,
    change: Change,
    /// The delivery made when the event was dispatched, if any.
    sent_id: Option<i64>,
    sent: Option<String>,
    now: Option<String>,
    /// The delivery `--deliver` enqueued (or found already enqueued by an earlier replay).
    replay_id: Option<i64>,
}

/// The idempotency key of a replayed delivery: the original key and the payload's digest, so
/// one replay of an event enqueues once, however often it is run, and a replay with another
/// payload (a fixed formatter) is a new delivery.
fn replay_key(p: &Planned) -> String {
    let digest = Sha256::digest(p.payload.as_bytes());
    format!("replay|{}|{}", hex::encode(&digest[..8]), p.key)
}

fn parse_formatters(pairs: &[String]) -> Result<Vec<(String, PathBuf)>> {
    pairs
        .iter()
        .map(|kv| {
            let (name, path) = kv
                .split_once('=')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .with_context(|| format!("--formatter takes NAME=PATH, got {kv:?}"))?;
            let path = PathBuf::from(path);
            let wasm = if path.is_dir() {
                tidings::testing::resolve(&path)
                    .map_err(anyhow::Error::msg)?
                    .wasm
            } else {
                path
            };
            Ok((name.to_owned(), wasm))
        })
        .collect()
}

/// The events to replay, oldest first.
fn chosen(o: &Opened, a: &ReplayArgs, now: i64) -> Result<Vec<StoredEvent>> {
    if let Some(id) = a.event {
        let row = o
            .store
            .event(id)?
            .with_context(|| format!("no stored event {id}"))?;
        return Ok(vec![row]);
    }
    let f = &a.filter;
    if a.last.is_none() && f.builder.is_none() && f.kind.is_none() && f.since.is_none() {
        bail!("say which events: --event ID, --last N, or --builder/--kind/--since");
    }
    let mut rows = f.newest(&o.store, a.last.unwrap_or(usize::MAX), now)?;
    rows.reverse();
    Ok(rows)
}

/// `tidings replay`.
pub fn replay(o: &Opened, a: &ReplayArgs) -> Result<ExitCode> {
    let now = tidings::clock::now_ms();
    let replaced = parse_formatters(&a.formatters)?;
    let rows = chosen(o, a, now)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let planner = tidings::daemon::planner(
        &o.config,
        &o.base,
        o.store.clone(),
        &replaced,
        Some(runtime.handle()),
    )?;
    let progress = std::io::stderr().is_terminal() && rows.len() > 20;
    let mut lines = Vec::new();
    let mut planned_all: Vec<(usize, Planned)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if progress {
            eprint!("\rreplaying event {} of {}", i + 1, rows.len());
            let _ = std::io::stderr().flush();
        }
        let ev = row;
        let decisions = match planner.plan(ev)? {
            Ok(d) => d,
            Err(reason) => {
                eprintln!("event {}: cannot be read, left out: {reason}", ev.id);
                continue;
            }
        };
        let stored: Vec<_> = o
            .store
            .deliveries_of(ev.id)?
            .into_iter()
            .filter(|d| !d.key.starts_with("replay|"))
            .collect();
        let mut keys = Vec::new();
        for d in decisions {
            let Verdict::Reported { deliveries, .. } = d.verdict else {
                continue;
            };
            for p in deliveries {
                let sent = stored.iter().find(|s| s.key == p.key);
                let change = match sent {
                    None => Change::New,
                    Some(s) if s.payload == p.payload => Change::Same,
                    Some(_) => Change::Changed,
                };
                keys.push(p.key.clone());
                lines.push(Line {
                    event: ev.id,
                    reporter: d.reporter.clone(),
                    destination: p.destination.clone(),
                    change,
                    sent_id: sent.map(|s| s.id),
                    sent: sent.map(|s| s.payload.clone()),
                    now: Some(p.payload.clone()),
                    replay_id: None,
                });
                planned_all.push((lines.len() - 1, p));
            }
        }
        for s in stored.iter().filter(|s| !keys.contains(&s.key)) {
            lines.push(Line {
                event: ev.id,
                reporter: s.reporter.clone(),
                destination: s.destination.clone(),
                change: Change::Gone,
                sent_id: Some(s.id),
                sent: Some(s.payload.clone()),
                now: None,
                replay_id: None,
            });
        }
    }
    if progress {
        eprintln!();
    }
    if a.deliver {
        if planned_all.len() > CONFIRM_ABOVE && !a.yes {
            bail!(
                "--deliver would enqueue {} deliveries (more than {CONFIRM_ABOVE}); add --yes to confirm",
                planned_all.len()
            );
        }
        let keys: Vec<String> = planned_all.iter().map(|(_, p)| replay_key(p)).collect();
        let explanations: Vec<String> = planned_all
            .iter()
            .map(|(i, p)| {
                format!(
                    "REPLAY of event {} (tidings replay --deliver, {}): {}",
                    lines[*i].event,
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
                    p.explanation
                )
            })
            .collect();
        let new: Vec<NewDelivery> = planned_all
            .iter()
            .zip(&keys)
            .zip(&explanations)
            .map(|(((i, p), key), why)| NewDelivery {
                key,
                event_id: lines[*i].event,
                reporter: &lines[*i].reporter,
                destination: &p.destination,
                order_key: p.order_key.as_deref(),
                payload: &p.payload,
                explanation: why,
            })
            .collect();
        let stored = o.store.enqueue(&new, now)?;
        let fresh = stored.iter().filter(|s| !s.duplicate).count();
        for ((i, _), s) in planned_all.iter().zip(&stored) {
            lines[*i].replay_id = Some(s.id);
        }
        eprintln!(
            "enqueued {fresh} deliveries ({} already enqueued by an earlier replay); the daemon sends them within a second",
            stored.len() - fresh
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_people(o, &rows, &lines, a.all);
    Ok(ExitCode::SUCCESS)
}

fn print_people(o: &Opened, rows: &[StoredEvent], lines: &[Line], all: bool) {
    let paint = Paint::stdout();
    let mut counts = [0usize; 4];
    for row in rows {
        let id = row.id;
        let mine: Vec<&Line> = lines.iter().filter(|l| l.event == id).collect();
        for l in &mine {
            counts[l.change as usize] += 1;
        }
        let shown: Vec<&&Line> = mine
            .iter()
            .filter(|l| all || l.change != Change::Same)
            .collect();
        if shown.is_empty() {
            continue;
        }
        println!(
            "{}",
            paint.bold(&format!("event {id} {}: {}", row.kind, about(row)))
        );
        for l in shown {
            let was = l
                .sent_id
                .map(|i| format!(" (delivery {i})"))
                .unwrap_or_default();
            let replayed = l
                .replay_id
                .map(|i| format!(", enqueued as delivery {i}"))
                .unwrap_or_default();
            let head = format!("  {} → {}", l.reporter, l.destination);
            match l.change {
                Change::Same => println!("{head}: same as sent{was}{replayed}"),
                Change::New => {
                    println!(
                        "{head}: {}{replayed}",
                        paint.green("new, not sent when dispatched")
                    );
                    for line in readable_payload(l.now.as_deref().unwrap_or("")).lines() {
                        println!("    {}", paint.green(&format!("+{line}")));
                    }
                }
                Change::Gone => println!("{head}: {}{was}", paint.red("sent then, not now")),
                Change::Changed => {
                    println!("{head}: {}{was}{replayed}", paint.yellow("changed"));
                    let old = readable_payload(l.sent.as_deref().unwrap_or(""));
                    let new = readable_payload(l.now.as_deref().unwrap_or(""));
                    let diff = similar::TextDiff::from_lines(&old, &new);
                    for line in diff
                        .unified_diff()
                        .context_radius(2)
                        .missing_newline_hint(false)
                        .header("sent", "now")
                        .to_string()
                        .lines()
                    {
                        let line = match line.chars().next() {
                            Some('+') if !line.starts_with("+++") => paint.green(line),
                            Some('-') if !line.starts_with("---") => paint.red(line),
                            _ => line.to_owned(),
                        };
                        println!("    {line}");
                    }
                }
            }
        }
    }
    let [same, changed, new, gone] = counts;
    println!(
        "{} events from {}: {changed} changed, {new} new, {gone} no longer sent, {same} the same",
        rows.len(),
        o.dir.display()
    );
}
