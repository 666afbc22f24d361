//! Notification fan-out: durable per-user inboxes, live delivery, duty rosters, the clock
//! scheduler and the outbox of pushes and text messages.
//!
//! sync-core decides what to tell whom (`sync_core::notify`); this module does everything with
//! side effects:
//!
//! * sync-core derives the notifications a write raises, and the write path
//!   ([`crate::write`], with its [`fanout`](crate::write::fanout)) stores them with inbox rows
//!   for people (units through their duty roster, households through their members) and outbox
//!   jobs, inside the transaction that stores the change;
//! * the dispatcher reads the inbox feed (woken by local commits and, on PostgreSQL, by
//!   `LISTEN`/`NOTIFY` from every node) and hands each item to its user's live connections
//!   through the [`Hub`]; [`InboxSubscription`] is what SSE, the automerge-repo WebSocket and
//!   any other transport follow;
//! * the scheduler ([`NotifyService::tick`]) sweeps petition clocks (due soon, overdue,
//!   auto-escalation written by the server's System principal), hands units' open items to the
//!   incoming shift, and works the outbox.
//!
//! Every step is keyed, so two nodes, a retry or a restart never deliver, escalate or push
//! twice: notifications by their sync-core key, inbox rows by (notification, user), escalations by a
//! fired key recorded with the escalation, outbox jobs by (key, user, channel).

mod hub;
mod outbox;
mod scheduler;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sync_core::UserId;
use sync_core::notify::EscalationPolicy;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::docs::{DocEvent, DocService};
use crate::storage::{AckError, InboxItem, Storage, StorageError};

pub use crate::write::FanoutSettings;
pub use hub::{Hub, InboxSubscription};
pub use outbox::Gateways;
pub use scheduler::TickReport;

/// How notifications are delivered and clocks are run.
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// Push-gateway webhook: receives `{key, user, kind, text, doc, urgent, cursor}` for people
    /// who were not connected when an item arrived.
    pub push_url: Option<String>,
    /// SMS-gateway webhook for urgent items: receives `{key, user, phone, text}`.
    pub sms_url: Option<String>,
    /// How long an outbox job waits for a live connection to deliver its item first.
    pub push_delay: Duration,
    /// Time limit of one gateway request.
    pub gateway_timeout: Duration,
    /// Attempts before a job goes to the dead letters.
    pub max_attempts: u32,
    /// The first retry waits this long; each further one twice as long, up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// When overdue petitions escalate on their own.
    pub escalation: EscalationPolicy,
    /// How often the scheduler runs (real time).
    pub tick_every: Duration,
    /// How often the dispatcher reads the feed when nothing woke it.
    pub poll_every: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            push_url: None,
            sms_url: None,
            push_delay: Duration::from_secs(30),
            gateway_timeout: Duration::from_secs(10),
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3600),
            escalation: EscalationPolicy::default(),
            tick_every: Duration::from_secs(15),
            poll_every: Duration::from_secs(1),
        }
    }
}

