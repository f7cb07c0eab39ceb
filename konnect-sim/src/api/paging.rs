//! Cursor paging shared by the list endpoints: opaque cursors (base64url of
//! `<prefix><seq>`, where `seq` is the position of an item), the `next` and
//! `previous` links, and reading the query string.

use crate::codec::{base64url, base64url_decode};

/// The cursor of the item at `seq` of a list whose cursors start with
/// `prefix`.
pub(super) fn encode_cursor(prefix: &str, seq: u64) -> String {
    base64url(format!("{prefix}{seq}").as_bytes())
}

/// The position a cursor of this list points at; `None` for anything else.
pub(super) fn decode_cursor(cursor: &str, prefix: &str) -> Option<u64> {
    let bytes = base64url_decode(cursor)?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

/// A page link: `path?k=v&...` with the keys percent-encoded as Konnect does
/// (`page%5Bafter%5D=...`).
pub(super) fn link(path: &str, params: &[(&str, String)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in params {
        query.append_pair(key, value);
    }
    format!("{path}?{}", query.finish())
}

/// The query's `key=value` pairs, decoded.
pub(super) fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The last value of `key` in the query.
pub(super) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(
            decode_cursor(&encode_cursor("dest:", 42), "dest:"),
            Some(42)
        );
        assert_eq!(decode_cursor(&encode_cursor("dest:", 42), "event:"), None);
        assert_eq!(decode_cursor("not a cursor", "dest:"), None);
        assert_eq!(decode_cursor("", "dest:"), None);
    }

    #[test]
    fn links_percent_encode_the_brackets() {
        assert_eq!(
            link(
                "/v3/audit-log-destinations",
                &[
                    ("page[size]", "10".into()),
                    ("filter[name][eq]", "a b".into())
                ]
            ),
            "/v3/audit-log-destinations?page%5Bsize%5D=10&filter%5Bname%5D%5Beq%5D=a+b"
        );
    }
}
