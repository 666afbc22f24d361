//! A cursor over untrusted bytes: LEB128 numbers and slices, every read bounds-checked.

use super::Refused;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being read, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn truncated(&self) -> Refused {
        Refused::malformed(format!("{} ends early (at byte {})", self.what, self.pos))
    }

    pub(crate) fn byte(&mut self) -> Result<u8, Refused> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], Refused> {
        if n > self.remaining() as u64 {
            return Err(self.truncated());
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// An unsigned LEB128 number of at most 64 bits.
    pub(crate) fn uleb(&mut self) -> Result<u64, Refused> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.too_large());
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.too_large())
    }

    /// A signed LEB128 number of at most 64 bits.
    pub(crate) fn sleb(&mut self) -> Result<i64, Refused> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift == 63 && b != 0 && b != 0x7f {
                return Err(self.too_large());
            }
            value |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
            if shift > 63 {
                return Err(self.too_large());
            }
        }
    }

    fn too_large(&self) -> Refused {
        Refused::malformed(format!("{}: a LEB128 number does not fit 64 bits", self.what))
    }

    /// A LEB128 length followed by that many bytes.
    pub(crate) fn prefixed(&mut self) -> Result<&'a [u8], Refused> {
        let n = self.uleb()?;
        self.take(n)
    }
}
