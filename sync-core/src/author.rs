//! The writer of new entries: a user and the clock their replica stamps with.

use crate::hlc::{Hlc, HlcClock};
use crate::ids::UserId;
use crate::time::Timestamp;

/// Who is writing on this replica, and with which clock.
///
/// Typed document methods take an `Author` and the current time; they observe
/// every stamp already in the document before stamping, so a new entry always
/// sorts after everything its writer had seen.
#[derive(Clone, Debug)]
pub struct Author {
    pub user: UserId,
    pub clock: HlcClock,
}

impl Author {
    pub fn new(user: UserId, clock: HlcClock) -> Self {
        Author { user, clock }
    }

    /// Stamps a new entry after observing `seen`.
    pub(crate) fn stamp<'a>(&mut self, seen: impl IntoIterator<Item = &'a Hlc>, now: Timestamp) -> Hlc {
        for h in seen {
            self.clock.observe(h);
        }
        self.clock.tick(now)
    }
}
