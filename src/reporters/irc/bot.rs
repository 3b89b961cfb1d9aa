//! The bot: its settings, what each contact (a channel, or a nick in private) asked to be told,
//! which builds are watched, and the link to the connection task that sends its lines.
//!
//! Contacts persist in the store's `bot_state` table (key `irc/<reporter>/contact/<folded
//! name>`), so `notify on` and `mute` survive a restart, as Buildbot keeps them in its state
//! table. The configured `notify_events` are added to every configured channel and pm nick
//! when the bot is made, as Buildbot adds them at each join.

use super::config::Settings;
use super::text::{self, fold, is_channel};
use crate::buildbot_api::BuildbotApi;
use crate::outbox::{RetryClass, SinkError};
use crate::reporters::{DaemonControl, Service, ServiceContext, ServiceFuture};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// What one contact asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The name as first written.
    pub name: String,
    /// The notify events.
    pub events: BTreeSet<String>,
    /// Muted: nothing is sent to it.
    #[serde(default)]
    pub muted: bool,
}

/// The bot's state, shared by the connection task, the commands, render and the sink.
#[derive(Debug, Default)]
pub struct State {
    /// By folded name.
    pub contacts: BTreeMap<String, Contact>,
    /// The channels the bot is to be on (configured, or joined by command), by folded name:
    /// the name and key.
    pub channels: BTreeMap<String, (String, Option<String>)>,
    /// Builds watched (`watch`): (folded target, target, buildid).
    pub watches: Vec<(String, String, i64)>,
    /// Workers announced missing and not back yet.
    pub missing_workers: BTreeSet<String>,
    /// The channels the bot is on now (folded), as the server confirmed.
    pub joined: BTreeSet<String>,
    /// Channel operators (`@`, `&`, `~`, `%`) per joined channel, folded.
    pub ops: BTreeMap<String, BTreeSet<String>>,
}

/// One item for the connection task: raw lines (no CR LF), sent in order and paced by flood
/// control; `done` is told when the last line was written, `sent` counts the lines written.
pub struct Outbound {
    pub lines: Vec<String>,
    pub done: Option<oneshot::Sender<()>>,
    pub sent: Arc<AtomicUsize>,
}

/// The link to the server as the connection task last reported it.
#[derive(Clone)]
pub enum Link {
    /// Not connected, and why.
    Down(String),
    /// Registered, channels joined (or being joined).
    Up(Up),
}

/// A live connection.
#[derive(Clone)]
pub struct Up {
    pub tx: mpsc::UnboundedSender<Outbound>,
    /// The nick the server knows us by.
    pub nick: String,
    /// Bytes the server's `:nick!user@host ` prefix takes when it relays our lines.
    pub prefix_room: Arc<AtomicUsize>,
}

/// The IRC bot: a [`Service`] (the connection task) and what the reporter renders with.
pub struct IrcBot {
    pub(super) name: String,
    pub(super) settings: Settings,
    store: Option<Arc<Store>>,
    pub(super) state: Mutex<State>,
    pub(super) link: watch::Sender<Link>,
    /// The followed master's API and the daemon's control, once the service runs.
    pub(super) api: Mutex<Option<BuildbotApi>>,
    pub(super) control: Mutex<DaemonControl>,
}

