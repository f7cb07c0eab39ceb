//! Konnect-like audit-log records, deterministic for a seed.
//!
//! The shapes follow Konnect's JSON audit logs (authentication events and
//! API access events with a `request` object): one compact object per line,
//! 600 to 1000 bytes, about 800 on average. Values that matter to the code
//! under test are spread on purpose:
//! - `trace_id` is an integer, above 2^53 in most records (doubles cannot
//!   hold it) and at least 2^63 (beyond i64) in some;
//! - query strings carry `&`, and about one record in fifty has a `detail`
//!   with `<`, `>`, `&`, U+2028 and non-ASCII text, which Go's
//!   `json.Marshal` (and so `tail --jq`) escapes and gojq does not;
//! - `sig` is random base64url, so the bodies compress like real ones
//!   (about 3x), not like repeated text.

use std::fmt::Write as _;

/// splitmix64: small, fast, and the same numbers on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6b6f_6e67_6374_6c00)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        let a = (a & !0xf000) | 0x4000;
        let b = (b & !(0xc << 60)) | (0x8 << 60);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

const ROLES: &[&str] = &[
    "Organization Admin",
    "Control Plane Admin",
    "Control Plane Viewer",
    "Service Admin",
    "API Product Maintainer",
    "Portal Admin",
    "Deployer",
];
const AUTH: &[(&str, &str)] = &[
    ("AUTHENTICATION_TYPE_PAT", "PAT"),
    ("AUTHENTICATION_TYPE_SPAT", "system_account_token"),
    ("AUTHENTICATION_TYPE_BASIC", "password"),
    ("AUTHENTICATION_TYPE_SSO", "SSO"),
];
const RESOURCES: &[(&str, &str)] = &[
    ("CONTROL_PLANES", "control-planes"),
    ("SERVICES", "services"),
    ("ROUTES", "routes"),
    ("PLUGINS", "plugins"),
    ("CONSUMERS", "consumers"),
    ("CERTIFICATES", "certificates"),
    ("API_PRODUCTS", "api-products"),
    ("TEAMS", "teams"),
];
const METHODS: &[(&str, &str)] = &[
    ("GET", "READ"),
    ("GET", "READ"),
    ("GET", "READ"),
    ("POST", "CREATE"),
    ("PUT", "UPSERT"),
    ("PATCH", "UPDATE"),
    ("DELETE", "DELETE"),
];
const STATUS: &[u16] = &[
    200, 200, 200, 200, 200, 200, 201, 201, 204, 400, 401, 403, 404, 404, 409, 429, 500,
];
const AGENTS: &[&str] = &[
    "kongctl/0.4.0 (linux; amd64)",
    "decK/1.40.2",
    "terraform-provider-konnect/2.4.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Go-http-client/2.0",
    "python-requests/2.32.3",
];
const SOURCES: &[&str] = &["api", "ui", "terraform", "deck", "kongctl"];
const ENTITIES: &[&str] = &[
    "payments-api",
    "orders-v2",
    "billing",
    "key-auth",
    "rate-limiting",
    "partner-portal",
];
const DETAILS: &[&str] = &[
    "policy <deny-all> matched & request logged\u{2028}see runbook",
    "Zoë's token <expired> & was refused\u{2029}",
    "header \\\"X-Forwarded-For\\\" had <3> hops & a loop",
];

/// Generates records one after the other.
pub struct Generator {
    rng: Rng,
    orgs: Vec<String>,
    principals: Vec<(String, &'static str)>,
    control_planes: Vec<String>,
    /// Milliseconds since the Unix epoch of the last record.
    ts_ms: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = Rng::new(seed);
        let orgs = (0..3).map(|_| rng.uuid()).collect();
        let principals = (0..40)
            .map(|_| {
                let id = rng.uuid();
                (id, *rng.pick(ROLES))
            })
            .collect();
        let control_planes = (0..12).map(|_| rng.uuid()).collect();
        Generator {
            rng,
            orgs,
            principals,
            control_planes,
            // 2025-03-01T08:00:00Z
            ts_ms: 1_740_816_000_000,
        }
    }

