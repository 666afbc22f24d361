//! Column sets of Automerge chunks: metadata, inflation under a limit, and
//! the number of items each column decodes to.
//!
//! A column set is a LEB128 count of `(spec, length)` pairs followed by the
//! columns' bytes in that order. A spec is `id << 4 | deflate << 3 | type`.
//! Types 0–6 (group, actor, integer, delta, string, value metadata) are
//! run-length encoded: a signed count `n > 0` is a run of `n` copies of the
//! next value, `n < 0` is `-n` literal values, and `0` is a null run whose
//! length follows; type 4 (boolean) is a list of alternating run lengths
//! starting with `false`; type 7 (value) is raw bytes. A run of 2^60 items
//! takes ten bytes, so the items are counted here, not trusted.
//!
//! A group column (type 0) holds, per row, how many items the columns
//! sharing its id hold for that row (the dependencies of a change, the
//! predecessors of an op); a value metadata column holds each value's
//! length in its high bits, and its value column holds the bytes. Automerge
//! sizes vectors from single group values, so the sums are checked against
//! what the sibling columns really hold.

use std::borrow::Cow;
use std::io::Read;

use super::reader::Reader;
use super::{Budget, Limit, Refused};

const GROUP: u8 = 0;
const BOOLEAN: u8 = 4;
const STRING: u8 = 5;
const VALUE_METADATA: u8 = 6;
const VALUE: u8 = 7;
const DELTA: u8 = 3;

/// One column's metadata.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Column {
    spec: u32,
    len: u64,
}

impl Column {
    fn id(self) -> u32 {
        self.spec >> 4
    }

    fn kind(self) -> u8 {
        (self.spec & 0b111) as u8
    }

    pub(crate) fn deflated(self) -> bool {
        self.spec & 0b1000 != 0
    }
}

/// Reads a column set's metadata; returns the columns and their total data length.
pub(crate) fn read_meta(r: &mut Reader<'_>, budget: &Budget<'_>) -> Result<(Vec<Column>, u64), Refused> {
    let n = r.uleb()?;
    if n > budget.limits.max_columns {
        return Err(Refused::new(
            Limit::Columns,
            format!("{n} columns in one set (at most {})", budget.limits.max_columns),
        ));
    }
    let mut columns = Vec::with_capacity(n as usize);
    let mut total = 0u64;
    for _ in 0..n {
        let spec = r.uleb()?;
        let spec = u32::try_from(spec).map_err(|_| Refused::malformed("a column spec is a 32-bit number"))?;
        let len = r.uleb()?;
        total = total.saturating_add(len);
        columns.push(Column { spec, len });
    }
    if total > r.remaining() as u64 {
        return Err(Refused::malformed(format!(
            "columns claim {total} bytes, {} remain",
            r.remaining()
        )));
    }
    Ok((columns, total))
}

/// What one column decodes to.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    /// Items (rows, or grouped items).
    items: u64,
    /// For a group column the sum of its counts; for value metadata the
    /// sum of the value lengths; raw bytes for a value column.
    sum: u64,
}

