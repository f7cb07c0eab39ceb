//! The signing keys: Konnect's JWKS document (`GET
//! /v2/audit-log-webhook/jwks.json`, saved as `jwks.json` in the profile
//! directory) read into the Ed25519 public keys a record may be checked
//! against.
//!
//! Konnect's document is `{"keys":[{"kty":"OKP","alg":"EdDSA","kid":…,
//! "crv":"Ed25519","x":…}]}` with `x` the raw 32-byte public key in
//! unpadded base64url (RFC 8037). Keys of any other type are skipped: a
//! record carries no key id, so only the Ed25519 keys matter, each tried in
//! turn, the one that verified last first. Each key is decompressed once,
//! when the document is read ([`Key::verifying`]), and checked for a small
//! or mixed order (torsion) component, which rules it out of batch
//! verification ([`Key::batchable`], see `batch`). Fetching the document
//! is `crate::konnect`'s; checking records against the keys is `check`'s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Deserialize;

use super::BASE64URL;

/// Length of an Ed25519 public key.
const PUBLIC_KEY_LEN: usize = 32;

/// One Ed25519 public key of the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The JWK's `kid`, for messages; records do not name their key.
    pub kid: Option<String>,
    pub public: [u8; PUBLIC_KEY_LEN],
    /// The key decompressed, for every verification. `None` when the 32
    /// bytes are no curve point: no signature verifies with it.
    pub verifying: Option<VerifyingKey>,
    /// Torsion-free (in the prime-order subgroup) and canonically
    /// encoded: batch verification gives single verification's answers
    /// only for such keys (see `batch`); records of any other key are
    /// checked one by one.
    pub batchable: bool,
}

impl Key {
    fn new(kid: Option<String>, public: [u8; PUBLIC_KEY_LEN]) -> Key {
        let verifying = VerifyingKey::from_bytes(&public).ok();
        let batchable = verifying.is_some_and(|v| {
            let point = v.to_edwards();
            point.is_torsion_free() && !point.is_small_order() && point.compress().0 == public
        });
        Key {
            kid,
            public,
            verifying,
            batchable,
        }
    }

    /// Plain Ed25519 (RFC 8032, no prehash), with the cofactorless
    /// equation `[s]B = R + [k]A` as ring and libsodium check it.
    pub fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        self.verifying
            .is_some_and(|v| v.verify(message, signature).is_ok())
    }
}

/// Which key verified last: tried first next time (records carry no key
/// id, and nearly all are signed by the newest key). A hint only, so
/// clones and comparisons ignore it.
#[derive(Debug, Default)]
struct LastKey(AtomicUsize);

impl Clone for LastKey {
    fn clone(&self) -> Self {
        LastKey(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

impl PartialEq for LastKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LastKey {}

/// The Ed25519 keys of one JWKS document, in its order, and which fetch
/// they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Key>,
    /// Grows with every set installed while a listener runs, so that a
    /// request can tell whether the keys changed since it checked.
    pub generation: u64,
    last: LastKey,
}

/// Why a JWKS document gives no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS document (a JSON object with a \"keys\" array): {0}")]
    NotJwks(String),
    #[error("the JWKS holds no Ed25519 key (kty \"OKP\", crv \"Ed25519\", x of 32 bytes)")]
    NoEd25519Key,
    #[error("failed to read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    File {
        path: PathBuf,
        reason: Box<JwksError>,
    },
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Reads a JWKS document; fails when it holds no usable Ed25519 key.
    pub fn parse(document: &[u8]) -> Result<KeySet, JwksError> {
        let doc: Document =
            serde_json::from_slice(document).map_err(|e| JwksError::NotJwks(e.to_string()))?;
        let keys: Vec<Key> = doc.keys.iter().filter_map(ed25519_key).collect();
        if keys.is_empty() {
            return Err(JwksError::NoEd25519Key);
        }
        Ok(KeySet {
            keys,
            generation: 0,
            last: LastKey::default(),
        })
    }

    /// Reads a JWKS file (the saved `jwks.json` or `--jwks FILE`).
    pub fn read(path: &Path) -> Result<KeySet, JwksError> {
        let bytes = std::fs::read(path).map_err(|e| JwksError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        KeySet::parse(&bytes).map_err(|reason| JwksError::File {
            path: path.to_path_buf(),
            reason: Box::new(reason),
        })
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether any key verifies `signature` over `message` (plain Ed25519,
    /// no prehash), trying the key that verified last first.
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.verifying_key(message, signature).is_some()
    }

    /// The index of a key that verifies `signature` over `message`.
    pub fn verifying_key(&self, message: &[u8], signature: &[u8; 64]) -> Option<usize> {
        let signature = Signature::from_bytes(signature);
        let first = self.last_key();
        if self.keys.get(first)?.verifies(message, &signature) {
            return Some(first);
        }
        let found = (0..self.keys.len())
            .filter(|&i| i != first)
            .find(|&i| self.keys[i].verifies(message, &signature))?;
        self.last.0.store(found, Ordering::Relaxed);
        Some(found)
    }

    /// The index of the key that verified last (the first key at first).
    pub fn last_key(&self) -> usize {
        self.last.0.load(Ordering::Relaxed)
    }

    /// The key ids, for messages (`?` for a key without one).
    pub fn kids(&self) -> String {
        self.keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The key of a JWK if it is an Ed25519 public key (RFC 8037: `kty` OKP,
/// `crv` Ed25519, `x` the 32 key bytes).
fn ed25519_key(jwk: &serde_json::Value) -> Option<Key> {
    let text = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    if text("kty") != Some("OKP") || text("crv") != Some("Ed25519") {
        return None;
    }
    let x = BASE64URL.decode(text("x")?).ok()?;
    let public: [u8; PUBLIC_KEY_LEN] = x.try_into().ok()?;
    Some(Key::new(text("kid").map(str::to_owned), public))
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn reads_konnects_shape_and_skips_other_keys() {
        let doc = format!(
            r#"{{"keys":[
                {{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"rsa"}},
                {{"kty":"OKP","crv":"X25519","x":"{X}","kid":"dh"}},
                {{"kty":"OKP","alg":"EdDSA","kid":"k1","crv":"Ed25519","x":"{X}"}},
                {{"kty":"OKP","crv":"Ed25519","x":"short"}},
                {{"kty":"OKP","crv":"Ed25519","x":"{X}"}}
            ]}}"#
        );
        let set = KeySet::parse(doc.as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.keys()[0].kid.as_deref(), Some("k1"));
        assert_eq!(set.keys()[0].public[0], 0xd7);
        assert_eq!(set.kids(), "k1, ?");
    }

    #[test]
    fn documents_without_an_ed25519_key_are_refused() {
        assert_eq!(
            KeySet::parse(br#"{"keys":[]}"#).unwrap_err(),
            JwksError::NoEd25519Key
        );
        assert!(matches!(
            KeySet::parse(b"<html>").unwrap_err(),
            JwksError::NotJwks(_)
        ));
        assert!(matches!(
            KeySet::parse(br#"{"data":[]}"#).unwrap_err(),
            JwksError::NotJwks(_)
        ));
    }

    #[test]
    fn a_file_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let missing = KeySet::read(&path).unwrap_err().to_string();
        assert!(missing.starts_with(&format!("failed to read {}", path.display())));
        std::fs::write(&path, br#"{"keys":[]}"#).unwrap();
        assert_eq!(
            KeySet::read(&path).unwrap_err().to_string(),
            format!(
                "{}: the JWKS holds no Ed25519 key (kty \"OKP\", crv \"Ed25519\", x of 32 bytes)",
                path.display()
            )
        );
    }
}