impl IrcBot {
    /// Makes the bot, reading the contacts it persisted in `store`.
    pub fn new(name: &str, settings: Settings, store: Option<Arc<Store>>) -> IrcBot {
        let mut state = State::default();
        for (channel, key) in &settings.channels {
            state
                .channels
                .insert(fold(channel), (channel.clone(), key.clone()));
        }
        if let Some(store) = &store {
            match store.bot_state(&format!("irc/{name}/")) {
                Ok(rows) => {
                    for (key, value) in rows {
                        let rest = &key[format!("irc/{name}/").len()..];
                        if let Some(folded) = rest.strip_prefix("contact/") {
                            match serde_json::from_str::<Contact>(&value) {
                                Ok(c) => {
                                    state.contacts.insert(folded.to_owned(), c);
                                }
                                Err(e) => {
                                    tracing::warn!(reporter = %name, key = %key, error = %e, "ignoring an unreadable IRC contact in the store")
                                }
                            }
                        } else if rest == "missing_workers"
                            && let Ok(w) = serde_json::from_str::<BTreeSet<String>>(&value)
                        {
                            state.missing_workers = w;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(reporter = %name, error = %e, "cannot read the IRC bot's state from the store")
                }
            }
        }
        let defaults: Vec<String> = settings
            .channels
            .iter()
            .map(|(c, _)| c.clone())
            .chain(settings.pm_to_nicks.iter().cloned())
            .collect();
        for target in defaults {
            let c = state
                .contacts
                .entry(fold(&target))
                .or_insert_with(|| Contact {
                    name: target.clone(),
                    ..Contact::default()
                });
            c.events.extend(settings.notify_events.iter().cloned());
        }
        let down = Link::Down("not connected yet".into());
        IrcBot {
            name: name.to_owned(),
            settings,
            store,
            state: Mutex::new(state),
            link: watch::channel(down).0,
            api: Mutex::new(None),
            control: Mutex::new(DaemonControl::default()),
        }
    }

    /// The state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves contact `folded` (or deletes it when it asks for nothing and is not muted).
    pub fn save_contact(&self, folded: &str) {
        let Some(store) = &self.store else { return };
        let value = self
            .state()
            .contacts
            .get(folded)
            .filter(|c| !c.events.is_empty() || c.muted)
            .map(|c| serde_json::to_string(c).expect("a contact serialises"));
        let key = format!("irc/{}/contact/{folded}", self.name);
        if let Err(e) = store.set_bot_state(&key, value.as_deref()) {
            tracing::warn!(reporter = %self.name, error = %e, "cannot save the IRC bot's notify settings");
        }
    }

    /// Saves the missing workers.
    pub fn save_missing_workers(&self) {
        let Some(store) = &self.store else { return };
        let value = serde_json::to_string(&self.state().missing_workers).expect("a set serialises");
        let key = format!("irc/{}/missing_workers", self.name);
        if let Err(e) = store.set_bot_state(&key, Some(&value)) {
            tracing::warn!(reporter = %self.name, error = %e, "cannot save the IRC bot's missing workers");
        }
    }

    /// The contact for `target`, made if new.
    pub fn with_contact<T>(&self, target: &str, f: impl FnOnce(&mut Contact) -> T) -> T {
        let folded = fold(target);
        let out = {
            let mut st = self.state();
            let c = st
                .contacts
                .entry(folded.clone())
                .or_insert_with(|| Contact {
                    name: target.to_owned(),
                    ..Contact::default()
                });
            f(c)
        };
        self.save_contact(&folded);
        out
    }

    /// The store, when the daemon has one.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// The connection, if up.
    pub fn up(&self) -> Option<Up> {
        match &*self.link.borrow() {
            Link::Up(u) => Some(u.clone()),
            Link::Down(_) => None,
        }
    }

    /// `PRIVMSG` (or, on a channel with `notice_on_channel`, `NOTICE`).
    fn command_for(&self, target: &str) -> &'static str {
        if self.settings.notice_on_channel && is_channel(target) {
            "NOTICE"
        } else {
            "PRIVMSG"
        }
    }

    /// Says `text` (lines split on `\n`) to `target` now, if connected and the target is not
    /// muted: command replies. Nothing is queued while disconnected.
    pub fn say(&self, target: &str, text: &str) {
        if self
            .state()
            .contacts
            .get(&fold(target))
            .is_some_and(|c| c.muted)
        {
            return;
        }
        let Some(up) = self.up() else { return };
        let room = up.prefix_room.load(Ordering::Relaxed);
        let lines = text::message_lines(self.command_for(target), target, text, room, true);
        if lines.is_empty() {
            return;
        }
        let _ = up.tx.send(Outbound {
            lines,
            done: None,
            sent: Arc::default(),
        });
    }

    /// Sends raw lines (JOIN, PART) now, if connected.
    pub fn raw(&self, lines: Vec<String>) {
        if let Some(up) = self.up() {
            let _ = up.tx.send(Outbound {
                lines,
                done: None,
                sent: Arc::default(),
            });
        }
    }

    /// Delivers a notification's `lines` to `target` (the sink's work): waits up to `wait` for
    /// the connection, queues the lines behind flood control and returns when the last one was
    /// written. Not connected, or the connection lost before any line went: a retry. Lost
    /// after some lines went: delivered in part (never repeated, so nothing is said twice).
    pub async fn deliver(
        &self,
        target: &str,
        lines: &[String],
        wait: Duration,
    ) -> Result<String, SinkError> {
        let folded = fold(target);
        {
            let st = self.state();
            if st.contacts.get(&folded).is_some_and(|c| c.muted) {
                return Ok(format!("not sent: {target} is muted"));
            }
            if is_channel(target) && !st.channels.contains_key(&folded) {
                return Ok(format!("not sent: the bot left {target}"));
            }
        }
        let mut link = self.link.subscribe();
        let up = match tokio::time::timeout(wait, link.wait_for(|l| matches!(l, Link::Up(_)))).await
        {
            Ok(Ok(l)) => match &*l {
                Link::Up(u) => u.clone(),
                Link::Down(_) => unreachable!("waited for Up"),
            },
            _ => {
                let why = match &*self.link.borrow() {
                    Link::Down(why) => why.clone(),
                    Link::Up(_) => "the connection is changing".into(),
                };
                return Err(SinkError::new(
                    RetryClass::Backoff,
                    format!(
                        "not connected to {}:{}: {why}",
                        self.settings.host, self.settings.port
                    ),
                ));
            }
        };
        let room = up.prefix_room.load(Ordering::Relaxed);
        let raw: Vec<String> = lines
            .iter()
            .flat_map(|l| text::message_lines(self.command_for(target), target, l, room, true))
            .collect();
        if raw.is_empty() {
            return Ok("nothing to say".into());
        }
        let total = raw.len();
        let sent = Arc::new(AtomicUsize::new(0));
        let (done, finished) = oneshot::channel();
        if up
            .tx
            .send(Outbound {
                lines: raw,
                done: Some(done),
                sent: sent.clone(),
            })
            .is_err()
        {
            return Err(SinkError::new(
                RetryClass::Backoff,
                "the connection closed before the notification was queued",
            ));
        }
        match finished.await {
            Ok(()) => Ok(format!("sent {total} line(s) to {target}")),
            Err(_) => match sent.load(Ordering::SeqCst) {
                0 => Err(SinkError::new(
                    RetryClass::Backoff,
                    "the connection was lost before the notification was sent",
                )),
                n => Ok(format!(
                    "sent {n} of {total} line(s) to {target}; the connection was lost (not repeated)"
                )),
            },
        }
    }
}

impl Service for IrcBot {
    fn run(self: Arc<Self>, cx: ServiceContext) -> ServiceFuture {
        *self.api.lock().unwrap_or_else(|e| e.into_inner()) = cx.api.clone();
        *self.control.lock().unwrap_or_else(|e| e.into_inner()) = cx.control.clone();
        Box::pin(super::conn::run(self, cx.shutdown))
    }

    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot() -> IrcBot {
        let settings = crate::reporters::irc::config::test_settings(
            "[[reporter.irc]]\nname = \"irc\"\nhost = \"127.0.0.1\"\nnick = \"bot\"\n\
             channels = [\"#builds\"]\nnotify_events = [\"failure\"]\n",
        )
        .remove(0);
        IrcBot::new("irc", settings, None)
    }

