//! One credential per request (issue 11, item 6): `Authorization` and
//! `x-api-key` together, or either twice, is a 400 that says to send one — in
//! the caller's error format on `/v1/*`, the API's on `/api/v1/*` — never a
//! silent pick of one of them.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

use byollm_api::routes;

use crate::common::Harness;

async fn send(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = if method == "POST" {
        req = req.header("content-type", "application/json");
        Body::from("{}")
    } else {
        Body::empty()
    };
    let resp = h
        .router
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let raw = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&raw).unwrap_or(Value::Null))
}

#[tokio::test]
async fn two_credentials_are_refused_in_the_callers_format() {
    let h = Harness::new().await;
    let a = h.team("alpha").await;
    let b = h.team("beta").await;
    let bearer_a = format!("Bearer {}", a.member.key);
    let bearer_b = format!("Bearer {}", b.member.key);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("authorization", &bearer_a), ("x-api-key", &b.member.key)],
        vec![("x-api-key", &a.member.key), ("x-api-key", &b.member.key)],
        vec![("authorization", &bearer_a), ("authorization", &bearer_b)],
        // The same key twice is still two credentials.
        vec![("x-api-key", &a.member.key), ("x-api-key", &a.member.key)],
    ];
    for headers in &cases {
        let (status, body) = send(&h, "GET", routes::ME, headers).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("send one credential"), "{message}");

        // Anthropic's format on the Messages API.
        let (status, body) = send(&h, "POST", routes::MESSAGES, headers).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("send one credential")
        );

        // OpenAI's on Chat Completions.
        let (status, body) = send(&h, "POST", routes::CHAT_COMPLETIONS, headers).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
    // One credential in either header still works.
    for headers in [
        vec![("authorization", bearer_a.as_str())],
        vec![("x-api-key", a.member.key.as_str())],
    ] {
        let (status, body) = send(&h, "GET", routes::ME, &headers).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["actor"]["uid"], a.member.uid.as_str());
    }
}
