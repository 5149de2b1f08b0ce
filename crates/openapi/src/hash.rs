//! The content hash in the v3 index's `serverRelativeURL`s.
//!
//! Clients (kubectl's disk cache) only compare it for equality, so any
//! stable digest of the bytes will do; upstream's SHA-512 would need another
//! dependency for no gain. Two FNV-1a runs with different offsets give 128
//! bits, rendered as upper-case hex like upstream's.

const PRIME: u64 = 0x0000_0100_0000_01b3;
const OFFSET_A: u64 = 0xcbf2_9ce4_8422_2325;
const OFFSET_B: u64 = 0x6c62_272e_07bb_0142;

fn fnv1a(offset: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(offset, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Upper-case hex digest of `bytes`.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    format!(
        "{:016X}{:016X}",
        fnv1a(OFFSET_A, bytes),
        fnv1a(OFFSET_B, bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_and_is_stable() {
        assert_eq!(content_hash(b"abc"), content_hash(b"abc"));
        assert_ne!(content_hash(b"abc"), content_hash(b"abd"));
        assert_eq!(content_hash(b"").len(), 32);
    }
}
