//! Browser-login tokens: access tokens from `Sim::issue_login` and the
//! refresh endpoint kongctl calls when one has expired.

use std::time::Duration;

use konnect_sim::SimConfig;
use reqwest::header::{AUTHORIZATION, COOKIE, SET_COOKIE};

use crate::common::{http_client, start_sim_with};

const WEBHOOK: &str = "/v2/audit-log-webhook";
const REFRESH: &str = "/kauth/api/v1/refresh";

#[tokio::test]
async fn login_tokens_work_until_they_expire_and_refresh_once() {
    let sim = start_sim_with(SimConfig::for_tests()).await;
    let http = http_client().build().unwrap();
    let base = sim.base_url();
    let get = |token: String| {
        let request = http
            .get(format!("{base}{WEBHOOK}"))
            .header(AUTHORIZATION, format!("Bearer {token}"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let refresh = |cookie: Option<String>| {
        let mut request = http.post(format!("{base}{REFRESH}"));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        async move { request.send().await.unwrap() }
    };

    let live = sim.issue_login(Duration::from_secs(60));
    assert_eq!(live.expires_in, 60);
    assert_eq!(get(live.access_token.clone()).await, 200);
    let expired = sim.issue_login(Duration::ZERO);
    assert_eq!(get(expired.access_token.clone()).await, 401);

    // The expired login's refresh token gets a new pair, as cookies.
    let reply = refresh(Some(format!(
        "other=1; konnectrefreshtoken={}",
        expired.refresh_token
    )))
    .await;
    assert_eq!(reply.status(), 200);
    let cookies: Vec<String> = reply
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let value = |name: &str| {
        cookies
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
            .to_string()
    };
    let access = value("konnectaccesstoken");
    let next_refresh = value("konnectrefreshtoken");
    assert!(
        cookies
            .iter()
            .any(|c| c.contains("Expires=") && c.contains("GMT"))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("konnectrefreshtoken=")
                && c.contains("Path=/kauth/api/v1/refresh"))
    );
    assert_ne!(access, expired.access_token);
    assert_eq!(get(access).await, 200);
    assert_eq!(sim.login_refreshes(), 1);

    // A refresh token works once; garbage and no cookie are refused.
    for cookie in [
        Some(format!("konnectrefreshtoken={}", expired.refresh_token)),
        Some("konnectrefreshtoken=krt_forged".to_string()),
        None,
    ] {
        let reply = refresh(cookie.clone()).await;
        assert_eq!(reply.status(), 401, "{cookie:?}");
        assert!(reply.headers().get(SET_COOKIE).is_none());
    }
    assert_eq!(
        refresh(Some(format!("konnectrefreshtoken={next_refresh}")))
            .await
            .status(),
        200
    );
    let wrong_method = http.get(format!("{base}{REFRESH}")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(sim.login_refreshes(), 2);
}
