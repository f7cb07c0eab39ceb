//! One record's signature check, on the raw line exactly as received,
//! following Kong's documented scheme ("Verify audit log signatures",
//! docs.konghq.com; see `reference/kongctl-pull-upstream.md` §7):
//!
//! - JSON: the signed bytes are the line with the `sig` member, its value
//!   and the comma before it removed: the line minus `,"sig":"<value>"`.
//! - CEF: the line with the `sig` extension, its value and the space before
//!   it removed: the line minus ` sig=<value>`.
//! - The signature is unpadded base64url of 64 bytes; the message is
//!   checked with plain Ed25519 against each key in turn (records carry no
//!   key id).
//!
//! Nothing is re-serialised: a byte changed anywhere outside the removed
//! part fails the check, and so does whitespace added around the `sig`
//! member (Kong: "Don't add any extra whitespace or make any formatting
//! changes"). The format of a line comes from its content ([`Record`]).
//!
//! Finding the signature. Konnect puts it last (`…,"sig":"<value>"}`,
//! `… sig=<value>`), so [`probe`] looks for it there, in the raw bytes,
//! without reading the record: a record it finds and a key verifies is
//! valid, whatever else the line holds (the signer vouches for every byte
//! of it). Anything else (no signature there, a failed check) goes through
//! the record's view ([`Record`]: format, the top-level `sig`), which
//! gives the verdicts below exactly.
//!
//! Two formats are not checked. cps wraps the JSON record in
//! `{"event": …}` and Kong does not say what its signature covers; the
//! pull API's `signature` covers an undocumented message too. Both are
//! [`Outcome::Unverifiable`], never a failure.

use base64::Engine;
use memchr::memmem;

use super::BASE64URL;
use super::jwks::KeySet;
use crate::record::{Format, Record};

/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A key verifies the signature over the documented bytes.
    Valid,
    /// The record is signed and the signature does not hold.
    Invalid(Flaw),
    /// No signature (or an empty one), or not an audit record at all.
    Unsigned,
    /// Signed in a way that cannot be checked.
    Unverifiable(Unverifiable),
}

/// Why a signed record is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// No key verifies it: the record was changed, or signed by a key the
    /// JWKS does not list.
    Mismatch,
    /// The signature is not 64 bytes of base64url.
    Malformed,
    /// The signature is not where the scheme removes it from
    /// (`,"sig":"…"` or ` sig=…`), so the signed bytes cannot be rebuilt.
    Misplaced,
}

/// Why a signature cannot be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverifiable {
    /// cps: what the signature covers is undocumented.
    Cps,
    /// A pull API record: what `signature` covers is undocumented.
    Pull,
    /// No key to check against (the JWKS could not be fetched).
    NoKeys,
}

/// The four counts of `listener.json` and the offline summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Valid,
    Invalid,
    Unsigned,
    Unverifiable,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Valid,
        Kind::Invalid,
        Kind::Unsigned,
        Kind::Unverifiable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Valid => "valid",
            Kind::Invalid => "invalid",
            Kind::Unsigned => "unsigned",
            Kind::Unverifiable => "unverifiable",
        }
    }
}

impl Outcome {
    pub fn kind(self) -> Kind {
        match self {
            Outcome::Valid => Kind::Valid,
            Outcome::Invalid(_) => Kind::Invalid,
            Outcome::Unsigned => Kind::Unsigned,
            Outcome::Unverifiable(_) => Kind::Unverifiable,
        }
    }

    /// A failure that newer keys could turn valid (Konnect rotated its
    /// key): a mismatch, or no keys at all.
    pub fn may_need_new_keys(self) -> bool {
        matches!(
            self,
            Outcome::Invalid(Flaw::Mismatch) | Outcome::Unverifiable(Unverifiable::NoKeys)
        )
    }

