//! Reporters' long-lived services (the IRC bot's connection): started with the daemon, kept
//! across SIGHUP while the reporter's table is unchanged, stopped when it changes or goes away,
//! and at shutdown.
//!
//! A reload happens in two steps so that a refused reload touches nothing: [`Services::prepare`]
//! decides, for the new config, which reporters keep their running service and which get a new
//! one (created, not started; the new reporters are built with it); only when everything built
//! does [`Services::commit`] stop what is replaced and start what is new.

use crate::reporters::{BuildContext, ReporterConfig, Service, ServiceContext};
use anyhow::Context;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a stopping service may take before its task is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

struct Running {
    service: Arc<dyn Service>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running services, by reporter name.
#[derive(Default)]
pub struct Services {
    running: HashMap<String, Running>,
}

/// Which service each reporter of a new config gets.
#[derive(Default)]
pub struct Prepared {
    /// By reporter name: the service, and whether it is new (to be started by `commit`).
    services: HashMap<String, (Arc<dyn Service>, bool)>,
}

impl Prepared {
    /// The services by reporter name, for building the reporters.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Service>> {
        self.services.get(name).map(|(s, _)| s.clone())
    }

    /// How many services are new.
    pub fn fresh(&self) -> usize {
        self.services.values().filter(|(_, fresh)| *fresh).count()
    }
}

