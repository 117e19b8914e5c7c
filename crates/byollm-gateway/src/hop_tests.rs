//! The gateway's own client against small servers on loopback: connections
//! are reused, an idle connection the server closed is replaced without
//! losing the request, a body left unread closes its connection, and https
//! verifies the server's certificate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

use super::{HopError, Origin};

/// Where the test servers' tasks run (the workspace spawns on trackers).
static TASKS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// How the test server treats a connection after each answer.
#[derive(Clone, Copy)]
enum After {
    /// Keeps it open for the next request.
    KeepAlive,
    /// Closes it, without saying so in the answer, once the test says
    /// ([`Counts::close_now`]): the client has it idle in its pool by then.
    Close,
}

/// Reads one request (head and `content-length` body); `None` at EOF.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    buf.extend_from_slice(&body);
    Some(buf)
}

/// Answers every request on `s` with its own body echoed after `answer:`.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, after: After, counts: Arc<Counts>) {
    let requests = &counts.requests;
    while let Some(req) = read_request(&mut s).await {
        requests.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8_lossy(&req).into_owned();
        let host = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("host: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let mut body = format!(
            "answer:{}|host:{host}",
            text.split("\r\n\r\n").nth(1).unwrap_or("")
        );
        if let Some(key) = text.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-api-key: ")
                .map(str::to_owned)
        }) {
            body.push_str(&format!("|key:{key}"));
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        if let After::Close = after {
            counts.close_now.notified().await;
            let _ = s.shutdown().await;
            drop(s);
            counts.closed.notify_one();
            return;
        }
    }
}

/// What a test server saw.
#[derive(Default)]
struct Counts {
    conns: AtomicUsize,
    requests: AtomicUsize,
    /// Tells the server to close the connection it has answered ([`After::Close`]).
    close_now: tokio::sync::Notify,
    /// Notified each time the server has closed a connection.
    closed: tokio::sync::Notify,
}

/// A server on loopback, over TLS when given an acceptor; returns its URL
/// (`https://localhost:…` with TLS, else `http://127.0.0.1:…`) and what it saw.
async fn serve(after: After, tls: Option<tokio_rustls::TlsAcceptor>) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = match tls {
        Some(_) => format!("https://localhost:{port}"),
        None => format!("http://127.0.0.1:{port}"),
    };
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    TASKS.spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c.conns.fetch_add(1, Ordering::SeqCst);
            let (c, tls) = (c.clone(), tls.clone());
            TASKS.spawn(async move {
                match tls {
                    None => answer(s, after, c).await,
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(s).await {
                            answer(s, after, c).await;
                        }
                    }
                }
            });
        }
    });
    (url, counts)
}

/// A plain server.
async fn server(after: After) -> (String, Arc<Counts>) {
    serve(after, None).await
}

fn origin(url: &str) -> Arc<Origin> {
    let url = reqwest::Url::parse(url).unwrap();
    Arc::new(
        Origin::new(
            &url,
            || unreachable!("no TLS for http"),
            Duration::from_secs(2),
        )
        .unwrap(),
    )
}

fn post(body: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn text(resp: http::Response<super::HopBody>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn one_connection_serves_requests_one_after_another() {
    let (url, counts) = server(After::KeepAlive).await;
    let o = origin(&url);
    for i in 0..5 {
        let resp = o.send(post(&format!("n{i}"))).await.unwrap();
        assert_eq!(resp.status(), 200);
        let host = url.trim_start_matches("http://");
        assert_eq!(text(resp).await, format!("answer:n{i}|host:{host}"));
        assert_eq!(o.idle_count(), 1, "the connection went back to the pool");
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 5);
    assert_eq!(
        counts.conns.load(Ordering::SeqCst),
        1,
        "every request reused the one connection"
    );
}

#[tokio::test]
async fn concurrent_requests_open_connections_and_all_return_to_the_pool() {
    let (url, counts) = server(After::KeepAlive).await;
    let o = origin(&url);
    let calls = (0..8).map(|i| {
        let o = o.clone();
        async move { text(o.send(post(&format!("c{i}"))).await.unwrap()).await }
    });
    let answers = futures::future::join_all(calls).await;
    for (i, a) in answers.iter().enumerate() {
        assert!(a.starts_with(&format!("answer:c{i}|")), "{a}");
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 8);
    let opened = counts.conns.load(Ordering::SeqCst);
    assert_eq!(o.idle_count(), opened, "each connection is idle again");
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced_and_the_request_still_goes() {
    let (url, counts) = server(After::Close).await;
    let o = origin(&url);
    for i in 0..3 {
        let resp = o.send(post(&format!("r{i}"))).await.unwrap();
        assert!(text(resp).await.starts_with(&format!("answer:r{i}|")));
        assert_eq!(o.idle_count(), 1, "the connection is idle in the pool");
        // The server closes it (its FIN is on loopback) before the next
        // request takes it from the pool.
        counts.close_now.notify_one();
        tokio::time::timeout(Duration::from_secs(5), counts.closed.notified())
            .await
            .expect("the server closes each connection after its answer");
    }
    assert_eq!(
        counts.requests.load(Ordering::SeqCst),
        3,
        "each request was answered once"
    );
    assert_eq!(
        counts.conns.load(Ordering::SeqCst),
        3,
        "a new connection for each"
    );
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    // An answer whose body never ends: the connection must not be reused.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(tokio::sync::Notify::new());
    let c = closed.clone();
    TASKS.spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_request(&mut s).await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart")
            .await
            .unwrap();
        let mut rest = [0u8; 16];
        // EOF once the client closes the connection.
        while s.read(&mut rest).await.unwrap_or(0) > 0 {}
        c.notify_one();
    });
    let o = origin(&format!("http://{addr}"));
    let mut body = o.send(post("x")).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"part");
    drop(body);
    assert_eq!(o.idle_count(), 0);
    tokio::time::timeout(Duration::from_secs(5), closed.notified())
        .await
        .expect("the connection was closed when its body was dropped");
}

