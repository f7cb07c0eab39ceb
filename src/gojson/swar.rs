//! Byte tests on eight bytes at once (SWAR: SIMD within a register), for the
//! two scans that dominate `tail --jq`: to the end of a string being parsed,
//! and to the next byte [`super::write_str`] must escape.
//!
//! Both look for a class of bytes (below 0x20, non-ASCII) besides a few
//! single bytes, which `memchr` cannot express; single-byte searches use
//! `memchr`. Measured on a 200 MB events file (`tail-file --jq .`, user
//! CPU, median of 10): these tests 2.04 s; `memchr2` for the quote or
//! backslash plus a pass for control characters 2.40 s; 16-byte blocks of
//! plain comparisons left to the compiler to vectorize 2.21 s.
//!
//! Each test returns a word whose high bit is set in some byte if and only
//! if some byte of `x` matches (other high bits may be set too, so only its
//! being zero or not is meaningful).

const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of every byte: set where a byte is not ASCII.
pub const HIGH: u64 = 0x8080_8080_8080_8080;

/// Some byte of `x` is below `n` (`n` at most 0x80).
pub fn less_than(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// Some byte of `x` equals `b`.
pub fn equal(x: u64, b: u8) -> u64 {
    less_than(x ^ (ONES * u64::from(b)), 1)
}

/// The eight bytes of `s` from `i`, if there are eight.
pub fn word_at(s: &[u8], i: usize) -> Option<u64> {
    let bytes = s.get(i..i + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().expect("eight bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_match_exactly_the_bytes_asked_for() {
        for b in 0..=255u8 {
            let x = u64::from_le_bytes([b, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41]);
            assert_eq!(equal(x, b'\n') != 0, b == b'\n', "{b}");
            assert_eq!(less_than(x, 0x20) != 0, b < 0x20, "{b}");
            assert_eq!(x & HIGH != 0, b >= 0x80, "{b}");
        }
    }
}
