//! Hybrid logical clocks: the order in which concurrent events are resolved.
//!
//! Every timeline event, message and receipt carries an [`Hlc`]. Its total
//! order `(wall_ms, counter, node)` is the same on every replica, so status
//! derivation can sort events without looking at merge order. A device's
//! [`HlcClock`] never goes backwards, even when the device clock does, and
//! after observing a remote stamp it always issues later stamps.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::SchemaError;
use crate::time::Timestamp;

/// One hybrid-logical-clock stamp.
///
/// The text form is `WWWWWWWWWWWWW.CCCCC.NODE` (13-digit wall milliseconds,
/// 5-digit counter, node id), which sorts lexicographically in the same order
/// as the stamps themselves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hlc {
    pub wall_ms: i64,
    pub counter: u32,
    pub node: String,
}

const MAX_WALL_MS: i64 = 9_999_999_999_999;
const MAX_COUNTER: u32 = 99_999;

impl Hlc {
    /// The device time this stamp was issued at (or the latest time the
    /// issuing clock had observed).
    pub fn timestamp(&self) -> Timestamp {
        Timestamp(self.wall_ms)
    }
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.wall_ms, self.counter, &self.node).cmp(&(other.wall_ms, other.counter, &other.node))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:013}.{:05}.{}", self.wall_ms, self.counter, self.node)
    }
}

impl FromStr for Hlc {
    type Err = SchemaError;

    fn from_str(s: &str) -> Result<Self, SchemaError> {
        let bad = |reason: &str| SchemaError::InvalidValue {
            field: "hlc".into(),
            reason: format!("{reason} in {s:?}"),
        };
        let mut parts = s.splitn(3, '.');
        let wall = parts.next().ok_or_else(|| bad("no wall time"))?;
        let counter = parts.next().ok_or_else(|| bad("no counter"))?;
        let node = parts.next().ok_or_else(|| bad("no node"))?;
        if wall.len() != 13 || !wall.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("wall time is not 13 digits"));
        }
        if counter.len() != 5 || !counter.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("counter is not 5 digits"));
        }
        if !is_valid_node(node) {
            return Err(bad("node is not 1-64 ASCII letters or digits"));
        }
        Ok(Hlc {
            wall_ms: wall.parse().map_err(|_| bad("wall time"))?,
            counter: counter.parse().map_err(|_| bad("counter"))?,
            node: node.to_owned(),
        })
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn is_valid_node(node: &str) -> bool {
    !node.is_empty() && node.len() <= 64 && node.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The clock a replica (phone, server, REST session) stamps its events with.
#[derive(Clone, Debug)]
pub struct HlcClock {
    node: String,
    last: Option<Hlc>,
}

impl HlcClock {
    /// A clock for `node`, which must be unique among the replicas writing to
    /// a document (a prefix of the Automerge actor id serves).
    pub fn new(node: impl Into<String>) -> Result<Self, SchemaError> {
        let node = node.into();
        if !is_valid_node(&node) {
            return Err(SchemaError::InvalidValue {
                field: "hlc node".into(),
                reason: format!("{node:?} is not 1-64 ASCII letters or digits"),
            });
        }
        Ok(HlcClock { node, last: None })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Issues a stamp later than every stamp issued or observed so far.
    pub fn tick(&mut self, now: Timestamp) -> Hlc {
        let wall = now.millis().clamp(0, MAX_WALL_MS);
        let next = match &self.last {
            Some(last) if last.wall_ms >= wall => {
                if last.counter < MAX_COUNTER {
                    Hlc {
                        wall_ms: last.wall_ms,
                        counter: last.counter + 1,
                        node: self.node.clone(),
                    }
                } else {
                    // The counter is exhausted: borrow a millisecond from the future.
                    Hlc {
                        wall_ms: last.wall_ms + 1,
                        counter: 0,
                        node: self.node.clone(),
                    }
                }
            }
            _ => Hlc {
                wall_ms: wall,
                counter: 0,
                node: self.node.clone(),
            },
        };
        self.last = Some(next.clone());
        next
    }

    /// Records a stamp seen in merged data, so later local stamps sort after it.
    pub fn observe(&mut self, seen: &Hlc) {
        let seen_here = Hlc {
            wall_ms: seen.wall_ms,
            counter: seen.counter,
            node: self.node.clone(),
        };
        match &self.last {
            Some(last) if (last.wall_ms, last.counter) >= (seen.wall_ms, seen.counter) => {}
            _ => self.last = Some(seen_here),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_sorts_like_the_stamp() {
        let a = Hlc {
            wall_ms: 1_700_000_000_000,
            counter: 3,
            node: "a1".into(),
        };
        let b = Hlc {
            wall_ms: 1_700_000_000_000,
            counter: 12,
            node: "a0".into(),
        };
        assert_eq!(a.to_string(), "1700000000000.00003.a1");
        assert_eq!(a.to_string().parse::<Hlc>().unwrap(), a);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn malformed_stamps_are_rejected() {
        for s in [
            "",
            "1.2.3",
            "1700000000000.00003.",
            "1700000000000.3.a",
            "170000000000x.00003.a",
            "1700000000000.00003.a-b",
        ] {
            assert!(s.parse::<Hlc>().is_err(), "{s:?} should not parse");
        }
    }

    #[test]
    fn clock_is_monotonic_when_device_time_goes_backwards() {
        let mut c = HlcClock::new("n1").unwrap();
        let t1 = c.tick(Timestamp(5_000));
        let t2 = c.tick(Timestamp(4_000));
        let t3 = c.tick(Timestamp(5_000));
        assert!(t1 < t2 && t2 < t3);
        assert_eq!(t2.wall_ms, 5_000);
    }

    #[test]
    fn observing_a_remote_stamp_moves_the_clock_past_it() {
        let mut c = HlcClock::new("n1").unwrap();
        c.tick(Timestamp(1_000));
        let remote = Hlc {
            wall_ms: 9_000,
            counter: 7,
            node: "zz".into(),
        };
        c.observe(&remote);
        let next = c.tick(Timestamp(2_000));
        assert!(next > remote, "{next} should sort after {remote}");
    }
}
