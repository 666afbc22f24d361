//! Bounded pre-validation of what a peer sends, before Automerge or a decoder allocates for it.
//!
//! Automerge 0.12 trusts the sizes written in its own formats: a sync
//! message's Bloom filter with 0 bits per entry panics (remainder by zero),
//! one with 2^22 probes allocates 16 MB and loops four million times for
//! every change it is tested against, a compressed change chunk is inflated
//! without a limit and copied about four times, and a column's run-length
//! encoding can claim 2^60 operations in ten bytes. Our own CBOR decoders
//! lean on `minicbor`, whose `skip` keeps a stack entry per level of nested
//! indefinite-length containers.
//!
//! This module reads those formats itself, in one pass, with every count and
//! size checked against [`Limits`] before anything proportional to it is
//! allocated, and refuses with [`Refused`], which names the [`Limit`] that
//! was crossed. What passes costs Automerge at most what the limits allow:
//! the guard's own memory is the input plus at most
//! [`Limits::max_inflated_bytes`] of inflated data.
//!
//! * [`sync_message`] — an Automerge sync message (v1 or v2): hash lists,
//!   Bloom filters (entries, bits per entry, probes) and its change chunks.
//! * [`chunks`] — a run of Automerge chunks (changes, compressed changes,
//!   saved documents, bundles), as `load_incremental` reads them: headers,
//!   actors, dependencies, compressed columns inflated under a limit, and
//!   the items every column decodes to, so the operations a payload holds
//!   are known before Automerge iterates them.
//! * [`cbor`] — nesting depth and container lengths of one CBOR item, for
//!   automerge-repo frames and batched-sync frames.
//!
//! The facts about the formats come from the automerge 0.12 sources and its
//! storage format documentation; the code is ours.

mod cbor;
mod chunk;
mod columns;
mod reader;
mod sync_message;

#[cfg(test)]
mod tests;

pub use cbor::{CborLimits, cbor};
pub use chunk::chunks;
pub use sync_message::{sync_message, sync_message_envelope};

use serde::{Deserialize, Serialize};

use crate::channel::text_enum;

text_enum!(
    /// The limit a payload crossed. The text form is stable: clients log it
    /// and tests match on it.
    Limit {
        /// The bytes do not follow the format (truncated, bad magic bytes, bad LEB128, …).
        Malformed = "malformed",
        /// More head, need, last-sync or dependency hashes than allowed in one list.
        Hashes = "hashes",
        /// More Bloom filters (`have` entries) than allowed in one sync message.
        Filters = "bloom-filters",
        /// A Bloom filter's bits per entry are 0 or above the limit.
        BloomBitsPerEntry = "bloom-bits-per-entry",
        /// A Bloom filter's probe count is 0 or above the limit.
        BloomProbes = "bloom-probes",
        /// A Bloom filter claims more entries than allowed.
        BloomEntries = "bloom-entries",
        /// More chunks than allowed in one payload.
        Chunks = "chunks",
        /// Compressed data inflates to more than allowed in one payload.
        InflatedBytes = "inflated-bytes",
        /// More actors than allowed in one chunk.
        Actors = "actors",
        /// More columns than allowed in one column set.
        Columns = "columns",
        /// A column decodes to more items than allowed.
        ColumnItems = "column-items",
        /// The columns of one payload decode to more items than allowed in total.
        PayloadItems = "payload-items",
        /// A change holds more operations than allowed.
        ChangeOps = "change-ops",
        /// One payload holds more operations than allowed.
        PayloadOps = "payload-ops",
        /// One payload holds more changes than allowed.
        PayloadChanges = "payload-changes",
        /// A group or value column claims more than its sibling columns hold.
        GroupOverrun = "group-overrun",
        /// CBOR nested deeper than allowed.
        CborDepth = "cbor-depth",
        /// A CBOR array or map longer than allowed.
        CborItems = "cbor-items",
    }
);

/// A payload refused before it reached Automerge or a decoder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused by limit {limit}: {detail}")]
pub struct Refused {
    /// The limit that was crossed.
    pub limit: Limit,
    /// What was found, and the limit's value, for people.
    pub detail: String,
}

