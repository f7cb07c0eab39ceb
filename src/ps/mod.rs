//! Detached-listener process records and the `ps` / `ps stop` commands.