impl Services {
    /// Decides the services of `new` (the tables of the config being loaded), given `old` (the
    /// running config's tables; empty at start): an unchanged table keeps its running service;
    /// any other table that wants one gets a new one. Nothing is started or stopped.
    pub fn prepare(
        &self,
        old: &[(&'static str, &dyn ReporterConfig)],
        new: &[(&'static str, &dyn ReporterConfig)],
        cx: &BuildContext<'_>,
    ) -> anyhow::Result<Prepared> {
        let mut out = Prepared::default();
        for (kind, table) in new {
            let name = table.selection().name;
            let unchanged = old
                .iter()
                .any(|(k, t)| k == kind && t.selection().name == name && t.same_as(*table));
            if unchanged && let Some(r) = self.running.get(&name) {
                out.services.insert(name, (r.service.clone(), false));
                continue;
            }
            if let Some(service) = table.service(cx) {
                let service = service
                    .with_context(|| format!("[[reporter.{kind}]] {name:?}: its service"))?;
                out.services.insert(name, (service, true));
            }
        }
        Ok(out)
    }

    /// Stops the services `prepared` does not keep, then starts its new ones, each with a
    /// context from `context`.
    pub async fn commit(&mut self, prepared: Prepared, context: impl Fn() -> ServiceContext) {
        let stale: Vec<String> = self
            .running
            .keys()
            .filter(|name| !matches!(prepared.services.get(*name), Some((_, false))))
            .cloned()
            .collect();
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                tracing::info!(reporter = %name, "stopping the reporter's service (its table changed or went away)");
                stop(name, r).await;
            }
        }
        for (name, (service, fresh)) in prepared.services {
            if !fresh {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            let mut cx = context();
            cx.shutdown = stop_rx;
            tracing::info!(reporter = %name, "starting the reporter's service");
            let task = tokio::spawn(service.clone().run(cx));
            self.running.insert(
                name,
                Running {
                    service,
                    stop,
                    task,
                },
            );
        }
    }

    /// Stops every service (at shutdown).
    pub async fn stop_all(&mut self) {
        for (name, r) in self.running.drain() {
            stop(name, r).await;
        }
    }

    /// The names of the running services, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.running.keys().cloned().collect();
        n.sort();
        n
    }
}

async fn stop(name: String, r: Running) {
    let _ = r.stop.send(true);
    let mut task = r.task;
    if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
        tracing::warn!(reporter = %name, "the reporter's service did not stop within {STOP_GRACE:?}; aborted");
        task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CommonOptions, RetrySettings, Selection};
    use crate::reporters::{Reporter, ServiceFuture, same_table};
    use crate::store::{Durability, Store};
    use std::any::Any;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A table whose service counts its starts and stops.
    #[derive(Debug, PartialEq)]
    struct Table {
        name: String,
        setting: u32,
    }

    #[derive(Default)]
    struct Counts {
        started: AtomicUsize,
        stopped: AtomicUsize,
    }

    struct Counting(Arc<Counts>);

    impl Service for Counting {
        fn run(self: Arc<Self>, mut cx: ServiceContext) -> ServiceFuture {
            Box::pin(async move {
                self.0.started.fetch_add(1, Ordering::SeqCst);
                let _ = cx.shutdown.wait_for(|s| *s).await;
                self.0.stopped.fetch_add(1, Ordering::SeqCst);
            })
        }
        fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    thread_local! {
        static COUNTS: Arc<Counts> = Arc::default();
    }

    impl CommonOptions for Table {
        fn selection(&self) -> Selection {
            Selection {
                name: self.name.clone(),
                ..Selection::default()
            }
        }
        fn retry(&self) -> RetrySettings {
            RetrySettings::default()
        }
    }

    impl ReporterConfig for Table {
        fn build(&self, _: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Reporter>> {
            anyhow::bail!("not needed here")
        }
        fn service(&self, _: &BuildContext<'_>) -> Option<anyhow::Result<Arc<dyn Service>>> {
            Some(Ok(Arc::new(Counting(COUNTS.with(Arc::clone)))))
        }
        fn same_as(&self, other: &dyn ReporterConfig) -> bool {
            same_table(self, other)
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    async fn settle(counts: &Counts, started: usize, stopped: usize) {
        for _ in 0..500 {
            if counts.started.load(Ordering::SeqCst) == started
                && counts.stopped.load(Ordering::SeqCst) == stopped
            {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!(
            "started {} (want {started}), stopped {} (want {stopped})",
            counts.started.load(Ordering::SeqCst),
            counts.stopped.load(Ordering::SeqCst)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reload_keeps_an_unchanged_service_and_replaces_a_changed_one() {
        let counts = COUNTS.with(Arc::clone);
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), Durability::Normal).unwrap());
        let cx = BuildContext {
            secrets: &Default::default(),
            base: dir.path(),
            data_dir: dir.path(),
            service: None,
            store: None,
        };
        let context = || ServiceContext {
            store: store.clone(),
            api: None,
            shutdown: watch::channel(false).1,
            control: Default::default(),
        };
        let bot = |setting| Table {
            name: "bot".into(),
            setting,
        };
        let (a, b) = (bot(1), bot(1));
        let mut services = Services::default();

        let v1: Vec<(&'static str, &dyn ReporterConfig)> = vec![("irc", &a)];
        let p = services.prepare(&[], &v1, &cx).unwrap();
        assert_eq!(p.fresh(), 1);
        services.commit(p, context).await;
        settle(&counts, 1, 0).await;

        // The same table again: the running service is kept, not restarted.
        let v2: Vec<(&'static str, &dyn ReporterConfig)> = vec![("irc", &b)];
        let p = services.prepare(&v1, &v2, &cx).unwrap();
        assert_eq!(p.fresh(), 0);
        assert!(p.get("bot").is_some());
        services.commit(p, context).await;
        settle(&counts, 1, 0).await;

        // A changed table: the old service stops, a new one starts.
        let c = bot(2);
        let v3: Vec<(&'static str, &dyn ReporterConfig)> = vec![("irc", &c)];
        let p = services.prepare(&v2, &v3, &cx).unwrap();
        assert_eq!(p.fresh(), 1);
        services.commit(p, context).await;
        settle(&counts, 2, 1).await;
        assert_eq!(services.names(), ["bot"]);

        // Gone from the config: stopped. A prepared but refused reload touches nothing.
        let _refused = services.prepare(&v3, &v1, &cx).unwrap();
        settle(&counts, 2, 1).await;
        services.commit(Prepared::default(), context).await;
        settle(&counts, 2, 2).await;
        assert!(services.names().is_empty());
        services.stop_all().await;
    }
}