impl Refused {
    pub(crate) fn new(limit: Limit, detail: impl Into<String>) -> Self {
        Refused {
            limit,
            detail: detail.into(),
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::new(Limit::Malformed, detail)
    }

    /// Whether the bytes broke the format rather than a limit; codecs
    /// report those as their own decode errors.
    pub fn is_malformed(&self) -> bool {
        self.limit == Limit::Malformed
    }
}

/// The bounds a payload must stay within. The defaults are several times
/// what Lianxin's own clients send (a village room created with 10,000
/// members is one change of about 40,000 operations) and keep the worst
/// payload to about a second of Automerge's time and a few hundred MB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Hashes in one list: a sync message's heads, needs and each filter's
    /// last-sync heads, a change's or a bundle's dependencies, a document's heads.
    pub max_hashes: u64,
    /// Bloom filters in one sync message (Automerge sends at most one).
    pub max_filters: u64,
    /// Bits per entry of a Bloom filter (Automerge writes 10).
    pub max_bloom_bits_per_entry: u64,
    /// Probes of a Bloom filter (Automerge writes 7): each costs work for
    /// every change the filter is tested against.
    pub max_bloom_probes: u64,
    /// Entries a Bloom filter may claim (the changes the sender has since
    /// the last sync).
    pub max_bloom_entries: u64,
    /// Chunks in one payload (a sync message's changes, one pushed document).
    pub max_chunks: u64,
    /// Bytes that compressed chunks and columns of one payload may inflate to.
    pub max_inflated_bytes: u64,
    /// Actor ids in one chunk.
    pub max_actors: u64,
    /// Columns in one column set.
    pub max_columns: u64,
    /// Items one column decodes to.
    pub max_column_items: u64,
    /// Items all columns of one payload decode to.
    pub max_payload_items: u64,
    /// Operations in one change.
    pub max_change_ops: u64,
    /// Operations in one payload.
    pub max_payload_ops: u64,
    /// Changes in one payload (chunks, and the changes inside saved
    /// documents and bundles).
    pub max_payload_changes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_hashes: 4096,
            max_filters: 8,
            max_bloom_bits_per_entry: 64,
            max_bloom_probes: 32,
            max_bloom_entries: 1 << 20,
            max_chunks: 100_000,
            max_inflated_bytes: 16 * 1024 * 1024,
            max_actors: 100_000,
            max_columns: 64,
            max_column_items: 1_000_000,
            max_payload_items: 4_000_000,
            max_change_ops: 250_000,
            max_payload_ops: 250_000,
            max_payload_changes: 100_000,
        }
    }
}

/// What a payload that passed will cost Automerge, as counted by the guard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Chunks read.
    pub chunks: u64,
    /// Changes (chunks, and changes inside documents and bundles).
    pub changes: u64,
    /// Operations.
    pub ops: u64,
    /// Items all columns decode to.
    pub items: u64,
    /// Bytes inflated from compressed chunks and columns.
    pub inflated_bytes: u64,
}

impl Cost {
    /// A size for budgets: the input's own bytes plus what inflation added,
    /// plus 64 bytes per operation (Automerge's working memory per op is of
    /// that order).
    pub fn weight(&self, input_len: usize) -> u64 {
        (input_len as u64)
            .saturating_add(self.inflated_bytes)
            .saturating_add(self.ops.saturating_mul(64))
    }
}

/// Running totals of one payload, checked against the limits as they grow.
pub(crate) struct Budget<'l> {
    pub(crate) limits: &'l Limits,
    pub(crate) cost: Cost,
}

impl<'l> Budget<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Budget {
            limits,
            cost: Cost::default(),
        }
    }

    pub(crate) fn chunk(&mut self) -> Result<(), Refused> {
        self.cost.chunks += 1;
        if self.cost.chunks > self.limits.max_chunks {
            return Err(Refused::new(
                Limit::Chunks,
                format!("more than {} chunks in one payload", self.limits.max_chunks),
            ));
        }
        Ok(())
    }

    pub(crate) fn changes(&mut self, n: u64) -> Result<(), Refused> {
        self.cost.changes = self.cost.changes.saturating_add(n);
        if self.cost.changes > self.limits.max_payload_changes {
            return Err(Refused::new(
                Limit::PayloadChanges,
                format!("more than {} changes in one payload", self.limits.max_payload_changes),
            ));
        }
        Ok(())
    }

    pub(crate) fn ops(&mut self, n: u64) -> Result<(), Refused> {
        self.cost.ops = self.cost.ops.saturating_add(n);
        if self.cost.ops > self.limits.max_payload_ops {
            return Err(Refused::new(
                Limit::PayloadOps,
                format!("more than {} operations in one payload", self.limits.max_payload_ops),
            ));
        }
        Ok(())
    }

    pub(crate) fn items(&mut self, n: u64) -> Result<(), Refused> {
        self.cost.items = self.cost.items.saturating_add(n);
        if self.cost.items > self.limits.max_payload_items {
            return Err(Refused::new(
                Limit::PayloadItems,
                format!(
                    "the columns of one payload decode to more than {} items",
                    self.limits.max_payload_items
                ),
            ));
        }
        Ok(())
    }

    /// Bytes that may still be inflated.
    pub(crate) fn inflate_room(&self) -> u64 {
        self.limits.max_inflated_bytes.saturating_sub(self.cost.inflated_bytes)
    }

    pub(crate) fn inflated(&mut self, n: u64) -> Result<(), Refused> {
        self.cost.inflated_bytes = self.cost.inflated_bytes.saturating_add(n);
        if self.cost.inflated_bytes > self.limits.max_inflated_bytes {
            return Err(self.inflate_refusal());
        }
        Ok(())
    }

    pub(crate) fn inflate_refusal(&self) -> Refused {
        Refused::new(
            Limit::InflatedBytes,
            format!(
                "compressed data inflates to more than {} bytes in one payload",
                self.limits.max_inflated_bytes
            ),
        )
    }

    pub(crate) fn hashes(&self, what: &str, n: u64) -> Result<(), Refused> {
        if n > self.limits.max_hashes {
            return Err(Refused::new(
                Limit::Hashes,
                format!("{n} {what} hashes (at most {})", self.limits.max_hashes),
            ));
        }
        Ok(())
    }
}
