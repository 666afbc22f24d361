//! A link simulator: a loopback TCP proxy that makes a connection behave like
//! a slow, lossy mobile link, and cuts it on demand.
//!
//! There is no kernel traffic shaping on the machines this runs on, so the
//! link is modelled in user space. [`LinkSim::start`] listens on
//! `127.0.0.1:0` and forwards every accepted connection to an upstream server
//! on loopback, shaping each direction with a [`Profile`].
//!
//! # The model
//!
//! Each direction of a connection is one serialised pipe:
//!
//! - **Segments.** The byte stream is cut into segments of [`SEGMENT_BYTES`]
//!   (1,000) bytes at fixed stream offsets. The proxy forwards what it reads
//!   at once (no Nagle), so a segment may go out as several packets when the
//!   sender wrote it in pieces; a packet never spans two segments.
//! - **Bandwidth.** A packet occupies the link for `size * 8 / bps` seconds,
//!   queued behind the packets before it. Bandwidths are payload rates: header
//!   overhead and acknowledgements are not modelled.
//! - **Delay.** A packet is delivered `rtt / 2` after it leaves the link.
//! - **Loss.** Each packet is lost with probability `loss` and then delivered
//!   one retransmission timeout ([`Profile::rto`], `max(1 s, 2 × rtt)` for the
//!   named profiles) later. Later packets keep using the link but are not
//!   delivered before it (TCP delivers in order), so a loss is a stall, not a
//!   gap. A retransmission is never lost again. Whether a packet is lost is a
//!   pure function of the seed, the connection number (accept order from 0),
//!   the direction, the segment number and the packet's place in its segment,
//!   so the same seed loses the same packets in every run.
//! - **Handshake.** TCP's connection set-up costs a round trip that loopback
//!   does not: the client may send from `rtt` after the proxy accepted it,
//!   the server from `1.5 × rtt`. So the first request on a new connection
//!   is answered after two round trips, later ones after one. Handshake
//!   packets are never lost.
//! - **Send buffer.** When more than [`SEND_BUFFER_BYTES`] wait for the link,
//!   the proxy stops reading from the sender, whose writes then block.
//! - **End of stream.** A half-close is forwarded behind the data, after `rtt / 2`.
//!
//! Due instants are computed when data is read and the writer sleeps until
//! each one, so delays do not accumulate error: deliveries are late by at
//! most the timer's one-millisecond tick plus scheduling.
//!
//! Cuts ([`CutPlan`], [`LinkSim::cut_after`], [`LinkSim::cut_all_now`]) close
//! both sockets of a connection abruptly: whatever the proxy still holds for
//! either side is lost.

mod conn;
mod cut;
mod draw;
mod profile;
mod shaper;
mod stats;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

pub use cut::CutPlan;
pub use profile::{MIN_RTO, Profile, UNLIMITED_BPS};
pub use shaper::{SEGMENT_BYTES, SEND_BUFFER_BYTES};
pub use stats::{ConnectionStats, Stats};

/// Which way data flows through the simulated link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → server.
    Up = 0,
    /// Server → client.
    Down = 1,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
        })
    }
}

/// A running link simulator. Dropping it closes the listener and every
/// connection through it.
#[derive(Debug)]
pub struct LinkSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
}

/// What the proxy's tasks share with the [`LinkSim`] handle.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    profile: Profile,
    seed: u64,
    counters: stats::Counters,
    plan: Mutex<Option<CutPlan>>,
    /// Live connections by number, each with the signal that cuts it.
    live: Mutex<HashMap<u64, Arc<Notify>>>,
}

impl LinkSim {
    /// Starts a proxy on `127.0.0.1:0` that forwards to `upstream` through a
    /// link shaped by `profile`; `seed` fixes every random choice (losses,
    /// random cut offsets). Must be called within a tokio runtime.
    ///
    /// Fails if `upstream` is not a loopback address: the simulator never
    /// sends traffic off the machine.
    pub async fn start(upstream: SocketAddr, profile: Profile, seed: u64) -> io::Result<LinkSim> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the link simulator only forwards to loopback, not {upstream}"),
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            profile,
            seed,
            counters: stats::Counters::default(),
            plan: Mutex::new(None),
            live: Mutex::new(HashMap::new()),
        });
        let accept_loop = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(LinkSim {
            addr,
            shared,
            accept_loop,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The profile every connection is shaped with.
    pub fn profile(&self) -> &Profile {
        &self.shared.profile
    }

    /// The seed every random choice is drawn from.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Each connection's own counters since the start or the last reset, in
    /// accept order.
    pub fn connections(&self) -> Vec<ConnectionStats> {
        self.shared.counters.connections()
    }

    /// Sets every counter to zero and forgets the connections counted so far.
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
    }

    /// Cuts the next connection once `bytes` bytes have crossed in `direction`;
    /// shorthand for `set_cut_plan(CutPlan::after(direction, bytes))`.
    pub fn cut_after(&self, direction: Direction, bytes: u64) {
        self.set_cut_plan(CutPlan::after(direction, bytes));
    }

    /// Replaces the cut plan; it applies to connections accepted from now on.
    pub fn set_cut_plan(&self, plan: CutPlan) {
        *self.shared.plan.lock().unwrap() = Some(plan);
    }

    /// Drops the cut plan: connections accepted from now on pass normally.
    pub fn clear_cut_plan(&self) {
        *self.shared.plan.lock().unwrap() = None;
    }

    /// Cuts every connection the proxy has accepted and not yet closed, now,
    /// and returns how many there were.
    ///
    /// The sockets close as soon as each connection's task runs, normally
    /// within microseconds; [`Stats::cuts`] counts each cut before its sockets
    /// close. Connections accepted afterwards pass normally.
    pub fn cut_all_now(&self) -> usize {
        let live = self.shared.live.lock().unwrap();
        for cancel in live.values() {
            cancel.notify_one();
        }
        live.len()
    }
}

impl Drop for LinkSim {
    fn drop(&mut self) {
        // The accept loop owns every connection task; aborting it drops them all.
        self.accept_loop.abort();
    }
}

impl Shared {
    /// The cut, if any, for the connection numbered `index`.
    fn take_cut(&self, index: u64) -> Option<cut::CutPoint> {
        let mut plan = self.plan.lock().unwrap();
        let cut = plan.as_mut()?.take(self.seed, index);
        if plan.as_ref().is_some_and(CutPlan::is_used_up) {
            *plan = None;
        }
        cut
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    let mut next_index = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let accepted_at = Instant::now();
                    let index = next_index;
                    next_index += 1;
                    let turns = shared.counters.connection_opened(index);
                    let cut = shared.take_cut(index);
                    let registration = conn::Registration::new(shared.clone(), index);
                    connections.spawn(conn::run(client, registration, turns, accepted_at, cut));
                }
                // Out of file descriptors or similar: wait instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
