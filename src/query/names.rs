//! Principals' names: who a record's `principal_id` is, looked up in
//! Konnect and cached per profile, for the text table's PRINCIPAL column,
//! `--resolve`'s `principal_name`, the summary's top principals and
//! `--principal <email|name>`.
//!
//! An id is, in this order, a portal developer of the record's
//! `portal_id` (`GET /v3/portals/{portal}/developers/{id}`), a user
//! (`GET /v3/users/{id}`) or a system account
//! (`GET /v3/system-accounts/{id}`); it reads as `Full Name <email>`, the
//! system account's name, or the developer's email. Only UUIDs are looked
//! up (Konnect's principal ids are; anything else prints as it is).
//! Answers go to the profile's cache ([`cache`]) first: a second command
//! within the day asks Konnect nothing.
//!
//! Lookups never fail the command. They run on a thread of their own (so
//! that any caller, async or not, can wait for them), at most
//! [`CONCURRENCY`] at a time, with the client's retries (429 after its
//! `Retry-After`, 5xx, no answer). An id that cannot be named prints as
//! itself with one warning on stderr saying why; a refused token (401,
//! 403) or an unreachable Konnect ends the lookups of the run with one
//! warning. None of this is on the listener's acknowledgement path: the
//! listener's tail names records in its printing thread, after they are
//! stored.
//!
//! [`Named`] is the query stage that adds `principal_name` to records.

pub mod cache;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use serde_json::value::RawValue;

use self::cache::{Cache, Entry, Kind};
use super::principal::{PrincipalKey, Principals, is_uuid};
use super::view::RecordView;
use crate::config::Settings;
use crate::konnect::client::ClientOptions;
use crate::konnect::identity::Identity;
use crate::konnect::{KonnectClient, KonnectError};
use crate::output::{Output, Summary};
use crate::record::{Format, Record};

/// Lookups in flight at once.
pub const CONCURRENCY: usize = 8;
/// Longest one lookup may take, retries included.
const LOOKUP_BUDGET: Duration = Duration::from_secs(20);
/// Records a [`Named`] stage holds before naming them.
pub const BATCH: usize = 256;

/// What looking one principal up came to.
#[derive(Debug, Clone)]
enum Outcome {
    Found(Entry),
    NotFound,
    /// This id could not be looked up (after the retries).
    Failed(String),
    /// No lookup can work this run: the token was refused, or Konnect
    /// cannot be reached.
    Stop(String),
}

enum Job {
    Lookup(
        Vec<PrincipalKey>,
        mpsc::Sender<Vec<(PrincipalKey, Outcome)>>,
    ),
    Find(String, mpsc::Sender<Result<Vec<(String, Entry)>, String>>),
}

/// The lookup thread's side: its queue.
struct Worker {
    jobs: mpsc::Sender<Job>,
}

struct Inner {
    cache: Mutex<Cache>,
    /// The identity API; `None` without a token (names then come from
    /// nowhere: ids print as themselves).
    identity: Option<Identity>,
    worker: Mutex<Option<Worker>>,
    stopped: AtomicBool,
    /// Ids already warned about, and whether the stop was.
    warned: Mutex<HashSet<String>>,
    /// Where warnings go (stderr).
    warn: Box<dyn Fn(&str) + Send + Sync>,
}

/// Principal names for one command (a handle; clones share the cache and
/// the lookups).
#[derive(Clone)]
pub struct Names(Arc<Inner>);

impl Names {
    /// The names of `settings`' profile: its cache, and lookups with its
    /// token. `None` when no token is at hand.
    pub fn open(settings: &Settings) -> Option<Names> {
        settings.auth().ok()?;
        // Names are a nicety: an unreachable Konnect is given up on sooner
        // than a pull would (a connection that does not open in 3 s).
        let defaults = ClientOptions::from_env();
        let options = ClientOptions {
            connect_timeout: defaults.connect_timeout.min(Duration::from_secs(3)),
            request_timeout: defaults.request_timeout.min(Duration::from_secs(10)),
            ..defaults
        };
        let client = match KonnectClient::from_settings(settings, options) {
            Ok(client) => client,
            Err(e) => {
                eprintln!("warning: principal names are not shown: {e}");
                return None;
            }
        };
        Some(Names::new(
            Cache::load(&settings.audit_log_dir()),
            Some(Identity::new(client)),
            Box::new(|w| eprintln!("{w}")),
        ))
    }

