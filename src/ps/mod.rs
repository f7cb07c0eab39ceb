//! Detached-listener process records and the `ps` / `ps stop` commands.
//!
//! [`record`] reads and writes `<config>/processes/<pid>.json` (the detach
//! code writes one per background listener), [`procfs`] tells whether a
//! record's process is still the one it was written for, [`list`] and
//! [`stop`] are the two commands with their text, JSON and YAML output.
//! Parsing flags and printing are left to the caller; texts are the
//! original's.

pub mod list;
pub mod procfs;
pub mod record;
pub mod stop;

pub use list::{ListedProcess, ListenerCounters, list};
pub use procfs::{Inspection, Status, start_time_ticks};
pub use record::{LISTEN_KIND, ProcessRecord, Timestamp, redact_args};
pub use stop::{StopError, StopFailures, StopResult, StopTarget, resolve_target, stop};

use serde::Serialize;

/// JSON as the original printed its lists: 2-space indentation and a
/// newline.
fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut json = serde_json::to_string_pretty(value).expect("ps output serializes to JSON");
    json.push('\n');
    json
}

/// YAML with the keys of every mapping sorted, as the original printed it.
fn to_sorted_yaml<T: Serialize + ?Sized>(value: &T) -> String {
    fn sorted(value: serde_yaml_ng::Value) -> serde_yaml_ng::Value {
        use serde_yaml_ng::Value;
        match value {
            Value::Mapping(map) => {
                let mut entries: Vec<(Value, Value)> = map.into_iter().collect();
                entries.sort_by(|(a, _), (b, _)| a.as_str().cmp(&b.as_str()));
                Value::Mapping(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            Value::Sequence(items) => Value::Sequence(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    let value = serde_yaml_ng::to_value(value).expect("ps output serializes to YAML");
    serde_yaml_ng::to_string(&sorted(value)).expect("ps output serializes to YAML")
}

#[cfg(test)]
mod tests {
    /// Owned arguments, for tests of argument handling.
    pub fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }
}
