//! Automatic sync: a background thread that keeps one connection to `/batch`
//! open, syncs when the user edits something and every interval, and backs
//! off while the server cannot be reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{ErrorKind, LianxinError, Result, guard};
use crate::net::{Socket, SyncOptions};
use crate::records::SyncReport;
use crate::replica::Replica;

/// What the app hears from automatic sync. Called on the sync thread.
#[uniffi::export(callback_interface)]
pub trait SyncListener: Send + Sync {
    /// A sync pass finished: the events say what changed, what was refused.
    fn on_synced(&self, report: SyncReport);
    /// A sync pass failed. `kind` is the error kind (`network`,
    /// `unauthorized`, …); the next pass is in `retry_in_ms`, or, for
    /// `unauthorized`, after `set_access_token`.
    fn on_sync_error(&self, kind: String, message: String, retry_in_ms: u64);
}

/// Wakes the sync thread early: set by local edits and a new token.
#[derive(Default)]
pub(crate) struct Wake {
    pending: Mutex<bool>,
    cond: Condvar,
}

impl Wake {
    pub fn notify(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_all();
    }

    /// Waits until notified or `timeout` passed; returns whether notified.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut pending, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |p| !*p)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *pending)
    }
}

pub(crate) struct AutoSync {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Refused => "refused",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::Network => "network",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Storage => "storage",
        ErrorKind::Internal => "internal",
    }
}

fn run(
    replica: Arc<Replica>,
    listener: Box<dyn SyncListener>,
    options: SyncOptions,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let once = SyncOptions {
        max_attempts: 1,
        ..options.clone()
    };
    let mut socket: Option<Socket> = None;
    let mut backoff = options.initial_backoff_ms.max(1);
    let mut wait = Duration::ZERO;
    loop {
        if wait > Duration::ZERO {
            replica.wake.wait(wait);
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replica.sync_on(&mut socket, &once)))
            .unwrap_or_else(|_| Err(LianxinError::Internal("the sync pass panicked".into())));
        match pass {
            Ok(report) => {
                backoff = options.initial_backoff_ms.max(1);
                wait = interval;
                listener.on_synced(report);
            }
            Err(e) => {
                let retry = match e.kind() {
                    // A new token wakes the thread; until then there is no point.
                    ErrorKind::Unauthorized => interval,
                    _ => {
                        let jitter = crate::replica::random_bytes::<1>()
                            .map(|b| u64::from(b[0]))
                            .unwrap_or(0);
                        let b = backoff + backoff * jitter / 1024;
                        backoff = (backoff * 2).min(options.max_backoff_ms.max(options.initial_backoff_ms));
                        Duration::from_millis(b)
                    }
                };
                wait = retry;
                listener.on_sync_error(kind_name(e.kind()).into(), e.to_string(), retry.as_millis() as u64);
            }
        }
    }
    if let Some(mut s) = socket {
        let _ = s.close(None);
        let _ = s.flush();
    }
}

#[uniffi::export]
impl Replica {
    /// Starts syncing in the background: at once, after every local edit
    /// (and every new token), and every `interval_ms`; failed passes back
    /// off exponentially. One connection is kept open between passes.
    pub fn start_auto_sync(
        self: Arc<Self>,
        listener: Box<dyn SyncListener>,
        options: SyncOptions,
        interval_ms: u64,
    ) -> Result<()> {
        guard(|| {
            let mut auto = self.auto.lock().unwrap_or_else(|p| p.into_inner());
            if auto.as_ref().is_some_and(|a| !a.thread.is_finished()) {
                return Err(LianxinError::invalid("automatic sync is already running"));
            }
            let stop = Arc::new(AtomicBool::new(false));
            let interval = Duration::from_millis(interval_ms.max(1000));
            let replica = Arc::clone(&self);
            let flag = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name("lianxin-sync".into())
                .spawn(move || run(replica, listener, options, interval, flag))
                .map_err(|e| LianxinError::Internal(format!("cannot start the sync thread: {e}")))?;
            *auto = Some(AutoSync { stop, thread });
            Ok(())
        })
    }

    /// Stops automatic sync; returns once the pass under way (if any) has ended.
    pub fn stop_auto_sync(&self) {
        let auto = self.auto.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(a) = auto {
            a.stop.store(true, Ordering::SeqCst);
            self.wake.notify();
            let _ = a.thread.join();
        }
    }

    /// Asks automatic sync for a pass now (local edits do this by themselves).
    pub fn sync_soon(&self) {
        self.wake.notify();
    }
}