    /// The profile's cache alone, without lookups (no token at hand).
    pub fn cached(settings: &Settings) -> Names {
        Names::new(
            Cache::load(&settings.audit_log_dir()),
            None,
            Box::new(|w| eprintln!("{w}")),
        )
    }

    /// Names from `cache`, looked up with `identity`, warnings to `warn`.
    pub fn new(
        cache: Cache,
        identity: Option<Identity>,
        warn: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Names {
        Names(Arc::new(Inner {
            cache: Mutex::new(cache),
            identity,
            worker: Mutex::new(None),
            stopped: AtomicBool::new(false),
            warned: Mutex::new(HashSet::new()),
            warn,
        }))
    }

    /// The names of `keys` that have one (cached or looked up now); the
    /// others get their one warning. Blocks until the lookups are done.
    pub fn resolve(&self, keys: &[PrincipalKey]) -> HashMap<PrincipalKey, String> {
        let now = Timestamp::now();
        let mut names = HashMap::new();
        let mut misses = Vec::new();
        {
            let cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = HashSet::new();
            for key in keys {
                if !is_uuid(&key.id) || !seen.insert(key) {
                    continue;
                }
                match cache.get(&cache_key(key), now) {
                    Some(Entry {
                        name: Some(name), ..
                    }) => {
                        names.insert(key.clone(), name.clone());
                    }
                    Some(_) => self.warn_id(&key.id, "Konnect has no such principal"),
                    None => misses.push(key.clone()),
                }
            }
        }
        if misses.is_empty() || self.0.stopped.load(Ordering::Relaxed) {
            return names;
        }
        let Some(outcomes) = self.ask(|reply| Job::Lookup(misses, reply)) else {
            return names;
        };
        let mut cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
        for (key, outcome) in outcomes {
            match outcome {
                Outcome::Found(entry) => {
                    if let Some(name) = &entry.name {
                        names.insert(key.clone(), name.clone());
                    }
                    cache.put(cache_key(&key), entry);
                }
                Outcome::NotFound => {
                    cache.put(
                        cache_key(&key),
                        Entry {
                            kind: Kind::Unknown,
                            name: None,
                            email: None,
                            full_name: None,
                            looked_up_at: now,
                        },
                    );
                    self.warn_id(&key.id, "Konnect has no such principal");
                }
                Outcome::Failed(why) => self.warn_id(&key.id, &why),
                Outcome::Stop(why) => self.stop(&why),
            }
        }
        save(&mut cache);
        names
    }

    /// The ids of the principals called `value` (an email, a user's full
    /// name, a system account's name): from Konnect's lists, and from the
    /// cache (portal developers are known from there only).
    pub fn principal_ids(&self, value: &str) -> Vec<String> {
        let lower = value.to_lowercase();
        let mut ids: Vec<String> = {
            let cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .find(&lower)
                .into_iter()
                .map(|k| k.rsplit('/').next().unwrap_or(&k).to_owned())
                .collect()
        };
        if !self.0.stopped.load(Ordering::Relaxed) {
            let value = value.to_owned();
            match self.ask(|reply| Job::Find(value, reply)) {
                Some(Ok(found)) => {
                    let mut cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
                    for (id, entry) in found {
                        ids.push(id.clone());
                        cache.put(id, entry);
                    }
                    save(&mut cache);
                }
                Some(Err(why)) => self.stop(&why),
                None => {}
            }
        }
        ids.sort();
        ids.dedup();
        ids
    }

    /// `--principal`: the values, with the ids their names and emails
    /// resolve to (a name that resolves to nothing is said so).
    pub fn principals(names: Option<&Names>, values: &[String]) -> Principals {
        let mut principals = Principals::new(values);
        let wanted: Vec<String> = principals.names().map(str::to_owned).collect();
        for value in wanted {
            let ids = names.map(|n| n.principal_ids(&value)).unwrap_or_default();
            if ids.is_empty() {
                eprintln!(
                    "warning: --principal {}: no user, system account or cached portal developer \
                     is called so{}; only records whose principal_name or principal_id is {} match",
                    crate::gofmt::quote(&value),
                    if names.is_none_or(|n| n.0.identity.is_none()) {
                        " (looking it up needs a Konnect token)"
                    } else {
                        ""
                    },
                    crate::gofmt::quote(&value),
                );
            }
            for id in ids {
                principals.add_id(&id);
            }
        }
        principals
    }

    /// Sends a job to the lookup thread (started on first use) and waits
    /// for its answer. `None` when there is no token or no thread.
    fn ask<T>(&self, job: impl FnOnce(mpsc::Sender<T>) -> Job) -> Option<T> {
        let identity = self.0.identity.as_ref()?;
        let (tx, rx) = mpsc::channel();
        {
            let mut worker = self.0.worker.lock().unwrap_or_else(|e| e.into_inner());
            let worker = match &mut *worker {
                Some(w) => w,
                None => worker.insert(spawn_worker(identity.clone())?),
            };
            worker.jobs.send(job(tx)).ok()?;
        }
        rx.recv().ok()
    }

    fn warn_id(&self, id: &str, why: &str) {
        let mut warned = self.0.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.insert(id.to_owned()) {
            (self.0.warn)(&format!(
                "warning: principal {id} is shown by its id: {why}"
            ));
        }
    }

    fn stop(&self, why: &str) {
        if !self.0.stopped.swap(true, Ordering::Relaxed) {
            (self.0.warn)(&format!(
                "warning: principal names are not looked up any further: {why}; principals are shown by their ids"
            ));
        }
    }
}

impl crate::output::summary::Names for Names {
    fn names(&self, keys: &[PrincipalKey]) -> HashMap<PrincipalKey, String> {
        self.resolve(keys)
    }
}

fn save(cache: &mut Cache) {
    if let Err(e) = cache.save(Timestamp::now()) {
        tracing::warn!(error = %e, "could not save the principal cache");
    }
}

/// The cache's key of a principal.
fn cache_key(key: &PrincipalKey) -> String {
    match &key.portal_id {
        Some(portal) => format!("portal/{portal}/{}", key.id),
        None => key.id.clone(),
    }
}

/// Starts the lookup thread, with a runtime of its own.
fn spawn_worker(identity: Identity) -> Option<Worker> {
    let (tx, rx) = mpsc::channel::<Job>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    std::thread::Builder::new()
        .name("kongctl-names".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                match job {
                    Job::Lookup(keys, reply) => {
                        let _ = reply.send(runtime.block_on(lookup_all(&identity, keys)));
                    }
                    Job::Find(value, reply) => {
                        let _ = reply.send(runtime.block_on(find(&identity, &value)));
                    }
                }
            }
        })
        .ok()?;
    Some(Worker { jobs: tx })
}

