//! The `konnect-sim` binary: its one stdout line, a real request, SIGTERM,
//! and the loopback-only rule.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_konnect-sim");

/// Kills the child if a test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "konnect-sim did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn prints_one_line_serves_and_exits_0_on_sigterm() {
    let child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--retry-wait-ms", "5"])
        .env_remove("KONNECT_SIM_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        tx.send(first).unwrap();
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        tx.send(rest).unwrap();
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the startup line");
    let (base_url, pat) = match line.trim_end().split(' ').collect::<Vec<_>>()[..] {
        [base, pat] => (
            base.strip_prefix("KONNECT_BASE_URL=").unwrap().to_string(),
            pat.strip_prefix("KONNECT_PAT=").unwrap().to_string(),
        ),
        _ => panic!("unexpected line {line:?}"),
    };
    assert!(base_url.starts_with("http://127.0.0.1:"), "{line}");
    assert_eq!(pat, konnect_sim::DEMO_PAT);

    let client = crate::common::http_client().build().unwrap();
    let reply = client
        .get(format!("{base_url}/v2/audit-log-webhook"))
        .header("authorization", format!("Bearer {pat}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json_body().await;
    assert_eq!(body["endpoint"], "unconfigured");

    // The shell's built-in kill: no procps needed.
    let pid = child.0.id();
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_with_timeout(&mut child.0, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");

    let rest = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(rest, "", "exactly one line on stdout");
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("api request") && stderr.contains("/v2/audit-log-webhook"),
        "{stderr}"
    );
    assert!(!stderr.contains(&pat), "the PAT is never logged: {stderr}");
}

#[test]
fn refuses_non_loopback_addresses_without_allow_remote() {
    let output = Command::new(BINARY)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let output = Command::new(BINARY).arg("--no-such-flag").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-such-flag"));
    let help = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--listen <ADDR>"));
}

/// `reqwest` here has no `json` feature; parse the body ourselves.
trait JsonBody {
    async fn json_body(self) -> serde_json::Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}
