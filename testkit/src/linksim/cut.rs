//! Cut plans: which connections the proxy cuts, in which direction, after how many bytes.

use std::ops::RangeInclusive;

use super::Direction;
use super::draw;

/// Tags the draws of cut offsets so they never coincide with loss draws.
const CUT_TAG: u64 = 0x0063_7574; // "cut" in ASCII

/// Where in a direction's byte stream a connection is cut.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CutAt {
    Bytes(u64),
    Random(RangeInclusive<u64>),
}

/// Which connections to cut and where.
///
/// A plan applies to the connections the proxy accepts after it is set, in
/// accept order; later connections pass normally. A cut happens when exactly
/// the planned number of bytes has been delivered in the planned direction:
/// those bytes reach the receiver, nothing after them does, and both sockets
/// are closed at once (whatever was in flight either way is lost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutPlan {
    direction: Direction,
    at: CutAt,
    /// How many more connections this plan cuts; `u64::MAX` for all of them.
    connections: u64,
}

/// The cut of one connection, resolved from a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CutPoint {
    pub direction: Direction,
    pub bytes: u64,
}

impl CutPlan {
    /// Cut the next connection once `bytes` bytes have crossed in `direction`
    /// (`0` cuts it as soon as it is accepted).
    pub fn after(direction: Direction, bytes: u64) -> Self {
        CutPlan {
            direction,
            at: CutAt::Bytes(bytes),
            connections: 1,
        }
    }

    /// Cut the next connection at a byte offset in `range`, drawn from the
    /// proxy's seed and the connection's number: the same seed cuts the same
    /// connection at the same offset.
    pub fn random(direction: Direction, range: RangeInclusive<u64>) -> Self {
        assert!(!range.is_empty(), "empty cut range {range:?}");
        CutPlan {
            direction,
            at: CutAt::Random(range),
            connections: 1,
        }
    }

    /// Apply the plan to the first `k` connections instead of the next one only
    /// (each of them draws its own offset from a random range).
    pub fn connections(self, k: u64) -> Self {
        CutPlan { connections: k, ..self }
    }

    /// Apply the plan to every connection from now on.
    pub fn every_connection(self) -> Self {
        self.connections(u64::MAX)
    }

    /// The cut for the connection numbered `connection`, if the plan still
    /// applies; uses the plan up by one connection.
    pub(crate) fn take(&mut self, seed: u64, connection: u64) -> Option<CutPoint> {
        if self.connections == 0 {
            return None;
        }
        if self.connections != u64::MAX {
            self.connections -= 1;
        }
        let bytes = match &self.at {
            CutAt::Bytes(n) => *n,
            CutAt::Random(range) => draw::in_range(&[seed, CUT_TAG, connection], *range.start(), *range.end()),
        };
        Some(CutPoint {
            direction: self.direction,
            bytes,
        })
    }

    /// The plan cuts no more connections.
    pub(crate) fn is_used_up(&self) -> bool {
        self.connections == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_cuts_as_many_connections_as_it_says() {
        let mut plan = CutPlan::after(Direction::Up, 10).connections(2);
        let cut = Some(CutPoint {
            direction: Direction::Up,
            bytes: 10,
        });
        assert_eq!(plan.take(0, 0), cut);
        assert!(!plan.is_used_up());
        assert_eq!(plan.take(0, 1), cut);
        assert!(plan.is_used_up());
        assert_eq!(plan.take(0, 2), None);

        let mut plan = CutPlan::after(Direction::Down, 0).every_connection();
        assert!((0..100).all(|i| plan.take(0, i).is_some()));
    }

    #[test]
    fn random_cuts_are_drawn_from_the_seed_and_connection() {
        let at = |seed, conn| {
            CutPlan::random(Direction::Down, 100..=200)
                .take(seed, conn)
                .unwrap()
                .bytes
        };
        assert!((0..50).all(|conn| (100..=200).contains(&at(5, conn))));
        assert_eq!(at(5, 3), at(5, 3));
        assert!((0..50).any(|conn| at(5, conn) != at(5, 0)));
        assert!((0..50).any(|seed| at(seed, 0) != at(0, 0)));
    }
}
