//! The shape of one CBOR item: nesting depth and container lengths, walked
//! without recursion and with a stack no deeper than the limit.
//!
//! Our frame decoders skip unknown values with `minicbor`'s `skip`, which
//! keeps a stack entry per level of nested indefinite-length containers (a
//! megabyte of `0x9f` bytes is a million levels), and collect known lists
//! into vectors whose elements are larger than the byte that encodes an
//! empty one. Walking the item first bounds both.

use super::reader::Reader;
use super::{Limit, Refused};

/// Bounds for one CBOR item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CborLimits {
    /// Containers inside containers (the top-level map is depth 1).
    pub max_depth: usize,
    /// Elements of one array, or entries of one map.
    pub max_len: u64,
}

impl Default for CborLimits {
    /// Our frames nest four deep (a push's map, its document list, a
    /// document's map, its base hashes) and a pull lists at most a few
    /// thousand documents; automerge-repo frames nest less.
    fn default() -> Self {
        CborLimits {
            max_depth: 16,
            max_len: 100_000,
        }
    }
}

/// A container being walked: how many items it still holds, or `None`
/// for an indefinite-length one (ended by a break byte).
type Open = Option<u64>;

const BREAK: u8 = 0xff;

/// Walks the CBOR item at the start of `bytes`; returns where it ends.
pub fn cbor(bytes: &[u8], limits: &CborLimits) -> Result<usize, Refused> {
    let mut r = Reader::new(bytes, "CBOR");
    // The outermost level is a pseudo-container of the one item.
    let mut stack: Vec<Open> = Vec::with_capacity(limits.max_depth.min(64) + 1);
    stack.push(Some(1));
    while let Some(top) = stack.last_mut() {
        match top {
            Some(0) => {
                stack.pop();
                continue;
            }
            Some(n) => *n -= 1,
            None => {
                if bytes.get(r.position()) == Some(&BREAK) {
                    r.byte()?;
                    stack.pop();
                    continue;
                }
            }
        }
        let mut head = r.byte()?;
        // Tags wrap the item that follows.
        while head >> 5 == 6 {
            argument(&mut r, head & 0x1f)?;
            head = r.byte()?;
        }
        let (major, info) = (head >> 5, head & 0x1f);
        match major {
            0 | 1 => {
                argument(&mut r, info)?;
            }
            2 | 3 if info == 31 => loop {
                let chunk = r.byte()?;
                if chunk == BREAK {
                    break;
                }
                if chunk >> 5 != major || chunk & 0x1f == 31 {
                    return Err(Refused::malformed("an indefinite-length string holds a foreign chunk"));
                }
                let n = argument(&mut r, chunk & 0x1f)?;
                r.take(n)?;
            },
            2 | 3 => {
                let n = argument(&mut r, info)?;
                r.take(n)?;
            }
            4 | 5 => {
                let open = if info == 31 {
                    None
                } else {
                    let n = argument(&mut r, info)?;
                    if n > limits.max_len {
                        return Err(Refused::new(
                            Limit::CborItems,
                            format!(
                                "a CBOR {} of {n} elements (at most {})",
                                if major == 4 { "array" } else { "map" },
                                limits.max_len
                            ),
                        ));
                    }
                    let items = if major == 5 { n * 2 } else { n };
                    if items > r.remaining() as u64 {
                        return Err(Refused::malformed(format!(
                            "a CBOR container of {items} items in {} bytes",
                            r.remaining()
                        )));
                    }
                    Some(items)
                };
                // The pseudo-container does not count as a level.
                if stack.len() > limits.max_depth {
                    return Err(Refused::new(
                        Limit::CborDepth,
                        format!("CBOR nested more than {} deep", limits.max_depth),
                    ));
                }
                stack.push(open);
            }
            _ => match info {
                0..=23 => {}
                24 => {
                    r.take(1)?;
                }
                25 => {
                    r.take(2)?;
                }
                26 => {
                    r.take(4)?;
                }
                27 => {
                    r.take(8)?;
                }
                31 => return Err(Refused::malformed("a CBOR break outside an indefinite-length item")),
                _ => return Err(Refused::malformed("a reserved CBOR simple value")),
            },
        }
    }
    Ok(r.position())
}

/// The argument of a CBOR head with additional information `info`.
fn argument(r: &mut Reader<'_>, info: u8) -> Result<u64, Refused> {
    let bytes = match info {
        0..=23 => return Ok(u64::from(info)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => {
            return Err(Refused::malformed(
                "a CBOR head with reserved or indefinite length here",
            ));
        }
    };
    let b = r.take(bytes)?;
    Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
}
