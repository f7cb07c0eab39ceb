//! `ps`: the detached processes on record, with their status, as the
//! original's table (`-o text`) or as JSON or YAML.

use super::procfs::{self, Inspection, Status};
use super::record::{self, ProcessRecord, Timestamp};
use crate::output::columns::Column;
use crate::output::table;
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};

/// A record, where it is stored, and what its process is doing.
#[derive(Debug, Clone)]
pub struct ListedProcess {
    pub record: ProcessRecord,
    pub path: PathBuf,
    pub inspection: Inspection,
    /// The listener's counters, when its state file could be read.
    pub counters: Option<ListenerCounters>,
}

/// Counters a running listener keeps in its state file (`listener.json`).
/// Each is shown when present.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct ListenerCounters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_received: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_received: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    /// Records by signature check outcome (`--verify warn|reject`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Counts>,
    /// Gap healing's status (`crate::replay`), with any missing window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::replay::ReplayReport>,
    /// The store: closed segments, bytes on disk, record time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<crate::store::StoreSummary>,
    /// The Dev Portals (`--portal`) whose audit logs it receives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portals: Vec<crate::listen::state::PortalRef>,
    /// The admin endpoint's address (`--admin-address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_address: Option<String>,
}

/// Every record in `processes_dir` with its status, newest first, then by
/// pid. Unreadable record files are skipped; a missing directory lists none.
pub fn list(processes_dir: &Path) -> io::Result<Vec<ListedProcess>> {
    Ok(record::read_all(processes_dir)?
        .into_iter()
        .map(|(record, path)| {
            let inspection = procfs::inspect(&record);
            let counters = record
                .listener_state_file
                .as_deref()
                .and_then(read_counters);
            ListedProcess {
                record,
                path,
                inspection,
                counters,
            }
        })
        .collect())
}

fn read_counters(state_file: &str) -> Option<ListenerCounters> {
    let raw = std::fs::read(state_file)
        .map_err(|e| tracing::debug!(error = %e, state_file, "listener state file not readable"))
        .ok()?;
    serde_json::from_slice(&raw)
        .map_err(|e| tracing::debug!(error = %e, state_file, "listener state file not JSON"))
        .ok()
}

