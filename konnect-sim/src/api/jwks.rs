//! `/v2/audit-log-webhook/jwks.json`: the public keys a receiver uses to
//! check the `sig` of delivered records (see `signing.rs`).

use super::ApiResponse;
use crate::context::Context;

/// GET /v2/audit-log-webhook/jwks.json: the Ed25519 key that signs records
/// now, first, then the earlier ones a rotation kept.
pub(super) fn get(ctx: &Context) -> ApiResponse {
    ApiResponse::json(200, &ctx.state().signing.jwks())
}