/// Looks `keys` up, [`CONCURRENCY`] at a time.
async fn lookup_all(identity: &Identity, keys: Vec<PrincipalKey>) -> Vec<(PrincipalKey, Outcome)> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut pending = keys.into_iter();
    let mut running = tokio::task::JoinSet::new();
    let mut out = Vec::new();
    loop {
        while running.len() < CONCURRENCY {
            let Some(key) = pending.next() else { break };
            let identity = identity.clone();
            let stop = stop.clone();
            running.spawn(async move {
                let outcome = if stop.load(Ordering::Relaxed) {
                    Outcome::Failed("not looked up".into())
                } else {
                    lookup(&identity, &key).await
                };
                if matches!(outcome, Outcome::Stop(_)) {
                    stop.store(true, Ordering::Relaxed);
                }
                (key, outcome)
            });
        }
        match running.join_next().await {
            Some(Ok(result)) => out.push(result),
            Some(Err(_)) => {}
            None => break,
        }
    }
    out
}

/// One principal: a developer of its portal, a user, a system account.
async fn lookup(identity: &Identity, key: &PrincipalKey) -> Outcome {
    let deadline = Instant::now() + LOOKUP_BUDGET;
    let now = Timestamp::now();
    if let Some(portal) = &key.portal_id {
        match identity.developer(portal, &key.id, deadline).await {
            Ok(Some(d)) => return Outcome::Found(developer_entry(d.email, d.full_name, now)),
            Ok(None) => {}
            Err(e) => return failed(&e),
        }
    }
    match identity.user(&key.id, deadline).await {
        Ok(Some(u)) => return Outcome::Found(user_entry(u.email, u.full_name, now)),
        Ok(None) => {}
        Err(e) => return failed(&e),
    }
    match identity.system_account(&key.id, deadline).await {
        Ok(Some(a)) => Outcome::Found(Entry {
            kind: Kind::SystemAccount,
            name: Some(a.name.clone()).filter(|n| !n.is_empty()),
            email: None,
            full_name: Some(a.name),
            looked_up_at: now,
        }),
        Ok(None) => Outcome::NotFound,
        Err(e) => failed(&e),
    }
}

