//! The protobuf wire format, read without trusting the input: every length
//! is bounds-checked against the remaining buffer and varints are capped at
//! ten bytes, so a malformed body yields a [`WireError`], never a panic.

/// Why a buffer is not well-formed protobuf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ended inside a tag, varint, fixed-width value or length-delimited payload.
    #[error("truncated protobuf data")]
    Truncated,
    /// A varint ran past ten bytes.
    #[error("varint longer than ten bytes")]
    VarintTooLong,
    /// Field number 0 is reserved; a tag carrying it means garbage.
    #[error("field number 0 is not allowed")]
    ZeroFieldNumber,
    /// Wire types 3/4 (groups) and 6/7 do not occur in Kubernetes messages.
    #[error("unsupported wire type {0}")]
    UnsupportedWireType(u8),
}

/// One field value as it appears on the wire, before any schema is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, embedded messages, packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl WireValue<'_> {
    /// Human name of the wire type, for error messages.
    pub fn wire_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "fixed64",
            WireValue::Bytes(_) => "length-delimited",
            WireValue::Fixed32(_) => "fixed32",
        }
    }
}

/// Sequential reader over the fields of one message.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads the fields of the message encoded in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// True once every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads one base-128 varint.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or(WireError::Truncated)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintTooLong)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let slice = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads one little-endian fixed64 (packed repeated doubles).
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.fixed::<8>()?))
    }

    /// Reads the next `(field number, value)`, or `None` at the end of the buffer.
    pub fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| WireError::Truncated)?;
        if number == 0 {
            return Err(WireError::ZeroFieldNumber);
        }
        let value = match (tag & 7) as u8 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            other => return Err(WireError::UnsupportedWireType(other)),
        };
        Ok(Some((number, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        // field 1 varint 150, field 2 bytes "hi", field 3 fixed32 1, field 4 fixed64 2
        let buf = [
            0x08, 0x96, 0x01, 0x12, 2, b'h', b'i', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_field(), Ok(Some((1, WireValue::Varint(150)))));
        assert_eq!(r.next_field(), Ok(Some((2, WireValue::Bytes(b"hi")))));
        assert_eq!(r.next_field(), Ok(Some((3, WireValue::Fixed32(1)))));
        assert_eq!(r.next_field(), Ok(Some((4, WireValue::Fixed64(2)))));
        assert_eq!(r.next_field(), Ok(None));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(
            Reader::new(&[0x12, 5, 1]).next_field(),
            Err(WireError::Truncated)
        );
        assert_eq!(Reader::new(&[0x08]).next_field(), Err(WireError::Truncated));
        assert_eq!(
            Reader::new(&[0x00, 1]).next_field(),
            Err(WireError::ZeroFieldNumber)
        );
        assert_eq!(
            Reader::new(&[0x0b]).next_field(),
            Err(WireError::UnsupportedWireType(3))
        );
        assert_eq!(
            Reader::new(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1
            ])
            .next_field(),
            Err(WireError::VarintTooLong)
        );
        // length larger than usize on 32-bit or than the buffer
        assert_eq!(
            Reader::new(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]).next_field(),
            Err(WireError::Truncated)
        );
    }
}
