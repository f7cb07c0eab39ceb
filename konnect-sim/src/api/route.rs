//! The paths of the audit-log API: which endpoint a path names, in which
//! API version, and the methods the specs list for it.

use hyper::Method;

/// The API version of a path (`/v2/...`, `/v3/...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Version {
    V2,
    V3,
}

impl Version {
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Version::V2 => "/v2",
            Version::V3 => "/v3",
        }
    }
}

/// An endpoint of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Route {
    Webhook(Version),
    WebhookStatus(Version),
    Jwks,
    Destinations(Version),
    Destination(Version, String),
    ReplayJob(Version),
    AuditLogs,
}

impl Route {
    /// The route of a request path; `None` for a path the API does not
    /// have.
    pub(super) fn parse(path: &str) -> Option<Route> {
        let (version, rest) = if let Some(rest) = path.strip_prefix("/v2/") {
            (Version::V2, rest)
        } else if let Some(rest) = path.strip_prefix("/v3/") {
            (Version::V3, rest)
        } else {
            return None;
        };
        let route = match (version, rest) {
            (_, "audit-log-webhook") => Route::Webhook(version),
            (_, "audit-log-webhook/status") => Route::WebhookStatus(version),
            (Version::V2, "audit-log-webhook/jwks.json") => Route::Jwks,
            (_, "audit-log-destinations") => Route::Destinations(version),
            (_, "audit-log-replay-job") => Route::ReplayJob(version),
            (Version::V3, "audit-logs") => Route::AuditLogs,
            (_, other) => {
                let id = other.strip_prefix("audit-log-destinations/")?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                let id = url::form_urlencoded::parse(format!("x={id}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                Route::Destination(version, id)
            }
        };
        Some(route)
    }

    /// The methods the spec lists for the route.
    pub(super) fn methods(&self) -> &'static [Method] {
        match self {
            Route::Webhook(Version::V2) => &[Method::GET, Method::PATCH],
            Route::Webhook(Version::V3) => &[Method::GET, Method::PATCH, Method::DELETE],
            Route::WebhookStatus(_) | Route::Jwks | Route::AuditLogs => &[Method::GET],
            Route::Destinations(_) => &[Method::GET, Method::POST],
            Route::Destination(..) => &[Method::GET, Method::PATCH, Method::DELETE],
            Route::ReplayJob(_) => &[Method::GET, Method::PUT],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_specs() {
        assert_eq!(
            Route::parse("/v2/audit-log-webhook"),
            Some(Route::Webhook(Version::V2))
        );
        assert_eq!(
            Route::parse("/v3/audit-log-webhook/status"),
            Some(Route::WebhookStatus(Version::V3))
        );
        assert_eq!(
            Route::parse("/v2/audit-log-webhook/jwks.json"),
            Some(Route::Jwks)
        );
        assert_eq!(Route::parse("/v3/audit-log-webhook/jwks.json"), None);
        assert_eq!(Route::parse("/v3/audit-logs"), Some(Route::AuditLogs));
        assert_eq!(Route::parse("/v2/audit-logs"), None);
        assert_eq!(
            Route::parse("/v2/audit-log-destinations/ab%2Dc"),
            Some(Route::Destination(Version::V2, "ab-c".into()))
        );
        assert_eq!(Route::parse("/v3/audit-log-destinations/a/b"), None);
        assert_eq!(Route::parse("/v3/audit-log-destinations/"), None);
        assert_eq!(Route::parse("/v1/audit-log-webhook"), None);
        assert_eq!(Route::parse("/v3/audit-log-webhook/"), None);
    }
}