#[tokio::test]
async fn a_refused_connection_is_an_error_naming_the_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = origin(&format!("http://{addr}"))
        .send(post("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, HopError::Connect(_)), "{err:?}");
    assert!(err.to_string().starts_with("connect: "), "{err}");
}

#[test]
fn only_http_and_https_urls_make_an_origin() {
    let url = reqwest::Url::parse("ftp://example.com/x").unwrap();
    let err = Origin::new(&url, || unreachable!(), Duration::from_secs(1)).unwrap_err();
    assert!(err.contains("`ftp`"), "{err}");
}

/// A self-signed certificate for `localhost`, and a server config with it.
fn tls_server() -> (
    rustls::pki_types::CertificateDer<'static>,
    Arc<rustls::ServerConfig>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    (cert, Arc::new(cfg))
}

#[tokio::test]
async fn https_speaks_tls_to_a_trusted_certificate_and_refuses_an_untrusted_one() {
    let (cert, cfg) = tls_server();
    let (base, counts) = serve(After::KeepAlive, Some(tokio_rustls::TlsAcceptor::from(cfg))).await;
    let url = reqwest::Url::parse(&format!("{base}/v1/messages")).unwrap();
    let port = url.port().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let trusted =
        Arc::new(Origin::new(&url, || super::with_roots(roots), Duration::from_secs(2)).unwrap());
    for i in 0..2 {
        let resp = trusted.send(post(&format!("t{i}"))).await.unwrap();
        assert_eq!(
            text(resp).await,
            format!("answer:t{i}|host:localhost:{port}")
        );
    }
    assert_eq!(trusted.idle_count(), 1);

    let untrusted = Arc::new(
        Origin::new(
            &url,
            || super::with_roots(rustls::RootCertStore::empty()),
            Duration::from_secs(2),
        )
        .unwrap(),
    );
    let err = untrusted.send(post("u")).await.unwrap_err();
    assert!(
        err.to_string().contains("certificate"),
        "an unknown issuer is refused: {err}"
    );
    assert_eq!(
        counts.requests.load(Ordering::SeqCst),
        2,
        "nothing reached the server untrusted"
    );
}

#[tokio::test]
async fn the_direct_api_goes_over_either_transport_with_the_key_and_the_body() {
    use byollm_api::catalog::Family;

    use crate::direct::{Direct, DirectEndpoint};
    use crate::error::ApiFormat;

    let (url, counts) = server(After::KeepAlive).await;
    // `proxied` is reqwest, as when the environment names a proxy (none is
    // named here, so it goes straight to the server).
    for proxied in [false, true] {
        let endpoint = DirectEndpoint {
            base_url: format!("{url}/"),
            key: "sk-test".to_owned().into(),
        };
        let direct = Direct::build(
            Some(endpoint),
            None,
            Duration::from_secs(2),
            proxied,
            &mut || unreachable!("no TLS for http"),
        )
        .unwrap();
        for _ in 0..2 {
            let resp = direct
                .send(
                    Family::Anthropic,
                    ApiFormat::Anthropic,
                    b"{}".to_vec(),
                    None,
                    None,
                )
                .await
                .unwrap();
            let host = url.trim_start_matches("http://");
            assert_eq!(
                resp.text().await.unwrap(),
                format!("answer:{{}}|host:{host}|key:sk-test"),
                "proxied: {proxied}"
            );
        }
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 4);
    assert_eq!(
        counts.conns.load(Ordering::SeqCst),
        2,
        "each transport reused its connection"
    );
}
