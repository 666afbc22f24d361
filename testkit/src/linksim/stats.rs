//! Traffic counters of a simulated link and their snapshot, [`Stats`].

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Direction;

/// A snapshot of a link's counters since it started or was last reset.
///
/// Bytes count as crossed when the proxy hands them to the receiving socket,
/// so a receiver that has read `n` bytes always sees a counter of at least `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes delivered client → server.
    pub bytes_up: u64,
    /// Bytes delivered server → client.
    pub bytes_down: u64,
    /// Client connections accepted.
    pub connections: u64,
    /// Connections cut, by a plan or by [`super::LinkSim::cut_all_now`].
    pub cuts: u64,
    /// Round trips: each time data is delivered down (to the client) when the
    /// last data delivered on the same connection went up (to the server) and
    /// nothing the client sent is still on its way up. The client spoke, then
    /// could only wait to hear back: a request answered by a response is one
    /// round trip however many packets either takes; a server greeting before
    /// the client says anything is none; two requests pipelined before the
    /// first response are one, since the client waited for one turn only; and
    /// an answer that arrives while the client is still sending (the two
    /// directions overlapping) costs the client no wait and is not counted.
    pub round_trips: u64,
    /// Packets delivered only after a retransmission timeout.
    pub retransmissions: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bytes_up={} bytes_down={} connections={} cuts={} round_trips={} retransmissions={}",
            self.bytes_up, self.bytes_down, self.connections, self.cuts, self.round_trips, self.retransmissions
        )
    }
}

/// One connection's share of a link's traffic since the link started or was
/// last reset (see [`super::LinkSim::connections`]), so a caller can tell
/// its requests apart: a sign-in, a WebSocket's upgrade and exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// The connection's number, in accept order from 0.
    pub index: u64,
    /// The first two words of the first line the client sent, without a
    /// query string: an HTTP request's method and path (`GET /batch`), so no
    /// token is kept. Empty while the client has sent nothing.
    pub opening: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Round trips on this connection, counted as [`Stats::round_trips`].
    pub round_trips: u64,
}