/// The principals called `value`: users by email (a value with `@`) or
/// full name, and system accounts by name.
async fn find(identity: &Identity, value: &str) -> Result<Vec<(String, Entry)>, String> {
    let deadline = Instant::now() + LOOKUP_BUDGET;
    let now = Timestamp::now();
    let field = if value.contains('@') {
        "email"
    } else {
        "full_name"
    };
    let mut found = Vec::new();
    let users = identity
        .users_where(field, value, deadline)
        .await
        .map_err(|e| e.to_string())?;
    for u in users {
        found.push((u.id.clone(), user_entry(u.email, u.full_name, now)));
    }
    if field == "full_name" {
        let accounts = identity
            .system_accounts_named(value, deadline)
            .await
            .map_err(|e| e.to_string())?;
        for a in accounts {
            found.push((
                a.id.clone(),
                Entry {
                    kind: Kind::SystemAccount,
                    name: Some(a.name.clone()),
                    email: None,
                    full_name: Some(a.name),
                    looked_up_at: now,
                },
            ));
        }
    }
    Ok(found)
}

fn user_entry(email: String, full_name: String, now: Timestamp) -> Entry {
    let name = match (full_name.is_empty(), email.is_empty()) {
        (false, false) => format!("{full_name} <{email}>"),
        (false, true) => full_name.clone(),
        _ => email.clone(),
    };
    Entry {
        kind: Kind::User,
        name: Some(name).filter(|n| !n.is_empty()),
        email: Some(email).filter(|e| !e.is_empty()),
        full_name: Some(full_name).filter(|n| !n.is_empty()),
        looked_up_at: now,
    }
}

fn developer_entry(email: String, full_name: String, now: Timestamp) -> Entry {
    Entry {
        kind: Kind::Developer,
        name: Some(email.clone()).filter(|e| !e.is_empty()),
        email: Some(email).filter(|e| !e.is_empty()),
        full_name: Some(full_name).filter(|n| !n.is_empty()),
        looked_up_at: now,
    }
}

/// What a failed call means for the run: a refused token or an
/// unreachable Konnect stops the lookups; anything else fails this id.
fn failed(e: &KonnectError) -> Outcome {
    match e.status().map(|s| s.as_u16()) {
        Some(401) => Outcome::Stop(format!("Konnect refused the token ({e})")),
        Some(403) => Outcome::Stop(format!(
            "the token may not read users, system accounts or portal developers ({e})"
        )),
        None if matches!(e, KonnectError::Transport { .. }) => {
            Outcome::Stop(format!("Konnect cannot be reached ({e})"))
        }
        _ => Outcome::Failed(format!("looking it up failed: {e}")),
    }
}

