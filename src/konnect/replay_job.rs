//! The audit-log replay job (`/v3/audit-log-replay-job`) and the webhook's
//! delivery status (`/v3/audit-log-webhook/status`), of the region's
//! organisation stream or of one Dev Portal's
//! (`/v3/portals/{id}/audit-log-replay-job`, `…/audit-log-webhook/status`,
//! the same shapes): the two endpoints gap healing (`crate::replay`) uses to
//! have Konnect send again what a listener missed, and to notice that it
//! missed something. [`Stream`] says whose.
//!
//! Konnect keeps one replay job per stream: `PUT` replaces it with a new
//! range (`202`, status `accepted`), or answers `409` while one is still
//! `accepted`, `pending` or `running`; `GET` shows the last one. Every answer
//! carries Konnect's clock in its `Date` header, returned with the job so
//! that windows are measured on Konnect's clock rather than ours.

use std::fmt;
use std::time::SystemTime;

use jiff::Timestamp;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::audit_logs::AuditLogs;
use super::client::{Host, Retry};
use super::error::KonnectError;
use super::portals::Stream;

/// A replay job's `status`, the spec's enum (anything else is kept as
/// given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Unconfigured,
    Accepted,
    Pending,
    Running,
    Completed,
    Failed,
    Other(String),
}

impl JobStatus {
    fn parse(text: &str) -> JobStatus {
        match text {
            "unconfigured" => JobStatus::Unconfigured,
            "accepted" => JobStatus::Accepted,
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            other => JobStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::Unconfigured => "unconfigured",
            JobStatus::Accepted => "accepted",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Other(text) => text,
        }
    }

    /// Whether the job has ended, one way or the other.
    pub fn is_final(&self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The region's replay job as Konnect shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayJob {
    /// `None` while unset (Konnect's `0001-01-01T00:00:00Z`) or unreadable.
    pub start_at: Option<Timestamp>,
    pub end_at: Option<Timestamp>,
    pub status: JobStatus,
}

impl ReplayJob {
    /// Whether this is the job of `[start, end]` (Konnect may write the
    /// times in another offset or precision than we sent them).
    pub fn is_range(&self, start: Timestamp, end: Timestamp) -> bool {
        self.start_at == Some(start) && self.end_at == Some(end)
    }
}

/// A job and the `Date` of the answer that showed it.
#[derive(Debug, Clone)]
pub struct Dated<T> {
    pub value: T,
    /// Konnect's clock when it answered, if it said.
    pub date: Option<SystemTime>,
}

/// `GET /v3/audit-log-webhook/status`: how the latest delivery went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookStatus {
    /// `active` or `inactive`.
    pub webhook_status: Option<String>,
    pub webhook_enabled: Option<bool>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_response_code: Option<u16>,
    pub last_response_message: Option<String>,
}

impl WebhookStatus {
    /// Whether the latest delivery attempt failed: an enabled webhook shown
    /// `inactive` (Konnect's word for a failing endpoint, also when the
    /// attempt got no answer at all), or a non-2xx answer.
    pub fn last_attempt_failed(&self) -> bool {
        if self.last_attempt_at.is_none() {
            return false;
        }
        let inactive = self.webhook_enabled == Some(true)
            && self.webhook_status.as_deref() == Some("inactive");
        let refused = self
            .last_response_code
            .is_some_and(|code| !(200..300).contains(&code));
        inactive || refused
    }
}

#[derive(Deserialize, Default)]
struct JobBody {
    #[serde(default)]
    start_at: Option<String>,
    #[serde(default)]
    end_at: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize, Default)]
struct StatusBody {
    #[serde(default)]
    webhook_status: Option<String>,
    #[serde(default)]
    webhook_enabled: Option<bool>,
    #[serde(default)]
    last_attempt_at: Option<String>,
    #[serde(default)]
    last_response_code: Option<i64>,
    #[serde(default)]
    last_response_message: Option<String>,
}

/// An RFC 3339 time, `None` for Konnect's unset value (year 1) and for
/// anything unreadable.
fn instant(text: Option<&str>) -> Option<Timestamp> {
    let t = crate::time::parse_rfc3339(text?.trim()).ok()?;
    (t.as_second() > 0).then_some(t)
}

impl AuditLogs {
    /// GET {regional}/v3/audit-log-replay-job, or the portal's.
    pub async fn replay_job(&self, stream: &Stream) -> Result<Dated<ReplayJob>, KonnectError> {
        let url = self
            .client()
            .url(Host::Regional, &stream.replay_job_path(), &[]);
        let resp = self
            .client()
            .call(Method::GET, url, None, Retry::Transient, None)
            .await?;
        Ok(Dated {
            value: job_from(&resp.json()?),
            date: resp.date,
        })
    }