/// One process in `-o json|yaml`: the original's fields, then ours.
#[derive(Serialize)]
struct Item<'a> {
    pid: i32,
    status: Status,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_file: Option<&'a str>,
    record_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    listen_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events_file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listener_state_file: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    counters: Option<&'a ListenerCounters>,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl<'a> From<&'a ListedProcess> for Item<'a> {
    fn from(p: &'a ListedProcess) -> Item<'a> {
        let r = &p.record;
        Item {
            pid: r.pid,
            status: p.inspection.status,
            kind: &r.kind,
            profile: non_empty(&r.profile),
            created_at: r.created_at,
            log_file: non_empty(&r.log_file),
            record_file: p.path.display().to_string(),
            listen_address: non_empty(&r.listen_address),
            endpoint: non_empty(&r.endpoint),
            events_file: non_empty(&r.events_file),
            destination_id: non_empty(&r.destination_id),
            listener_state_file: non_empty(&r.listener_state_file),
            counters: p.counters.as_ref(),
        }
    }
}

/// The original's text: `No detached kongctl processes found.` or a table
/// `PID  STATUS  KIND  PROFILE` fitted to `width` columns (see
/// [`table::terminal_width`]).
pub fn render_text(processes: &[ListedProcess], width: usize) -> String {
    if processes.is_empty() {
        return "No detached kongctl processes found.\n".into();
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            vec![
                p.record.pid.to_string(),
                p.inspection.status.to_string(),
                dash(&p.record.kind),
                dash(p.record.profile.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table::render(&["PID", "STATUS", "KIND", "PROFILE"], &rows, width)
}

/// `--columns`: the selected columns of each process as `-o json` shows it
/// (so every field there is addressable), fitted to `width` columns; the
/// header line alone when there are none.
pub fn render_columns(processes: &[ListedProcess], columns: &[Column], width: usize) -> String {
    let items: Vec<Item> = processes.iter().map(Item::from).collect();
    let items = serde_json::to_value(&items).expect("ps output serializes to JSON");
    crate::output::columns::render(&items, columns, width)
}

/// A JSON array with 2-space indentation (`[]` when empty) and a newline.
pub fn render_json(processes: &[ListedProcess]) -> String {
    let items: Vec<Item> = processes.iter().map(Item::from).collect();
    super::to_json(&items)
}

/// A YAML sequence, keys sorted (`[]` when empty).
pub fn render_yaml(processes: &[ListedProcess]) -> String {
    let items: Vec<Item> = processes.iter().map(Item::from).collect();
    super::to_sorted_yaml(&items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(pid: i32, status: Status, profile: Option<&str>) -> ListedProcess {
        let mut record = ProcessRecord::listener(pid);
        record.created_at = Timestamp::parse("2025-03-01T08:00:00Z").unwrap();
        record.profile = profile.map(str::to_owned);
        record.log_file = Some(format!(
            "/home/u/.config/kongctl/logs/kongctl-listener-{pid}.log"
        ));
        ListedProcess {
            path: PathBuf::from(format!("/home/u/.config/kongctl/processes/{pid}.json")),
            record,
            inspection: Inspection {
                status,
                check_error: None,
            },
            counters: None,
        }
    }

    #[test]
    fn text_is_the_originals_table() {
        assert_eq!(
            render_text(&[], 120),
            "No detached kongctl processes found.\n"
        );
        let mut unnamed = listed(7, Status::Stale, None);
        unnamed.record.kind.clear();
        let processes = [listed(4242, Status::Running, Some("default")), unnamed];
        assert_eq!(
            render_text(&processes, 120),
            "PID   STATUS   KIND                       PROFILE\n\
             4242  running  konnect.audit-logs.listen  default\n\
             7     stale    -                          -\n"
        );
        assert_eq!(
            render_text(&processes, 30),
            "PID   STATUS  KIND     PROFILE\n\
             4242  runni…  konnec…  default\n\
             7     stale   -        -\n"
        );
    }

    #[test]
    fn json_has_the_originals_fields_then_ours() {
        assert_eq!(render_json(&[]), "[]\n");
        let mut p = listed(4242, Status::Running, Some("dev"));
        p.record.events_file = Some("/e/events.jsonl".into());
        p.record.listener_state_file = Some("/e/listener.json".into());
        p.counters = Some(ListenerCounters {
            records_received: Some(12),
            requests_received: None,
            last_event_at: Some("2025-03-01T08:01:00Z".into()),
            verify: Some(crate::verify::Counts {
                valid: 10,
                invalid: 1,
                unsigned: 1,
                unverifiable: 0,
                pending: 7,
            }),
            ..ListenerCounters::default()
        });
        let q = listed(7, Status::Exited, None);
        assert_eq!(
            render_json(&[p, q]),
            r#"[
  {
    "pid": 4242,
    "status": "running",
    "kind": "konnect.audit-logs.listen",
    "profile": "dev",
    "created_at": "2025-03-01T08:00:00Z",
    "log_file": "/home/u/.config/kongctl/logs/kongctl-listener-4242.log",
    "record_file": "/home/u/.config/kongctl/processes/4242.json",
    "events_file": "/e/events.jsonl",
    "listener_state_file": "/e/listener.json",
    "records_received": 12,
    "last_event_at": "2025-03-01T08:01:00Z",
    "verify": {
      "valid": 10,
      "invalid": 1,
      "unsigned": 1,
      "unverifiable": 0,
      "pending": 7
    }
  },
  {
    "pid": 7,
    "status": "exited",
    "kind": "konnect.audit-logs.listen",
    "created_at": "2025-03-01T08:00:00Z",
    "log_file": "/home/u/.config/kongctl/logs/kongctl-listener-7.log",
    "record_file": "/home/u/.config/kongctl/processes/7.json"
  }
]
"#
        );
    }

    #[test]
    fn columns_address_every_json_field() {
        let mut p = listed(4242, Status::Running, Some("dev"));
        p.counters = Some(ListenerCounters {
            records_received: Some(12),
            ..ListenerCounters::default()
        });
        let columns = crate::output::columns::parse(&crate::ps::tests::strings(&[
            "PID=.pid,STATUS=.status,CREATED=.created_at,RECORDS=.records_received",
            "FILE=.record_file[24:],MISSING=.endpoint",
        ]))
        .unwrap();
        assert_eq!(
            render_columns(&[p, listed(7, Status::Exited, None)], &columns, 120),
            "PID   STATUS   CREATED               RECORDS  FILE                 MISSING\n\
             4242  running  2025-03-01T08:00:00Z  12       processes/4242.json  \n\
             7     exited   2025-03-01T08:00:00Z           processes/7.json     \n"
        );
        assert_eq!(render_columns(&[], &columns[..2], 120), "PID  STATUS\n");
    }

    #[test]
    fn json_shows_the_replay_status_and_missing_window() {
        let mut p = listed(4242, Status::Running, Some("dev"));
        let state = r#"{"records_received": 5, "replay": {"state": "idle", "backfill": "auto",
            "trigger": "sleep", "window": {"start": "2025-03-01T07:58:00Z", "end": "2025-03-01T08:30:00Z"},
            "job_status": "failed", "jobs_completed": 1, "jobs_failed": 1, "duplicates_dropped": 3,
            "missing_window": {"start": "2025-03-01T07:58:00Z", "end": "2025-03-01T08:30:00Z"},
            "last_error": "Konnect's replay job failed"}}"#;
        p.counters = Some(serde_json::from_str(state).unwrap());
        let json: serde_json::Value = serde_json::from_str(&render_json(&[p])).unwrap();
        assert_eq!(json[0]["records_received"], 5);
        assert!(json[0].get("portals").is_none(), "no portals, no key");
        assert_eq!(json[0]["replay"]["jobs_failed"], 1);
        assert_eq!(
            json[0]["replay"]["missing_window"],
            serde_json::json!({"start": "2025-03-01T07:58:00Z", "end": "2025-03-01T08:30:00Z"})
        );
    }

    #[test]
    fn yaml_sorts_keys() {
        assert_eq!(render_yaml(&[]), "[]\n");
        assert_eq!(
            render_yaml(&[listed(4242, Status::Unknown, Some("dev"))]),
            "- created_at: 2025-03-01T08:00:00Z\n  \
             kind: konnect.audit-logs.listen\n  \
             log_file: /home/u/.config/kongctl/logs/kongctl-listener-4242.log\n  \
             pid: 4242\n  \
             profile: dev\n  \
             record_file: /home/u/.config/kongctl/processes/4242.json\n  \
             status: unknown\n"
        );
    }

    #[test]
    fn lists_records_with_live_status_and_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("processes");
        let me = std::process::id() as i32;
        let mut record = ProcessRecord::listener(me);
        record.start_time_ticks = Some(procfs::start_time_ticks(me).unwrap());
        let state = tmp.path().join("listener.json");
        std::fs::write(
            &state,
            r#"{"started_at":"x","records_received":3,"requests_received":1,"verify":{"valid":2,"invalid":1,"unsigned":0,"unverifiable":0}}"#,
        )
        .unwrap();
        record.listener_state_file = Some(state.display().to_string());
        record::write(&dir, &record).unwrap();

        let listed = list(&dir).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].inspection.status, Status::Running);
        assert_eq!(listed[0].path, dir.join(format!("{me}.json")));
        assert_eq!(
            listed[0].counters,
            Some(ListenerCounters {
                records_received: Some(3),
                requests_received: Some(1),
                last_event_at: None,
                verify: Some(crate::verify::Counts {
                    valid: 2,
                    invalid: 1,
                    ..Default::default()
                }),
                replay: None,
                store: None,
                portals: Vec::new(),
                admin_address: None,
            })
        );
    }
}
