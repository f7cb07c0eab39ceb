//! Who a principal is: Konnect's identity API (users and system accounts,
//! on the global host) and a Dev Portal's developers (on the regional
//! host), as far as naming the principals of audit records needs them.
//!
//! Lookups by id answer `Ok(None)` for an id Konnect does not know (404, or
//! the 400 the users endpoint gives an id that is no UUID); lists take the
//! spec's `eq` filters (`filter[email][eq]`, `filter[full_name][eq]`,
//! `filter[name][eq]`) and read their first page, which is all an exact
//! match has. Retries (429 with `Retry-After`, 5xx, no answer) are the
//! client's; caching and naming are [`crate::query::names`]'s.

use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::client::{Host, KonnectClient, Retry};
use super::error::KonnectError;

/// A user (`GET /v3/users/{userId}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub full_name: String,
}

/// A system account (`GET /v3/system-accounts/{accountId}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SystemAccount {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// A Dev Portal's developer
/// (`GET /v3/portals/{portalId}/developers/{developerId}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Developer {
    pub id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub full_name: String,
}

/// The records of a list call.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

/// Largest page the lists ask for.
const PAGE_SIZE: &str = "100";

/// The identity calls over a [`KonnectClient`].
#[derive(Debug, Clone)]
pub struct Identity {
    client: KonnectClient,
}

impl Identity {
    pub fn new(client: KonnectClient) -> Identity {
        Identity { client }
    }

    /// `GET {global}/v3/users/{id}`.
    pub async fn user(&self, id: &str, deadline: Instant) -> Result<Option<User>, KonnectError> {
        self.one(
            Host::Global,
            &format!("/v3/users/{}", segment(id)),
            deadline,
        )
        .await
    }

    /// `GET {global}/v3/system-accounts/{id}`.
    pub async fn system_account(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Option<SystemAccount>, KonnectError> {
        let path = format!("/v3/system-accounts/{}", segment(id));
        self.one(Host::Global, &path, deadline).await
    }

    /// `GET {regional}/v3/portals/{portal}/developers/{id}`.
    pub async fn developer(
        &self,
        portal: &str,
        id: &str,
        deadline: Instant,
    ) -> Result<Option<Developer>, KonnectError> {
        let path = format!("/v3/portals/{}/developers/{}", segment(portal), segment(id));
        self.one(Host::Regional, &path, deadline).await
    }

    /// The users whose `field` (`email` or `full_name`) is `value`.
    pub async fn users_where(
        &self,
        field: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<Vec<User>, KonnectError> {
        let filter = format!("filter[{field}][eq]");
        self.list("/v3/users", &filter, value, deadline).await
    }

    /// The system accounts named `name`.
    pub async fn system_accounts_named(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<Vec<SystemAccount>, KonnectError> {
        self.list("/v3/system-accounts", "filter[name][eq]", name, deadline)
            .await
    }

    async fn one<T: for<'de> Deserialize<'de>>(
        &self,
        host: Host,
        path: &str,
        deadline: Instant,
    ) -> Result<Option<T>, KonnectError> {
        let url = self.client.url(host, path, &[]);
        let resp = match self
            .client
            .call(Method::GET, url, None, Retry::Transient, Some(deadline))
            .await
        {
            Ok(resp) => resp,
            Err(e) if unknown_id(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        decode(&resp).map(Some)
    }

    async fn list<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        filter: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<Vec<T>, KonnectError> {
        let url = self.client.url(
            Host::Global,
            path,
            &[(filter, value), ("page[size]", PAGE_SIZE)],
        );
        let resp = self
            .client
            .call(Method::GET, url, None, Retry::Transient, Some(deadline))
            .await?;
        decode::<Page<T>>(&resp).map(|p| p.data)
    }
}

/// Whether an error says the id is none of this kind's: 404, or 400 (the
/// users endpoint's answer to an id that is no UUID v4).
fn unknown_id(e: &KonnectError) -> bool {
    matches!(
        e.status(),
        Some(StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST)
    )
}

fn decode<T: for<'de> Deserialize<'de>>(resp: &super::client::Response) -> Result<T, KonnectError> {
    serde_json::from_slice(&resp.body).map_err(|e| KonnectError::Decode {
        method: resp.method.clone(),
        url: super::error::redact_url(&resp.url),
        reason: format!("unexpected body: {e}"),
    })
}

/// An id as one path segment (ids are UUIDs; anything else is escaped so
/// that it cannot change the path).
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_segment() {
        assert_eq!(
            segment("87655c36-8d63-48fe-9a1e-53b28dfbc19b"),
            "87655c36-8d63-48fe-9a1e-53b28dfbc19b"
        );
        assert_eq!(segment("../x y"), "..%2Fx%20y");
    }
}
