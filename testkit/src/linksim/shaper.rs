//! The sans-IO model of one direction of a link: when each packet read from a
//! socket is delivered at the other end.
//!
//! The shaper only does arithmetic on instants; the proxy reads, asks the
//! shaper when the bytes are due, and writes them then. That keeps the model
//! testable to the nanosecond without sockets or sleeps.

use std::time::Duration;

use tokio::time::Instant;

use super::draw;
use super::{Direction, Profile};

/// The segment size: the stream is cut into segments at every multiple of
/// this many bytes, and loss is decided per packet within a segment.
pub const SEGMENT_BYTES: usize = 1_000;

/// How many bytes may wait for the link before the proxy stops reading from
/// the sender (a socket send buffer): beyond it the sender's writes block, as
/// they would on a real slow link, and the proxy's memory stays bounded.
pub const SEND_BUFFER_BYTES: usize = 64 * 1024;

/// When one packet is delivered, and whether it was lost on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packet {
    /// When the packet may be written to the receiving socket.
    pub due: Instant,
    /// The packet was lost once and is delivered after a retransmission timeout.
    pub lost: bool,
}

/// The state of one direction of one connection.
#[derive(Debug)]
pub(crate) struct Shaper {
    bps: u64,
    one_way: Duration,
    rto: Duration,
    loss: f64,
    /// Identifies this connection and direction in loss draws.
    loss_key: [u64; 3],
    /// When the link has finished sending everything scheduled so far.
    link_free: Instant,
    /// When the last scheduled packet is delivered; nothing after it is
    /// delivered earlier (TCP delivers in order).
    last_due: Instant,
    /// Stream bytes scheduled so far.
    offset: u64,
    /// Packets scheduled so far within the current segment.
    ordinal: u64,
}

impl Shaper {
    /// The shaper for `direction` of connection number `connection`, whose
    /// link carries nothing before `opens_at`.
    pub fn new(profile: &Profile, direction: Direction, seed: u64, connection: u64, opens_at: Instant) -> Self {
        Shaper {
            bps: profile.bps(direction),
            one_way: profile.rtt / 2,
            rto: profile.rto,
            loss: profile.loss,
            loss_key: [seed, connection, direction as u64],
            link_free: opens_at,
            last_due: opens_at,
            offset: 0,
            ordinal: 0,
        }
    }

    /// The most bytes the next read may take: packets never cross a segment
    /// boundary, so the same bytes of a stream always fall in the same segment.
    pub fn next_read_len(&self) -> usize {
        SEGMENT_BYTES - (self.offset % SEGMENT_BYTES as u64) as usize
    }

    /// If the link has more than [`SEND_BUFFER_BYTES`] of work queued at `now`,
    /// the instant from which the proxy may read again.
    pub fn read_resume_at(&self, now: Instant) -> Option<Instant> {
        let window = transmit_time(SEND_BUFFER_BYTES, self.bps);
        let resume = self.link_free.checked_sub(window)?;
        (resume > now).then_some(resume)
    }

    /// Schedules a packet of `len` bytes (at most [`Shaper::next_read_len`])
    /// that the proxy read at `now`.
    ///
    /// The packet waits for the link to carry everything before it, occupies
    /// it for `len * 8 / bps`, then travels for `rtt / 2`. A lost packet is
    /// delivered one retransmission timeout later, and so is everything
    /// behind it that would otherwise have overtaken it.
    pub fn send(&mut self, now: Instant, len: usize) -> Packet {
        assert!(
            len > 0 && len <= self.next_read_len(),
            "packet of {len} bytes crosses a segment boundary"
        );
        let segment = self.offset / SEGMENT_BYTES as u64;
        if self.offset.is_multiple_of(SEGMENT_BYTES as u64) {
            self.ordinal = 0;
        } else {
            self.ordinal += 1;
        }
        self.offset += len as u64;

        let start = self.link_free.max(now);
        self.link_free = start + transmit_time(len, self.bps);
        let [seed, connection, direction] = self.loss_key;
        let lost = self.loss > 0.0 && draw::unit(&[seed, connection, direction, segment, self.ordinal]) < self.loss;
        let mut due = self.link_free + self.one_way;
        if lost {
            due += self.rto;
        }
        self.last_due = self.last_due.max(due);
        Packet {
            due: self.last_due,
            lost,
        }
    }

    /// When the end of the stream, read at `now`, reaches the other side: it
    /// follows the last packet on the link and is never lost.
    pub fn finish(&mut self, now: Instant) -> Instant {
        let due = self.link_free.max(now) + self.one_way;
        self.last_due = self.last_due.max(due);
        self.last_due
    }
}

