//! The listening socket (SPEC §3 step 3, before anything remote changes):
//! binding with a full accept backlog and the original's `listen tcp`
//! error messages, and the local endpoint URL shown for the bound address.
//! Serving on the socket is `crate::listener`'s.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::error::CliError;

/// The accept backlog asked for; the kernel caps it at
/// `net.core.somaxconn`, as Go's `net.Listen` (the original) uses. Tokio's
/// `TcpListener::bind` asks for 128 only: a burst of more connections than
/// that, while the listener is at its connection limit or busy accepting,
/// had its SYNs dropped and waited a second or more to retry.
const ACCEPT_BACKLOG: u32 = 4096;

pub(super) async fn bind(addr: SocketAddr) -> Result<TcpListener, CliError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(ACCEPT_BACKLOG)
    };
    listen().map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "bind: address already in use".to_string(),
            std::io::ErrorKind::PermissionDenied => "bind: permission denied".to_string(),
            std::io::ErrorKind::AddrNotAvailable => {
                "bind: cannot assign requested address".to_string()
            }
            _ => format!("bind: {e}"),
        };
        let err = CliError::new(format!("listen tcp {addr}: {why}"));
        match e.kind() {
            std::io::ErrorKind::AddrInUse => err.with_hint(
                "another program (or listener) uses this port: choose another with --listen-address; nothing was changed in Konnect",
            ),
            _ => err,
        }
    })
}

/// `http://host:port/path` for the bound address (unspecified → 127.0.0.1;
/// IPv6 bracketed).
pub fn local_endpoint(bound: SocketAddr, path: &str) -> String {
    let host = match bound.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}{path}", bound.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_endpoint_formats_like_the_original() {
        assert_eq!(
            local_endpoint("0.0.0.0:19090".parse().unwrap(), "/audit-logs"),
            "http://127.0.0.1:19090/audit-logs"
        );
        assert_eq!(
            local_endpoint("[::1]:80".parse().unwrap(), "/a"),
            "http://[::1]:80/a"
        );
    }
}
