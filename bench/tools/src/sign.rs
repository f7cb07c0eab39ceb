//! A fixed Ed25519 test key that signs corpus records as Konnect signs
//! webhook records (Kong's documented scheme: the line without its `sig`,
//! the unpadded base64url signature added last), for measuring what a
//! signature check costs.

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub struct TestKey(Ed25519KeyPair);

impl TestKey {
    pub fn new() -> Self {
        // A fixed seed: the same bodies every run, and nothing secret.
        Self(Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("a 32-byte seed is a valid key"))
    }

    /// The key as a JWKS, the shape Konnect serves.
    pub fn jwks(&self) -> String {
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}"}}]}}"#,
            B64.encode(self.0.public_key().as_ref())
        )
    }

    /// One JSON record (one line, no newline; a corpus record's `sig` is
    /// its last member) signed anew: its `sig` replaced by this key's
    /// signature of the line without it.
    pub fn sign(&self, line: &str) -> String {
        let unsigned = match line.rfind(",\"sig\":\"") {
            Some(at) => format!("{}}}", &line[..at]),
            None => line.to_string(),
        };
        let sig = B64.encode(self.0.sign(unsigned.as_bytes()).as_ref());
        format!("{},\"sig\":\"{sig}\"}}", &unsigned[..unsigned.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kongctl::verify::{KeySet, check};

    #[test]
    fn signed_records_pass_the_listeners_check_and_unsigned_ones_do_not() {
        let key = TestKey::new();
        let keys = KeySet::parse(key.jwks().as_bytes()).unwrap();
        let mut line = String::new();
        crate::corpus::Generator::new(1).record(&mut line);
        let line = line.trim_end_matches('\n');
        let signed = key.sign(line);
        assert_eq!(
            signed.len() - signed.rfind(",\"sig\":\"").unwrap(),
            8 + 86 + 2
        );
        let mut scratch = Vec::new();
        let mut kind = |l: &str| check::check_line(l.as_bytes(), &keys, &mut scratch).kind();
        assert_eq!(kind(&signed), check::Kind::Valid);
        assert_eq!(kind(line), check::Kind::Invalid);
        assert_eq!(
            kind(&signed.replacen("\"severity\"", "\"Severity\"", 1)),
            check::Kind::Invalid
        );
    }
}