/// `record` with `principal_name` added, as JSON (a CEF record becomes its
/// JSON form; a cps record's event gets it). `None` if the record has no
/// object to add it to.
pub fn with_principal_name(record: &Record, name: &str) -> Option<Record> {
    let json = record.json();
    // Where the object that gets the member ends (its closing brace).
    let close = match record.format() {
        Format::Cps => {
            #[derive(serde::Deserialize)]
            struct Wrapper<'a> {
                #[serde(borrow)]
                event: &'a RawValue,
            }
            let wrapper: Wrapper<'_> = serde_json::from_slice(json).ok()?;
            let inner = wrapper.event.get();
            let start = inner.as_ptr() as usize - json.as_ptr() as usize;
            start + inner.trim_end().len() - 1
        }
        _ => json.len() - 1,
    };
    if json.get(close) != Some(&b'}') {
        return None;
    }
    let empty = json[..close].trim_ascii_end().ends_with(b"{");
    let member = serde_json::to_string(name).ok()?;
    let mut out = Vec::with_capacity(json.len() + member.len() + 20);
    out.extend_from_slice(&json[..close]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"principal_name\":");
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&json[close..]);
    Record::new(Bytes::from(out)).ok()
}

/// The query stage that names principals: each record without a
/// `principal_name` whose principal has a name gets one
/// ([`with_principal_name`]) before `inner` prints it. Records are named
/// [`BATCH`] at a time (their lookups run together), and whenever the
/// source has caught up, so a follow prints without delay.
pub struct Named<O: Output> {
    inner: O,
    names: Names,
    pending: Vec<Record>,
}

impl<O: Output> Named<O> {
    pub fn new(inner: O, names: Names) -> Named<O> {
        Named {
            inner,
            names,
            pending: Vec::new(),
        }
    }

    pub fn into_inner(self) -> O {
        self.inner
    }

    /// The output records reach (after [`Output::caught_up`], everything
    /// held has reached it).
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let keys: Vec<Option<PrincipalKey>> = pending
            .iter()
            .map(|r| {
                let view = RecordView::of(r);
                if view.principal_name.is_some() {
                    None
                } else {
                    PrincipalKey::of(&view)
                }
            })
            .collect();
        let wanted: Vec<PrincipalKey> = keys.iter().flatten().cloned().collect();
        let names = if wanted.is_empty() {
            HashMap::new()
        } else {
            self.names.resolve(&wanted)
        };
        for (record, key) in pending.into_iter().zip(keys) {
            let named = key
                .and_then(|k| names.get(&k))
                .and_then(|name| with_principal_name(&record, name));
            self.inner.record(named.as_ref().unwrap_or(&record))?;
        }
        Ok(())
    }
}