    /// PUT {regional}/v3/audit-log-replay-job `{start_at, end_at}` (or the
    /// portal's): asks Konnect to send the stream's range again to the
    /// stream's webhook. A job still running is a `409`
    /// error ([`KonnectError::status`]), for the caller to wait out.
    ///
    /// Transient failures are retried: a lost answer to a `PUT` that took
    /// effect then meets the `409` of its own job, which only delays the
    /// caller until that job ends.
    pub async fn request_replay(
        &self,
        stream: &Stream,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Dated<ReplayJob>, KonnectError> {
        let url = self
            .client()
            .url(Host::Regional, &stream.replay_job_path(), &[]);
        let body = json!({
            "start_at": format!("{start:.0}"),
            "end_at": format!("{end:.0}"),
        });
        let resp = self
            .client()
            .call(Method::PUT, url, Some(&body), Retry::Transient, None)
            .await?;
        Ok(Dated {
            value: job_from(&resp.json()?),
            date: resp.date,
        })
    }

    /// GET {regional}/v3/audit-log-webhook/status, or the portal's.
    pub async fn webhook_status(
        &self,
        stream: &Stream,
    ) -> Result<Dated<WebhookStatus>, KonnectError> {
        let url = self
            .client()
            .url(Host::Regional, &stream.status_path(), &[]);
        let resp = self
            .client()
            .call(Method::GET, url, None, Retry::Transient, None)
            .await?;
        let body: StatusBody = serde_json::from_value(resp.json()?).unwrap_or_default();
        Ok(Dated {
            value: WebhookStatus {
                webhook_status: body.webhook_status,
                webhook_enabled: body.webhook_enabled,
                last_attempt_at: instant(body.last_attempt_at.as_deref()),
                last_response_code: body.last_response_code.and_then(|c| u16::try_from(c).ok()),
                last_response_message: body.last_response_message,
            },
            date: resp.date,
        })
    }
}

/// The job in an answer; an unreadable body reads as an unconfigured job
/// with an `Other` status, so the caller keeps watching rather than fail.
fn job_from(value: &serde_json::Value) -> ReplayJob {
    let body: JobBody = serde_json::from_value(value.clone()).unwrap_or_default();
    ReplayJob {
        start_at: instant(body.start_at.as_deref()),
        end_at: instant(body.end_at.as_deref()),
        status: JobStatus::parse(body.status.as_deref().unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn jobs_read_konnects_unset_times_as_none() {
        let job = job_from(&json!({
            "start_at": "0001-01-01T00:00:00Z",
            "end_at": "0001-01-01T00:00:00Z",
            "status": "unconfigured",
            "updated_at": "0001-01-01T00:00:00Z",
        }));
        assert_eq!(job.start_at, None);
        assert_eq!(job.status, JobStatus::Unconfigured);
        let job = job_from(&json!({
            "start_at": "2026-08-23T14:00:00+02:00",
            "end_at": "2026-08-23T12:05:00.000Z",
            "status": "pending",
        }));
        assert!(job.is_range(t("2026-08-23T12:00:00Z"), t("2026-08-23T12:05:00Z")));
        assert!(!job.status.is_final());
        assert_eq!(
            job_from(&json!({"status": "paused"})).status.as_str(),
            "paused"
        );
        assert!(JobStatus::parse("failed").is_final());
    }

    #[test]
    fn a_failed_delivery_is_an_inactive_enabled_webhook_or_a_non_2xx_answer() {
        let at = Some(t("2026-08-23T12:00:00Z"));
        let ok = WebhookStatus {
            webhook_status: Some("active".into()),
            webhook_enabled: Some(true),
            last_attempt_at: at,
            last_response_code: Some(202),
            last_response_message: None,
        };
        assert!(!ok.last_attempt_failed());
        let refused = WebhookStatus {
            webhook_status: Some("inactive".into()),
            last_response_code: None,
            ..ok.clone()
        };
        assert!(refused.last_attempt_failed());
        let error = WebhookStatus {
            last_response_code: Some(500),
            ..ok.clone()
        };
        assert!(error.last_attempt_failed());
        let disabled = WebhookStatus {
            webhook_status: Some("inactive".into()),
            webhook_enabled: Some(false),
            ..ok.clone()
        };
        assert!(!disabled.last_attempt_failed());
        let never = WebhookStatus {
            last_attempt_at: None,
            last_response_code: Some(500),
            ..ok
        };
        assert!(!never.last_attempt_failed());
    }

    #[tokio::test]
    async fn a_portals_job_and_status_are_its_own() {
        use crate::konnect::testing::{FakeKonnect, Reply};
        let fake = FakeKonnect::start(|req| match req.method.as_str() {
            "PUT" => Reply::json(202, {
                let mut b = req.json();
                b["status"] = json!("accepted");
                b
            }),
            _ if req.path.ends_with("/status") => Reply::json(
                200,
                json!({"webhook_status": "inactive", "webhook_enabled": true,
                       "last_attempt_at": "2026-08-23T12:00:00Z", "last_response_code": 502}),
            ),
            _ => Reply::json(200, json!({"status": "running"})),
        });
        let audit = fake.audit();
        let p = Stream::Portal("3e551b39-227d-4297-b911-e68fd5d77c17".into());
        let job = audit
            .request_replay(&p, t("2026-08-23T12:00:00.5Z"), t("2026-08-23T12:05:00Z"))
            .await
            .unwrap();
        assert_eq!(job.value.status, JobStatus::Accepted);
        assert_eq!(
            audit.replay_job(&p).await.unwrap().value.status,
            JobStatus::Running
        );
        assert!(
            audit
                .webhook_status(&p)
                .await
                .unwrap()
                .value
                .last_attempt_failed()
        );
        let reqs = fake.requests();
        let base = "/v3/portals/3e551b39-227d-4297-b911-e68fd5d77c17";
        assert_eq!(reqs[0].method, "PUT");
        assert_eq!(reqs[0].path, format!("{base}/audit-log-replay-job"));
        assert_eq!(
            reqs[0].json(),
            json!({"start_at": "2026-08-23T12:00:00Z", "end_at": "2026-08-23T12:05:00Z"})
        );
        assert_eq!(reqs[1].path, format!("{base}/audit-log-replay-job"));
        assert_eq!(reqs[2].path, format!("{base}/audit-log-webhook/status"));
    }
}