/// How long `len` bytes occupy a link of `bps` bits per second.
pub(crate) fn transmit_time(len: usize, bps: u64) -> Duration {
    let nanos = len as u128 * 8 * 1_000_000_000 / bps as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::super::profile::UNLIMITED_BPS;
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn profile(bps: u64, rtt_ms: u32, loss: f64) -> Profile {
        let mut p = Profile::new("test", bps, bps, rtt_ms * MS, loss);
        p.rto = 500 * MS;
        p
    }

    #[test]
    fn transmit_time_is_bits_over_bandwidth() {
        assert_eq!(transmit_time(1_000, 160_000), 50 * MS);
        assert_eq!(transmit_time(1, 8_000_000_000), Duration::from_nanos(1));
        assert_eq!(transmit_time(SEND_BUFFER_BYTES, UNLIMITED_BPS), Duration::ZERO);
    }

    #[test]
    fn a_burst_is_serialised_then_delayed_by_half_the_rtt() {
        let t0 = Instant::now();
        let mut s = Shaper::new(&profile(160_000, 200, 0.0), Direction::Up, 1, 0, t0);
        // 20 segments of 1,000 bytes at 160 kbit/s: one every 50 ms.
        for i in 1..=20u32 {
            assert_eq!(s.next_read_len(), 1_000);
            let p = s.send(t0, 1_000);
            assert_eq!(
                p,
                Packet {
                    due: t0 + 50 * MS * i + 100 * MS,
                    lost: false
                }
            );
        }
        assert_eq!(s.finish(t0), t0 + 1_100 * MS);
    }

    #[test]
    fn an_idle_link_starts_sending_when_the_data_arrives() {
        let t0 = Instant::now();
        let mut s = Shaper::new(&profile(160_000, 200, 0.0), Direction::Down, 1, 0, t0);
        let p = s.send(t0 + 10_000 * MS, 100);
        assert_eq!(p.due, t0 + 10_000 * MS + 5 * MS + 100 * MS);
    }

    #[test]
    fn the_link_opens_after_the_handshake() {
        let t0 = Instant::now();
        let mut s = Shaper::new(&profile(UNLIMITED_BPS, 200, 0.0), Direction::Up, 1, 0, t0 + 200 * MS);
        assert_eq!(s.send(t0, 10).due, t0 + 300 * MS);
    }

    #[test]
    fn packets_never_cross_segment_boundaries() {
        let t0 = Instant::now();
        let mut s = Shaper::new(&profile(UNLIMITED_BPS, 0, 0.0), Direction::Up, 1, 0, t0);
        s.send(t0, 300);
        assert_eq!(s.next_read_len(), 700);
        s.send(t0, 700);
        assert_eq!(s.next_read_len(), 1_000);
    }

    #[test]
    fn a_lost_packet_holds_back_the_packets_behind_it() {
        let t0 = Instant::now();
        let p = profile(8_000_000, 100, 0.5);
        let mut s = Shaper::new(&p, Direction::Up, 9, 0, t0);
        let packets: Vec<Packet> = (0..40).map(|_| s.send(t0, 1_000)).collect();
        let first_lost = packets
            .iter()
            .position(|p| p.lost)
            .expect("some of 40 packets are lost at 50%");
        let first_lost_due = t0 + MS * (first_lost as u32 + 1) + 50 * MS + p.rto;
        assert_eq!(packets[first_lost].due, first_lost_due);
        for (i, packet) in packets.iter().enumerate() {
            let unstalled = t0 + MS * (i as u32 + 1) + 50 * MS;
            if i < first_lost {
                assert_eq!(packet.due, unstalled);
            } else {
                assert!(packet.due >= first_lost_due, "packet {i} overtook the lost packet");
            }
        }
        assert!(packets.windows(2).all(|w| w[0].due <= w[1].due));
    }

    #[test]
    fn losses_depend_on_the_seed_connection_and_direction_only() {
        let t0 = Instant::now();
        let p = profile(UNLIMITED_BPS, 0, 0.5);
        let pattern = |seed, conn, dir, chunk: usize| -> Vec<bool> {
            let mut s = Shaper::new(&p, dir, seed, conn, t0);
            // Read 3,000 bytes in chunks of `chunk` bytes; report each segment's
            // first packet, which exists however the reads were split.
            let mut firsts = Vec::new();
            while s.offset < 3_000 {
                let at_boundary = s.offset.is_multiple_of(SEGMENT_BYTES as u64);
                let packet = s.send(t0, chunk.min(s.next_read_len()));
                if at_boundary {
                    firsts.push(packet.lost);
                }
            }
            firsts
        };
        let reference: Vec<Vec<bool>> = (0..16).map(|seed| pattern(seed, 0, Direction::Up, 1_000)).collect();
        for (seed, expected) in reference.iter().enumerate() {
            assert_eq!(&pattern(seed as u64, 0, Direction::Up, 300), expected);
        }
        assert!(reference.iter().any(|r| r.contains(&true)) && reference.iter().any(|r| r.contains(&false)));
        let other_conn: Vec<Vec<bool>> = (0..16).map(|seed| pattern(seed, 1, Direction::Up, 1_000)).collect();
        let other_dir: Vec<Vec<bool>> = (0..16).map(|seed| pattern(seed, 0, Direction::Down, 1_000)).collect();
        assert_ne!(reference, other_conn);
        assert_ne!(reference, other_dir);
    }

    #[test]
    fn no_loss_means_no_draw_ever_loses() {
        let t0 = Instant::now();
        let mut s = Shaper::new(&profile(UNLIMITED_BPS, 0, 0.0), Direction::Up, 0, 0, t0);
        assert!((0..1_000).all(|_| !s.send(t0, 10).lost));
    }

    #[test]
    fn a_full_send_buffer_pauses_reading_until_it_drains() {
        let t0 = Instant::now();
        let mut s = Shaper::new(&profile(8_000, 0, 0.0), Direction::Up, 0, 0, t0);
        assert_eq!(s.read_resume_at(t0), None);
        for _ in 0..100 {
            s.send(t0, 1_000);
        }
        // 100 kB at 1 kB/s: the link is busy for 100 s; reading resumes when
        // 64 KiB are left, at 100 s - 65.536 s.
        assert_eq!(s.read_resume_at(t0), Some(t0 + 34_464 * MS));
        assert_eq!(s.read_resume_at(t0 + 40_000 * MS), None);
    }
}