    /// Appends one record and its `\n` to `out`.
    pub fn record(&mut self, out: &mut String) {
        let r = &mut self.rng;
        self.ts_ms += 1 + r.below(3000);
        let (principal, role) = r.pick(&self.principals).clone();
        let org = r.pick(&self.orgs).clone();
        let actor = if r.chance(80) {
            principal.clone()
        } else {
            r.uuid()
        };
        let trace_id = match r.below(10) {
            0 => (1 << 63) | r.next(),
            1..=2 => r.below(1 << 53),
            _ => (1 << 53) + r.below((1 << 63) - (1 << 53)),
        };
        out.push_str("{\"event_ts\":\"");
        push_timestamp(out, self.ts_ms);
        out.push_str("\",\"event_product\":\"konnect\"");
        let (class, name, auth_type, request, severity) = if r.chance(25) {
            let (class, auth_type) = *r.pick(AUTH);
            let ok = r.chance(90);
            let name = if ok {
                "AUTHENTICATION_OUTCOME_SUCCESS".to_string()
            } else {
                "AUTHENTICATION_OUTCOME_FAILURE".to_string()
            };
            (class, name, auth_type, None, if ok { 1 } else { 7 })
        } else {
            let (class, resource) = *r.pick(RESOURCES);
            let (method, verb) = *r.pick(METHODS);
            let status = *r.pick(STATUS);
            let cp = r.pick(&self.control_planes).clone();
            let path = match resource {
                "control-planes" => format!("/v2/control-planes/{cp}"),
                "teams" | "api-products" => format!("/v3/{resource}/{}", r.uuid()),
                _ => {
                    let entity = if r.chance(50) {
                        r.pick(ENTITIES).to_string()
                    } else {
                        r.uuid()
                    };
                    format!("/v2/control-planes/{cp}/core-entities/{resource}/{entity}")
                }
            };
            let query = if method == "GET" && r.chance(40) {
                format!(
                    "page%5Bsize%5D={}&page%5Bnumber%5D={}&sort=-created_at",
                    r.pick(&[10, 50, 100]),
                    1 + r.below(20)
                )
            } else {
                String::new()
            };
            let request = format!(
                "{{\"method\":\"{method}\",\"path\":\"{path}\",\"query\":\"{query}\",\"status_code\":{status},\"latency\":{}}}",
                2 + r.below(900)
            );
            let severity = match status {
                0..=399 => 1,
                400..=499 => 5,
                _ => 8,
            };
            (
                class,
                format!("{class}_{verb}"),
                *r.pick(&["PAT", "PAT", "system_account_token", "SSO", "password"]),
                Some(request),
                severity,
            )
        };
        let _ = write!(
            out,
            ",\"event_class_id\":\"{class}\",\"event_id\":\"{}\",\"event_name\":\"{name}\",\"name\":\"{name}\",\"org_id\":\"{org}\",\"principal_id\":\"{principal}\",\"actor_id\":\"{actor}\",\"trace_id\":{trace_id},\"rbac_role_name\":\"{role}\",\"auth_type\":\"{auth_type}\",\"client_ip\":\"",
            r.uuid()
        );
        if r.chance(10) {
            let _ = write!(
                out,
                "2001:db8:{:x}:{:x}::{:x}",
                r.below(1 << 16),
                r.below(1 << 16),
                r.below(1 << 16)
            );
        } else {
            let _ = write!(
                out,
                "{}.{}.{}.{}",
                r.pick(&[34, 52, 81, 104, 185, 203]),
                r.below(256),
                r.below(256),
                1 + r.below(254)
            );
        }
        let _ = write!(out, "\",\"user_agent\":\"{}\"", r.pick(AGENTS));
        if let Some(request) = request {
            let _ = write!(out, ",\"request\":{request}");
        }
        if r.chance(2) {
            let _ = write!(out, ",\"detail\":\"{}\"", r.pick(DETAILS));
        }
        let _ = write!(
            out,
            ",\"request_source\":\"{}\",\"severity\":{severity},\"sig\":\"",
            r.pick(SOURCES)
        );
        let sig_bytes = 40 + r.below(64);
        push_base64url(out, r, sig_bytes as usize);
        out.push_str("\"}\n");
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch.
fn push_timestamp(out: &mut String, ms: u64) {
    let at = jiff::Timestamp::from_millisecond(ms as i64).expect("a time jiff can hold");
    let _ = write!(out, "{at:.3}");
}

fn push_base64url(out: &mut String, rng: &mut Rng, bytes: usize) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // Four characters per three bytes, unpadded.
    for _ in 0..(bytes * 4).div_ceil(3) {
        out.push(ALPHABET[rng.below(64) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_objects_of_realistic_size() {
        let mut g = Generator::new(1);
        let mut text = String::new();
        for _ in 0..2000 {
            g.record(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2000);
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.is_object());
        }
        let avg = text.len() / lines.len();
        assert!((700..900).contains(&avg), "average {avg} bytes");
        let big = lines
            .iter()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["trace_id"].as_u64().is_some_and(|t| t > 1 << 53)
            })
            .count();
        assert!(big > 1000, "{big} records with trace_id > 2^53");
        assert!(text.contains('\u{2028}') && text.contains('<'));
    }

    #[test]
    fn same_seed_same_records() {
        let (mut a, mut b) = (String::new(), String::new());
        Generator::new(7).record(&mut a);
        Generator::new(7).record(&mut b);
        assert_eq!(a, b);
        assert!(a.starts_with("{\"event_ts\":\"2025-03-01T08:00:"), "{a}");
    }
}
