//! Many signatures checked against one key at once, with exactly the
//! answers of single verification.
//!
//! **Which equation decides.** Single verification ([`Key::verifies`],
//! like ring and libsodium) is cofactorless: a signature `(R, s)` on `M`
//! under key `A` holds when `s < L`, `R` is a canonical encoding and
//! `[s]B = R + [k]A` with `k = SHA-512(R || A || M) mod L`. Batch
//! verification as ed25519-dalek's `verify_batch` does it checks the
//! cofactored equation `[8](Σ z_i([s_i]B - R_i - [k_i]A)) = 0` (random
//! 128-bit `z_i`), which also accepts a signature whose `R` is off by a
//! small-order point `T` (`R = [r]B + T`, `s = r + k·a`): single
//! verification rejects it, so a batch that passes would count a record
//! valid (and, under `--verify reject`, store it) that Kong's documented
//! check refuses. Only the key's owner can make such a signature, and
//! Konnect's signer never does, but the two answers must not differ.
//!
//! **How they are made to agree.** Before the batch equation runs, every
//! signature must have a canonical `s`, a canonical `R` that decodes to a
//! point, and that point must be torsion-free (`[L]R = 0`), else it is
//! invalid (single verification rejects each of those). The key is
//! torsion-free too ([`Key::batchable`], checked once per JWKS key; other
//! keys are verified one signature at a time). With every point in the
//! prime-order group, the plain equation `Σ z_i([s_i]B - R_i - [k_i]A) = 0`
//! holds, except with probability 2^-128, only if each single equation
//! holds.
//!
//! **The torsion check is the price.** For one point it is a variable-base
//! scalar multiplication, about half a single verification, which with the
//! batch equation's share costs more than single verification (one core:
//! 7.6k records/s in batches of 50 against 10k one by one). So groups
//! smaller than [`TOGETHER_FROM`] are verified one signature at a time,
//! and from there on the `R`s are checked together: in each of [`ROUNDS`] rounds, a random
//! subset of them is summed and the sum checked. A small-order component
//! lives in a group of 8 elements; if some `R_j` has one, then whatever
//! the other points chosen, at most one of "with `R_j`" and "without" sums
//! to a torsion-free point, so a round misses it with probability at most
//! 1/2, and all rounds with at most 2^-128, the batch equation's own
//! margin. Subset sums come from tables of the 16 sums of each 4 points.
//! A failed round falls back to checking each point.
//!
//! **A batch that fails** is split in halves, each checked again as a
//! batch, down to groups of [`SINGLE_BELOW`], which are verified one by
//! one: a few bad signatures among many cost a few extra batch equations,
//! not a single verification each.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::Signature;

use super::jwks::Key;

/// Groups smaller than this are verified one signature at a time.
pub const SINGLE_BELOW: usize = 4;
/// From this many signatures on, the `R`s' torsion is checked together.
pub const TOGETHER_FROM: usize = 256;
/// Rounds of the joint torsion check (each misses a small-order component
/// with probability at most 1/2).
pub const ROUNDS: usize = 128;

/// One signature to check: the signed bytes and the 64-byte signature.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub message: &'a [u8],
    pub signature: &'a [u8; 64],
}

