//! A typed client for the HTTP API (DESIGN §6), one method per route, built on the
//! wire types of [`crate::types`] and the paths of [`crate::routes`].
//!
//! The credential (a member or agent API key, or a run's workload token) is held
//! as a secret: it is sent as `Authorization: Bearer …` with the header marked
//! sensitive, and neither the client's `Debug` nor its errors ever contain it.
//! A non-2xx answer becomes [`ClientError::Api`] carrying the server's
//! [`ErrorBody`] (code, message, field, hint), so callers can show the hint.

use std::fmt;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes;
use crate::types::{
    Agent, AgentCreate, AgentList, ApiKeyCreate, ApiKeyCreated, ApiKeyList, AuditPage, AuditQuery,
    Health, IdentityTokenRequest, IdentityTokenResponse, InvitationIssued, InvitationRedeem,
    InvitationRedeemed, LlmSettings, Me, Member, MemberCreate, MemberCreated, MemberList,
    MemberPatch, MemberSettings, PageQuery, RunCreate, RunCreated, RunFinish, RunInfo, UsageQuery,
    UsageReport,
};
use crate::types::{AgentListQuery, RunList, RunListQuery};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach {url}: {detail}")]
    Transport {
        /// The URL called.
        url: String,
        /// The transport error and its causes, innermost last.
        detail: String,
    },
    /// The server answered with an error body.
    #[error("{status}: {} ({}){}", .body.error.message, .body.error.code, hint_suffix(&.body.error))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's error body.
        body: ErrorBody,
    },
    /// The server answered something that is not the expected body.
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    Unexpected {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
    /// The base URL or credential cannot be used.
    #[error("{0}")]
    Config(String),
}

/// A transport error with its whole chain of causes (reqwest's own message only
/// says "error sending request"; the reason is in its sources).
fn transport(url: &str, e: &reqwest::Error) -> ClientError {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    ClientError::Transport {
        url: url.to_owned(),
        detail: parts.join(": "),
    }
}

fn hint_suffix(e: &ErrorDetail) -> String {
    e.hint
        .as_deref()
        .map(|h| format!("; hint: {h}"))
        .unwrap_or_default()
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The server's error code (`forbidden`, `not_found`, …), when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.error.code),
            _ => None,
        }
    }
}

