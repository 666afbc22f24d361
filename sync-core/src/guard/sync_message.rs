//! The Automerge sync message, read with limits.
//!
//! Layout (automerge 0.12, `sync.rs`): a type byte (`0x42` for v1, `0x43`
//! for v2), then LEB128-counted lists of 32-byte hashes for the heads and
//! the needs, a counted list of `have` entries (each a counted list of
//! last-sync hashes and a length-prefixed Bloom filter), a counted list of
//! length-prefixed change chunks, and optionally a length-prefixed flags
//! field. Bytes after that are ignored, as Automerge ignores them.
//!
//! A Bloom filter is empty, or three LEB128 numbers (entries, bits per
//! entry, probes) followed by `ceil(entries * bits / 8)` bytes. Automerge
//! takes the probe positions modulo the filter's bit count, so a filter
//! with entries but no bits divides by zero, and allocates a vector of
//! `probes` numbers for every change it tests.

use super::reader::Reader;
use super::{Budget, Cost, Limit, Limits, Refused, chunk};

const HASH_LEN: u64 = 32;

/// Checks an Automerge sync message and every change chunk it carries.
pub fn sync_message(bytes: &[u8], limits: &Limits) -> Result<Cost, Refused> {
    read(bytes, limits, true)
}

/// Checks an Automerge sync message without looking inside its change
/// chunks, for a host that checks those with [`super::chunks`] before it
/// loads them (as [`crate::validated_sync::incoming_changes`] does).
pub fn sync_message_envelope(bytes: &[u8], limits: &Limits) -> Result<(), Refused> {
    read(bytes, limits, false).map(|_| ())
}

fn read(bytes: &[u8], limits: &Limits, with_changes: bool) -> Result<Cost, Refused> {
    let mut r = Reader::new(bytes, "sync message");
    let mut budget = Budget::new(limits);
    match r.byte()? {
        0x42 | 0x43 => {}
        other => {
            return Err(Refused::malformed(format!(
                "a sync message starts with 0x42 or 0x43, not {other:#04x}"
            )));
        }
    }
    hashes(&mut r, &budget, "head")?;
    hashes(&mut r, &budget, "need")?;
    let filters = r.uleb()?;
    if filters > limits.max_filters {
        return Err(Refused::new(
            Limit::Filters,
            format!("{filters} Bloom filters (at most {})", limits.max_filters),
        ));
    }
    for _ in 0..filters {
        hashes(&mut r, &budget, "last-sync")?;
        bloom(r.prefixed()?, limits)?;
    }
    let chunks = r.uleb()?;
    if chunks > limits.max_chunks {
        return Err(Refused::new(
            Limit::Chunks,
            format!("{chunks} change chunks (at most {})", limits.max_chunks),
        ));
    }
    for _ in 0..chunks {
        let data = r.prefixed()?;
        if with_changes {
            chunk::read_all(data, &mut budget)?;
        }
    }
    if !r.is_empty() {
        // The flags: a length-prefixed byte string Automerge reads bit by bit.
        r.prefixed()?;
    }
    Ok(budget.cost)
}

fn hashes(r: &mut Reader<'_>, budget: &Budget<'_>, what: &str) -> Result<(), Refused> {
    let n = r.uleb()?;
    budget.hashes(what, n)?;
    r.take(n * HASH_LEN)?;
    Ok(())
}

/// Checks one Bloom filter's parameters against its bytes and the limits.
fn bloom(bytes: &[u8], limits: &Limits) -> Result<(), Refused> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(bytes, "Bloom filter");
    let entries = r.uleb()?;
    let bits_per_entry = r.uleb()?;
    let probes = r.uleb()?;
    if entries > u64::from(u32::MAX) || bits_per_entry > u64::from(u32::MAX) || probes > u64::from(u32::MAX) {
        return Err(Refused::malformed("Bloom filter parameters are 32-bit numbers"));
    }
    if entries == 0 {
        // Automerge never tests against an empty filter.
        return Ok(());
    }
    if entries > limits.max_bloom_entries {
        return Err(Refused::new(
            Limit::BloomEntries,
            format!(
                "a Bloom filter of {entries} entries (at most {})",
                limits.max_bloom_entries
            ),
        ));
    }
    if bits_per_entry == 0 || bits_per_entry > limits.max_bloom_bits_per_entry {
        return Err(Refused::new(
            Limit::BloomBitsPerEntry,
            format!(
                "a Bloom filter with {bits_per_entry} bits per entry (1 to {})",
                limits.max_bloom_bits_per_entry
            ),
        ));
    }
    if probes == 0 || probes > limits.max_bloom_probes {
        return Err(Refused::new(
            Limit::BloomProbes,
            format!("a Bloom filter with {probes} probes (1 to {})", limits.max_bloom_probes),
        ));
    }
    // Automerge reads `ceil(entries * bits / 8)` bytes of bits after the parameters.
    let bits = (entries * bits_per_entry).div_ceil(8);
    r.take(bits)?;
    Ok(())
}