/// Checks a column set whose data is `data` (exactly the columns' bytes):
/// inflates compressed columns within the payload's budget, counts every
/// column's items, and checks group and value columns against their
/// siblings. Returns the set's row count (the largest item count of a
/// column that is not grouped).
pub(crate) fn check_set(columns: &[Column], data: &[u8], budget: &mut Budget<'_>, what: &str) -> Result<u64, Refused> {
    let mut stats = Vec::with_capacity(columns.len());
    let mut at = 0usize;
    for c in columns {
        let raw = &data[at..at + c.len as usize];
        at += c.len as usize;
        let bytes: Cow<'_, [u8]> = if c.deflated() {
            Cow::Owned(inflate(raw, budget)?)
        } else {
            Cow::Borrowed(raw)
        };
        let s = count(c.kind(), &bytes, budget.limits.max_column_items, what)?;
        budget.items(s.items)?;
        stats.push(s);
    }
    let groups: Vec<u32> = columns.iter().filter(|c| c.kind() == GROUP).map(|c| c.id()).collect();
    for (i, c) in columns.iter().enumerate() {
        let siblings = || {
            columns
                .iter()
                .zip(&stats)
                .enumerate()
                .filter(move |(j, (s, _))| *j != i && s.id() == c.id())
                .map(|(_, pair)| pair)
        };
        match c.kind() {
            GROUP => {
                let room = siblings()
                    .filter(|(s, _)| s.kind() != GROUP)
                    .map(|(s, st)| if s.kind() == VALUE { st.sum } else { st.items })
                    .max()
                    .unwrap_or(0);
                if stats[i].sum > room {
                    return Err(Refused::new(
                        Limit::GroupOverrun,
                        format!(
                            "{what}: group column {} counts {} items, its columns hold {room}",
                            c.id(),
                            stats[i].sum
                        ),
                    ));
                }
            }
            VALUE_METADATA => {
                let room = siblings()
                    .filter(|(s, _)| s.kind() == VALUE)
                    .map(|(_, st)| st.sum)
                    .max()
                    .unwrap_or(0);
                if stats[i].sum > room {
                    return Err(Refused::new(
                        Limit::GroupOverrun,
                        format!(
                            "{what}: value column {} claims {} bytes, holds {room}",
                            c.id(),
                            stats[i].sum
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    let rows = columns
        .iter()
        .zip(&stats)
        .filter(|(c, _)| c.kind() == GROUP || (c.kind() != VALUE && !groups.contains(&c.id())))
        .map(|(_, s)| s.items)
        .max()
        .unwrap_or(0);
    Ok(rows)
}

/// Inflates raw DEFLATE data within what the payload may still inflate.
///
/// The output grows by doubling but never past the room left, so inflating
/// holds at most that room (plus the block being copied in).
pub(crate) fn inflate(data: &[u8], budget: &mut Budget<'_>) -> Result<Vec<u8>, Refused> {
    let room = usize::try_from(budget.inflate_room()).unwrap_or(usize::MAX);
    let mut inflater = flate2::read::DeflateDecoder::new(data);
    let mut out: Vec<u8> = Vec::new();
    let mut block = [0u8; 16 * 1024];
    loop {
        let n = inflater
            .read(&mut block)
            .map_err(|e| Refused::malformed(format!("compressed data does not inflate: {e}")))?;
        if n == 0 {
            break;
        }
        if out.len() + n > room {
            return Err(budget.inflate_refusal());
        }
        if out.capacity() - out.len() < n {
            let want = (out.capacity() * 2).max(out.len() + n).min(room);
            out.reserve_exact(want - out.len());
        }
        out.extend_from_slice(&block[..n]);
    }
    budget.inflated(out.len() as u64)?;
    Ok(out)
}

/// Counts the items of one column of type `kind`.
fn count(kind: u8, bytes: &[u8], max: u64, what: &str) -> Result<Stats, Refused> {
    let too_many = || {
        Refused::new(
            Limit::ColumnItems,
            format!("{what}: a column decodes to more than {max} items"),
        )
    };
    let mut r = Reader::new(bytes, "column");
    let mut s = Stats::default();
    match kind {
        VALUE => {
            s.sum = bytes.len() as u64;
        }
        BOOLEAN => {
            while !r.is_empty() {
                s.items = s.items.saturating_add(r.uleb()?);
                if s.items > max {
                    return Err(too_many());
                }
            }
        }
        _ => {
            while !r.is_empty() {
                let n = r.sleb()?;
                if n > 0 {
                    let v = value(&mut r, kind)?;
                    s.items = s.items.saturating_add(n as u64);
                    s.sum = s.sum.saturating_add(v.saturating_mul(n as u64));
                } else if n < 0 {
                    let n = n.unsigned_abs();
                    // Every literal takes at least a byte.
                    if n > r.remaining() as u64 {
                        return Err(Refused::malformed(format!(
                            "{what}: a literal run of {n} values in {} bytes",
                            r.remaining()
                        )));
                    }
                    for _ in 0..n {
                        s.sum = s.sum.saturating_add(value(&mut r, kind)?);
                    }
                    s.items = s.items.saturating_add(n);
                } else {
                    s.items = s.items.saturating_add(r.uleb()?);
                }
                if s.items > max {
                    return Err(too_many());
                }
            }
        }
    }
    Ok(s)
}

/// Reads one value of a run-length encoded column; returns what it adds
/// to the column's sum (group counts, value lengths; 0 for the others).
fn value(r: &mut Reader<'_>, kind: u8) -> Result<u64, Refused> {
    match kind {
        DELTA => r.sleb().map(|_| 0),
        STRING => r.prefixed().map(|_| 0),
        GROUP => r.uleb(),
        VALUE_METADATA => r.uleb().map(|m| m >> 4),
        _ => r.uleb().map(|_| 0),
    }
}
