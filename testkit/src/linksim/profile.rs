//! Link profiles: bandwidth each way, round-trip time, loss and retransmission timeout.

use std::time::Duration;

/// The bandwidth of a link without a bandwidth limit.
///
/// A segment then takes no time on the link (`size * 8 / u64::MAX` rounds to
/// zero nanoseconds), so "unlimited" needs no special case in the shaper.
pub const UNLIMITED_BPS: u64 = u64::MAX;

/// The smallest retransmission timeout the constructors choose (RFC 6298's
/// minimum RTO).
pub const MIN_RTO: Duration = Duration::from_secs(1);

/// How a simulated link behaves, one value per direction where they differ.
///
/// "Down" is server → client, "up" is client → server. Bandwidths are payload
/// rates in bits per second: TCP/IP header overhead and acknowledgements are
/// not modelled separately, they are assumed to be part of the figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// A short name used in reports and by [`Profile::by_name`].
    pub name: String,
    /// Server → client bandwidth in bits per second ([`UNLIMITED_BPS`] for none).
    pub down_bps: u64,
    /// Client → server bandwidth in bits per second ([`UNLIMITED_BPS`] for none).
    pub up_bps: u64,
    /// Round-trip time; each direction adds half of it to every segment.
    pub rtt: Duration,
    /// Probability in `[0, 1]` that a segment is lost and must be retransmitted.
    pub loss: f64,
    /// How long a lost segment waits before its retransmission is delivered.
    pub rto: Duration,
}

impl Profile {
    /// A profile with the retransmission timeout TCP would settle on:
    /// `max(1 s, 2 × rtt)`.
    pub fn new(name: &str, down_bps: u64, up_bps: u64, rtt: Duration, loss: f64) -> Self {
        assert!((0.0..=1.0).contains(&loss), "loss must be a probability, got {loss}");
        assert!(down_bps > 0 && up_bps > 0, "a link needs some bandwidth");
        Profile {
            name: name.to_owned(),
            down_bps,
            up_bps,
            rtt,
            loss,
            rto: MIN_RTO.max(rtt * 2),
        }
    }

    /// No shaping at all: unlimited bandwidth, no delay, no loss.
    pub fn loopback() -> Self {
        Profile::new("loopback", UNLIMITED_BPS, UNLIMITED_BPS, Duration::ZERO, 0.0)
    }

    /// Rural 2G: 20 / 18 kbit/s, 1300 ms round trip, 2% loss.
    pub fn rural_2g() -> Self {
        Profile::new("rural_2g", 20_000, 18_000, Duration::from_millis(1300), 0.02)
    }

    /// EDGE with loss: 240 / 200 kbit/s, 840 ms round trip, 1% loss.
    pub fn edge_lossy() -> Self {
        Profile::new("edge_lossy", 240_000, 200_000, Duration::from_millis(840), 0.01)
    }

    /// Slow 3G: 780 / 330 kbit/s, 200 ms round trip, no loss.
    pub fn g3_slow() -> Self {
        Profile::new("g3_slow", 780_000, 330_000, Duration::from_millis(200), 0.0)
    }

    /// Every named profile, the unshaped one first.
    pub fn all() -> Vec<Profile> {
        vec![
            Profile::loopback(),
            Profile::rural_2g(),
            Profile::edge_lossy(),
            Profile::g3_slow(),
        ]
    }

    /// The named profile (`loopback`, `rural_2g`, `edge_lossy`, `g3_slow`), if any.
    pub fn by_name(name: &str) -> Option<Profile> {
        Profile::all().into_iter().find(|p| p.name == name)
    }

    /// The bandwidth of one direction.
    pub fn bps(&self, direction: super::Direction) -> u64 {
        match direction {
            super::Direction::Up => self.up_bps,
            super::Direction::Down => self.down_bps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_profiles_match_the_design_table() {
        let p = Profile::rural_2g();
        assert_eq!(
            (p.down_bps, p.up_bps, p.rtt, p.loss),
            (20_000, 18_000, Duration::from_millis(1300), 0.02)
        );
        assert_eq!(p.rto, Duration::from_millis(2600));
        let p = Profile::edge_lossy();
        assert_eq!(
            (p.down_bps, p.up_bps, p.rtt, p.loss),
            (240_000, 200_000, Duration::from_millis(840), 0.01)
        );
        assert_eq!(p.rto, Duration::from_millis(1680));
        let p = Profile::g3_slow();
        assert_eq!(
            (p.down_bps, p.up_bps, p.rtt, p.loss),
            (780_000, 330_000, Duration::from_millis(200), 0.0)
        );
        assert_eq!(p.rto, MIN_RTO);
        let p = Profile::loopback();
        assert_eq!((p.down_bps, p.rtt, p.loss), (UNLIMITED_BPS, Duration::ZERO, 0.0));
    }

    #[test]
    fn by_name_finds_every_profile_and_nothing_else() {
        for p in Profile::all() {
            assert_eq!(Profile::by_name(&p.name), Some(p));
        }
        assert_eq!(Profile::by_name("5g"), None);
        assert_eq!(Profile::by_name(""), None);
    }
}