/// A signature ready for the batch equation.
struct Prepared {
    index: usize,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Whether `key` verifies each of `items`: the same answers as
/// [`Key::verifies`] on each (see the module documentation).
pub fn verify_all(key: &Key, items: &[Item<'_>]) -> Vec<bool> {
    let mut valid = vec![false; items.len()];
    if !key.batchable || items.len() < TOGETHER_FROM {
        for (slot, item) in valid.iter_mut().zip(items) {
            *slot = key.verifies(item.message, &Signature::from_bytes(item.signature));
        }
        return valid;
    }
    let a = key
        .verifying
        .expect("a batchable key is a curve point")
        .to_edwards();
    let mut prepared: Vec<Prepared> = items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| prepare(index, item, &key.public))
        .collect();
    if !all_torsion_free(&prepared) {
        // Rare (only a key's owner can make such a signature): find them.
        prepared.retain(|p| is_torsion_free(&p.r));
    }
    settle(key, &a, items, &prepared, &mut valid);
    valid
}

/// Whether every prepared `R` is torsion-free, but for a chance of
/// 2^-[`ROUNDS`] (see the module documentation).
fn all_torsion_free(prepared: &[Prepared]) -> bool {
    // The 16 subset sums of each 4 points.
    let tables: Vec<[EdwardsPoint; 16]> = prepared
        .chunks(4)
        .map(|four| {
            let mut table = [EdwardsPoint::default(); 16];
            for m in 1..16usize {
                let low = m.trailing_zeros() as usize;
                table[m] = match four.get(low) {
                    Some(p) => table[m & (m - 1)] + p.r,
                    None => table[m & (m - 1)],
                };
            }
            table
        })
        .collect();
    (0..ROUNDS).all(|_| {
        let mut sum = EdwardsPoint::default();
        for sixteen in tables.chunks(16) {
            let mut bits: u64 = rand::random();
            for table in sixteen {
                sum += table[(bits & 0xf) as usize];
                bits >>= 4;
            }
        }
        is_torsion_free(&sum)
    })
}

/// Checks `group` as one batch; on failure, its halves, down to single
/// verification.
fn settle(key: &Key, a: &EdwardsPoint, items: &[Item<'_>], group: &[Prepared], valid: &mut [bool]) {
    if group.is_empty() {
        return;
    }
    if group.len() < SINGLE_BELOW {
        for p in group {
            let item = &items[p.index];
            valid[p.index] = key.verifies(item.message, &Signature::from_bytes(item.signature));
        }
        return;
    }
    if equation_holds(a, group) {
        for p in group {
            valid[p.index] = true;
        }
        return;
    }
    let (left, right) = group.split_at(group.len() / 2);
    settle(key, a, items, left, valid);
    settle(key, a, items, right, valid);
}

/// The signature's parts, or `None` when single verification rejects it
/// whatever the message: `s` not below L, or `R` not a canonical encoding
/// of a point.
/// (The torsion of `R` is checked by the caller, for all of them.)
fn prepare(index: usize, item: &Item<'_>, public: &[u8; 32]) -> Option<Prepared> {
    let (r_bytes, s_bytes) = item.signature.split_at(32);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(
        s_bytes.try_into().expect("32 bytes"),
    ))?;
    let r_bytes: [u8; 32] = r_bytes.try_into().expect("32 bytes");
    if !is_canonical(&r_bytes) {
        return None;
    }
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA512);
    hash.update(&r_bytes);
    hash.update(public);
    hash.update(item.message);
    let digest: [u8; 64] = hash.finish().as_ref().try_into().expect("64 bytes");
    Some(Prepared {
        index,
        r,
        s,
        k: Scalar::from_bytes_mod_order_wide(&digest),
    })
}

/// `[L]P = 0`, computed as `[L-1]P + P` (a scalar is below L), in variable
/// time (P is public).
fn is_torsion_free(p: &EdwardsPoint) -> bool {
    let l_minus_one = -Scalar::ONE;
    (EdwardsPoint::vartime_double_scalar_mul_basepoint(&l_minus_one, p, &Scalar::ZERO) + p)
        .is_identity()
}

/// Whether a point encoding is canonical: its y below p = 2^255 - 19, and
/// no sign bit on x = 0 (y = ±1). Single verification compares the
/// canonical encoding of the point it computes with `R`'s bytes, so it
/// rejects any other encoding.
fn is_canonical(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    let sign = y[31] >> 7;
    y[31] &= 0x7f;
    // y >= p: 0x7fff…ffed to 0x7fff…ffff.
    if y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed {
        return false;
    }
    if sign == 1 {
        let one = y[0] == 1 && y[1..].iter().all(|&b| b == 0);
        let minus_one = y[0] == 0xec && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
        if one || minus_one {
            return false;
        }
    }
    true
}

