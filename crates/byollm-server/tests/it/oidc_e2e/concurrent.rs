//! Concurrent mints over the socket.

use std::collections::BTreeSet;

use serde_json::Value;

use byollm_api::routes;
use byollm_core::identity::keys::Algorithm;

use super::{fetch_published, verify};
use crate::common::{Live, STS, mint_body};

/// Concurrent mints over the socket: each succeeds with its own jti, each is
/// audited, and all verify against one JWKS fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mints_are_distinct_and_audited() {
    let live = Live::start(Algorithm::Es256).await;
    let core = live.server.core.clone();
    let team = live.bootstrap_acme().await;
    let key = team.api_key.expose().to_owned();
    // Forty requests in flight at once, on two worker threads.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let req = live
            .http
            .post(live.url(routes::IDENTITY_TOKEN))
            .bearer_auth(&key)
            .json(&mint_body(STS, 300));
        set.spawn(async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        });
    }
    let results = set.join_all().await;
    let published = fetch_published(&live).await;
    let mut jtis = BTreeSet::new();
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        let (_, claims) = verify(
            body["token"].as_str().unwrap(),
            &published,
            jsonwebtoken::Algorithm::ES256,
            STS,
        );
        jtis.insert(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_eq!(jtis.len(), 40);
    let audited: BTreeSet<String> = core
        .store()
        .list_audit(&team.team_uid, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.jti)
        .collect();
    assert_eq!(audited, jtis);
    live.server.shutdown().await;
}