    /// The reason `rejected.jsonl` and `get audit-logs --verify -o jsonl`
    /// give, for the records they list (invalid and unsigned ones).
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::Invalid(_) => Some("invalid_signature"),
            Outcome::Unsigned => Some("missing_signature"),
            Outcome::Valid | Outcome::Unverifiable(_) => None,
        }
    }

    /// A few words on why, for `-o jsonl` and the log.
    pub fn detail(self) -> &'static str {
        match self {
            Outcome::Valid => "a key of the JWKS verifies the signature",
            Outcome::Invalid(Flaw::Mismatch) => {
                "no key of the JWKS verifies the signature: the record was changed or signed by another key"
            }
            Outcome::Invalid(Flaw::Malformed) => {
                "the signature is not 64 bytes of unpadded base64url"
            }
            Outcome::Invalid(Flaw::Misplaced) => {
                "the signature is not a compact ,\"sig\":\"…\" member or a trailing sig= extension, so the signed bytes cannot be rebuilt"
            }
            Outcome::Unsigned => "the record has no signature",
            Outcome::Unverifiable(Unverifiable::Cps) => {
                "cps records cannot be checked: Kong does not document what their signature covers"
            }
            Outcome::Unverifiable(Unverifiable::Pull) => {
                "pull API records cannot be checked: Kong does not document what their signature covers"
            }
            Outcome::Unverifiable(Unverifiable::NoKeys) => {
                "no signing key to check against (the JWKS could not be fetched)"
            }
        }
    }
}

/// Where a signature sits in a line laid out as Konnect lays it out: the
/// last member of a JSON object or the last CEF extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    /// The bytes `start..end` (`,"sig":"<value>"` or ` sig=<value>`) are
    /// removed to get the signed message.
    pub start: usize,
    pub end: usize,
    pub signature: [u8; SIGNATURE_LEN],
}

impl Probed {
    /// The signed message: `line` without the signature.
    pub fn message<'a>(&self, line: &[u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        scratch.clear();
        scratch.extend_from_slice(&line[..self.start]);
        scratch.extend_from_slice(&line[self.end..]);
        scratch
    }
}

/// Finds a 64-byte signature where Konnect puts it, without reading the
/// record: a line ending in `,"sig":"<value>"}` (JSON; the closing brace
/// is the top-level object's, and a value of base64url characters is a
/// whole string, so the member is the object's last) or a non-JSON line
/// ending in ` sig=<value>` (CEF). `None` when the line is laid out
/// otherwise (the record's view then decides).
pub fn probe(line: &[u8]) -> Option<Probed> {
    const JSON_MEMBER: &[u8] = b",\"sig\":\"";
    const CEF_EXTENSION: &[u8] = b" sig=";
    let is_value = |value: &[u8]| {
        !value.is_empty()
            && value
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
    };
    let (start, end, value) = if line.first() == Some(&b'{') {
        let body = line.strip_suffix(b"\"}")?;
        let start = memmem::rfind(body, JSON_MEMBER)?;
        (start, body.len() + 1, &body[start + JSON_MEMBER.len()..])
    } else {
        let start = memmem::rfind(line, CEF_EXTENSION)?;
        (start, line.len(), &line[start + CEF_EXTENSION.len()..])
    };
    if !is_value(value) {
        return None;
    }
    let mut signature = [0u8; SIGNATURE_LEN];
    match BASE64URL.decode_slice(value, &mut signature) {
        Ok(SIGNATURE_LEN) => Some(Probed {
            start,
            end,
            signature,
        }),
        _ => None,
    }
}

/// Checks one line (as stored: without its newline). A line that is not
/// an audit record has no signature to find: unsigned.
pub fn check_line(line: &[u8], keys: &KeySet, scratch: &mut Vec<u8>) -> Outcome {
    if let Some(found) = probe(line)
        && keys.verifies(found.message(line, scratch), &found.signature)
    {
        return Outcome::Valid;
    }
    check_slow(line, keys, scratch)
}

/// Checks many lines: those the probe finds are verified together against
/// the key that verified last ([`super::batch`]); the rest, and any that
/// key does not verify, one by one ([`check_slow`]). The same outcomes as
/// [`check_line`] on each.
pub fn check_lines(lines: &[&[u8]], keys: &KeySet) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; lines.len()];
    if let Some(key) = keys.keys().get(keys.last_key()) {
        let mut messages = Vec::new();
        let mut found = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            if let Some(p) = probe(line) {
                let from = messages.len();
                messages.extend_from_slice(&line[..p.start]);
                messages.extend_from_slice(&line[p.end..]);
                found.push((index, from..messages.len(), p.signature));
            }
        }
        let items: Vec<super::batch::Item> = found
            .iter()
            .map(|(_, range, signature)| super::batch::Item {
                message: &messages[range.clone()],
                signature,
            })
            .collect();
        for ((index, _, _), valid) in found.iter().zip(super::batch::verify_all(key, &items)) {
            if valid {
                outcomes[*index] = Some(Outcome::Valid);
            }
        }
    }
    let mut scratch = Vec::new();
    outcomes
        .into_iter()
        .zip(lines)
        .map(|(outcome, line)| outcome.unwrap_or_else(|| check_slow(line, keys, &mut scratch)))
        .collect()
}

