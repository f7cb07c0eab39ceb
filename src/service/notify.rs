//! systemd's notification protocol (`sd_notify(3)`), for `Type=notify`
//! units: one datagram of `KEY=VALUE` lines to the Unix socket named in
//! `NOTIFY_SOCKET` (a path, or an abstract address written `@name`).
//!
//! Written on std's `UnixDatagram` rather than with a crate: the protocol
//! is one `sendto` per message, std has the abstract namespace
//! (`SocketAddrExt::from_abstract_name`), and the socket is non-blocking so
//! that a busy manager never stalls the serving loop (a message that does
//! not fit is dropped with a debug line; the next status or watchdog ping
//! follows within seconds).
//!
//! `WATCHDOG_USEC` (with `WATCHDOG_PID`, when set, naming this process)
//! turns the watchdog on: the serving loop pings at half the interval, as
//! `sd_watchdog_enabled(3)` advises.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The manager's socket, and the watchdog interval it asked for.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` and `WATCHDOG_USEC`; `None` when not under a
    /// manager that listens (or the socket cannot be made).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        match Notifier::connect(path.to_str()?, watchdog) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; not notifying systemd");
                None
            }
        }
    }

    fn connect(path: &str, watchdog: Option<Duration>) -> std::io::Result<Notifier> {
        let addr = socket_addr(path)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket,
            addr,
            watchdog,
        })
    }

    fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::debug!(error = %e, message, "failed to notify systemd");
        }
    }

    /// `READY=1`, with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STOPPING=1`, with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=`: what `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// Half of `WATCHDOG_USEC`, if the watchdog is on for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// A status value is one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `@name` is an abstract address; anything else a path.
fn socket_addr(path: &str) -> std::io::Result<SocketAddr> {
    match path.strip_prefix('@') {
        Some(name) => abstract_addr(name.as_bytes()),
        None => SocketAddr::from_pathname(path),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> std::io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_: &[u8]) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract socket addresses exist on Linux only",
    ))
}

/// Half of `WATCHDOG_USEC`, unless `WATCHDOG_PID` names another process
/// (the variables were inherited) or the value is not a positive number.
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_pings_at_half_the_interval_of_this_process() {
        assert_eq!(
            watchdog_from(Some("3000000"), None, 7),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            watchdog_from(Some("3000000"), Some("7"), 7),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(watchdog_from(Some("3000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
    }

    #[test]
    fn messages_reach_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.to_str().unwrap(), None).unwrap();
        n.ready("serving:\nnow");
        let mut buf = [0u8; 256];
        let len = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving: now");

        let name = format!("kongctl-test-{}", std::process::id());
        let manager = UnixDatagram::bind_addr(&abstract_addr(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::connect(&format!("@{name}"), None).unwrap();
        n.watchdog();
        let len = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }
}