    #[tokio::test]
    async fn a_delivery_waits_for_the_link_and_is_retried_without_it() {
        let b = bot();
        let lines = ["hello".to_owned()];
        let e = b
            .deliver("#builds", &lines, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!(e.class, RetryClass::Backoff);
        assert!(e.message.contains("not connected to 127.0.0.1:6667"), "{e}");
        // A muted target, and a channel the bot left: delivered as not sent, never retried.
        b.with_contact("#builds", |c| c.muted = true);
        let ok = b.deliver("#builds", &lines, Duration::ZERO).await.unwrap();
        assert_eq!(ok, "not sent: #builds is muted");
        let ok = b.deliver("#gone", &lines, Duration::ZERO).await.unwrap();
        assert_eq!(ok, "not sent: the bot left #gone");
        // Connected: the lines go to the connection task, which says when they are written.
        let (tx, mut rx) = mpsc::unbounded_channel();
        b.link.send_replace(Link::Up(Up {
            tx,
            nick: "bot".into(),
            prefix_room: Arc::new(AtomicUsize::new(20)),
        }));
        let writer = tokio::spawn(async move {
            let mut item: Outbound = rx.recv().await.unwrap();
            item.sent.store(item.lines.len(), Ordering::SeqCst);
            let _ = item.done.take().unwrap().send(());
            item.lines
        });
        let ok = b.deliver("alice", &lines, Duration::ZERO).await.unwrap();
        assert_eq!(ok, "sent 1 line(s) to alice");
        assert_eq!(writer.await.unwrap(), ["PRIVMSG alice :hello"]);
    }

    #[test]
    fn configured_targets_get_the_configured_events() {
        let b = bot();
        let st = b.state();
        assert_eq!(
            st.contacts
                .get("#builds")
                .map(|c| c.events.iter().cloned().collect::<Vec<_>>()),
            Some(vec!["failure".to_owned()])
        );
        assert!(st.channels.contains_key("#builds"));
    }
}