/// [`check_line`] through the record's view, for the lines the probe does
/// not settle.
pub fn check_slow(line: &[u8], keys: &KeySet, scratch: &mut Vec<u8>) -> Outcome {
    match Record::from_slice(line) {
        Ok(record) => check(&record, keys, scratch),
        Err(_) => Outcome::Unsigned,
    }
}

/// Checks one record; `scratch` holds the signed bytes while they are
/// checked (reused across records).
pub fn check(record: &Record, keys: &KeySet, scratch: &mut Vec<u8>) -> Outcome {
    let pattern_start: &[u8] = match record.format() {
        Format::Cps => return Outcome::Unverifiable(Unverifiable::Cps),
        Format::Pull => return Outcome::Unverifiable(Unverifiable::Pull),
        Format::Json | Format::OtherJson => b",\"sig\":\"",
        Format::Cef => b" sig=",
    };
    let Some(sig) = record.signature() else {
        return Outcome::Unsigned;
    };
    let signature: [u8; SIGNATURE_LEN] = match BASE64URL.decode(sig) {
        Ok(bytes) => match bytes.try_into() {
            Ok(signature) => signature,
            Err(_) => return Outcome::Invalid(Flaw::Malformed),
        },
        _ => return Outcome::Invalid(Flaw::Malformed),
    };
    if keys.is_empty() {
        return Outcome::Unverifiable(Unverifiable::NoKeys);
    }
    // The value as it appears in the line: base64url needs no escaping in
    // JSON or CEF, so the decoded value is also the raw one.
    let mut needle = Vec::with_capacity(pattern_start.len() + sig.len() + 1);
    needle.extend_from_slice(pattern_start);
    needle.extend_from_slice(sig.as_bytes());
    let json = record.format() != Format::Cef;
    if json {
        needle.push(b'"');
    }
    let line = record.raw().as_ref();
    let mut found = false;
    // Usually one place; should the text occur twice (a nested member),
    // each removal is tried.
    for start in memmem::find_iter(line, &needle) {
        let end = start + needle.len();
        // A CEF value runs to the next space (the next extension) or the
        // end of the line.
        if !json && line.get(end).is_some_and(|&b| b != b' ') {
            continue;
        }
        found = true;
        scratch.clear();
        scratch.extend_from_slice(&line[..start]);
        scratch.extend_from_slice(&line[end..]);
        if keys.verifies(scratch, &signature) {
            return Outcome::Valid;
        }
    }
    if found {
        Outcome::Invalid(Flaw::Mismatch)
    } else {
        Outcome::Invalid(Flaw::Misplaced)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    /// A key pair from a fixed seed, and its JWKS.
    pub(crate) fn key_pair(seed: u8) -> (Ed25519KeyPair, String) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let x = BASE64URL.encode(pair.public_key().as_ref());
        let jwks = format!(
            r#"{{"keys":[{{"kty":"OKP","alg":"EdDSA","kid":"k{seed}","crv":"Ed25519","x":"{x}"}}]}}"#
        );
        (pair, jwks)
    }

    pub(crate) fn sign(pair: &Ed25519KeyPair, message: &str) -> String {
        BASE64URL.encode(pair.sign(message.as_bytes()).as_ref())
    }

    /// A JSON record signed as Kong documents: `sig` added last.
    pub(crate) fn signed_json(pair: &Ed25519KeyPair, body: &str) -> String {
        let sig = sign(pair, body);
        format!("{},\"sig\":\"{sig}\"}}", &body[..body.len() - 1])
    }

    const JSON: &str = r#"{"cef_version":0,"event_class_id":"konnect","event_ts":"2025-05-16T00:28:01Z","name":"Authz.portals","trace_id":3895213347334635099}"#;
    const CEF: &str = "2025-05-19T00:03:39Z konghq.com CEF:0|KongInc|Konnect|1.0|AUTHENTICATION_TYPE_PAT|AUTHENTICATION_OUTCOME_SUCCESS|0|rt=3958 src=127.0.0.1 user_agent=grpc-go/1.51.0 (linux)";

    fn keys(seed: u8) -> KeySet {
        KeySet::parse(key_pair(seed).1.as_bytes()).unwrap()
    }

    fn outcome(line: &str, keys: &KeySet) -> Outcome {
        check_line(line.as_bytes(), keys, &mut Vec::new())
    }

    #[test]
    fn json_signed_as_documented_is_valid_and_any_change_is_not() {
        let (pair, _) = key_pair(1);
        let line = signed_json(&pair, JSON);
        assert_eq!(outcome(&line, &keys(1)), Outcome::Valid);
        // A big integer re-serialised through a double no longer verifies.
        let rounded = line.replace("3895213347334635099", "3895213347334635000");
        assert_eq!(
            outcome(&rounded, &keys(1)),
            Outcome::Invalid(Flaw::Mismatch)
        );
        // Whitespace is a change too.
        let spaced = line.replace("\"name\":", "\"name\": ");
        assert_eq!(outcome(&spaced, &keys(1)), Outcome::Invalid(Flaw::Mismatch));
        // Another key.
        assert_eq!(outcome(&line, &keys(2)), Outcome::Invalid(Flaw::Mismatch));
    }

    #[test]
    fn the_sig_member_may_sit_anywhere_after_the_first() {
        let (pair, _) = key_pair(1);
        let sig = sign(&pair, JSON);
        let middle = JSON.replace(",\"name\":", &format!(",\"sig\":\"{sig}\",\"name\":"));
        assert_eq!(outcome(&middle, &keys(1)), Outcome::Valid);
        // First: there is no comma before it to remove with it.
        let first = JSON.replacen('{', &format!("{{\"sig\":\"{sig}\","), 1);
        assert_eq!(outcome(&first, &keys(1)), Outcome::Invalid(Flaw::Misplaced));
        let loose = signed_json(&pair, JSON).replace(",\"sig\":\"", ", \"sig\": \"");
        assert_eq!(outcome(&loose, &keys(1)), Outcome::Invalid(Flaw::Misplaced));
    }

    #[test]
    fn every_key_is_tried() {
        let (pair, _) = key_pair(2);
        let line = signed_json(&pair, JSON);
        let (_, one) = key_pair(1);
        let (_, two) = key_pair(2);
        let both = format!(
            r#"{{"keys":[{},{}]}}"#,
            &one[9..one.len() - 2],
            &two[9..two.len() - 2]
        );
        let set = KeySet::parse(both.as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.last_key(), 0);
        assert_eq!(outcome(&line, &set), Outcome::Valid);
        // The key that verified is tried first from now on.
        assert_eq!(set.last_key(), 1);
    }

    #[test]
    fn the_probe_finds_a_signature_where_konnect_puts_it_and_nowhere_else() {
        let (pair, _) = key_pair(1);
        let line = signed_json(&pair, JSON);
        let found = probe(line.as_bytes()).expect("a trailing sig member");
        assert_eq!(
            &line[found.start..found.end],
            &line[JSON.len() - 1..line.len() - 1]
        );
        assert_eq!(
            found.message(line.as_bytes(), &mut Vec::new()),
            JSON.as_bytes()
        );
        let sig = sign(&pair, JSON);
        assert_eq!(BASE64URL.encode(found.signature), sig);
        // Padded base64url decodes too.
        let padded = line.replace(&sig, &format!("{sig}=="));
        assert_eq!(probe(padded.as_bytes()).unwrap().signature, found.signature);
        let cef = format!("{CEF} sig={}", sign(&pair, CEF));
        let found = probe(cef.as_bytes()).expect("a trailing sig extension");
        assert_eq!((found.start, found.end), (CEF.len(), cef.len()));
        // Elsewhere, or not 64 bytes of base64url: left to the record's view.
        let middle = JSON.replace(",\"name\":", &format!(",\"sig\":\"{sig}\",\"name\":"));
        let cps = format!("{{\"event\":{line}}}");
        let (head, tail) = CEF.split_once(" user_agent=").unwrap();
        let cef_inner = format!("{head} sig={sig} user_agent={tail}");
        for other in [
            middle,
            cps,
            cef_inner,
            line.replace(&sig, &sig[..80]),
            line.replace(&sig, &format!("{}+", &sig[..85])),
            format!("{line} "),
            JSON.to_string(),
        ] {
            assert_eq!(probe(other.as_bytes()), None, "{other}");
        }
    }

    /// The key's own check against ring's (the previous implementation,
    /// and libsodium's equation): the same answer for valid signatures
    /// and every kind of broken one.
    #[test]
    fn key_checks_agree_with_ring() {
        use ring::signature::{ED25519, UnparsedPublicKey};
        for seed in 1..=4u8 {
            let (pair, jwks) = key_pair(seed);
            let keys = KeySet::parse(jwks.as_bytes()).unwrap();
            assert!(keys.keys()[0].batchable);
            let public = pair.public_key().as_ref().to_vec();
            for n in 0..8 {
                let message = format!("{JSON} {seed} {n}");
                let good: [u8; 64] = pair.sign(message.as_bytes()).as_ref().try_into().unwrap();
                let mut cases = vec![good];
                for i in [0, 17, 31, 32, 45, 63] {
                    let mut bad = good;
                    bad[i] ^= 1 << (n % 8);
                    cases.push(bad);
                }
                // s + L: the same point equation, a non-canonical scalar.
                let mut wide = good;
                let mut carry = 0u16;
                for (i, l) in L_BYTES.iter().enumerate() {
                    let sum = wide[32 + i] as u16 + *l as u16 + carry;
                    wide[32 + i] = sum as u8;
                    carry = sum >> 8;
                }
                cases.push(wide);
                for sig in cases {
                    let ring_says = UnparsedPublicKey::new(&ED25519, &public)
                        .verify(message.as_bytes(), &sig)
                        .is_ok();
                    assert_eq!(keys.verifies(message.as_bytes(), &sig), ring_says);
                }
            }
        }
    }

    /// The group order L, little-endian.
    const L_BYTES: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    #[test]
    fn cef_signed_as_documented_is_valid() {
        let (pair, _) = key_pair(3);
        let line = format!("{CEF} sig={}", sign(&pair, CEF));
        assert_eq!(outcome(&line, &keys(3)), Outcome::Valid);
        let tampered = line.replace("src=127.0.0.1", "src=127.0.0.2");
        assert_eq!(
            outcome(&tampered, &keys(3)),
            Outcome::Invalid(Flaw::Mismatch)
        );
        // Not last: removing ` sig=<value>` still gives the signed bytes.
        let (head, tail) = CEF.split_once(" user_agent=").unwrap();
        let inner = format!("{head} sig={} user_agent={tail}", sign(&pair, CEF));
        assert_eq!(outcome(&inner, &keys(3)), Outcome::Valid);
    }

    #[test]
    fn unsigned_malformed_and_unverifiable_records() {
        let k = keys(1);
        assert_eq!(outcome(JSON, &k), Outcome::Unsigned);
        let empty = format!("{},\"sig\":\"\"}}", &JSON[..JSON.len() - 1]);
        assert_eq!(outcome(&empty, &k), Outcome::Unsigned);
        assert_eq!(outcome(CEF, &k), Outcome::Unsigned);
        assert_eq!(outcome("not a record", &k), Outcome::Unsigned);
        let short = format!("{},\"sig\":\"abc\"}}", &JSON[..JSON.len() - 1]);
        assert_eq!(outcome(&short, &k), Outcome::Invalid(Flaw::Malformed));
        let (pair, _) = key_pair(1);
        let cps = format!("{{\"event\":{}}}", signed_json(&pair, JSON));
        assert_eq!(outcome(&cps, &k), Outcome::Unverifiable(Unverifiable::Cps));
        let pull = r#"{"type":"authorization","ts":"2026-01-01T00:00:00Z","signature":"x"}"#;
        assert_eq!(outcome(pull, &k), Outcome::Unverifiable(Unverifiable::Pull));
        assert_eq!(
            outcome(&signed_json(&pair, JSON), &KeySet::default()),
            Outcome::Unverifiable(Unverifiable::NoKeys)
        );
    }
}