impl<O: Output> Output for Named<O> {
    fn record(&mut self, record: &Record) -> io::Result<()> {
        self.pending.push(record.clone());
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn caught_up(&mut self) -> io::Result<()> {
        self.flush()?;
        self.inner.caught_up()
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        self.flush()?;
        self.inner.finish(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str) -> Record {
        Record::from_slice(line.as_bytes()).unwrap()
    }

    fn named(line: &str) -> String {
        let r = with_principal_name(&rec(line), "Ana Admin <ana@example.test>").unwrap();
        String::from_utf8(r.raw().to_vec()).unwrap()
    }

    #[test]
    fn the_name_is_added_last_leaving_the_rest_byte_for_byte() {
        assert_eq!(
            named(
                r#"{"event_class_id":"konnect","principal_id":"x","trace_id":8809518331380001234}"#
            ),
            r#"{"event_class_id":"konnect","principal_id":"x","trace_id":8809518331380001234,"principal_name":"Ana Admin <ana@example.test>"}"#
        );
        assert_eq!(
            named(r#"{"event":{"event_class_id":"konnect","principal_id":"x"},"other":1}"#),
            r#"{"event":{"event_class_id":"konnect","principal_id":"x","principal_name":"Ana Admin <ana@example.test>"},"other":1}"#
        );
        assert_eq!(
            named(r#"{"type":"authorization","ts":"2026-01-01T00:00:00Z","principal_id":"x" }"#),
            r#"{"type":"authorization","ts":"2026-01-01T00:00:00Z","principal_id":"x" ,"principal_name":"Ana Admin <ana@example.test>"}"#
        );
        // CEF: its JSON form.
        let cef = named(
            "2025-06-18T21:02:36Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.x|1|principal_id=x granted=true",
        );
        let v: serde_json::Value = serde_json::from_str(&cef).unwrap();
        assert_eq!(v["principal_name"], "Ana Admin <ana@example.test>");
        assert_eq!(v["granted"], true);
        assert_eq!(v["event_ts"], "2025-06-18T21:02:36Z");
        // The name is escaped as JSON.
        let r =
            with_principal_name(&rec(r#"{"event_ts":"2025-01-01T00:00:00Z"}"#), "a\"b").unwrap();
        assert_eq!(
            r.raw().as_ref(),
            br#"{"event_ts":"2025-01-01T00:00:00Z","principal_name":"a\"b"}"#
        );
    }

    const ALICE: &str = "87655c36-8d63-48fe-9a1e-53b28dfbc19b";

    /// Names that know Ana from the cache, and nobody else.
    fn ana_cached() -> Names {
        let mut cache = Cache::in_memory();
        let ana = user_entry(
            "ana@example.test".into(),
            "Ana Admin".into(),
            Timestamp::now(),
        );
        cache.put(ALICE.into(), ana);
        Names::new(cache, None, Box::new(|_| {}))
    }

    #[test]
    fn names_come_from_the_cache_without_a_token_and_ids_that_are_no_uuid_are_left_alone() {
        let names = ana_cached();
        let alice = PrincipalKey {
            id: ALICE.into(),
            portal_id: None,
        };
        let other = PrincipalKey {
            id: "user-1".into(),
            portal_id: None,
        };
        let got = names.resolve(&[alice.clone(), other.clone(), alice.clone()]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[&alice], "Ana Admin <ana@example.test>");
        assert_eq!(names.principal_ids("ANA@example.test"), [ALICE]);
    }

    #[test]
    fn the_stage_names_records_without_a_name_and_keeps_konnects() {
        #[derive(Default)]
        struct Lines(Vec<String>);
        impl Output for Lines {
            fn record(&mut self, record: &Record) -> io::Result<()> {
                self.0
                    .push(String::from_utf8_lossy(record.raw()).into_owned());
                Ok(())
            }
            fn finish(&mut self, _: &Summary) -> io::Result<()> {
                Ok(())
            }
        }
        let names = ana_cached();
        let mut stage = Named::new(Lines::default(), names);
        let plain = format!(r#"{{"event_class_id":"konnect","principal_id":"{ALICE}"}}"#);
        let sent = format!(
            r#"{{"event_class_id":"konnect","principal_id":"{ALICE}","principal_name":"Konnect's"}}"#
        );
        let unknown =
            r#"{"event_class_id":"konnect","principal_id":"eb999f01-5976-4f4b-9fbc-dd5d514bd675"}"#;
        for line in [&plain, &sent, unknown] {
            stage.record(&rec(line)).unwrap();
        }
        assert!(stage.inner.0.is_empty(), "held until caught up");
        stage.caught_up().unwrap();
        let out = stage.into_inner().0;
        assert_eq!(
            out[0],
            format!(
                r#"{{"event_class_id":"konnect","principal_id":"{ALICE}","principal_name":"Ana Admin <ana@example.test>"}}"#
            )
        );
        assert_eq!(out[1], sent);
        assert_eq!(out[2], unknown);
    }
}
