//! The web console (issue 16): plain HTTP tests of its session, CSRF, Origin
//! and headers (`http`), and a real headless Chromium driven over WebDriver
//! (`browser`).

mod accessibility;
mod browser;
mod check;
mod http;
mod links;
mod lists;
mod model_choices;
mod over_time;
mod pages;
mod setup_flow;
mod webdriver;

use std::sync::Arc;

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;

use byollm_api::clock::Clock;
use byollm_core::identity::keys::Algorithm;
use byollm_server::{App, AppState, Server};

use crate::common::{Harness, TeamFx, config};

/// A live server whose issuer is where it listens (`http://127.0.0.1:PORT`,
/// or `https://…` when asked: then the cookie must be `Secure`), with team
/// "alpha" set up through the in-process router on the same domain.
pub struct Console {
    pub h: Harness,
    /// Kept so it serves as long as the fixture lives.
    pub _server: Server,
    pub base: String,
    pub alpha: TeamFx,
    /// A client that does not follow redirects (tests read them).
    pub http: reqwest::Client,
}

impl Console {
    pub async fn start(clock: Arc<dyn Clock>, https: bool) -> Console {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = if https {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        };
        Console::start_on(listener, clock, &issuer, None).await
    }

    /// A console on `listener` with this issuer URL and AWS endpoint override
    /// (the emulator, for Check setup).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        clock: Arc<dyn Clock>,
        issuer: &str,
        aws_endpoint_url: Option<String>,
    ) -> Console {
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), Algorithm::Es256);
        cfg.core.issuer_url = issuer.to_owned();
        cfg.upstreams.aws_endpoint_url = aws_endpoint_url;
        let core = byollm_server::app::build_core(&cfg, clock).await.unwrap();
        let gateway = Arc::new(
            byollm_gateway::Gateway::new(
                core.clone(),
                byollm_server::app::gateway_config(&cfg).unwrap(),
            )
            .unwrap(),
        );
        let router = byollm_server::router(AppState(Arc::new(App {
            core: core.clone(),
            gateway,
        })));
        let h = Harness {
            _dir: dir,
            core: core.clone(),
            router,
        };
        let alpha = h.team("alpha").await;
        let server = byollm_server::app::serve_on(
            listener,
            core,
            byollm_server::app::gateway_config(&cfg).unwrap(),
        )
        .await
        .unwrap();
        Console {
            h,
            _server: server,
            base,
            alpha,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs in with `key`; the sign-in response.
    pub async fn sign_in_raw(&self, key: &str, origin: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/console/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("api_key={key}"));
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        req.send().await.unwrap()
    }

    /// Signs in with `key`; the session cookie's value.
    pub async fn sign_in(&self, key: &str) -> String {
        let resp = self.sign_in_raw(key, Some(&self.base)).await;
        assert_eq!(resp.status().as_u16(), 303, "sign-in");
        assert_eq!(resp.headers()[LOCATION], "/console");
        session_cookie(&resp).expect("a session cookie")
    }

    /// GETs a console page with a session cookie (or none).
    pub async fn get(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut req = self.http.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header(COOKIE, format!("byollm_console={c}"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, resp.text().await.unwrap(), headers)
    }

    /// POSTs a form with a session cookie, an `Origin` and a body.
    pub async fn post(
        &self,
        path: &str,
        cookie: &str,
        origin: Option<&str>,
        form: &str,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        self.post_with(path, cookie, origin, &[], form).await
    }

    /// [`Console::post`] with extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        cookie: &str,
        origin: Option<&str>,
        extra: &[(&str, &str)],
        form: &str,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .post(self.url(path))
            .header(COOKIE, format!("byollm_console={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, resp.text().await.unwrap(), headers)
    }

    /// The CSRF token a page's forms carry.
    pub async fn csrf(&self, cookie: &str) -> String {
        let (status, page, _) = self.get("/console/keys", Some(cookie)).await;
        assert_eq!(status, 200, "{page}");
        csrf_of(&page)
    }
}

/// The `byollm_console` cookie a response sets.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("byollm_console="))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .filter(|v| !v.is_empty())
}

/// The value of the first hidden `csrf` input of a page.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF input in {page}"));
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}
