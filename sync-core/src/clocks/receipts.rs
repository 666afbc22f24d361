//! The server's receipt times of entries, and what a clock says about the
//! times it used.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Device and receipt times of one entry further apart than this are
/// flagged: five minutes.
pub const SKEW_FLAG_MS: i64 = 5 * 60_000;

/// Which time a clock (or a figure computed from clocks) ran on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ClockBasis {
    /// The stamps writers' devices put on entries.
    #[default]
    DeviceStamp,
    /// The server's receipt times: started at the receipt of the entry that
    /// starts the clock, done at the earlier of the step's device stamp and
    /// its receipt.
    ServerReceipt,
    /// A figure over clocks of both kinds (some entries were stored before
    /// receipt times were recorded).
    Mixed,
}

impl ClockBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockBasis::DeviceStamp => "device_stamp",
            ClockBasis::ServerReceipt => "server_receipt",
            ClockBasis::Mixed => "mixed",
        }
    }

    /// The basis of a figure over clocks of `self`'s and `other`'s basis.
    pub fn and(self, other: ClockBasis) -> ClockBasis {
        if self == other { self } else { ClockBasis::Mixed }
    }
}

/// Which of a clock's entries a [`ClockSkew`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SkewedStep {
    /// The entry that started the clock (the submission, a reopening).
    Start,
    /// The step that stopped it (signed, contacted, replied).
    Done,
}

/// An entry whose device stamp and receipt differ by more than
/// [`SKEW_FLAG_MS`]: stamped long before it arrived (a phone offline, or a
/// back-dated device clock), or ahead of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockSkew {
    pub step: SkewedStep,
    pub device_at: Timestamp,
    pub received_at: Timestamp,
}

impl ClockSkew {
    /// The flag for an entry stamped `device_at` and received at
    /// `received_at`, if they are far enough apart.
    pub fn between(step: SkewedStep, device_at: Timestamp, received_at: Timestamp) -> Option<ClockSkew> {
        ((device_at.millis() - received_at.millis()).abs() > SKEW_FLAG_MS).then_some(ClockSkew {
            step,
            device_at,
            received_at,
        })
    }

    /// Device stamp minus receipt, in milliseconds (negative: stamped before it arrived).
    pub fn gap_ms(&self) -> i64 {
        self.device_at.millis() - self.received_at.millis()
    }
}

/// When the server received each entry of a document, by entry id (the
/// entry's stamp in text form). The host records an entry's receipt in the
/// transaction that stores it and never changes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipts(BTreeMap<String, Timestamp>);

impl Receipts {
    pub fn new() -> Self {
        Receipts::default()
    }

    pub fn get(&self, entry: &str) -> Option<Timestamp> {
        self.0.get(entry).copied()
    }

    /// Records `entry`'s receipt unless one is recorded.
    pub fn insert(&mut self, entry: impl Into<String>, at: Timestamp) {
        self.0.entry(entry.into()).or_insert(at);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Timestamp)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

impl FromIterator<(String, Timestamp)> for Receipts {
    fn from_iter<I: IntoIterator<Item = (String, Timestamp)>>(iter: I) -> Self {
        let mut r = Receipts::new();
        for (k, v) in iter {
            r.insert(k, v);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_flagged_only_past_five_minutes_either_way() {
        let t = Timestamp::from_millis(10_000_000);
        assert_eq!(
            ClockSkew::between(SkewedStep::Done, t.plus_millis(-SKEW_FLAG_MS), t),
            None
        );
        let early = ClockSkew::between(SkewedStep::Done, t.plus_millis(-SKEW_FLAG_MS - 1), t).unwrap();
        assert_eq!(early.gap_ms(), -SKEW_FLAG_MS - 1);
        assert!(ClockSkew::between(SkewedStep::Start, t.plus_millis(SKEW_FLAG_MS + 1), t).is_some());
        assert_eq!(
            ClockBasis::DeviceStamp.and(ClockBasis::ServerReceipt),
            ClockBasis::Mixed
        );
        assert_eq!(
            ClockBasis::ServerReceipt.and(ClockBasis::ServerReceipt),
            ClockBasis::ServerReceipt
        );
    }

    #[test]
    fn a_receipt_once_recorded_stays() {
        let mut r = Receipts::new();
        r.insert("a", Timestamp::from_millis(5));
        r.insert("a", Timestamp::from_millis(9));
        assert_eq!(r.get("a"), Some(Timestamp::from_millis(5)));
        assert_eq!(r.get("b"), None);
    }
}
