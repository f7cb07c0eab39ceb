//! Unit tests only: a scripted Konnect on 127.0.0.1:0 that records every
//! request and answers each from a closure or a list, so that a call's
//! exact method, path, query and body can be checked without the emulator.
//! One request per connection (`Connection: close`), bodies by
//! `Content-Length` (what reqwest sends for JSON).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::AuditLogs;
use super::client::{ClientOptions, Hosts, KonnectClient};
use crate::secret::Secret;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// The decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn query(&self, key: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }

    pub fn problem(status: u16, title: &str) -> Reply {
        Reply {
            status,
            content_type: "application/problem+json",
            body: serde_json::json!({"status": status, "title": title, "detail": title,
                                     "instance": "kong:trace:1"})
            .to_string()
            .into_bytes(),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: Vec::new(),
        }
    }
}

type Handler = Box<dyn Fn(&Req) -> Reply + Send + Sync>;

/// The fake; it serves until the test process ends.
pub struct FakeKonnect {
    base: String,
    log: Arc<Mutex<Vec<Req>>>,
}

impl FakeKonnect {
    /// Answers each request with `handler`.
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> FakeKonnect {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(Box::new(handler));
        let shared = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, handler) = (shared.clone(), handler.clone());
                std::thread::spawn(move || serve(stream, &log, &handler));
            }
        });
        FakeKonnect { base, log }
    }

    /// Answers the requests with `replies` in order (then 500).
    pub fn start_seq(replies: Vec<Reply>) -> FakeKonnect {
        let next = Mutex::new(replies.into_iter());
        FakeKonnect::start(move |_| {
            next.lock()
                .unwrap()
                .next()
                .unwrap_or_else(|| Reply::problem(500, "script exhausted"))
        })
    }

    /// A client of the fake: both hosts are it, one attempt per call's
    /// retry budget as in production but with short waits.
    pub fn audit(&self) -> AuditLogs {
        let hosts = Hosts::resolve(Some(&self.base), "us", "konghq.com").expect("base URL");
        let options = ClientOptions {
            backoff_base: std::time::Duration::from_millis(5),
            backoff_max: std::time::Duration::from_millis(20),
            ..ClientOptions::default()
        };
        let client =
            KonnectClient::new(hosts, Secret::new("kpat_test"), options).expect("client builds");
        AuditLogs::new(client)
    }

    /// The requests so far, in order.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Req>>, handler: &Handler) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let url = reqwest::Url::parse(&format!("http://fake{target}")).expect("request target");
    let req = Req {
        method,
        path: url.path().to_string(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        body,
    };
    log.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(&reply.body);
}
