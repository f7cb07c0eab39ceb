//! Integration tests of konnect-sim, in one test binary (one link step on
//! small machines). Everything runs on 127.0.0.1 with port 0; nothing needs
//! the internet.

mod admin;
mod binary;
mod blocking;
mod common;
mod contract;
mod delivery;
mod faults;
mod identity;
mod login;
mod portal_delivery;
mod portals;
mod pull;
mod state_machine;
