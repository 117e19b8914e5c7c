//! The client against a loopback server: paths, bodies and error mapping.

use super::*;

#[test]
fn debug_never_shows_the_key_and_urls_are_checked() {
    let c = Client::new(
        "http://127.0.0.1:8080/",
        Some(SecretString::from("byollm_key_secret".to_owned())),
    )
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("byollm_key_secret"), "{debug}");
    assert_eq!(c.base_url(), "http://127.0.0.1:8080");
    let worker = c.with_key(SecretString::from("byollm_run_secret".to_owned()));
    assert!(!format!("{worker:?}").contains("byollm_run_secret"));
    assert!(matches!(
        Client::new("127.0.0.1:8080", None),
        Err(ClientError::Config(_))
    ));
}

#[test]
fn api_errors_show_message_code_and_hint() {
    let e = ClientError::Api {
        status: 403,
        body: ErrorBody {
            error: ErrorDetail {
                code: "forbidden".into(),
                message: "worker identity tokens are disabled for this team".into(),
                field: None,
                hint: Some("an admin can enable them".into()),
            },
        },
    };
    assert_eq!(
        e.to_string(),
        "403: worker identity tokens are disabled for this team (forbidden); hint: an admin can enable them"
    );
    assert_eq!(e.status(), Some(403));
    assert_eq!(e.code(), Some("forbidden"));
}

/// One HTTP/1.1 exchange on a loopback socket: returns the request head and
/// body the client sent, after answering `answer`.
async fn answer_once(listener: tokio::net::TcpListener, answer: &'static str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                break;
            }
        }
    }
    sock.write_all(answer.as_bytes()).await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn gateway_post_sends_the_credential_and_headers_and_returns_any_status() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let c = Client::new(&base, Some(SecretString::from("byollm_key_k".to_owned()))).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    let body = serde_json::json!({"stream": true});
    let (request, resp) = tokio::join!(
        answer_once(
            listener,
            "HTTP/1.1 429 Too Many Requests\r\nx-byollm-route: bedrock\r\n\
             content-type: application/json\r\ncontent-length: 16\r\nconnection: close\r\n\r\n\
             {\"error\":\"slow\"}",
        ),
        c.gateway_post(routes::MESSAGES, &body, headers),
    );
    let resp = resp.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["x-byollm-route"], "bedrock");
    assert_eq!(resp.text().await.unwrap(), r#"{"error":"slow"}"#);
    let request = request.to_ascii_lowercase();
    assert!(
        request.starts_with("post /v1/messages http/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("authorization: bearer byollm_key_k\r\n"),
        "{request}"
    );
    assert!(
        request.contains("anthropic-version: 2023-06-01\r\n"),
        "{request}"
    );
    assert!(request.ends_with(r#"{"stream":true}"#), "{request}");
}

#[tokio::test]
async fn gateway_post_reports_an_unreachable_server_as_transport() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let c = Client::new(&base, None).unwrap();
    let e = c
        .gateway_post(
            routes::CHAT_COMPLETIONS,
            &serde_json::json!({}),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Transport { url, .. } if *url == format!("{base}/v1/chat/completions")),
        "{e:?}"
    );
}
