//! An offline emulator of the Kong Konnect organisation audit-log API.
