//! Test helpers: an API client that checks every answer against the
//! OpenAPI contract (`konnect_sim::contract`), and a webhook receiver that
//! records what it gets.

use std::collections::{BTreeSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use konnect_sim::{Sim, SimConfig};
use serde_json::Value;
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------
// Contract: the OpenAPI files, as the emulator compiles them in.

pub use konnect_sim::contract::{Contract, Operation};

// ---------------------------------------------------------------------------
// Api: an HTTP client for the emulator that checks every answer.

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json body with the base error fields and returns it.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert!(
            body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        let instance = body["instance"].as_str().unwrap_or_default();
        let trace = instance.strip_prefix("kong:trace:").unwrap_or_default();
        assert!(
            !trace.is_empty() && trace.bytes().all(|b| b.is_ascii_digit()),
            "{body}"
        );
        body
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Bearer <the Sim's first PAT>`.
    Pat,
    /// No Authorization header.
    None,
    /// This exact header value.
    Header(String),
}

/// A reqwest client builder for the tests. Installs ring as rustls' crypto
/// provider first: in a workspace build reqwest has kongctl's
/// `rustls-no-provider` feature and panics without one.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy()
}

/// A client of one emulator. Every answer on a path of the specs is checked
/// with [`Contract::check`]; a violation fails the test.
pub struct Api {
    pub base: String,
    pub pat: String,
    client: reqwest::Client,
    covered: Mutex<BTreeSet<Operation>>,
    host: Option<String>,
}

impl Api {
    pub fn new(sim: &Sim) -> Api {
        Api {
            base: sim.base_url(),
            pat: sim.pat(),
            client: http_client().build().unwrap(),
            covered: Mutex::new(BTreeSet::new()),
            host: None,
        }
    }

    /// The same client sending `Host: <host>` (to pick a region).
    pub fn with_host(&self, host: &str) -> Api {
        Api {
            base: self.base.clone(),
            pat: self.pat.clone(),
            client: self.client.clone(),
            covered: Mutex::new(BTreeSet::new()),
            host: Some(host.to_string()),
        }
    }

    pub fn covered(&self) -> BTreeSet<Operation> {
        self.covered.lock().unwrap().clone()
    }

    /// Sends a request without checking the answer against the specs.
    pub async fn raw(&self, method: &str, path: &str, body: Option<&[u8]>, auth: Auth) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::Pat => request = request.header("authorization", format!("Bearer {}", self.pat)),
            Auth::Header(value) => request = request.header("authorization", value),
            Auth::None => {}
        }
        if let Some(host) = &self.host {
            request = request.header("host", host);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_vec());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.bytes().await.unwrap().to_vec();
        Reply {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// Sends a request and checks the answer against the specs.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, auth: Auth) -> Reply {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.call_bytes(method, path, bytes.as_deref(), auth).await
    }

    pub async fn call_bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        auth: Auth,
    ) -> Reply {
        let reply = self.raw(method, path, body, auth).await;
        match Contract::global().check_response(
            method,
            path,
            reply.status,
            reply.content_type.as_deref(),
            &reply.body,
        ) {
            Ok(operation) => {
                self.covered.lock().unwrap().insert(operation);
            }
            Err(violation) => panic!("contract violation: {violation}"),
        }
        reply
    }

    /// A call of the `/_sim/` admin API (no PAT, not checked against the
    /// specs).
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, bytes.as_deref(), Auth::None).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, Auth::Pat).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body), Auth::Pat).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(body), Auth::Pat).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(body), Auth::Pat).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, Auth::Pat).await
    }

    /// Creates a destination and returns its id.
    pub async fn create_destination(&self, name: &str, endpoint: &str, log_format: &str) -> String {
        let reply = self
            .post(
                "/v3/audit-log-destinations",
                serde_json::json!({"name": name, "endpoint": endpoint, "authorization": "Bearer hook-secret",
                                   "log_format": log_format}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Creates a destination and enables the webhook of the Host's region
    /// with it; returns the destination id.
    pub async fn enable_webhook(&self, name: &str, endpoint: &str, log_format: &str) -> String {
        let id = self.create_destination(name, endpoint, log_format).await;
        let reply = self
            .patch(
                "/v3/audit-log-webhook",
                serde_json::json!({"audit_log_destination_id": id, "enabled": true}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        id
    }
}

/// Starts an emulator with test timing on 127.0.0.1:0.
pub async fn start_sim() -> Sim {
    start_sim_with(SimConfig::for_tests()).await
}

pub async fn start_sim_with(config: SimConfig) -> Sim {
    Sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------
// Receiver: a webhook endpoint that records every request.

/// What the receiver answers to one request.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    /// Wait, then answer with the status.
    Delayed(Duration, u16),
    /// Close the connection without answering.
    Drop,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub raw_body: Vec<u8>,
    /// The body, gunzipped if it starts with the gzip magic bytes.
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The records: the body's lines.
    pub fn records(&self) -> Vec<String> {
        self.body.lines().map(str::to_string).collect()
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on 127.0.0.1:0 and answers 202 unless scripted otherwise.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (log, answers) = (received.clone(), script.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, answers) = (log.clone(), answers.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (log, answers) = (log.clone(), answers.clone());
                        async move { receive(request, log, answers).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            received,
            script,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers for the next requests, in order (then 202 again).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Every record of every request, in arrival order.
    pub fn records(&self) -> Vec<String> {
        self.received().iter().flat_map(Received::records).collect()
    }

    /// Waits until `count` requests arrived.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} requests, got {} within {timeout:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dropped")
    }
}
impl std::error::Error for Dropped {}

async fn receive(
    request: Request<Incoming>,
    log: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let method = request.method().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw_body = request
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let body = if raw_body.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw_body[..])
            .read_to_string(&mut text)
            .expect("a valid gzip body");
        text
    } else {
        String::from_utf8_lossy(&raw_body).into_owned()
    };
    log.lock().unwrap().push(Received {
        method,
        target,
        headers,
        raw_body,
        body,
    });
    let answer = answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(202));
    let status = match answer {
        Answer::Status(status) => status,
        Answer::Delayed(wait, status) => {
            tokio::time::sleep(wait).await;
            status
        }
        Answer::Drop => return Err(Dropped),
    };
    let mut response = Response::new(Full::new(Bytes::from(format!("answer {status}"))));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    Ok(response)
}

// ---------------------------------------------------------------------------
// Signatures, as Kong documents them ("Verify audit log signatures").

/// The signed bytes of a delivered line, by Kong's documented scheme, and
/// its signature.
pub fn signed_parts(line: &str) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let (message, sig) = if let Some((head, sig)) = line.rsplit_once(" sig=") {
        (head.to_string(), sig)
    } else {
        let at = line.rfind(",\"sig\":\"")?;
        let sig = line[at + 8..].strip_suffix("\"}")?;
        (format!("{}}}", &line[..at]), sig)
    };
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .ok()?;
    Some((message, sig))
}

pub fn verifies(jwks: &serde_json::Value, message: &str, sig: &[u8]) -> bool {
    use base64::Engine;
    jwks["keys"].as_array().unwrap().iter().any(|key| {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key["x"].as_str().unwrap())
            .unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, x)
            .verify(message.as_bytes(), sig)
            .is_ok()
    })
}

/// An address nothing listens on (bound, then released).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
