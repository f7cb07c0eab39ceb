//! Record signatures as Konnect makes them, by Kong's documented scheme
//! ("Verify audit log signatures"): Ed25519 over the record's line without
//! its signature, the signature in unpadded base64url, added last: JSON gets
//! `,"sig":"<value>"` before its closing brace, CEF ` sig=<value>` at the
//! end. cps wraps the signed JSON line. The public keys are served as a
//! JWKS (`api/jwks.rs`).
//!
//! Keys are real Ed25519 key pairs made from the Sim's random source (so a
//! seed gives the same keys). They rotate on demand: the new key signs from
//! then on, and the JWKS lists it first, with the old keys only if asked.
//! For tests of receivers, the next events can be made tampered (signed,
//! then a field changed) or unsigned. Each event keeps the key it was made
//! with, so a replay re-sends it with the same signature.

use std::fmt;
use std::sync::Arc;

use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Serialize;
use serde_json::{Value, json};

use crate::codec::base64url;
use crate::records::Generator;

/// One signing key pair and its JWK id.
pub(crate) struct SigningKey {
    pub kid: String,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key of a given 32-byte seed (RFC 8032's private key), for
    /// tests and benchmarks that sign records as this emulator does.
    pub(crate) fn from_seed(generator: &mut Generator, seed: [u8; 32]) -> SigningKey {
        let mut key = SigningKey::generate(generator);
        key.pair =
            Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are an Ed25519 seed");
        key
    }

    pub(crate) fn generate(generator: &mut Generator) -> SigningKey {
        let kid: String = generator
            .bytes(20)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let seed: [u8; 32] = generator
            .bytes(32)
            .try_into()
            .expect("32 bytes were asked for");
        let pair =
            Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are an Ed25519 seed");
        SigningKey { kid, pair }
    }

    /// The signature of `message`, unpadded base64url.
    pub fn sign(&self, message: &[u8]) -> String {
        base64url(self.pair.sign(message).as_ref())
    }

    /// The public key as a JWK (RFC 8037), as Konnect lists it.
    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "alg": "EdDSA",
            "kid": self.kid,
            "crv": "Ed25519",
            "x": base64url(self.pair.public_key().as_ref()),
        })
    }
}

/// How one event is signed.
#[derive(Clone, Debug)]
pub(crate) enum Seal {
    /// Signed by this key.
    Signed(Arc<SigningKey>),
    /// Signed by this key, then changed (its `src` is another address), so
    /// the signature does not hold.
    Tampered(Arc<SigningKey>),
    /// No `sig` at all.
    Unsigned,
}

/// The signing state of a Sim: the keys (the one signing first) and the
/// forgeries asked for.
#[derive(Debug)]
pub(crate) struct Signing {
    keys: Vec<Arc<SigningKey>>,
    tampered: u64,
    unsigned: u64,
}

/// What `POST /_sim/forgeries` answers: forgeries still to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Forgeries {
    pub tampered: u64,
    pub unsigned: u64,
}

impl Signing {
    pub fn new(generator: &mut Generator) -> Signing {
        Signing {
            keys: vec![Arc::new(SigningKey::generate(generator))],
            tampered: 0,
            unsigned: 0,
        }
    }

    /// The key that signs now.
    pub fn current_key(&self) -> Arc<SigningKey> {
        self.keys[0].clone()
    }

    /// The seal of the next event: a forgery if some are asked for
    /// (tampered ones first), else signed by the current key.
    pub fn seal_next(&mut self) -> Seal {
        if self.tampered > 0 {
            self.tampered -= 1;
            Seal::Tampered(self.keys[0].clone())
        } else if self.unsigned > 0 {
            self.unsigned -= 1;
            Seal::Unsigned
        } else {
            Seal::Signed(self.keys[0].clone())
        }
    }

    /// A new key signs from now on; the JWKS keeps the old ones only if
    /// `keep_old`. Returns the new key's id.
    pub fn rotate(
        &mut self,
        generator: &mut Generator,
        seed: Option<[u8; 32]>,
        keep_old: bool,
    ) -> String {
        let key = Arc::new(match seed {
            Some(seed) => SigningKey::from_seed(generator, seed),
            None => SigningKey::generate(generator),
        });
        let kid = key.kid.clone();
        if !keep_old {
            self.keys.clear();
        }
        self.keys.insert(0, key);
        kid
    }

    /// Makes the next `tampered` events tampered and the `unsigned` after
    /// them unsigned (added to what is still pending).
    pub fn forge(&mut self, tampered: u64, unsigned: u64) -> Forgeries {
        self.tampered = self.tampered.saturating_add(tampered);
        self.unsigned = self.unsigned.saturating_add(unsigned);
        self.pending()
    }

    pub fn pending(&self) -> Forgeries {
        Forgeries {
            tampered: self.tampered,
            unsigned: self.unsigned,
        }
    }

    /// Drops pending forgeries (a reset); the keys stay.
    pub fn clear_forgeries(&mut self) {
        self.tampered = 0;
        self.unsigned = 0;
    }

    /// The JWKS document: the signing key first.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ED25519, UnparsedPublicKey};

    fn public(jwks: &Value, i: usize) -> Vec<u8> {
        crate::codec::base64url_decode(jwks["keys"][i]["x"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn the_jwks_key_verifies_what_the_signing_key_signs() {
        let mut generator = Generator::new(5);
        let mut signing = Signing::new(&mut generator);
        let Seal::Signed(key) = signing.seal_next() else {
            panic!("signed by default")
        };
        let sig = crate::codec::base64url_decode(&key.sign(b"line")).unwrap();
        assert_eq!(sig.len(), 64);
        let jwks = signing.jwks();
        assert_eq!(jwks["keys"][0]["kid"], key.kid.as_str());
        UnparsedPublicKey::new(&ED25519, public(&jwks, 0))
            .verify(b"line", &sig)
            .unwrap();
    }

    #[test]
    fn rotation_lists_the_new_key_first_and_the_old_one_if_kept() {
        let mut generator = Generator::new(5);
        let mut signing = Signing::new(&mut generator);
        let first = signing.jwks()["keys"][0]["kid"].clone();
        let kid = signing.rotate(&mut generator, None, true);
        let jwks = signing.jwks();
        assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
        assert_eq!(jwks["keys"][1]["kid"], first);
        signing.rotate(&mut generator, None, false);
        assert_eq!(signing.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_key_from_a_seed_is_that_seeds_key() {
        let mut generator = Generator::new(5);
        let mut signing = Signing::new(&mut generator);
        signing.rotate(&mut generator, Some([7; 32]), false);
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        assert_eq!(public(&signing.jwks(), 0), pair.public_key().as_ref());
        assert_eq!(
            signing.current_key().sign(b"line"),
            base64url(pair.sign(b"line").as_ref())
        );
    }

    #[test]
    fn forgeries_come_first_tampered_then_unsigned() {
        let mut generator = Generator::new(5);
        let mut signing = Signing::new(&mut generator);
        assert_eq!(
            signing.forge(1, 2),
            Forgeries {
                tampered: 1,
                unsigned: 2
            }
        );
        assert!(matches!(signing.seal_next(), Seal::Tampered(_)));
        assert!(matches!(signing.seal_next(), Seal::Unsigned));
        assert!(matches!(signing.seal_next(), Seal::Unsigned));
        assert!(matches!(signing.seal_next(), Seal::Signed(_)));
    }
}
