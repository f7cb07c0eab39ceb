//! Which audit-log destinations the kongctl listeners running on this
//! machine own, as their own records say: every profile's
//! `destination.json` (written by the listener that created the
//! destination, with its pid) and every detached listener's process record
//! (`<config>/processes/<pid>.json`, with the destination id once ready).
//!
//! A pid alone does not prove the listener still runs: the kernel reuses
//! pids. A `destination.json` owner counts only while a process with its pid
//! runs that started no later than the destination was created; a process
//! record only while `ps` would call it running (its start time matches).
//! When the start time cannot be read the owner counts as live: refusing is
//! the safe side, and `--force` overrides it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::listen::state::{self, CleanupStatus, DestinationState};
use crate::ps::{self, Status};

/// A running listener and the Konnect objects it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub profile: String,
    pub destination_id: Option<String>,
    /// Set from `destination.json` (the name is unique per listener).
    pub destination_name: Option<String>,
    /// The Dev Portals whose webhooks it attached (or was attaching), from
    /// `destination.json`.
    pub portal_ids: Vec<String>,
}

impl Owner {
    /// Whether this listener owns the destination `id` (named `name`).
    pub fn owns_destination(&self, id: &str, name: &str) -> bool {
        match &self.destination_id {
            Some(own) => own == id,
            // It has not learnt its destination's id yet.
            None => self.destination_name.as_deref() == Some(name),
        }
    }

    /// Whether this listener owns the webhook of Dev Portal `portal_id`,
    /// which points at `destination` (if any): it points at this
    /// listener's destination, or this listener attached it and has not
    /// learnt its destination's id (it cannot have: attaching needs it;
    /// the safe side).
    pub fn owns_portal_webhook(&self, portal_id: &str, destination: Option<&str>) -> bool {
        match (&self.destination_id, destination) {
            (Some(own), Some(d)) => own == d,
            (None, _) => self.portal_ids.iter().any(|p| p == portal_id),
            (Some(_), None) => false,
        }
    }
}

/// The live listeners of `config_dir` (`<config>`), by pid; unreadable
/// records are skipped.
pub fn live_owners(config_dir: &Path) -> Vec<Owner> {
    let mut owners: Vec<Owner> = Vec::new();
    let profiles = std::fs::read_dir(config_dir.join("audit-logs"))
        .into_iter()
        .flatten()
        .flatten();
    for entry in profiles {
        let file = entry.path().join("destination.json");
        let Ok(Some(s)) = state::read_json::<DestinationState>(&file) else {
            continue;
        };
        if s.status == CleanupStatus::Deleted || !runs_since(s.pid, &s.created_at) {
            continue;
        }
        owners.push(Owner {
            pid: s.pid,
            profile: s.profile,
            destination_id: s.destination_id,
            destination_name: Some(s.destination_name),
            portal_ids: s
                .portals
                .iter()
                .filter(|p| p.attach_sent)
                .map(|p| p.portal_id.clone())
                .collect(),
        });
    }
    let records = ps::record::read_all(&config_dir.join("processes")).unwrap_or_default();
    for (record, _) in records {
        let Some(id) = record.destination_id.clone() else {
            continue;
        };
        if ps::procfs::inspect(&record).status != Status::Running {
            continue;
        }
        let pid = u32::try_from(record.pid).unwrap_or_default();
        if owners
            .iter()
            .any(|o| o.pid == pid && o.destination_id.as_deref() == Some(&id))
        {
            continue;
        }
        owners.push(Owner {
            pid,
            profile: record.profile.clone().unwrap_or_default(),
            destination_id: Some(id),
            destination_name: None,
            portal_ids: Vec::new(),
        });
    }
    owners
}

