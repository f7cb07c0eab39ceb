//! Integration tests of konnect-sim, in one test binary (one link step on
//! small machines). Everything runs on 127.0.0.1 with port 0; nothing needs
//! the internet.

// Each module uses a different part of the shared helpers.
#[allow(dead_code)]
mod common;
mod contract;
mod delivery;
mod state_machine;
