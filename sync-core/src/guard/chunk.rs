//! Automerge chunks, read with limits: changes, compressed changes, saved documents and bundles.
//!
//! Every chunk is four magic bytes (`85 6f 4a 83`), a four-byte checksum, a
//! type byte (0 document, 1 change, 2 compressed change, 3 bundle), a
//! LEB128 length and that many bytes. `load_incremental` reads a run of
//! them back to back.
//!
//! * change: counted dependency hashes, the actor (length-prefixed), seq,
//!   start op (non-zero), time (signed), message (length-prefixed), counted
//!   other actors, the op column set (never compressed), extra bytes.
//! * compressed change: the change's bytes after its header, raw DEFLATE.
//! * document: counted actors, counted heads, the change column set's and
//!   the op column set's metadata, their data (columns may be compressed),
//!   then one LEB128 head index per head.
//! * bundle: counted dependency hashes, counted actors, the change column
//!   set (metadata and data), the op column set (metadata and data).

use super::columns::{self, Column};
use super::reader::Reader;
use super::{Budget, Cost, Limit, Limits, Refused};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const HASH_LEN: u64 = 32;

/// Checks a run of Automerge chunks (what `load_incremental` reads: change
/// chunks, a bundle, a saved document).
pub fn chunks(bytes: &[u8], limits: &Limits) -> Result<Cost, Refused> {
    let mut budget = Budget::new(limits);
    read_all(bytes, &mut budget)?;
    Ok(budget.cost)
}

pub(crate) fn read_all(bytes: &[u8], budget: &mut Budget<'_>) -> Result<(), Refused> {
    let mut r = Reader::new(bytes, "chunk");
    while !r.is_empty() {
        budget.chunk()?;
        if r.take(4)? != MAGIC {
            return Err(Refused::malformed(
                "a chunk does not start with Automerge's magic bytes",
            ));
        }
        r.take(4)?;
        let kind = r.byte()?;
        let body = r.prefixed()?;
        match kind {
            0 => document(body, budget)?,
            1 => change(body, budget)?,
            2 => {
                let inflated = columns::inflate(body, budget)?;
                change(&inflated, budget)?
            }
            3 => bundle(body, budget)?,
            other => return Err(Refused::malformed(format!("unknown chunk type {other}"))),
        }
    }
    Ok(())
}

fn hashes(r: &mut Reader<'_>, budget: &Budget<'_>, what: &str) -> Result<(), Refused> {
    let n = r.uleb()?;
    budget.hashes(what, n)?;
    r.take(n * HASH_LEN)?;
    Ok(())
}

fn actors(r: &mut Reader<'_>, budget: &Budget<'_>) -> Result<u64, Refused> {
    let n = r.uleb()?;
    if n > budget.limits.max_actors {
        return Err(Refused::new(
            Limit::Actors,
            format!("{n} actors in one chunk (at most {})", budget.limits.max_actors),
        ));
    }
    for _ in 0..n {
        r.prefixed()?;
    }
    Ok(n)
}

fn change(body: &[u8], budget: &mut Budget<'_>) -> Result<(), Refused> {
    budget.changes(1)?;
    let mut r = Reader::new(body, "change");
    hashes(&mut r, budget, "dependency")?;
    r.prefixed()?; // actor
    r.uleb()?; // seq
    if r.uleb()? == 0 {
        return Err(Refused::malformed("a change's start op is never 0"));
    }
    r.sleb()?; // time
    r.prefixed()?; // message
    actors(&mut r, budget)?;
    let (cols, len) = columns::read_meta(&mut r, budget)?;
    if cols.iter().any(|c| c.deflated()) {
        return Err(Refused::malformed("a change's columns are never compressed"));
    }
    let data = r.take(len)?;
    let ops = columns::check_set(&cols, data, budget, "change ops")?;
    if ops > budget.limits.max_change_ops {
        return Err(Refused::new(
            Limit::ChangeOps,
            format!(
                "a change of {ops} operations (at most {})",
                budget.limits.max_change_ops
            ),
        ));
    }
    budget.ops(ops)?;
    // The rest are extra bytes Automerge keeps as they are.
    Ok(())
}

fn document(body: &[u8], budget: &mut Budget<'_>) -> Result<(), Refused> {
    let mut r = Reader::new(body, "document");
    actors(&mut r, budget)?;
    let heads = r.uleb()?;
    budget.hashes("head", heads)?;
    r.take(heads * HASH_LEN)?;
    let (change_cols, change_len) = columns::read_meta(&mut r, budget)?;
    let (op_cols, op_len) = meta_after(&mut r, budget, change_len)?;
    let change_data = r.take(change_len)?;
    let op_data = r.take(op_len)?;
    sets(change_cols, change_data, op_cols, op_data, budget, "document")
}

fn bundle(body: &[u8], budget: &mut Budget<'_>) -> Result<(), Refused> {
    let mut r = Reader::new(body, "bundle");
    hashes(&mut r, budget, "dependency")?;
    actors(&mut r, budget)?;
    let (change_cols, change_len) = columns::read_meta(&mut r, budget)?;
    let change_data = r.take(change_len)?;
    let (op_cols, op_len) = columns::read_meta(&mut r, budget)?;
    let op_data = r.take(op_len)?;
    sets(change_cols, change_data, op_cols, op_data, budget, "bundle")
}

/// Reads a second column set's metadata when the first set's data
/// (`skip` bytes) comes after both metadata blocks, as in a document.
fn meta_after(r: &mut Reader<'_>, budget: &Budget<'_>, skip: u64) -> Result<(Vec<Column>, u64), Refused> {
    let (cols, len) = columns::read_meta(r, budget)?;
    if skip.saturating_add(len) > r.remaining() as u64 {
        return Err(Refused::malformed(format!(
            "columns claim {} bytes, {} remain",
            skip.saturating_add(len),
            r.remaining()
        )));
    }
    Ok((cols, len))
}

fn sets(
    change_cols: Vec<Column>,
    change_data: &[u8],
    op_cols: Vec<Column>,
    op_data: &[u8],
    budget: &mut Budget<'_>,
    what: &str,
) -> Result<(), Refused> {
    let changes = columns::check_set(&change_cols, change_data, budget, what)?;
    budget.changes(changes)?;
    let ops = columns::check_set(&op_cols, op_data, budget, what)?;
    budget.ops(ops)
}
