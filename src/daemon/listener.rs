//! The HTTP listener (ingest, `/healthz`, `/metrics`): an accept loop of our own on hyper, so
//! that no client can take the daemon offline by holding connections.
//!
//! - A client has `header_timeout` (10 s) to send a request's headers, the first one and every
//!   one after on a kept-alive connection; then the connection is closed.
//! - At most `max_connections` (1,024) are open. A new one beyond that takes the slot of the
//!   longest-open connection that is not serving a request — one that is still sending its
//!   headers or sits idle — and is refused (`503`, closed at once) only when every slot is
//!   serving a request or not read yet. So thousands of slow or idle connections cannot keep a
//!   real client out: a new connection's task reads what is waiting before its slot can be
//!   taken (so a flood of accepts cannot evict it unread), its request is served the moment it
//!   is read, and a slot serving a request is never taken. Bodies are bounded by the ingest's
//!   own body timeout.
//! - The soft limit of open files is raised to the hard limit at start ([`raise_fd_limit`]), and
//!   an `accept` that fails for want of descriptors is retried after a pause instead of
//!   spinning.
//! - On shutdown, listening stops, connections finish the request they are serving, idle ones
//!   are closed.

use crate::metrics::Metrics;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

/// What the listener allows a client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// Raises the soft limit of open files to the hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim = raised;
        }
    }
    Ok(lim.rlim_cur)
}

/// Serves `app` on `listener` until `stop` turns true, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let table = Arc::new(Table {
        cap: limits.max_connections.max(1),
        next: AtomicU64::new(0),
        inner: Mutex::default(),
        metrics: metrics.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut stop) => break,
        };
        while tasks.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection gone before it was taken:
                // pause rather than spin, and say so now and then.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = table.admit() else {
            refuse(stream);
            continue;
        };
        tasks.spawn(connection(
            stream,
            app.clone(),
            slot,
            limits.header_timeout,
            stop.clone(),
        ));
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// Resolves when the daemon stops (or whoever stops it is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Every slot is serving a request: say so and close.
fn refuse(stream: TcpStream) {
    const BODY: &str = "too many connections, try again\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: text/plain\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// One connection, until it ends, is evicted, or the daemon stops.
async fn connection(
    stream: TcpStream,
    app: Router,
    slot: Slot,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (table, id) = (slot.table.clone(), slot.id);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = table.busy(id);
        let app = app.clone();
        async move {
            let response = app.oneshot(req.map(axum::body::Body::new)).await;
            drop(busy);
            response
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // One poll before the connection may be evicted: a request that was already waiting when
    // it was accepted (a real client writes at once; under a flood it waits in the backlog) is
    // read and marked serving in this poll, so no number of accepts after it can take its slot
    // before its task first runs.
    let first = std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
    if let Poll::Ready(r) = first {
        note_end(&slot.table, r);
        return;
    }
    slot.table.started(slot.id);
    tokio::select! {
        r = conn.as_mut() => note_end(&slot.table, r),
        _ = slot.evicted.notified() => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Counts a connection closed for sending its headers too slowly.
fn note_end(table: &Table, r: hyper::Result<()>) {
    if let Err(e) = r
        && e.is_timeout()
    {
        table.metrics.http_connection_shed("header_timeout");
    }
}

/// The open connections, oldest first, and whether each is serving a request.
struct Table {
    cap: usize,
    next: AtomicU64,
    inner: Mutex<BTreeMap<u64, Entry>>,
    metrics: Arc<Metrics>,
}

struct Entry {
    /// Requests being served (0 or 1 on HTTP/1.1).
    busy: usize,
    /// Its task has read what the client sent first; until then it cannot be evicted.
    started: bool,
    evicted: Arc<Notify>,
}

/// A connection's place in the table, freed when dropped.
struct Slot {
    table: Arc<Table>,
    id: u64,
    evicted: Arc<Notify>,
}

impl Table {
    /// A slot for a new connection: a free one, or the one of the oldest connection not
    /// serving a request whose task has run (it is told to close); `None` when there is none.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut conns = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() >= self.cap {
            let Some(oldest) = conns
                .iter()
                .find(|(_, e)| e.busy == 0 && e.started)
                .map(|(id, _)| *id)
            else {
                self.metrics.http_connection_shed("refused");
                return None;
            };
            if let Some(e) = conns.remove(&oldest) {
                e.evicted.notify_one();
                self.metrics.http_connection_shed("evicted");
            }
        }
        // Never reused: a slot taken from a connection is still held by its task for a moment.
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        conns.insert(
            id,
            Entry {
                busy: 0,
                started: false,
                evicted: evicted.clone(),
            },
        );
        self.metrics.http_connections(conns.len());
        Some(Slot {
            table: self.clone(),
            id,
            evicted,
        })
    }

    /// Marks connection `id` as having been polled once: it may be evicted from now on.
    fn started(&self, id: u64) {
        let mut conns = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = conns.get_mut(&id) {
            e.started = true;
        }
    }

    /// Marks connection `id` as serving a request until the guard is dropped.
    fn busy(self: &Arc<Self>, id: u64) -> Busy {
        let mut conns = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = conns.get_mut(&id) {
            e.busy += 1;
        }
        Busy {
            table: self.clone(),
            id,
        }
    }
}

struct Busy {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut conns = self.table.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = conns.get_mut(&self.id) {
            e.busy = e.busy.saturating_sub(1);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut conns = self.table.inner.lock().unwrap_or_else(|e| e.into_inner());
        conns.remove(&self.id);
        self.table.metrics.http_connections(conns.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_gives_the_oldest_idle_read_slot_and_refuses_when_none_is() {
        let table = Arc::new(Table {
            cap: 2,
            next: AtomicU64::new(0),
            inner: Mutex::default(),
            metrics: Arc::new(Metrics::default()),
        });
        let a = table.admit().unwrap();
        let b = table.admit().unwrap();
        // Neither task has read its connection yet: neither can be taken.
        assert!(table.admit().is_none(), "no slot has been read yet");
        table.started(a.id);
        table.started(b.id);
        let busy_b = table.busy(b.id);
        // Full: `a` (idle) makes way, `b` (serving) is kept.
        let c = table.admit().unwrap();
        assert!(!table.inner.lock().unwrap().contains_key(&a.id));
        assert!(table.inner.lock().unwrap().contains_key(&b.id));
        table.started(c.id);
        let _busy_c = table.busy(c.id);
        assert!(table.admit().is_none(), "every slot is serving a request");
        drop(busy_b);
        let d = table.admit().unwrap();
        assert!(!table.inner.lock().unwrap().contains_key(&b.id));
        table.started(d.id);
        // A slot that was taken is not freed twice when its connection ends.
        drop(a);
        assert_eq!(table.inner.lock().unwrap().len(), 2);
        drop((c, d));
        assert!(table.inner.lock().unwrap().is_empty());
    }
}
