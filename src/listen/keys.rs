//! Startup step 4, first part: the signing keys for `--verify warn|reject`,
//! fetched from Konnect's JWKS before anything changes in Konnect, so that
//! `reject` without keys fails while there is nothing to undo.
//!
//! `reject` cannot start without them. `warn` starts anyway with a
//! warning: with the keys of an earlier run's `jwks.json` if there is one,
//! else with none (signed records then count as unverifiable until a fetch
//! succeeds; the verifier tries again at most once a minute).

use super::Run;
use super::startup::step_error;
use crate::error::CliError;
use crate::verify::live::KeysError;
use crate::verify::{self, KeySet, Mode};

const STEP: &str = "fetch audit-log signing keys (JWKS)";

impl Run {
    pub(super) async fn load_signing_keys(&self) -> Result<(), CliError> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let error = match verifier.fetch_at_start().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), kids = %keys.kids(), mode = verifier.mode().as_str(), "fetched the JWKS");
                return Ok(());
            }
            Err(e) => e,
        };
        let err = match error {
            KeysError::Fetch(e) => step_error(&self.settings, STEP, e),
            KeysError::Jwks(e) => CliError::new(format!("{STEP}: {e}")),
        };
        if verifier.mode() == Mode::Reject {
            return Err(match err.hint {
                Some(_) => err,
                None => err.with_hint(
                    "--verify reject needs Konnect's signing keys before it starts; check the connection and the token, or use --verify warn",
                ),
            });
        }
        let saved = self.paths.dir.join(verify::JWKS_FILE);
        let fallback = match KeySet::read(&saved) {
            Ok(keys) => {
                verifier.install(keys);
                format!(
                    "checking signatures with the keys saved in {}",
                    saved.display()
                )
            }
            Err(_) => {
                "signed records count as unverifiable until the keys can be fetched".to_string()
            }
        };
        let warning = format!(
            "{}; {fallback} (the JWKS is fetched again when a record fails, at most once a minute)",
            err.message
        );
        tracing::warn!("{warning}");
        eprintln!("Warning: {warning}");
        Ok(())
    }
}
