//! Test harness: a temp config dir, the Konnect emulator on 127.0.0.1:0,
//! and the real `kongctl` binary, with every process stopped by pid when a
//! test ends (pass or fail).

#![allow(dead_code)]

pub mod load;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use konnect_sim::blocking::Sim;
pub use konnect_sim::{SimConfig, Snapshot};

/// How long a test waits for something that should take milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

static TUNNEL_SEQ: AtomicUsize = AtomicUsize::new(0);

/// One test's world: config dir, emulator, and helpers to run kongctl.
pub struct World {
    pub dir: tempfile::TempDir,
    pub sim: Sim,
}

impl World {
    pub fn new() -> World {
        World::with_config(SimConfig::for_tests())
    }

    pub fn with_config(config: SimConfig) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = Sim::start(config).expect("emulator starts");
        World { dir, sim }
    }

    /// `$XDG_CONFIG_HOME/kongctl`.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("kongctl")
    }

    pub fn storage_dir(&self, profile_dir: &str) -> PathBuf {
        self.config_dir().join("audit-logs").join(profile_dir)
    }

    pub fn events_file(&self) -> PathBuf {
        self.storage_dir("default").join("events.jsonl")
    }

    /// A unique public endpoint served by the emulator's tunnel, e.g.
    /// `https://t3-1234.tunnel.test/audit-logs`.
    pub fn tunnel_host(&self) -> String {
        format!(
            "t{}-{}.tunnel.test",
            TUNNEL_SEQ.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        )
    }

    /// `kongctl` with a clean environment: config under the temp dir, the
    /// emulator as Konnect, its PAT in the environment (never in argv).
    pub fn kongctl(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kongctl"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("KONGCTL_DEFAULT_KONNECT_PAT", self.sim.pat())
            .env("KONGCTL_DEFAULT_KONNECT_BASE_URL", self.sim.base_url())
            .env("KONGCTL_KONNECT_TIMEOUT", "5s")
            // The emulator's tunnel hosts (`*.tunnel.test`) resolve only
            // inside the emulator, so the tunnel self-test could only warn,
            // ahead of the stderr these tests compare; tests/tunnel_check.rs
            // tests the check itself, its default included.
            .env("KONGCTL_LISTEN_CHECK", "off")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// `kongctl --profile <profile>` with that profile's PAT and base URL
    /// in the environment.
    pub fn kongctl_profile(&self, profile: &str) -> Command {
        let key = |k: &str| {
            format!(
                "KONGCTL_{}_{k}",
                profile.to_uppercase().replace(['-', '.'], "_")
            )
        };
        let mut cmd = self.kongctl();
        cmd.env(key("KONNECT_PAT"), self.sim.pat())
            .env(key("KONNECT_BASE_URL"), self.sim.base_url())
            .args(["--profile", profile]);
        cmd
    }

    /// Runs kongctl to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.kongctl();
        cmd.args(args);
        run_to_end(cmd)
    }

    /// Starts `kongctl <args>` in the background (stdout and stderr
    /// captured).
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut cmd = self.kongctl();
        cmd.args(args);
        Running::spawn(cmd)
    }

    /// Starts a listener (`listen` or `tail` plus `extra` args) on
    /// 127.0.0.1:0 behind a fresh emulator tunnel, and waits until it is
    /// serving.
    pub fn start_listener(&self, verb: &str, extra: &[&str]) -> Listener {
        let (cmd, host) = self.listener_command(verb, extra);
        self.start_listener_cmd(cmd, &host)
    }

    /// The command `start_listener` runs (a fresh tunnel host's endpoint,
    /// 127.0.0.1:0, `Bearer test-secret`, plus `extra`), for a test to
    /// adjust (environment, umask) before `start_listener_cmd`. Returns it
    /// with the tunnel host.
    pub fn listener_command(&self, verb: &str, extra: &[&str]) -> (Command, String) {
        let host = self.tunnel_host();
        let endpoint = format!("https://{host}/audit-logs");
        let mut cmd = self.kongctl();
        cmd.args([
            verb,
            "--endpoint",
            &endpoint,
            "--listen-address",
            "127.0.0.1:0",
            "--authorization",
            "Bearer test-secret",
        ])
        .args(extra);
        (cmd, host)
    }

    /// Starts `cmd` (from `listener_command`, default profile) and waits
    /// until it serves, with its tunnel pointed at it.
    pub fn start_listener_cmd(&self, cmd: Command, host: &str) -> Listener {
        let proc = Running::spawn(cmd);
        let state = proc.wait_for_listener_state(&self.storage_dir("default"));
        let addr: SocketAddr = state["listen_address"]
            .as_str()
            .expect("listen_address")
            .parse()
            .expect("listen_address parses");
        self.sim.add_tunnel(host, addr);
        Listener {
            proc,
            addr,
            endpoint: format!("https://{host}/audit-logs"),
        }
    }

    /// `destination.json` of the default profile (panics if missing or
    /// not JSON).
    pub fn destination_state(&self) -> serde_json::Value {
        let path = self.storage_dir("default").join("destination.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn snapshot(&self) -> Snapshot {
        self.sim.snapshot()
    }

    /// Asserts Konnect is as it started: webhook unconfigured, no
    /// destinations.
    pub fn assert_konnect_clean(&self) {
        let s = self.snapshot();
        let hook = &s.webhooks["us"];
        assert!(
            !hook.enabled && hook.endpoint == "unconfigured" && hook.destination_id.is_none(),
            "webhook left configured: {hook:?}"
        );
        assert!(
            s.destinations.is_empty(),
            "destinations left: {:?}",
            s.destinations
        );
    }

    /// Number of API calls matching method and path prefix.
    pub fn calls(&self, method: &str, path_prefix: &str) -> usize {
        self.snapshot()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// One Konnect API call, as another integration would make it (the
    /// emulator's PAT, the `us` host); the status and the body.
    pub fn konnect_call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let auth = format!("Bearer {}", self.sim.pat());
        let reply = test_support::exchange(
            self.sim.addr(),
            &test_support::request(
                method,
                path,
                &[
                    ("Host", "us.api.konghq.com"),
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            ),
        );
        (reply.status, reply.text())
    }

    /// Every record the emulator delivered successfully, in order.
    pub fn delivered_records(&self) -> Vec<String> {
        self.snapshot()
            .deliveries
            .iter()
            .filter(|d| d.delivered)
            .flat_map(|d| d.records.clone())
            .collect()
    }
}

/// SIGKILLs a detached process by pid if a test leaves it running.
pub struct PidGuard(pub i32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        if nix::sys::signal::kill(pid, None).is_ok() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Whether `pid` runs (a zombie does not: its state is Z in
/// `/proc/<pid>/stat`).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// The `pid:` line of `listen --detach`'s output.
pub fn detached_pid(stdout: &str) -> i32 {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {stdout}"))
}

/// A running listener.
pub struct Listener {
    pub proc: Running,
    pub addr: SocketAddr,
    pub endpoint: String,
}

impl Listener {
    pub fn url(&self) -> String {
        format!("http://{}/audit-logs", self.addr)
    }

    /// Ctrl+C, then asserts a successful exit (cleanup done) within 60 s;
    /// returns stdout.
    pub fn stop_ok(&mut self) -> String {
        self.proc.interrupt();
        let status = self.proc.wait_exit(Duration::from_secs(60));
        assert!(
            status.success(),
            "stop: exit {status:?}\nstdout:\n{}\nstderr:\n{}",
            self.proc.stdout(),
            self.proc.stderr()
        );
        self.proc.stdout()
    }
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn run_to_end(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("kongctl starts");
    let mut guard = Running::from_child(child);
    let status = guard.wait_exit(Duration::from_secs(90));
    Output {
        status,
        stdout: guard.stdout(),
        stderr: guard.stderr(),
    }
}

/// A background process, killed by pid if the test did not stop it.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Running::from_child(cmd.spawn().expect("process starts"))
    }

    /// Takes over a spawned child (whatever of its stdout/stderr is still
    /// piped is captured).
    pub fn spawn_guard(child: Child) -> Running {
        Running::from_child(child)
    }

    /// Runs `cmd` to completion.
    pub fn run_command(cmd: Command) -> Output {
        run_to_end(cmd)
    }

    fn from_child(mut child: Child) -> Running {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(pump(out, stdout.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(pump(err, stderr.clone()));
        }
        Running {
            child,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub fn stdout_bytes(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Sends `sig` to the process (by its pid).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    pub fn interrupt(&self) {
        self.signal(nix::sys::signal::Signal::SIGINT);
    }

    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.status = Some(s);
                false
            }
            _ => true,
        }
    }

    /// Waits for exit (and for stdout/stderr to be read to the end).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while self.is_running() {
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "process {} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.pid(),
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.status.expect("exited")
    }

    /// Waits until stdout satisfies `pred`.
    pub fn wait_stdout(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let out = self.stdout();
            if pred(&out) {
                return out;
            }
            if !self.is_running() || Instant::now() > deadline {
                panic!(
                    "waiting for {what}: process running={}\nstdout:\n{out}\nstderr:\n{}",
                    self.is_running(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr satisfies `pred` (a pipe's reader thread can
    /// lag behind what the process did meanwhile, e.g. its state file).
    pub fn wait_stderr(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let err = self.stderr();
            if pred(&err) {
                return err;
            }
            if !self.is_running() || Instant::now() > deadline {
                panic!(
                    "waiting for {what}: process running={}\nstderr:\n{err}",
                    self.is_running()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `<dir>/listener.json` says this process is serving, and
    /// returns it.
    pub fn wait_for_listener_state(&self, dir: &Path) -> serde_json::Value {
        let path = dir.join("listener.json");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
                && v["pid"].as_i64() == Some(self.pid() as i64)
                && v["running"] == serde_json::Value::Bool(true)
            {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "listener did not start\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if self.is_running() {
            self.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pump(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// A port nothing listens on (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `pred` until true or the deadline passes.
pub fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !pred() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of a file (empty if missing).
pub fn read_lines(path: &Path) -> Vec<String> {
    match std::fs::File::open(path) {
        Ok(f) => BufReader::new(f).lines().map(|l| l.unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A raw HTTP/1.1 POST (test-support's client) to `path` on `addr`,
/// returning the status code.
pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    test_support::exchange(addr, &test_support::request("POST", path, headers, body)).status
}

/// `len` characters of pseudo-random noise from `seed` (always the same
/// for a seed): padding that compresses poorly, as real records do rather
/// than to nothing.
pub fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdefghijklmnopqrstuv"[(x % 32) as usize])
        })
        .collect()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every record of every batch of the reports, delivered or not.
pub fn emitted(reports: &[&konnect_sim::TriggerReport]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| r.deliveries.iter())
        .flat_map(|d| d.records.clone())
        .collect()
}

/// Asserts `stored` holds each of `expected` exactly once, and nothing
/// else.
pub fn assert_each_once(stored: &[String], expected: &[String]) {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for line in stored {
        *counts.entry(line).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(
        want.len(),
        expected.len(),
        "the emulator emitted duplicates"
    );
    let got: Vec<&str> = counts.keys().copied().collect();
    let missing: Vec<_> = want.iter().filter(|r| !counts.contains_key(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} never stored: {missing:?}",
        missing.len()
    );
    assert_eq!(got, want, "stored records that were never emitted");
}

/// Runs each case in its own thread (most of a fault case's time is spent
/// waiting out backoffs); fails listing every failed case with its name.
pub fn run_cases<T: Send + 'static>(cases: Vec<T>, name: fn(&T) -> String, run: fn(T)) {
    let started = Instant::now();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|case| {
            let label = name(&case);
            let handle = std::thread::Builder::new()
                .name(label.clone())
                .spawn(move || run(case))
                .expect("thread starts");
            (label, handle)
        })
        .collect();
    let total = handles.len();
    let mut failed = Vec::new();
    for (label, handle) in handles {
        if let Err(panic) = handle.join() {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            failed.push(format!("- {label}:\n  {}", why.replace('\n', "\n  ")));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} cases failed ({:?}):\n{}",
        failed.len(),
        started.elapsed(),
        failed.join("\n")
    );
}