impl NotifySettings {
    /// What fan-out needs to queue outbox jobs.
    pub fn fanout(&self) -> FanoutSettings {
        FanoutSettings {
            push: self.push_url.is_some(),
            sms: self.sms_url.is_some(),
            push_delay_ms: i64::try_from(self.push_delay.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn outbox_enabled(&self) -> bool {
        self.push_url.is_some() || self.sms_url.is_some()
    }
}

/// Errors of the notification service.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Docs(#[from] crate::docs::DocError),
    #[error("gateway client: {0}")]
    Gateway(String),
}

/// Cheap to clone: every clone shares one hub, one dispatcher and one scheduler.
#[derive(Clone)]
pub struct NotifyService {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    docs: DocService,
    clock: Arc<dyn Clock>,
    settings: NotifySettings,
    hub: Arc<Hub>,
    gateways: Gateways,
    /// Wakes the dispatcher after a local commit of inbox rows.
    wake: Notify,
    delivered: Mutex<Option<mpsc::UnboundedReceiver<i64>>>,
    /// Turns true when the server shuts down: long-lived streams end.
    closing: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for NotifyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyService")
            .field("connected_users", &self.inner.hub.connected_users())
            .finish()
    }
}

impl NotifyService {
    pub fn new(
        storage: Storage,
        docs: DocService,
        clock: Arc<dyn Clock>,
        settings: NotifySettings,
    ) -> Result<Self, NotifyError> {
        let (tx, rx) = if settings.outbox_enabled() {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let gateways = Gateways::new(&settings)?;
        Ok(NotifyService {
            inner: Arc::new(Inner {
                storage,
                docs,
                clock,
                hub: Arc::new(Hub::new(tx)),
                gateways,
                settings,
                wake: Notify::new(),
                delivered: Mutex::new(rx),
                closing: tokio::sync::watch::channel(false).0,
            }),
        })
    }

    pub fn settings(&self) -> &NotifySettings {
        &self.inner.settings
    }

    /// Up to `limit` items of `user`'s inbox after `after`; never items at or
    /// before the acknowledged cursor.
    pub async fn inbox_after(&self, user: &UserId, after: i64, limit: u32) -> Result<Vec<InboxItem>, StorageError> {
        let acked = self.inner.storage.inbox().acked(user).await?;
        self.inner.storage.inbox().after(user, after.max(acked), limit).await
    }

    /// How far `user` has acknowledged.
    pub async fn acked(&self, user: &UserId) -> Result<i64, StorageError> {
        self.inner.storage.inbox().acked(user).await
    }

    /// Acknowledges `user`'s inbox up to `cursor`: those items are not returned again.
    pub async fn ack(&self, user: &UserId, cursor: i64) -> Result<Result<i64, AckError>, StorageError> {
        let now = self.inner.clock.now();
        self.inner.storage.inbox().ack(user, cursor, now).await
    }

    /// Follows `user`'s inbox after `cursor` (raised to the acknowledged cursor).
    pub async fn subscribe(&self, user: &UserId, cursor: i64) -> Result<InboxSubscription, StorageError> {
        let acked = self.inner.storage.inbox().acked(user).await?;
        Ok(InboxSubscription::new(
            self.inner.hub.clone(),
            self.inner.storage.clone(),
            user.clone(),
            cursor.max(acked),
        ))
    }

    /// Follows only what arrives from now on.
    pub async fn subscribe_live(&self, user: &UserId) -> Result<InboxSubscription, StorageError> {
        let head = self.inner.storage.inbox().head(Some(user)).await?;
        Ok(InboxSubscription::new(
            self.inner.hub.clone(),
            self.inner.storage.clone(),
            user.clone(),
            head,
        ))
    }

    /// Ends live streams (SSE): the server is shutting down and waits for open responses.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`NotifyService::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.inner.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// Starts the dispatcher, the scheduler and (with a gateway) the delivery
    /// marker; abort the handles to stop them.
    pub fn spawn_workers(&self) -> Vec<JoinHandle<()>> {
        let mut out = Vec::new();
        let me = self.clone();
        out.push(tokio::spawn(async move { me.dispatch().await }));
        let me = self.clone();
        out.push(tokio::spawn(async move {
            let period = me.inner.settings.tick_every;
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = me.tick().await {
                    tracing::warn!(error = %e, "notification scheduler tick failed");
                }
            }
        }));
        if let Some(rx) = self.inner.delivered.lock().expect("delivered lock").take() {
            let me = self.clone();
            out.push(tokio::spawn(async move { me.mark_delivered(rx).await }));
        }
        out
    }

    /// Wakes the dispatcher (after inbox rows were committed outside a document change).
    fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Reads the inbox feed and hands every new item to its user's live
    /// connections on this node. Starts at the feed's head: earlier items
    /// reach a connection through its own replay.
    async fn dispatch(&self) {
        const PAGE: u32 = 1000;
        let storage = &self.inner.storage;
        let mut cursor = loop {
            match storage.inbox().head(None).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "inbox feed unavailable");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut events = self.inner.docs.subscribe();
        let mut listener = match storage.inbox().listener().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other nodes' notifications; polling");
                None
            }
        };
        let mut read_feed = true;
        loop {
            while read_feed {
                match storage.inbox().feed(cursor, PAGE).await {
                    Ok(page) => {
                        read_feed = page.len() == PAGE as usize;
                        if let Some(last) = page.last() {
                            cursor = cursor.max(last.cursor);
                        }
                        self.inner.hub.publish(page);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the inbox feed failed");
                        break;
                    }
                }
            }
            read_feed = true;
            let from_other_nodes = async {
                match listener.as_mut() {
                    Some(l) => {
                        if let Err(e) = l.recv().await {
                            tracing::warn!(error = %e, "inbox listener failed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => {
                    // A local commit hands over the items it wrote. They are
                    // published as they are when they follow the cursor
                    // directly, so nothing committed in between is skipped,
                    // and dropped when the feed already brought them (a
                    // transaction commits all its rows at once). Anything
                    // else (a gap, a lagged channel) reads the feed.
                    if let Ok(DocEvent { inbox, .. }) = &event
                        && let (Some(first), Some(last)) = (inbox.first(), inbox.last())
                    {
                        if last.cursor <= cursor {
                            read_feed = false;
                        } else if first.cursor == cursor + 1 {
                            self.inner.hub.publish(inbox.iter().cloned());
                            cursor = last.cursor;
                            read_feed = false;
                        }
                    }
                }
                _ = self.inner.wake.notified() => {}
                _ = from_other_nodes => {}
                _ = tokio::time::sleep(self.inner.settings.poll_every) => {}
            }
        }
    }

    /// Records, in batches, which items live connections delivered.
    async fn mark_delivered(&self, mut rx: mpsc::UnboundedReceiver<i64>) {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 1000).await > 0 {
            let now = self.inner.clock.now();
            if let Err(e) = self.inner.storage.inbox().mark_delivered(&batch, now).await {
                tracing::warn!(error = %e, "could not record live deliveries");
            }
            batch.clear();
        }
    }
}
