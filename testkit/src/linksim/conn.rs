//! One proxied connection: two shaped pipes, one per direction, and the cut.
//!
//! Each pipe is a reader that timestamps what it reads and asks the
//! [`Shaper`] when it is due, and a writer that sleeps until each due instant
//! and writes. Everything a connection owns (both sockets, the queued
//! packets) lives in one future, so cutting the connection is dropping it.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, sleep_until};

use super::cut::CutPoint;
use super::shaper::{SEGMENT_BYTES, Shaper};
use super::stats::RoundTrips;
use super::{Direction, Shared};

/// What the reader hands the writer.
enum Item {
    Data {
        due: Instant,
        bytes: Vec<u8>,
        lost: bool,
    },
    /// The sender shut down its side; shut down the receiver's side at `due`.
    End {
        due: Instant,
    },
}

/// Why a pipe stopped before its stream ended; either way the whole
/// connection is dropped.
#[derive(Debug)]
enum Stop {
    Cut,
    /// A socket failed (the peer reset it, say).
    Io,
}

/// Forwards `client` to the upstream server until both directions end, a
/// socket fails, or the connection is cut.
pub(super) async fn run(
    client: TcpStream,
    registration: Registration,
    turns: Arc<RoundTrips>,
    accepted: Instant,
    cut: Option<CutPoint>,
) {
    let Registration { shared, index, cancel } = &registration;
    let (shared, index) = (&**shared, *index);
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    // The shaper decides when bytes move; Nagle's algorithm must not add its own delays.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();

    // TCP's three-way handshake: the client's connect() returned at once on
    // loopback, but on the simulated link its SYN-ACK arrives one round trip
    // after the SYN, and the server hears the final ACK half a round trip later.
    let profile = &shared.profile;
    let up_opens = accepted + profile.rtt;
    let down_opens = up_opens + profile.rtt / 2;
    let up = pipe(
        client_read,
        server_write,
        Shaper::new(profile, Direction::Up, shared.seed, index, up_opens),
        Direction::Up,
        cut.filter(|c| c.direction == Direction::Up).map(|c| c.bytes),
        shared,
        &turns,
    );
    let down = pipe(
        server_read,
        client_write,
        Shaper::new(profile, Direction::Down, shared.seed, index, down_opens),
        Direction::Down,
        cut.filter(|c| c.direction == Direction::Down).map(|c| c.bytes),
        shared,
        &turns,
    );
    tokio::select! {
        () = async {
            cancel.notified().await;
            // Counted before the sockets are dropped, so whoever sees the
            // connection close also sees the count.
            shared.counters.connection_cut();
        } => {}
        _ = async { tokio::try_join!(up, down) } => {}
    }
}

/// A connection's place in the live set, which it leaves when it ends,
/// however it ends (even if its task is dropped before it first runs).
pub(super) struct Registration {
    shared: Arc<Shared>,
    index: u64,
    /// Notified to cut the connection.
    cancel: Arc<Notify>,
}

impl Registration {
    /// Adds connection number `index` to the live set.
    pub(super) fn new(shared: Arc<Shared>, index: u64) -> Self {
        let cancel = Arc::new(Notify::new());
        shared.live.lock().unwrap().insert(index, cancel.clone());
        Registration { shared, index, cancel }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.live.lock().unwrap().remove(&self.index);
    }
}

async fn pipe(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    shaper: Shaper,
    direction: Direction,
    cut_at: Option<u64>,
    shared: &Shared,
    turns: &RoundTrips,
) -> Result<(), Stop> {
    let (queue, packets) = unbounded_channel();
    let read_turns = (direction == Direction::Up).then_some(turns);
    tokio::try_join!(
        read_side(from, shaper, queue, read_turns),
        write_side(to, packets, direction, cut_at, shared, turns)
    )?;
    Ok(())
}

/// Reads what one side sends and queues it for the link; `turns` is told of
/// data read from the client (the up direction).
async fn read_side(
    mut from: OwnedReadHalf,
    mut shaper: Shaper,
    queue: UnboundedSender<Item>,
    turns: Option<&RoundTrips>,
) -> Result<(), Stop> {
    let mut buf = [0u8; SEGMENT_BYTES];
    loop {
        if let Some(resume) = shaper.read_resume_at(Instant::now()) {
            sleep_until(resume).await;
        }
        let len = shaper.next_read_len();
        let n = from.read(&mut buf[..len]).await.map_err(|_| Stop::Io)?;
        let now = Instant::now();
        let item = if n == 0 {
            Item::End {
                due: shaper.finish(now),
            }
        } else {
            if let Some(turns) = turns {
                turns.sent_up(&buf[..n]);
            }
            let packet = shaper.send(now, n);
            Item::Data {
                due: packet.due,
                bytes: buf[..n].to_vec(),
                lost: packet.lost,
            }
        };
        // A closed queue means the writer stopped, which stops the connection.
        if queue.send(item).is_err() || n == 0 {
            return Ok(());
        }
    }
}

async fn write_side(
    mut to: OwnedWriteHalf,
    mut packets: UnboundedReceiver<Item>,
    direction: Direction,
    cut_at: Option<u64>,
    shared: &Shared,
    turns: &RoundTrips,
) -> Result<(), Stop> {
    let mut delivered = 0u64;
    let cut = || {
        shared.counters.connection_cut();
        Err(Stop::Cut)
    };
    if cut_at == Some(0) {
        return cut();
    }
    while let Some(item) = packets.recv().await {
        match item {
            Item::Data { due, bytes, lost } => {
                wait_until(due).await;
                let len = match cut_at {
                    Some(limit) => bytes.len().min((limit - delivered) as usize),
                    None => bytes.len(),
                };
                shared.counters.delivered(direction, len, lost, turns);
                to.write_all(&bytes[..len]).await.map_err(|_| Stop::Io)?;
                delivered += len as u64;
                if cut_at == Some(delivered) {
                    return cut();
                }
            }
            Item::End { due } => {
                wait_until(due).await;
                to.shutdown().await.map_err(|_| Stop::Io)?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Sleeps until `due` unless it has passed (a timer would still round it up
/// to the next millisecond tick).
async fn wait_until(due: Instant) {
    if due > Instant::now() {
        sleep_until(due).await;
    }
}
