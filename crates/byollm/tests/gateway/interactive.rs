//! Interactive members: the team's OIDC role brokered per member (flow 3), and the
//! member's own AWS credentials in headers (flow 4: no STS at all, nothing kept).

use byollm_api::routes;
use serde_json::json;

use crate::harness::{Env, chat_body, messages_body};

#[tokio::test]
async fn member_uses_the_oidc_role_with_actor_user() {
    let env = Env::start().await;
    let r = env
        .infer(
            routes::CHAT_COMPLETIONS,
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
        .store()
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
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
        .await;
    assert_eq!(
        r.header("x-byollm-route"),
        Some("direct_api:claude-sonnet-4-6")
    );
    let (s, _) = env
        .api(
            reqwest::Method::PUT,
            routes::ME_SETTINGS,
            &env.owner_key,
            Some(json!({"aws_bedrock_opt_in": true})),
        )
        .await;
    assert_eq!(s, 200);
    let r = env
        .owner_asks(routes::MESSAGES, "claude-sonnet-4-6", false)
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
            routes::MESSAGES,
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
    assert!(env.server.core.broker().is_empty());
    assert_eq!(env.sim.call_count("bedrock:InvokeModel"), 1);

    // Half a pair is a clear 400.
    let r = env
        .infer_with(
            routes::MESSAGES,
            &env.owner_key,
            messages_body("claude-sonnet-4-6", "x", false),
            &[("x-byollm-aws-access-key-id", &ak)],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // Nothing of them in the database.
    env.server.core.usage_sink().flush().await;
    for entry in std::fs::read_dir(env.dir.path().join("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&sk),
            "secret key found in the data directory"
        );
    }
    env.stop().await;
}

#[tokio::test]
async fn openai_models_go_to_the_openai_api_and_are_billed() {
    let env = Env::start().await;
    for stream in [false, true] {
        let r = env
            .infer(
                routes::CHAT_COMPLETIONS,
                &env.owner_key,
                chat_body("gpt-5", "direct to openai", stream),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-byollm-route"), Some("direct_api:gpt-5"));
        if stream {
            let events = r.events();
            assert_eq!(events.last().unwrap().1, "[DONE]");
            // The caller did not ask for usage: the chunk the gateway requested
            // for billing is not passed on.
            assert!(
                events
                    .iter()
                    .all(|(_, d)| d == "[DONE]" || !d.contains("\"choices\":[]")),
                "{}",
                r.text
            );
        } else {
            assert!(
                r.json()["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .contains("direct to openai")
            );
        }
    }
    let usage = env.usage("").await;
    let reqs = usage["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter()
            .all(|r| r["credits"].as_f64().unwrap() > 0.0
                && r["output_tokens"].as_i64().unwrap() > 0),
        "{usage}"
    );
    assert_eq!(env.sts_calls(), 0, "no AWS for OpenAI models");
    // /v1/messages is for Claude only.
    let r = env.owner_asks(routes::MESSAGES, "gpt-5", false).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("chat/completions"));
    env.stop().await;
}

#[tokio::test]
async fn models_lists_what_the_principal_may_use_with_its_first_route() {
    let env = Env::start().await;
    let (s, v) = env
        .api(reqwest::Method::GET, routes::MODELS, &env.owner_key, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let data = v["data"].as_array().unwrap();
    let sonnet = data
        .iter()
        .find(|m| m["id"] == "claude-sonnet-4-6")
        .unwrap();
    assert_eq!(
        sonnet["routes"][0],
        "aws_bedrock:global.anthropic.claude-sonnet-4-6@us-east-1"
    );
    assert_eq!(sonnet["routes"][1], "direct_api:claude-sonnet-4-6");
    let gpt = data.iter().find(|m| m["id"] == "gpt-5").unwrap();
    assert_eq!(gpt["routes"], json!(["direct_api:gpt-5"]));
    env.put_settings(json!({"hosts": {"aws_bedrock": {"enabled": true, "role_arn": env.role_arn, "region": "us-east-1"},
        "direct_api": {"enabled": false}}}))
    .await;
    let (_, v) = env
        .api(reqwest::Method::GET, routes::MODELS, &env.owner_key, None)
        .await;
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"claude-sonnet-4-6") && !ids.contains(&"gpt-5"),
        "{ids:?}"
    );
    env.stop().await;
}