/// `Σ z_i([s_i]B - R_i - [k_i]A) = 0` for random 128-bit `z_i`.
fn equation_holds(a: &EdwardsPoint, group: &[Prepared]) -> bool {
    let mut b_coefficient = Scalar::ZERO;
    let mut a_coefficient = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(group.len() + 2);
    let mut points = Vec::with_capacity(group.len() + 2);
    for p in group {
        let z = Scalar::from(rand::random::<u128>());
        b_coefficient += z * p.s;
        a_coefficient += z * p.k;
        scalars.push(-z);
        points.push(p.r);
    }
    scalars.push(-a_coefficient);
    points.push(*a);
    scalars.push(b_coefficient);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::verify::jwks::KeySet;
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;

    /// A signing key given by its secret scalar `a`, so that tests can
    /// make signatures no honest signer makes.
    pub(crate) struct RawKey {
        pub a: Scalar,
        pub public: [u8; 32],
    }

    impl RawKey {
        pub(crate) fn new(seed: u8) -> RawKey {
            let a = Scalar::from_bytes_mod_order([seed; 32]);
            RawKey {
                a,
                public: (a * B).compress().0,
            }
        }

        /// The key as a JWKS document.
        pub(crate) fn jwks(&self) -> String {
            use base64::Engine;
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"raw","x":"{}"}}]}}"#,
                crate::verify::BASE64URL.encode(self.public)
            )
        }

        /// Signs `message` with nonce point `R = [r]B + torsion`: valid
        /// for single verification only when `torsion` is the identity,
        /// always for the cofactored equation.
        pub(crate) fn sign_with(
            &self,
            message: &[u8],
            r: Scalar,
            torsion: EdwardsPoint,
        ) -> [u8; 64] {
            let big_r = (r * B + torsion).compress().0;
            let mut hash = ring::digest::Context::new(&ring::digest::SHA512);
            hash.update(&big_r);
            hash.update(&self.public);
            hash.update(message);
            let digest: [u8; 64] = hash.finish().as_ref().try_into().unwrap();
            let k = Scalar::from_bytes_mod_order_wide(&digest);
            let s = r + k * self.a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&big_r);
            sig[32..].copy_from_slice(s.as_bytes());
            sig
        }
    }

    /// The points of order 2, 4 and 8 (a generator of each subgroup).
    pub(crate) fn torsion_points() -> Vec<EdwardsPoint> {
        // Order 2: (0, -1). Order 4: (sqrt(-1), 0).
        let mut minus_one = [0xff; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        let t2 = CompressedEdwardsY(minus_one).decompress().unwrap();
        let t4 = CompressedEdwardsY([0; 32]).decompress().unwrap();
        // Order 8: the small-order part, [L]P, of some point P.
        let t8 = (1u8..)
            .filter_map(|i| CompressedEdwardsY([i; 32]).decompress())
            .map(|p| {
                EdwardsPoint::vartime_double_scalar_mul_basepoint(&-Scalar::ONE, &p, &Scalar::ZERO)
                    + p
            })
            .find(|t| !(t + t + t + t).is_identity())
            .unwrap();
        for (t, order) in [(t2, 2), (t4, 4), (t8, 8)] {
            let mut multiple = EdwardsPoint::default();
            for n in 1..=order {
                multiple += t;
                assert_eq!(multiple.is_identity(), n == order, "order {order}");
            }
        }
        vec![t2, t4, t8]
    }

    fn key(raw: &RawKey) -> Key {
        KeySet::parse(raw.jwks().as_bytes()).unwrap().keys()[0].clone()
    }

    fn messages(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"record\":{i}}}").into_bytes())
            .collect()
    }

    fn check(key: &Key, messages: &[Vec<u8>], sigs: &[[u8; 64]]) -> Vec<bool> {
        let items: Vec<Item> = messages
            .iter()
            .zip(sigs)
            .map(|(m, s)| Item {
                message: m,
                signature: s,
            })
            .collect();
        verify_all(key, &items)
    }

    fn ring_says(raw: &RawKey, message: &[u8], sig: &[u8; 64]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw.public)
            .verify(message, sig)
            .is_ok()
    }

    #[test]
    fn a_batch_of_valid_signatures_passes_and_each_bad_one_is_found() {
        let raw = RawKey::new(9);
        let key = key(&raw);
        assert!(key.batchable);
        let msgs = messages(300);
        let mut sigs: Vec<[u8; 64]> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| raw.sign_with(m, Scalar::from(1000 + i as u64), EdwardsPoint::default()))
            .collect();
        assert!(msgs.iter().zip(&sigs).all(|(m, s)| ring_says(&raw, m, s)));
        assert_eq!(check(&key, &msgs, &sigs), vec![true; 300]);
        // A flipped bit in R, in s, a record changed, s + L.
        sigs[3][5] ^= 1;
        sigs[17][40] ^= 0x10;
        sigs[130] = raw.sign_with(
            b"another message",
            Scalar::from(7u8),
            EdwardsPoint::default(),
        );
        let mut wide = sigs[299];
        // L itself is no Scalar (it reduces to 0): added by hand.
        let l_bytes: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (i, b) in l_bytes.iter().enumerate() {
            let sum = wide[32 + i] as u16 + *b as u16 + carry;
            wide[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        sigs[299] = wide;
        let got = check(&key, &msgs, &sigs);
        let want: Vec<bool> = msgs
            .iter()
            .zip(&sigs)
            .map(|(m, s)| ring_says(&raw, m, s))
            .collect();
        assert_eq!(got, want);
        let bad: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, v)| !**v)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(bad, [3, 17, 130, 299]);
    }

    /// The case the cofactored batch equation gets wrong: `R` off by a
    /// point of order 2, 4 or 8. The cofactored equation holds, single
    /// verification (ring, dalek) rejects, and so does the batch, alone or
    /// among valid signatures.
    #[test]
    fn a_nonce_with_a_small_order_component_is_never_valid() {
        let raw = RawKey::new(5);
        let key = key(&raw);
        let msgs = messages(20);
        for t in torsion_points() {
            let mut sigs: Vec<[u8; 64]> = msgs
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    raw.sign_with(m, Scalar::from(50 + i as u64), EdwardsPoint::default())
                })
                .collect();
            sigs[7] = raw.sign_with(&msgs[7], Scalar::from(99u8), t);
            let sig = Signature::from_bytes(&sigs[7]);
            // What a cofactored check sees: [8](sB - R - kA) = 0.
            let r = CompressedEdwardsY(sigs[7][..32].try_into().unwrap())
                .decompress()
                .unwrap();
            let s = Scalar::from_canonical_bytes(sigs[7][32..].try_into().unwrap()).unwrap();
            let prepared_k = {
                let mut h = ring::digest::Context::new(&ring::digest::SHA512);
                h.update(&sigs[7][..32]);
                h.update(&raw.public);
                h.update(&msgs[7]);
                Scalar::from_bytes_mod_order_wide(&h.finish().as_ref().try_into().unwrap())
            };
            let a = key.verifying.unwrap().to_edwards();
            assert!((s * B - r - prepared_k * a).mul_by_cofactor().is_identity());
            assert!(!(s * B - r - prepared_k * a).is_identity());
            assert!(!ring_says(&raw, &msgs[7], &sigs[7]));
            assert!(!key.verifies(&msgs[7], &sig));
            let got = check(&key, &msgs, &sigs);
            let mut want = vec![true; 20];
            want[7] = false;
            assert_eq!(got, want);
            assert_eq!(check(&key, &msgs[7..8], &sigs[7..8]), [false]);
        }
    }

    /// The same, among enough signatures to have their torsion checked
    /// together.
    #[test]
    fn a_small_order_component_is_found_among_many() {
        let raw = RawKey::new(6);
        let key = key(&raw);
        let msgs = messages(TOGETHER_FROM + 3);
        let good: Vec<[u8; 64]> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| raw.sign_with(m, Scalar::from(7 + i as u64), EdwardsPoint::default()))
            .collect();
        assert!(check(&key, &msgs, &good).iter().all(|v| *v));
        for (t, at) in torsion_points()
            .into_iter()
            .zip([0, 130, TOGETHER_FROM + 2])
        {
            let mut sigs = good.clone();
            sigs[at] = raw.sign_with(&msgs[at], Scalar::from(3u8), t);
            let got = check(&key, &msgs, &sigs);
            let bad: Vec<usize> = (0..got.len()).filter(|&i| !got[i]).collect();
            assert_eq!(bad, [at]);
        }
    }

    #[test]
    fn the_joint_torsion_check_sees_one_component_among_many() {
        let points = |n: usize| -> Vec<Prepared> {
            (0..n)
                .map(|i| Prepared {
                    index: i,
                    r: Scalar::from(1 + i as u64) * B,
                    s: Scalar::ZERO,
                    k: Scalar::ZERO,
                })
                .collect()
        };
        for n in [5, 300] {
            assert!(all_torsion_free(&points(n)), "{n} clean points");
            for t in torsion_points() {
                for at in [0, n / 2, n - 1] {
                    let mut p = points(n);
                    p[at].r += t;
                    assert!(!all_torsion_free(&p), "{n} points, torsion at {at}");
                }
            }
        }
    }

    #[test]
    fn keys_with_a_small_order_component_are_checked_one_by_one() {
        let raw = RawKey::new(3);
        for t in torsion_points() {
            let mixed = RawKey {
                a: raw.a,
                public: (raw.a * B + t).compress().0,
            };
            assert!(!key(&mixed).batchable);
        }
        assert!(key(&raw).batchable);
    }

    #[test]
    fn non_canonical_encodings_are_told_apart() {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!is_canonical(&p), "p itself");
        p[0] = 0xec;
        assert!(is_canonical(&p), "p - 1");
        let mut minus_zero = [0u8; 32];
        minus_zero[0] = 1;
        assert!(is_canonical(&minus_zero));
        minus_zero[31] = 0x80;
        assert!(!is_canonical(&minus_zero), "x = 0 with a sign");
    }
}