impl ConnectionStats {
    /// The opening of a connection whose client sent `first` first.
    fn opening_of(first: &[u8]) -> String {
        let line = first.split(|b| *b == b'\r' || *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(&line[..line.len().min(256)]).into_owned();
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default();
        let path = words.next().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        format!("{method} {path}").trim().to_owned()
    }
}

/// The shared, lock-free counters behind [`Stats`], and each connection's
/// own (behind a lock taken once per connection and per snapshot).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    connections: AtomicU64,
    cuts: AtomicU64,
    round_trips: AtomicU64,
    retransmissions: AtomicU64,
    each: Mutex<Vec<Arc<RoundTrips>>>,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            bytes_up: self.bytes_up.load(Ordering::SeqCst),
            bytes_down: self.bytes_down.load(Ordering::SeqCst),
            connections: self.connections.load(Ordering::SeqCst),
            cuts: self.cuts.load(Ordering::SeqCst),
            round_trips: self.round_trips.load(Ordering::SeqCst),
            retransmissions: self.retransmissions.load(Ordering::SeqCst),
        }
    }

    /// Sets every counter to zero (one at a time: traffic flowing during the
    /// reset may be counted in some counters and not in others).
    pub fn reset(&self) {
        for counter in [
            &self.bytes_up,
            &self.bytes_down,
            &self.connections,
            &self.cuts,
            &self.round_trips,
            &self.retransmissions,
        ] {
            counter.store(0, Ordering::SeqCst);
        }
        self.each.lock().unwrap().clear();
    }

    /// Counts a new connection numbered `index` and returns its own counters.
    pub fn connection_opened(&self, index: u64) -> Arc<RoundTrips> {
        self.connections.fetch_add(1, Ordering::SeqCst);
        let turns = Arc::new(RoundTrips {
            index,
            ..RoundTrips::default()
        });
        self.each.lock().unwrap().push(turns.clone());
        turns
    }

    /// Each connection's counters, in accept order.
    pub fn connections(&self) -> Vec<ConnectionStats> {
        self.each
            .lock()
            .unwrap()
            .iter()
            .map(|t| ConnectionStats {
                index: t.index,
                opening: t.opening.lock().unwrap().clone(),
                bytes_up: t.bytes_up.load(Ordering::SeqCst),
                bytes_down: t.bytes_down.load(Ordering::SeqCst),
                round_trips: t.round_trips.load(Ordering::SeqCst),
            })
            .collect()
    }

    pub fn connection_cut(&self) {
        self.cuts.fetch_add(1, Ordering::SeqCst);
    }

    /// Records `len` bytes handed to the receiver in `direction`.
    pub fn delivered(&self, direction: Direction, len: usize, retransmitted: bool, turns: &RoundTrips) {
        let bytes = match direction {
            Direction::Up => &self.bytes_up,
            Direction::Down => &self.bytes_down,
        };
        bytes.fetch_add(len as u64, Ordering::SeqCst);
        let own = match direction {
            Direction::Up => &turns.bytes_up,
            Direction::Down => &turns.bytes_down,
        };
        own.fetch_add(len as u64, Ordering::SeqCst);
        if retransmitted {
            self.retransmissions.fetch_add(1, Ordering::SeqCst);
        }
        if turns.delivered(direction, len) {
            self.round_trips.fetch_add(1, Ordering::SeqCst);
            turns.round_trips.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Round-trip detection for one connection: which way data last went (see
/// [`Stats::round_trips`]); and the connection's own counters.
#[derive(Debug)]
pub(crate) struct RoundTrips {
    last: AtomicU8,
    /// Bytes read from the client and not yet delivered to the server.
    up_in_flight: AtomicU64,
    index: u64,
    opening: Mutex<String>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    round_trips: AtomicU64,
}

impl Default for RoundTrips {
    fn default() -> Self {
        RoundTrips {
            last: AtomicU8::new(NOTHING_YET),
            up_in_flight: AtomicU64::new(0),
            index: 0,
            opening: Mutex::new(String::new()),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            round_trips: AtomicU64::new(0),
        }
    }
}

const NOTHING_YET: u8 = 0;
const LAST_UP: u8 = 1;
const LAST_DOWN: u8 = 2;

impl RoundTrips {
    /// Notes `bytes` read from the client, to be delivered up later.
    pub(crate) fn sent_up(&self, bytes: &[u8]) {
        if self.up_in_flight.fetch_add(bytes.len() as u64, Ordering::SeqCst) == 0 {
            let mut opening = self.opening.lock().unwrap();
            if opening.is_empty() {
                *opening = ConnectionStats::opening_of(bytes);
            }
        }
    }

    /// Notes a delivery of `len` bytes in `direction`; true if it completes a round trip.
    fn delivered(&self, direction: Direction, len: usize) -> bool {
        match direction {
            Direction::Up => {
                let _ = self.up_in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(len as u64))
                });
                self.last.store(LAST_UP, Ordering::SeqCst);
                false
            }
            // While the client's data is still on its way up, an answer does
            // not end a turn: the client has not started waiting yet.
            Direction::Down if self.up_in_flight.load(Ordering::SeqCst) > 0 => false,
            Direction::Down => self.last.swap(LAST_DOWN, Ordering::SeqCst) == LAST_UP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_display_as_key_value_pairs() {
        let stats = Stats {
            bytes_up: 1,
            bytes_down: 2,
            connections: 3,
            cuts: 4,
            round_trips: 5,
            retransmissions: 6,
        };
        assert_eq!(
            stats.to_string(),
            "bytes_up=1 bytes_down=2 connections=3 cuts=4 round_trips=5 retransmissions=6"
        );
    }

    #[test]
    fn a_round_trip_is_a_turn_from_up_to_down() {
        use Direction::{Down, Up};
        let counters = Counters::default();
        let turns = RoundTrips::default();
        // Greeting, then request/response, then two pipelined requests
        // answered in three packets.
        for direction in [Down, Up, Down, Up, Up, Down, Down, Down] {
            counters.delivered(direction, 10, false, &turns);
        }
        let stats = counters.snapshot();
        assert_eq!((stats.round_trips, stats.bytes_up, stats.bytes_down), (2, 30, 50));

        // An answer that overlaps a request still on its way up is no turn;
        // the answer once the request is all up is.
        turns.sent_up(&[0; 20]);
        counters.delivered(Up, 10, false, &turns);
        counters.delivered(Down, 10, false, &turns);
        counters.delivered(Up, 10, false, &turns);
        counters.delivered(Down, 10, false, &turns);
        assert_eq!(counters.snapshot().round_trips, 3);
        counters.reset();
        assert_eq!(counters.snapshot(), Stats::default());
    }

    #[test]
    fn each_connection_counts_its_own_traffic_and_names_its_request() {
        use Direction::{Down, Up};
        let counters = Counters::default();
        let sign_in = counters.connection_opened(0);
        let socket = counters.connection_opened(1);
        let login: &[u8] = b"POST /api/auth/login HTTP/1.1\r\nhost: x\r\n\r\n";
        sign_in.sent_up(login);
        counters.delivered(Up, login.len(), false, &sign_in);
        counters.delivered(Down, 100, false, &sign_in);
        let upgrade: &[u8] = b"GET /batch?token=secret HTTP/1.1\r\n\r\n";
        socket.sent_up(upgrade);
        counters.delivered(Up, upgrade.len(), false, &socket);
        counters.delivered(Down, 10, false, &socket);
        socket.sent_up(&[0; 5]);
        counters.delivered(Up, 5, false, &socket);
        counters.delivered(Down, 5, false, &socket);
        let each = counters.connections();
        assert_eq!(
            each,
            vec![
                ConnectionStats {
                    index: 0,
                    opening: "POST /api/auth/login".into(),
                    bytes_up: login.len() as u64,
                    bytes_down: 100,
                    round_trips: 1,
                },
                ConnectionStats {
                    index: 1,
                    opening: "GET /batch".into(),
                    bytes_up: upgrade.len() as u64 + 5,
                    bytes_down: 15,
                    round_trips: 2,
                },
            ]
        );
        assert_eq!(counters.snapshot().round_trips, 3);
        counters.reset();
        assert!(counters.connections().is_empty());
    }
}
