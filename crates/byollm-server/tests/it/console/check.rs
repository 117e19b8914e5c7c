//! **Check setup** over plain HTTP against the emulator: the server runs the
//! doctor's AWS walk itself (over loopback, with the emulator as AWS) and the
//! page shows each step, the refused one with its evidence and the fix; after
//! the fix it is healthy. Admins only; the temporary key it uses is gone
//! afterwards.

use std::sync::Arc;

use byollm_api::clock::SystemClock;
use byollm_api::types::STS_AUDIENCE;
use byollm_cloudsim::{Cloudsim, CloudsimConfig};
use byollm_policy::generate::{
    AccountId, DEFAULT_POLICY_NAME, Grant, Issuer, PermissionsOptions, Region, TrustOptions,
    TrustScope, permissions_policy, trust_policy,
};
use serde_json::json;

use super::{Console, csrf_of};

/// The issuer host the emulator resolves to the server's loopback address.
const ISSUER_HOST: &str = "issuer.byollm.test";
pub const ISSUER: &str = "https://issuer.byollm.test";

/// A console whose issuer is https (as AWS requires) with the emulator as AWS.
pub struct Cloud {
    pub c: Console,
    pub sim: Cloudsim,
}

impl Cloud {
    pub async fn start() -> Cloud {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sim = Cloudsim::start(CloudsimConfig {
            resolve: vec![(ISSUER_HOST.to_owned(), addr)],
            ..CloudsimConfig::default()
        })
        .await
        .unwrap();
        sim.create_oidc_provider(ISSUER, &[STS_AUDIENCE]).unwrap();
        let c = Console::start_on(
            listener,
            Arc::new(SystemClock),
            ISSUER,
            Some(sim.endpoint_url()),
        )
        .await;
        Cloud { c, sim }
    }

    /// The ARN a role named `name` has in the emulator's account.
    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/{name}", self.sim.account_id())
    }

    /// The generated trust policy admitting `scope` of `team`.
    pub fn trust(&self, team: &str, scope: TrustScope) -> String {
        let mut opts = TrustOptions::new(
            Issuer::parse(ISSUER).unwrap(),
            team,
            AccountId::parse(self.sim.account_id()).unwrap(),
        )
        .unwrap();
        opts.scope = scope;
        trust_policy(&opts).unwrap().to_json_pretty()
    }

    /// What "the admin ran the setup script in AWS" does: the role with this
    /// trust policy and the broad permissions policy.
    pub fn create_role(&self, name: &str, trust: &str) {
        self.sim.create_role(name, trust, None).unwrap();
        let doc = permissions_policy(&PermissionsOptions {
            account: AccountId::parse(self.sim.account_id()).unwrap(),
            region: Region::parse("us-east-1").unwrap(),
            grant: Grant::Broad,
        })
        .unwrap()
        .to_json_pretty();
        self.sim
            .put_role_policy(name, DEFAULT_POLICY_NAME, &doc)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_setup_shows_the_refused_step_and_the_fix_then_healthy() {
    let cloud = Cloud::start().await;
    let c = &cloud.c;
    let team_role = cloud.role_arn("byollm-team");
    c.h.put_settings(
        &c.alpha.admin.key,
        &json!({"hosts": {"aws_bedrock": {"enabled": true, "enforcement": "enforce",
            "role_arn": team_role, "region": "us-east-1"}}}),
    )
    .await
    .expect(200);
    let owner = c.sign_in(&c.alpha.owner.key).await;
    let (status, page, _) = c.get("/console/aws-setup", Some(&owner)).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"action="/console/aws-setup/check""#),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let check = |path: String| {
        let csrf = csrf.clone();
        let owner = owner.clone();
        async move {
            c.post(&path, &owner, Some(&c.base), &format!("csrf={csrf}"))
                .await
        }
    };

    // The role trusts another team: STS refuses, the page says where and how to fix it.
    cloud.create_role("byollm-team", &cloud.trust("someoneelse", TrustScope::Team));
    let (status, page, _) = check("/console/aws-setup/check".to_owned()).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Refused at the <strong>sts</strong> step"),
        "{page}"
    );
    assert!(page.contains("<strong>Fix:</strong>"), "{page}");
    assert!(
        page.contains(r#"<tr class="step-ok"><th scope="row">token</th>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<tr class="step-skipped"><th scope="row">bedrock</th>"#),
        "{page}"
    );

    // The admin fixes the trust policy in AWS: healthy.
    cloud
        .sim
        .update_assume_role_policy("byollm-team", &cloud.trust(&c.alpha.uid, TrustScope::Team))
        .unwrap();
    let (status, page, _) = check("/console/aws-setup/check".to_owned()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Healthy: every step worked"), "{page}");

    // An agent with its own role, missing in AWS: refused; created: healthy.
    let agent = &c.alpha.agent_uid;
    let own = cloud.role_arn("byollm-agent");
    c.h.json(
        axum::http::Method::PATCH,
        &byollm_api::routes::fill(byollm_api::routes::AGENT_IDENTITY, agent),
        Some(&c.alpha.admin.key),
        &json!({"inference_providers": {"aws": {"role_arn": own}}}),
    )
    .await
    .expect(200);
    let (_, page, _) = c
        .get(&format!("/console/agents/{agent}"), Some(&owner))
        .await;
    assert!(
        page.contains(&format!(r#"action="/console/agents/{agent}/check""#)),
        "{page}"
    );
    let (status, page, _) = check(format!("/console/agents/{agent}/check")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Refused at the <strong>sts</strong> step"),
        "{page}"
    );
    assert!(page.contains(&own), "{page}");
    let named = TrustScope::Named(vec![(byollm_policy::generate::Actor::Agent, agent.clone())]);
    cloud.create_role("byollm-agent", &cloud.trust(&c.alpha.uid, named));
    let (status, page, _) = check(format!("/console/agents/{agent}/check")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Healthy: every step worked"), "{page}");

    // No temporary key is left behind; a member is refused the check.
    let keys =
        c.h.get(byollm_api::routes::API_KEYS, Some(&c.alpha.owner.key))
            .await
            .expect(200);
    assert!(
        !keys.body.to_string().contains("Check setup"),
        "{}",
        keys.body
    );
    let member = c.sign_in(&c.alpha.member.key).await;
    let csrf = c.csrf(&member).await;
    let (status, _, _) = c
        .post(
            "/console/aws-setup/check",
            &member,
            Some(&c.base),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 403);
}
