//! `--grep PATTERN`: a regular expression (the `regex` crate's syntax;
//! `(?i)` makes it case-insensitive) over each record's bytes as stored,
//! tested before the record is read at all, so that a search costs what the
//! regular expression costs and no more. A record whose bytes do not match
//! is neither parsed nor printed (nor, if it is not a record, reported); a
//! CEF record is matched as the line stored, not its JSON form.
//!
//! Sources test the bytes of each line with [`crate::query::Query::admits`]
//! before they make a record of it; [`crate::query::Query::matches`] tests
//! a record's bytes too, for sources that must read every record anyway
//! (the pull API places its windows by the records' times).

use std::fmt;

use regex::bytes::Regex;

/// A compiled `--grep` pattern.
#[derive(Clone)]
pub struct Grep(Regex);

impl Grep {
    /// Compiles `pattern`; the error is the regex crate's, which shows the
    /// pattern and marks the fault.
    pub fn new(pattern: &str) -> Result<Grep, String> {
        Regex::new(pattern).map(Grep).map_err(|e| {
            let mut message = format!("invalid --grep pattern: {e}");
            if pattern.contains("\\p") || pattern.contains("\\P") {
                // kongctl is built without regex's Unicode property tables
                // (a test build has them, through the emulator's crates).
                message.push_str(
                    "\nUnicode classes (\\p{...}) are not supported; spell the characters out, e.g. [α-ω]",
                );
            }
            message
        })
    }

    /// Whether `bytes` hold a match.
    pub fn is_match(&self, bytes: &[u8]) -> bool {
        self.0.is_match(bytes)
    }

    pub fn pattern(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Grep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Grep").field(&self.pattern()).finish()
    }
}

impl PartialEq for Grep {
    fn eq(&self, other: &Grep) -> bool {
        self.pattern() == other.pattern()
    }
}

impl Eq for Grep {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_bytes_anywhere_and_case_insensitively_when_asked() {
        let g = Grep::new("control-planes").unwrap();
        assert!(g.is_match(br#"{"name":"Authz.control-planes"}"#));
        assert!(!g.is_match(br#"{"name":"Authz.Control-Planes"}"#));
        let i = Grep::new("(?i)control-planes").unwrap();
        assert!(i.is_match(br#"{"name":"Authz.Control-Planes"}"#));
        // Bytes that are not UTF-8 are searched too.
        assert!(Grep::new("ab").unwrap().is_match(b"\xff\xfeab"));
        let alt = Grep::new(r#""granted":false|"success":"false""#).unwrap();
        assert!(alt.is_match(br#"{"granted":false}"#));
    }

    #[test]
    fn a_bad_pattern_says_what_is_wrong() {
        let e = Grep::new("a(b").unwrap_err();
        assert!(
            e.starts_with("invalid --grep pattern: regex parse error:"),
            "{e}"
        );
        assert!(e.contains("unclosed group"), "{e}");
        // (?i) folds beyond ASCII.
        assert!(Grep::new("(?i)ωmega").unwrap().is_match("ΩMEGA".as_bytes()));
    }
}
