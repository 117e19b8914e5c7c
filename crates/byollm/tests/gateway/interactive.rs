//! Interactive members: the team's OIDC role brokered per member (flow 3), and the
//! member's own AWS credentials in headers (flow 4: no STS at all, nothing kept).

use serde_json::json;

use crate::harness::{Env, chat_body, messages_body};

#[tokio::test]
async fn member_uses_the_oidc_role_with_actor_user() {
    let env = Env::start().await;
    let r = env
        .infer(
            "/v1/chat/completions",
            &env.owner_key,
            chat_body("claude-sonnet-4-6", "hi there", true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1")
    );
    let events = r.events();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let content: String = events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(content.contains("hi there"), "{content:?}");
    assert_eq!(env.sts_calls(), 1);
    let audit = env
        .server
        .core
        .store
        .list_audit(&env.team, 10)
        .await
        .unwrap();
    assert_eq!(
        audit[0].sub,
        format!("scoped_principal:{}/user:{}", env.team, env.owner)
    );

    // Opt-in enforcement: with respect_user_setting and no opt-in, no Bedrock.
    env.put_settings(
        json!({"hosts": {"aws_bedrock": {"enabled": true, "enforcement": "respect_user_setting",
        "role_arn": env.role_arn, "region": "us-east-1"}}}),
    )
    .await;
    let r = env
        .infer(
            "/v1/messages",
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    let (s, _) = env
        .api(
            reqwest::Method::PUT,
            "/api/v1/me/settings",
            &env.owner_key,
            Some(json!({"aws_bedrock_opt_in": true})),
        )
        .await;
    assert_eq!(s, 200);
    let r = env
        .infer(
            "/v1/messages",
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "x", false),
        )
        .await;
    assert_eq!(
        r.header("x-byollm-route"),
        Some("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1")
    );
    env.stop().await;
}

#[tokio::test]
async fn caller_credentials_skip_sts_and_are_never_kept() {
    let env = Env::start().await;
    let (ak, sk) = env.sim.admin_credentials();
    let (ak, sk) = (ak.to_owned(), sk.to_owned());
    let r = env
        .infer_with(
            "/v1/messages",
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "with my own keys", false),
            &[
                ("x-byollm-aws-access-key-id", &ak),
                ("x-byollm-aws-secret-access-key", &sk),
                ("x-byollm-aws-region", "us-west-2"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-byollm-route"),
        Some("aws_bedrock:global.anthropic.claude-sonnet-4-6@us-west-2")
    );
    assert_eq!(
        env.sts_calls(),
        0,
        "no role assumption with caller credentials"
    );
    assert!(env.server.core.broker.is_empty());
    assert_eq!(env.sim.call_count("bedrock:InvokeModel"), 1);

    // Half a pair is a clear 400.
    let r = env
        .infer_with(
            "/v1/messages",
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "x", false),
            &[("x-byollm-aws-access-key-id", &ak)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // Nothing of them in the database.
    env.server.core.usage.flush().await;
    let data_dir = env.server.core.store.clone();
    drop(data_dir);
    let dir = env._dir_path();
    for entry in std::fs::read_dir(dir.join("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&sk),
            "secret key found in the data directory"
        );
    }
    env.stop().await;
}
