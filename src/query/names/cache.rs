//! The profile's principal lookup cache: `principals.json` in the profile's
//! directory (`<config>/audit-logs/<profile>/`), so that names cost a
//! lookup once a day per principal and not once per command.
//!
//! Each entry is what a lookup found (a user's email and full name, a
//! system account's name, a portal developer's email) or that it found
//! nothing, with when. A found principal is looked up again after a day,
//! an unknown id after an hour ([`Entry::is_fresh`]); entries stay in the
//! file for [`KEEP`] so that `--principal` can still match a portal
//! developer by email (there is no list of developers to ask). The file is
//! 0600 and replaced atomically ([`crate::fsutil::write_atomic`]); a save
//! merges with what another command wrote meanwhile (the newer entry of an
//! id wins). A missing or unreadable file is an empty cache: it is only a
//! cache.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The file's name in the profile's directory.
pub const FILE_NAME: &str = "principals.json";
/// How long a found principal's name is used without a new lookup.
pub const FOUND_TTL: SignedDuration = SignedDuration::from_hours(24);
/// How long an id Konnect did not know is not looked up again.
pub const UNKNOWN_TTL: SignedDuration = SignedDuration::from_hours(1);
/// How long an entry stays in the file.
pub const KEEP: SignedDuration = SignedDuration::from_hours(24 * 30);

/// What a lookup of one principal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    User,
    SystemAccount,
    Developer,
    /// Konnect has no user, system account or developer with this id.
    Unknown,
}

/// One cached lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// What tables print: `Full Name <email>`, a system account's name, a
    /// developer's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    pub looked_up_at: Timestamp,
}

impl Entry {
    /// Whether the entry can be used at `now` instead of a lookup.
    pub fn is_fresh(&self, now: Timestamp) -> bool {
        let ttl = match self.kind {
            Kind::Unknown => UNKNOWN_TTL,
            _ => FOUND_TTL,
        };
        now.duration_since(self.looked_up_at) < ttl && self.looked_up_at <= now
    }

    /// Whether `value` (lower case) is this principal's email, full name or
    /// name.
    pub fn is_called(&self, value: &str) -> bool {
        [&self.email, &self.full_name, &self.name]
            .into_iter()
            .flatten()
            .any(|v| v.to_lowercase() == value)
    }
}

#[derive(Serialize, Deserialize, Default)]
struct File {
    version: u32,
    #[serde(default)]
    principals: HashMap<String, Entry>,
}

/// The cache of one profile.
#[derive(Debug, Default)]
pub struct Cache {
    path: Option<PathBuf>,
    entries: HashMap<String, Entry>,
    /// Entries of this run, not yet saved.
    unsaved: HashMap<String, Entry>,
}

impl Cache {
    /// The cache in `dir` (the profile's directory), as far as it can be
    /// read.
    pub fn load(dir: &Path) -> Cache {
        let path = dir.join(FILE_NAME);
        Cache {
            entries: read(&path),
            path: Some(path),
            unsaved: HashMap::new(),
        }
    }

    /// A cache that is never saved (tests).
    pub fn in_memory() -> Cache {
        Cache::default()
    }

    /// The entry of `key` if it is fresh at `now`.
    pub fn get(&self, key: &str, now: Timestamp) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.is_fresh(now))
    }

    pub fn put(&mut self, key: String, entry: Entry) {
        self.unsaved.insert(key.clone(), entry.clone());
        self.entries.insert(key, entry);
    }

    /// The keys of the principals called `value` (lower case), fresh or
    /// not.
    pub fn find(&self, value: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.kind != Kind::Unknown && e.is_called(value))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Writes this run's entries, merged with the file as it is now (the
    /// newer entry of a key wins; entries older than [`KEEP`] go).
    pub fn save(&mut self, now: Timestamp) -> io::Result<()> {
        let Some(path) = &self.path else {
            self.unsaved.clear();
            return Ok(());
        };
        if self.unsaved.is_empty() {
            return Ok(());
        }
        let mut merged = read(path);
        for (key, entry) in self.unsaved.drain() {
            match merged.get(&key) {
                Some(old) if old.looked_up_at > entry.looked_up_at => {}
                _ => {
                    merged.insert(key, entry);
                }
            }
        }
        merged.retain(|_, e| now.duration_since(e.looked_up_at) < KEEP);
        if let Some(dir) = path.parent() {
            crate::fsutil::create_private_dir_all(dir)?;
        }
        let file = File {
            version: 1,
            principals: merged,
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        text.push(b'\n');
        crate::fsutil::write_atomic(path, &text)?;
        for (key, entry) in file.principals {
            self.entries.entry(key).or_insert(entry);
        }
        Ok(())
    }
}

/// The entries of the file at `path`; none if it is missing or unreadable.
fn read(path: &Path) -> HashMap<String, Entry> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<File>(&bytes).ok())
        .map(|f| f.principals)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn user(at: &str) -> Entry {
        Entry {
            kind: Kind::User,
            name: Some("Ana Admin <ana@example.test>".into()),
            email: Some("ana@example.test".into()),
            full_name: Some("Ana Admin".into()),
            looked_up_at: t(at),
        }
    }

    #[test]
    fn found_names_last_a_day_unknown_ids_an_hour() {
        let now = t("2026-08-23T12:00:00Z");
        assert!(user("2026-08-22T12:00:01Z").is_fresh(now));
        assert!(!user("2026-08-22T11:59:59Z").is_fresh(now));
        let unknown = |at| Entry {
            kind: Kind::Unknown,
            name: None,
            email: None,
            full_name: None,
            looked_up_at: t(at),
        };
        assert!(unknown("2026-08-23T11:00:01Z").is_fresh(now));
        assert!(!unknown("2026-08-23T10:59:59Z").is_fresh(now));
        // A time in the future (a clock that went back) is not trusted.
        assert!(!user("2026-08-24T00:00:00Z").is_fresh(now));
    }

    #[test]
    fn saves_are_0600_atomic_and_merge_with_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("audit-logs/default");
        let now = t("2026-08-23T12:00:00Z");
        let mut a = Cache::load(&profile);
        let mut b = Cache::load(&profile);
        a.put("id-1".into(), user("2026-08-23T11:00:00Z"));
        a.save(now).unwrap();
        let path = profile.join(FILE_NAME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Another command saves a different id, and an older entry of id-1.
        b.put("id-2".into(), user("2026-08-23T11:30:00Z"));
        b.put("id-1".into(), user("2026-08-20T00:00:00Z"));
        b.save(now).unwrap();
        let c = Cache::load(&profile);
        assert_eq!(
            c.get("id-1", now).unwrap().looked_up_at,
            t("2026-08-23T11:00:00Z")
        );
        assert!(c.get("id-2", now).is_some());
        assert_eq!(c.find("ana@example.test"), ["id-1", "id-2"]);
        assert_eq!(c.find("ana admin"), ["id-1", "id-2"]);
        assert!(c.find("bob").is_empty());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&profile)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn a_broken_file_is_an_empty_cache_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let now = t("2026-08-23T12:00:00Z");
        let mut c = Cache::load(dir.path());
        assert!(c.get("id-1", now).is_none());
        c.put("id-1".into(), user("2026-08-23T11:00:00Z"));
        c.save(now).unwrap();
        assert!(Cache::load(dir.path()).get("id-1", now).is_some());
        // Entries older than a month leave the file.
        let mut old = Cache::load(dir.path());
        old.put("id-old".into(), user("2026-07-01T00:00:00Z"));
        old.save(now).unwrap();
        assert!(!read(&dir.path().join(FILE_NAME)).contains_key("id-old"));
    }
}