/// A client for one server and one credential.
#[derive(Clone)]
pub struct Client {
    base: String,
    key: Option<SecretString>,
    http: reqwest::Client,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("key", &self.key.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`)
    /// authenticating with `key` (an API key or a run workload token).
    pub fn new(base_url: &str, key: Option<SecretString>) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "server URL `{base_url}` must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client { base, key, http })
    }

    /// The same server with another credential (e.g. a run's workload token).
    pub fn with_key(&self, key: SecretString) -> Self {
        Client {
            base: self.base.clone(),
            key: Some(key),
            http: self.http.clone(),
        }
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the credential attached (marked sensitive).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, self.url(path));
        if let Some(key) = &self.key
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
        {
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
        req
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        let text = self.send_text(req, path).await?;
        serde_json::from_str(&text.1).map_err(|e| ClientError::Unexpected {
            url: self.url(path),
            status: text.0,
            detail: format!("not the expected JSON: {e}"),
        })
    }

    async fn send_text(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<(u16, String), ClientError> {
        let url = self.url(path);
        let resp = req.send().await.map_err(|e| transport(&url, &e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(&url, &e))?;
        if status.is_success() {
            return Ok((status.as_u16(), text));
        }
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                body,
            },
            Err(_) => ClientError::Unexpected {
                url,
                status: status.as_u16(),
                detail: text.chars().take(300).collect(),
            },
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path), path).await
    }

    async fn with_body<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(method, path).json(body), path).await
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let (status, _) = self
            .send_text(self.request(Method::DELETE, path), path)
            .await?;
        if status == StatusCode::NO_CONTENT.as_u16() || status == StatusCode::OK.as_u16() {
            Ok(())
        } else {
            Err(ClientError::Unexpected {
                url: self.url(path),
                status,
                detail: "expected 204 No Content".to_owned(),
            })
        }
    }

    // ------------------------------------------------------------ public routes

    /// `GET /.well-known/openid-configuration`.
    pub async fn discovery(&self) -> Result<serde_json::Value, ClientError> {
        self.get(routes::DISCOVERY).await
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<serde_json::Value, ClientError> {
        self.get(routes::JWKS).await
    }

    /// `GET /readyz`.
    pub async fn ready(&self) -> Result<Health, ClientError> {
        self.get(routes::READYZ).await
    }

    // ------------------------------------------------------------ me

    /// `GET /api/v1/me`.
    pub async fn me(&self) -> Result<Me, ClientError> {
        self.get(routes::ME).await
    }

    /// `GET /api/v1/me/settings`.
    pub async fn my_settings(&self) -> Result<MemberSettings, ClientError> {
        self.get(routes::ME_SETTINGS).await
    }

    /// `PUT /api/v1/me/settings`.
    pub async fn put_my_settings(
        &self,
        settings: &MemberSettings,
    ) -> Result<MemberSettings, ClientError> {
        self.with_body(Method::PUT, routes::ME_SETTINGS, settings)
            .await
    }

    // ------------------------------------------------------------ settings

    /// `GET /api/v1/team/llm-settings`.
    pub async fn llm_settings(&self) -> Result<LlmSettings, ClientError> {
        self.get(routes::TEAM_LLM_SETTINGS).await
    }

    /// `PUT /api/v1/team/llm-settings` (replaces the document).
    pub async fn put_llm_settings(
        &self,
        settings: &LlmSettings,
    ) -> Result<LlmSettings, ClientError> {
        self.with_body(Method::PUT, routes::TEAM_LLM_SETTINGS, settings)
            .await
    }

    /// `PUT /api/v1/team/llm-settings` of a document as read (a file): the
    /// server, not a client-side default, says which field is missing.
    pub async fn put_llm_settings_document(
        &self,
        doc: &serde_json::Value,
    ) -> Result<LlmSettings, ClientError> {
        self.with_body(Method::PUT, routes::TEAM_LLM_SETTINGS, doc)
            .await
    }

    /// `PATCH /api/v1/team/llm-settings` with a JSON Merge Patch (RFC 7396):
    /// an omitted field is unchanged, `null` clears it.
    pub async fn patch_llm_settings(
        &self,
        patch: &serde_json::Value,
    ) -> Result<LlmSettings, ClientError> {
        self.with_body(Method::PATCH, routes::TEAM_LLM_SETTINGS, patch)
            .await
    }

    // ------------------------------------------------------------ members

    /// `GET /api/v1/team/members`.
    pub async fn members(&self) -> Result<MemberList, ClientError> {
        self.get(routes::TEAM_MEMBERS).await
    }

    /// `POST /api/v1/team/members`.
    pub async fn create_member(&self, member: &MemberCreate) -> Result<MemberCreated, ClientError> {
        self.with_body(Method::POST, routes::TEAM_MEMBERS, member)
            .await
    }

    /// `DELETE /api/v1/team/members/{uid}`.
    pub async fn delete_member(&self, uid: &str) -> Result<(), ClientError> {
        self.delete(&routes::fill(routes::TEAM_MEMBER, uid)).await
    }

    /// `GET /api/v1/team/members`, one page.
    pub async fn members_page(&self, page: &PageQuery) -> Result<MemberList, ClientError> {
        self.get_page(routes::TEAM_MEMBERS, page).await
    }

    /// `PATCH /api/v1/team/members/{uid}`: a new role.
    pub async fn patch_member(
        &self,
        uid: &str,
        patch: &MemberPatch,
    ) -> Result<Member, ClientError> {
        self.with_body(
            Method::PATCH,
            &routes::fill(routes::TEAM_MEMBER, uid),
            patch,
        )
        .await
    }

    /// `POST /api/v1/team/members/{uid}/invitation`: a new code (the old one dies).
    pub async fn reissue_invitation(&self, uid: &str) -> Result<InvitationIssued, ClientError> {
        let path = routes::fill(routes::TEAM_MEMBER_INVITATION, uid);
        self.send(self.request(Method::POST, &path), &path).await
    }

    /// `DELETE /api/v1/team/members/{uid}/invitation`.
    pub async fn revoke_invitation(&self, uid: &str) -> Result<(), ClientError> {
        self.delete(&routes::fill(routes::TEAM_MEMBER_INVITATION, uid))
            .await
    }

    /// `POST /api/v1/invitations/redeem` (public: no key needed).
    pub async fn redeem_invitation(
        &self,
        redeem: &InvitationRedeem,
    ) -> Result<InvitationRedeemed, ClientError> {
        self.with_body(Method::POST, routes::INVITATIONS_REDEEM, redeem)
            .await
    }

    async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        page: &PageQuery,
    ) -> Result<T, ClientError> {
        let limit = page.limit.map(|l| l.to_string());
        let mut pairs = Vec::new();
        for (name, value) in [("limit", &limit), ("cursor", &page.cursor)] {
            if let Some(v) = value {
                pairs.push((name, v.as_str()));
            }
        }
        self.send(self.request(Method::GET, path).query(&pairs), path)
            .await
    }

    // ------------------------------------------------------------ API keys

    /// `GET /api/v1/api-keys`.
    pub async fn api_keys(&self) -> Result<ApiKeyList, ClientError> {
        self.get(routes::API_KEYS).await
    }

    /// `GET /api/v1/api-keys`, one page.
    pub async fn api_keys_page(&self, page: &PageQuery) -> Result<ApiKeyList, ClientError> {
        self.get_page(routes::API_KEYS, page).await
    }

    /// `POST /api/v1/api-keys` (the key is in the answer, once).
    pub async fn create_api_key(&self, key: &ApiKeyCreate) -> Result<ApiKeyCreated, ClientError> {
        self.with_body(Method::POST, routes::API_KEYS, key).await
    }

    /// `DELETE /api/v1/api-keys/{id}`.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&routes::fill(routes::API_KEY, id)).await
    }

    // ------------------------------------------------------------ agents

    /// `GET /api/v1/agent/identities`, every page.
    pub async fn agents(&self) -> Result<AgentList, ClientError> {
        let mut q = AgentListQuery::default();
        let mut list = self.agents_page(&q).await?;
        while let Some(cursor) = list.next_cursor.take() {
            q.cursor = Some(cursor);
            let page = self.agents_page(&q).await?;
            list.agents.extend(page.agents);
            list.next_cursor = page.next_cursor;
        }
        Ok(list)
    }

    /// `GET /api/v1/agent/identities`: one page.
    pub async fn agents_page(&self, query: &AgentListQuery) -> Result<AgentList, ClientError> {
        let limit = query.limit.map(|l| l.to_string());
        let available = query.available.map(|a| a.to_string());
        let mut pairs = Vec::new();
        for (name, value) in [
            ("limit", &limit),
            ("cursor", &query.cursor),
            ("name_prefix", &query.name_prefix),
            ("available", &available),
        ] {
            if let Some(v) = value {
                pairs.push((name, v.as_str()));
            }
        }
        let req = self
            .request(Method::GET, routes::AGENT_IDENTITIES)
            .query(&pairs);
        self.send(req, routes::AGENT_IDENTITIES).await
    }

    /// `POST /api/v1/agent/identities`.
    pub async fn create_agent(&self, agent: &AgentCreate) -> Result<Agent, ClientError> {
        self.with_body(Method::POST, routes::AGENT_IDENTITIES, agent)
            .await
    }

    /// `GET /api/v1/agent/identities/{uid}`.
    pub async fn agent(&self, uid: &str) -> Result<Agent, ClientError> {
        self.get(&routes::fill(routes::AGENT_IDENTITY, uid)).await
    }

    /// `PATCH /api/v1/agent/identities/{uid}` with a JSON Merge Patch (RFC 7396):
    /// an omitted field is unchanged, `null` clears it.
    pub async fn patch_agent(
        &self,
        uid: &str,
        patch: &serde_json::Value,
    ) -> Result<Agent, ClientError> {
        self.with_body(
            Method::PATCH,
            &routes::fill(routes::AGENT_IDENTITY, uid),
            patch,
        )
        .await
    }

    /// `DELETE /api/v1/agent/identities/{uid}`.
    pub async fn delete_agent(&self, uid: &str) -> Result<(), ClientError> {
        self.delete(&routes::fill(routes::AGENT_IDENTITY, uid))
            .await
    }

    // ------------------------------------------------------------ runs

    /// `POST /api/v1/runs` (the workload token is in the answer, once).
    pub async fn create_run(&self, run: &RunCreate) -> Result<RunCreated, ClientError> {
        self.with_body(Method::POST, routes::RUNS, run).await
    }

    /// `GET /api/v1/runs`: one page.
    pub async fn runs_page(&self, query: &RunListQuery) -> Result<RunList, ClientError> {
        let limit = query.limit.map(|l| l.to_string());
        let state = query.state.map(|s| s.as_str().to_owned());
        let mut pairs = Vec::new();
        for (name, value) in [
            ("limit", &limit),
            ("cursor", &query.cursor),
            ("state", &state),
            ("actor", &query.actor),
            ("since", &query.since),
            ("until", &query.until),
        ] {
            if let Some(v) = value {
                pairs.push((name, v.as_str()));
            }
        }
        let req = self.request(Method::GET, routes::RUNS).query(&pairs);
        self.send(req, routes::RUNS).await
    }

    /// `GET /api/v1/runs`, following `next_cursor` to the last page.
    pub async fn runs_all(&self, query: &RunListQuery) -> Result<RunList, ClientError> {
        let mut q = query.clone();
        let mut list = self.runs_page(&q).await?;
        while let Some(cursor) = list.next_cursor.take() {
            q.cursor = Some(cursor);
            let page = self.runs_page(&q).await?;
            list.runs.extend(page.runs);
            list.next_cursor = page.next_cursor;
        }
        Ok(list)
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn run(&self, id: &str) -> Result<RunInfo, ClientError> {
        self.get(&routes::fill(routes::RUN, id)).await
    }

    /// `POST /api/v1/runs/{id}/finish`.
    pub async fn finish_run(&self, id: &str, finish: &RunFinish) -> Result<RunInfo, ClientError> {
        self.with_body(Method::POST, &routes::fill(routes::RUN_FINISH, id), finish)
            .await
    }

    /// `POST /api/v1/runs/{id}/identity-token` (call with the run's workload token).
    pub async fn run_identity_token(
        &self,
        id: &str,
        req: &IdentityTokenRequest,
    ) -> Result<IdentityTokenResponse, ClientError> {
        self.with_body(
            Method::POST,
            &routes::fill(routes::RUN_IDENTITY_TOKEN, id),
            req,
        )
        .await
    }

    /// `POST /api/v1/agent/identities/{uid}/identity-token` (an admin's key).
    pub async fn agent_identity_token(
        &self,
        uid: &str,
        req: &IdentityTokenRequest,
    ) -> Result<IdentityTokenResponse, ClientError> {
        self.with_body(
            Method::POST,
            &routes::fill(routes::AGENT_IDENTITY_TOKEN, uid),
            req,
        )
        .await
    }

    /// `POST /api/v1/identity-token` (a member's key).
    pub async fn identity_token(
        &self,
        req: &IdentityTokenRequest,
    ) -> Result<IdentityTokenResponse, ClientError> {
        self.with_body(Method::POST, routes::IDENTITY_TOKEN, req)
            .await
    }

    // ------------------------------------------------------------ usage, models

    /// `GET /api/v1/usage`: one page (the query's `limit` and `cursor`).
    pub async fn usage(&self, query: &UsageQuery) -> Result<UsageReport, ClientError> {
        let limit = query.limit.map(|l| l.to_string());
        let mut pairs = Vec::new();
        for (name, value) in [
            ("run_id", &query.run_id),
            ("agent_uid", &query.agent_uid),
            ("member_uid", &query.member_uid),
            ("limit", &limit),
            ("cursor", &query.cursor),
        ] {
            if let Some(v) = value {
                pairs.push((name, v.as_str()));
            }
        }
        let req = self.request(Method::GET, routes::USAGE).query(&pairs);
        self.send(req, routes::USAGE).await
    }

    /// `GET /api/v1/usage`, following `next_cursor` from the query's cursor to
    /// the last page: one report with every request.
    pub async fn usage_all(&self, query: &UsageQuery) -> Result<UsageReport, ClientError> {
        let mut q = query.clone();
        let mut report = self.usage(&q).await?;
        while let Some(cursor) = report.next_cursor.take() {
            q.cursor = Some(cursor);
            let page = self.usage(&q).await?;
            report.buckets = page.buckets;
            report.run_days = page.run_days;
            report.requests.extend(page.requests);
            report.next_cursor = page.next_cursor;
        }
        Ok(report)
    }

    /// `GET /api/v1/audit`: one page of the team's audit trail (admins).
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        let limit = query.limit.map(|l| l.to_string());
        let mut pairs = Vec::new();
        for (name, value) in [
            ("action", &query.action),
            ("actor", &query.actor),
            ("target", &query.target),
            ("since", &query.since),
            ("until", &query.until),
            ("limit", &limit),
            ("cursor", &query.cursor),
        ] {
            if let Some(v) = value {
                pairs.push((name, v.as_str()));
            }
        }
        let req = self.request(Method::GET, routes::AUDIT).query(&pairs);
        self.send(req, routes::AUDIT).await
    }

    /// Every page of [`Client::audit`], oldest first.
    pub async fn audit_all(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        let mut q = query.clone();
        let mut page = self.audit(&q).await?;
        while let Some(cursor) = page.next_cursor.take() {
            q.cursor = Some(cursor);
            let next = self.audit(&q).await?;
            page.events.extend(next.events);
            page.next_cursor = next.next_cursor;
        }
        Ok(page)
    }

    /// `GET /v1/models`: the models this principal may use, with the host each
    /// would take.
    pub async fn models(&self) -> Result<serde_json::Value, ClientError> {
        self.get(routes::MODELS).await
    }

    /// `POST` `body` to a gateway route ([`routes::MESSAGES`] or
    /// [`routes::CHAT_COMPLETIONS`]) and hand back the answer as it is, whatever
    /// its status: the caller reads the `x-byollm-route` and `x-byollm-fallback`
    /// headers, streams the body when it asked for `"stream": true`, and reads a
    /// refusal's error body itself (the gateway answers in the API's own error
    /// shape, not [`ErrorBody`]). `headers` are added as given (e.g.
    /// `anthropic-version`, or a caller's own AWS credentials, which the caller
    /// marks sensitive). Only a transport failure is an error.
    pub async fn gateway_post<B: Serialize + ?Sized>(
        &self,
        route: &str,
        body: &B,
        headers: reqwest::header::HeaderMap,
    ) -> Result<reqwest::Response, ClientError> {
        self.request(Method::POST, route)
            .headers(headers)
            .json(body)
            .send()
            .await
            .map_err(|e| transport(&self.url(route), &e))
    }
}

#[cfg(test)]
mod tests;
