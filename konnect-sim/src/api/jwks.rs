//! `/v2/audit-log-webhook/jwks.json`: the public keys a receiver would use to
//! check the `sig` of delivered records. The key (`State::jwk`, random bytes
//! made with the state) is not a real key pair yet, and records' `sig`
//! values are random.

use serde_json::json;

use super::ApiResponse;
use crate::context::Context;

/// GET /v2/audit-log-webhook/jwks.json: one Ed25519 public key, fixed for the
/// life of the Sim. The `sig` of generated records is random, not a signature
/// by this key.
pub(super) fn get(ctx: &Context) -> ApiResponse {
    let state = ctx.state();
    let (kid, x) = &state.jwk;
    ApiResponse::json(
        200,
        &json!({"keys": [{"kty": "OKP", "alg": "EdDSA", "kid": kid, "crv": "Ed25519", "x": x}]}),
    )
}
