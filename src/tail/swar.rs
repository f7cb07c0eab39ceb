//! Byte tests on eight bytes at once (SWAR: SIMD within a register), for the
//! scans that dominate `tail`: record ends, string ends, bytes to escape.
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

/// The position of the first `b` in `s`.
pub fn find(s: &[u8], b: u8) -> Option<usize> {
    let mut i = 0;
    while let Some(x) = word_at(s, i) {
        if equal(x, b) != 0 {
            break;
        }
        i += 8;
    }
    s[i..].iter().position(|&c| c == b).map(|p| i + p)
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

    #[test]
    fn find_agrees_with_a_plain_search() {
        let s = b"0123456789abcdef\nxyz\n0123456789\xff\n";
        for start in 0..s.len() {
            for len in 0..=s.len() - start {
                let part = &s[start..start + len];
                assert_eq!(find(part, b'\n'), part.iter().position(|&c| c == b'\n'));
            }
        }
    }
}
