//! The paths of the API: which endpoint a path names, in which API
//! version, the methods the specs list for it, and which Konnect host
//! serves it (portal endpoints are regional only, identity global only).

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

/// Which Konnect hosts serve a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hosts {
    /// Regional and global (the audit-log API: its specs list regional
    /// servers, the docs send destinations calls to the global host).
    Both,
    /// `https://{region}.api.konghq.com` only (portals).
    Regional,
    /// `https://global.api.konghq.com` only (identity).
    Global,
}

/// An endpoint of the API. Ids are as given in the path, percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Route {
    Webhook(Version),
    WebhookStatus(Version),
    Jwks,
    Destinations(Version),
    Destination(Version, String),
    ReplayJob(Version),
    AuditLogs,
    Portals,
    Portal(String),
    PortalDeveloper(String, String),
    PortalWebhook(String),
    PortalWebhookStatus(String),
    PortalReplayJob(String),
    Users,
    User(String),
    SystemAccounts,
    SystemAccount(String),
}

/// A path segment, percent-decoded; `None` if empty.
fn segment(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

impl Route {
    /// The routes under `/v3/` of the portal and identity specs.
    fn parse_v3(rest: &str) -> Option<Route> {
        let parts: Vec<&str> = rest.split('/').collect();
        Some(match parts.as_slice() {
            ["portals"] => Route::Portals,
            ["portals", id] => Route::Portal(segment(id)?),
            ["portals", id, "developers", developer] => {
                Route::PortalDeveloper(segment(id)?, segment(developer)?)
            }
            ["portals", id, "audit-log-webhook"] => Route::PortalWebhook(segment(id)?),
            ["portals", id, "audit-log-webhook", "status"] => {
                Route::PortalWebhookStatus(segment(id)?)
            }
            ["portals", id, "audit-log-replay-job"] => Route::PortalReplayJob(segment(id)?),
            ["users"] => Route::Users,
            ["users", id] => Route::User(segment(id)?),
            ["system-accounts"] => Route::SystemAccounts,
            ["system-accounts", id] => Route::SystemAccount(segment(id)?),
            _ => return None,
        })
    }

    /// The route of a request path; `None` for a path the API does not
    /// have.
    pub(super) fn parse(path: &str) -> Option<Route> {
        if let Some(route) = path.strip_prefix("/v3/").and_then(Route::parse_v3) {
            return Some(route);
        }
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
            Route::Webhook(Version::V3) | Route::PortalWebhook(_) => {
                &[Method::GET, Method::PATCH, Method::DELETE]
            }
            Route::WebhookStatus(_)
            | Route::Jwks
            | Route::AuditLogs
            | Route::Portals
            | Route::Portal(_)
            | Route::PortalDeveloper(..)
            | Route::PortalWebhookStatus(_)
            | Route::Users
            | Route::User(_)
            | Route::SystemAccounts
            | Route::SystemAccount(_) => &[Method::GET],
            Route::Destinations(_) => &[Method::GET, Method::POST],
            Route::Destination(..) => &[Method::GET, Method::PATCH, Method::DELETE],
            Route::ReplayJob(_) | Route::PortalReplayJob(_) => &[Method::GET, Method::PUT],
        }
    }

    /// The hosts that serve the route.
    pub(super) fn hosts(&self) -> Hosts {
        match self {
            Route::Portals
            | Route::Portal(_)
            | Route::PortalDeveloper(..)
            | Route::PortalWebhook(_)
            | Route::PortalWebhookStatus(_)
            | Route::PortalReplayJob(_) => Hosts::Regional,
            Route::Users | Route::User(_) | Route::SystemAccounts | Route::SystemAccount(_) => {
                Hosts::Global
            }
            _ => Hosts::Both,
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

    #[test]
    fn portal_and_identity_routes() {
        let id = "3e551b39-227d-4297-b911-e68fd5d77c17";
        assert_eq!(Route::parse("/v3/portals"), Some(Route::Portals));
        assert_eq!(
            Route::parse(&format!("/v3/portals/{id}")),
            Some(Route::Portal(id.into()))
        );
        assert_eq!(
            Route::parse(&format!("/v3/portals/{id}/developers/x%2Dy")),
            Some(Route::PortalDeveloper(id.into(), "x-y".into()))
        );
        assert_eq!(
            Route::parse(&format!("/v3/portals/{id}/audit-log-webhook/status")),
            Some(Route::PortalWebhookStatus(id.into()))
        );
        assert_eq!(
            Route::parse(&format!("/v3/portals/{id}/audit-log-replay-job")),
            Some(Route::PortalReplayJob(id.into()))
        );
        assert_eq!(Route::parse("/v3/portals//audit-log-webhook"), None);
        assert_eq!(Route::parse("/v2/portals"), None);
        assert_eq!(Route::parse("/v3/users/u1"), Some(Route::User("u1".into())));
        assert_eq!(
            Route::parse("/v3/system-accounts"),
            Some(Route::SystemAccounts)
        );
        assert_eq!(Route::Portals.hosts(), Hosts::Regional);
        assert_eq!(Route::Users.hosts(), Hosts::Global);
        assert_eq!(Route::Jwks.hosts(), Hosts::Both);
    }
}