/// Whether a process `pid` runs that started no later than `since` (an
/// RFC 3339 time, the creation of what it owns).
fn runs_since(pid: u32, since: &str) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return false,
    }
    let Ok(stat) = ps::procfs::read_stat(raw) else {
        // Gone meanwhile, or unreadable: only "gone" is certain.
        return std::path::Path::new(&format!("/proc/{raw}")).exists();
    };
    if stat.has_exited() {
        return false;
    }
    let (Some(started), Some(since)) = (
        process_start(stat.start_time_ticks),
        crate::time::parse_rfc3339(since).ok(),
    ) else {
        return true;
    };
    // `created_at` has whole seconds and boot time drifts by a second or
    // so: allow a little.
    started <= SystemTime::from(since) + Duration::from_secs(2)
}

/// The wall-clock start of a process from its start time in clock ticks
/// since boot (`/proc/<pid>/stat` field 22) and `btime` of `/proc/stat`.
fn process_start(start_ticks: u64) -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_second = u64::try_from(ticks_per_second).ok().filter(|t| *t > 0)?;
    let since_boot = Duration::from_secs_f64(start_ticks as f64 / ticks_per_second as f64);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination_state(pid: u32, created_at: &str, status: CleanupStatus) -> DestinationState {
        DestinationState {
            created_at: created_at.into(),
            profile: "p".into(),
            destination_id: Some("d1".into()),
            destination_name: "kongctl-box-1".into(),
            destination_endpoint: "https://h.test/a".into(),
            log_format: Some("json".into()),
            skip_ssl_verification: false,
            authorization_configured: true,
            webhook_configured: true,
            region: "us".into(),
            events_file: "/e".into(),
            destination_state_file: "/d".into(),
            pid,
            status,
            cleanup_error: None,
            deleted_at: None,
            portals: Vec::new(),
        }
    }

    fn write(config: &Path, profile: &str, s: &DestinationState) {
        let dir = config.join("audit-logs").join(profile);
        std::fs::create_dir_all(&dir).unwrap();
        state::write_json(&dir.join("destination.json"), s).unwrap();
    }

    #[test]
    fn a_running_creator_owns_its_destination() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let now = crate::time::now_rfc3339();
        write(
            dir.path(),
            "a",
            &destination_state(me, &now, CleanupStatus::Active),
        );
        let owners = live_owners(dir.path());
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].pid, me);
        assert!(owners[0].owns_destination("d1", "other"));
        assert!(!owners[0].owns_destination("d2", "kongctl-box-1"));
    }

    #[test]
    fn dead_reused_or_finished_owners_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // Our pid, but "created" long before this process started: a
        // reused pid.
        write(
            dir.path(),
            "old",
            &destination_state(me, "2001-01-01T00:00:00Z", CleanupStatus::Active),
        );
        let now = crate::time::now_rfc3339();
        write(
            dir.path(),
            "done",
            &destination_state(me, &now, CleanupStatus::Deleted),
        );
        // A pid no process has (above the kernel's pid_max).
        write(
            dir.path(),
            "dead",
            &destination_state(i32::MAX as u32, &now, CleanupStatus::CleanupFailed),
        );
        assert_eq!(live_owners(dir.path()), Vec::new());
    }

    #[test]
    fn owners_without_an_id_are_matched_by_name() {
        let o = Owner {
            pid: 1,
            profile: "p".into(),
            destination_id: None,
            destination_name: Some("n".into()),
            portal_ids: vec!["p1".into()],
        };
        assert!(o.owns_destination("any", "n"));
        assert!(!o.owns_destination("any", "m"));
        assert!(o.owns_portal_webhook("p1", Some("d9")));
        assert!(!o.owns_portal_webhook("p2", Some("d9")));
        let o = Owner {
            destination_id: Some("d1".into()),
            ..o
        };
        assert!(
            o.owns_portal_webhook("p3", Some("d1")),
            "points at its destination"
        );
        assert!(
            !o.owns_portal_webhook("p1", Some("d9")),
            "re-pointed by someone else"
        );
        assert!(!o.owns_portal_webhook("p1", None), "cleared");
    }
}
