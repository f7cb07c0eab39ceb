//! `listener.json` at stop: the final write (`running: false`) must be the
//! last one, whole, even when a counter refresh is being written as the
//! listener stops.
//!
//! The refresh interval is shortened to a millisecond (the test-only
//! `KONGCTL_TEST_STATE_REFRESH`) and records keep arriving until the stop,
//! so a refresh is almost always in progress when serving ends.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{World, eventually, read_lines};

/// Stops this many listeners, each in its own world.
const ROUNDS: usize = 8;
/// Threads posting records during each stop.
const POSTERS: usize = 3;

/// POSTs one record; `true` if the listener acknowledged it, `false` if it
/// refused the connection or dropped it (it is stopping).
fn post_record(addr: SocketAddr, n: u64) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let body = format!("{{\"n\":{n}}}\n");
    let req = format!(
        "POST /audit-logs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer test-secret\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 202")
}

#[test]
fn listener_json_is_final_and_whole_after_a_stop_during_refreshes() {
    for round in 0..ROUNDS {
        let w = World::new();
        let log_file = w.dir.path().join("kongctl.log");
        let (mut cmd, host) = w.listener_command(
            "listen",
            &[
                "--log-level",
                "warn",
                "--log-file",
                log_file.to_str().unwrap(),
            ],
        );
        cmd.env("KONGCTL_TEST_STATE_REFRESH", "1ms");
        let mut l = w.start_listener_cmd(cmd, &host);

        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let posters: Vec<_> = (0..POSTERS)
            .map(|t| {
                let (stop, acked, addr) = (stop.clone(), acked.clone(), l.addr);
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        if post_record(addr, (t as u64) << 32 | n) {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        // Stop only once records flow, so refreshes are being written.
        eventually("records acknowledged", || {
            acked.load(Ordering::SeqCst) >= 20
        });
        l.stop_ok();
        stop.store(true, Ordering::SeqCst);
        for p in posters {
            p.join().expect("poster thread");
        }

        let dir = w.storage_dir("default");
        let path = dir.join("listener.json");
        let bytes = std::fs::read(&path).expect("listener.json exists");
        let state: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "round {round}: listener.json is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(
            state["running"], false,
            "round {round}: a refresh overwrote the final state: {state}"
        );
        assert!(
            state["stopped_at"].is_string(),
            "round {round}: no stopped_at: {state}"
        );
        let stored = read_lines(&w.events_file()).len() as u64;
        assert_eq!(
            state["records_received"].as_u64(),
            Some(stored),
            "round {round}: final counters are not the store's: {state}"
        );
        assert!(
            stored >= acked.load(Ordering::SeqCst),
            "round {round}: {stored} records stored, {} acknowledged",
            acked.load(Ordering::SeqCst)
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(
            names.is_empty(),
            "round {round}: temporary files left: {names:?}"
        );
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        assert!(
            !log.contains("listener state"),
            "round {round}: a listener.json write failed:\n{log}"
        );
        w.assert_konnect_clean();
    }
}
