//! Amazon Bedrock through `aws-sdk-bedrockruntime`: one client per region (one
//! connection pool), credentials set per call, SDK retries off (the gateway's
//! fallback decides). SDK types stay in this crate.

use std::collections::HashMap;

use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use parking_lot::Mutex;
use secrecy::{ExposeSecret as _, SecretString};

use crate::translate::ConverseRequest;

/// Credentials for one Bedrock call: brokered, or the caller's own (flow 4).
#[derive(Debug, Clone)]
pub struct CallCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: SecretString,
    /// Session token, for temporary credentials.
    pub session_token: Option<SecretString>,
}

impl CallCredentials {
    /// A digest of all three parts, to key caches without holding the secret.
    fn fingerprint(&self) -> String {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(self.access_key_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(self.secret_access_key.expose_secret().as_bytes());
        ctx.update(&[0]);
        if let Some(t) = &self.session_token {
            ctx.update(t.expose_secret().as_bytes());
        }
        hex::encode(ctx.finish())
    }

    fn sdk(&self) -> Credentials {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose_secret().to_owned(),
            self.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "byollm",
        )
    }
}

/// How a Bedrock call failed, by what the gateway does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request itself is wrong: answer the caller, try nothing else.
    Client {
        /// HTTP status to return.
        status: u16,
        /// Bedrock's message.
        message: String,
    },
    /// The credentials expired or were not recognised: get new ones and retry.
    Credentials(String),
    /// Access denied (a region-deny policy on a global profile, a missing grant).
    AccessDenied(String),
    /// Anything else worth trying another route for.
    Fallback(String),
}

impl Failure {
    /// A short cause for attempt lists and headers.
    pub fn cause(&self) -> String {
        match self {
            Failure::Client { status, message } => format!("client error {status}: {message}"),
            Failure::Credentials(m) => format!("credentials refused: {m}"),
            Failure::AccessDenied(m) => format!("access denied: {m}"),
            Failure::Fallback(m) => m.clone(),
        }
    }
}

/// Maps a Bedrock error (aws-facts §5.7) to a [`Failure`].
pub fn classify_code(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> Failure {
    let msg = message.unwrap_or("").to_owned();
    match code.unwrap_or("") {
        "ValidationException" => {
            // The model id is wrong for this account or region: a routing matter,
            // not the caller's request.
            if msg.contains("on-demand throughput") || msg.contains("model identifier is invalid") {
                Failure::Fallback(format!("model not available: {msg}"))
            } else {
                Failure::Client {
                    status: 400,
                    message: msg,
                }
            }
        }
        "ExpiredTokenException" | "ExpiredToken" | "UnrecognizedClientException" => {
            Failure::Credentials(msg)
        }
        "AccessDeniedException" => Failure::AccessDenied(msg),
        "ThrottlingException" | "ServiceQuotaExceededException" => {
            Failure::Fallback(format!("throttled: {msg}"))
        }
        "ResourceNotFoundException" => Failure::Fallback(format!("not found: {msg}")),
        "ModelNotReadyException"
        | "ModelTimeoutException"
        | "ModelErrorException"
        | "ModelStreamErrorException"
        | "InternalServerException"
        | "ServiceUnavailableException" => {
            Failure::Fallback(format!("{}: {msg}", code.unwrap_or("")))
        }
        other => {
            let status = status.unwrap_or(0);
            if (400..500).contains(&status) && status != 429 && status != 403 {
                Failure::Client {
                    status,
                    message: format!("{other}: {msg}"),
                }
            } else {
                Failure::Fallback(format!("{other} ({status}): {msg}"))
            }
        }
    }
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, status: Option<u16>) -> Failure {
    match err {
        SdkError::ServiceError(_) => classify_code(err.code(), err.message(), status),
        SdkError::TimeoutError(_) => Failure::Fallback("timed out".into()),
        SdkError::DispatchFailure(_) => Failure::Fallback("Bedrock unreachable".into()),
        SdkError::ResponseError(_) => Failure::Fallback("unreadable response from Bedrock".into()),
        _ => Failure::Fallback(format!("{err}")),
    }
}

/// Classifies an operation error, with the HTTP status when there is one.
fn classify_op<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    classify(err, err.raw_response().map(|r| r.status().as_u16()))
}

/// Most cached clients; past this the cache starts over (credentials rotate
/// hourly, so old entries are dead weight anyway).
const MAX_CLIENTS: usize = 4096;

/// Bedrock clients: one per (region, access key), all sharing one HTTP
/// connection pool, so a request neither rebuilds SDK configuration nor opens a
/// connection.
#[derive(Debug)]
pub struct Bedrock {
    endpoint_url: Option<String>,
    http: aws_sdk_bedrockruntime::config::SharedHttpClient,
    /// (region, credentials fingerprint) → client.
    clients: Mutex<HashMap<(String, String), aws_sdk_bedrockruntime::Client>>,
}

/// An InvokeModel response.
#[derive(Debug)]
pub struct Invoked {
    /// The model's JSON body.
    pub body: Vec<u8>,
}

impl Bedrock {
    /// Bedrock at AWS, or at `endpoint_url` (the emulator).
    pub fn new(endpoint_url: Option<String>) -> Self {
        use aws_smithy_http_client::tls;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        Self {
            endpoint_url,
            http,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &str, creds: &CallCredentials) -> aws_sdk_bedrockruntime::Client {
        // Keyed by every part of the credentials, not the access key id alone: a
        // caller who knows someone's key id (not secret) must never be served a
        // client built with that someone's secret.
        let key = (region.to_owned(), creds.fingerprint());
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients
            .entry(key)
            .or_insert_with(|| {
                let mut cfg = aws_sdk_bedrockruntime::Config::builder()
                    .http_client(self.http.clone())
                    .credentials_provider(creds.sdk())
                    .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
                    .region(Region::new(region.to_owned()))
                    .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
                    // Models may pause between events longer than the SDK's
                    // stall detector allows; the gateway's own timeouts govern.
                    .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
                if let Some(url) = &self.endpoint_url {
                    cfg = cfg.endpoint_url(url);
                }
                aws_sdk_bedrockruntime::Client::from_conf(cfg.build())
            })
            .clone()
    }

    /// `InvokeModel` with an Anthropic Messages body.
    pub async fn invoke(
        &self,
        region: &str,
        creds: &CallCredentials,
        model_ref: &str,
        body: Vec<u8>,
    ) -> Result<Invoked, Failure> {
        let out = self
            .client(region, creds)
            .invoke_model()
            .model_id(model_ref)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(|e| classify_op(&e))?;
        Ok(Invoked {
            body: out.body.into_inner(),
        })
    }

    /// `InvokeModelWithResponseStream`; returns once the first chunk has arrived
    /// (the commit point), with that chunk and the rest of the stream.
    pub async fn invoke_stream(
        &self,
        region: &str,
        creds: &CallCredentials,
        model_ref: &str,
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, InvokeStream), Failure> {
        let out = self
            .client(region, creds)
            .invoke_model_with_response_stream()
            .model_id(model_ref)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .map_err(|e| classify_op(&e))?;
        let mut stream = InvokeStream(out.body);
        match stream.next().await {
            Some(Ok(first)) => Ok((first, stream)),
            Some(Err(f)) => Err(f),
            None => Err(Failure::Fallback(
                "stream ended before the first chunk".into(),
            )),
        }
    }

    /// `Converse`.
    pub async fn converse(
        &self,
        region: &str,
        creds: &CallCredentials,
        model_ref: &str,
        req: ConverseRequest,
    ) -> Result<aws_sdk_bedrockruntime::operation::converse::ConverseOutput, Failure> {
        self.client(region, creds)
            .converse()
            .model_id(model_ref)
            .set_messages(Some(req.messages))
            .set_system(if req.system.is_empty() {
                None
            } else {
                Some(req.system)
            })
            .inference_config(req.inference_config)
            .set_tool_config(req.tool_config)
            .send()
            .await
            .map_err(|e| classify_op(&e))
    }

    /// `ConverseStream`; returns once the first event has arrived.
    pub async fn converse_stream(
        &self,
        region: &str,
        creds: &CallCredentials,
        model_ref: &str,
        req: ConverseRequest,
    ) -> Result<
        (
            aws_sdk_bedrockruntime::types::ConverseStreamOutput,
            ConverseEvents,
        ),
        Failure,
    > {
        let out = self
            .client(region, creds)
            .converse_stream()
            .model_id(model_ref)
            .set_messages(Some(req.messages))
            .set_system(if req.system.is_empty() {
                None
            } else {
                Some(req.system)
            })
            .inference_config(req.inference_config)
            .set_tool_config(req.tool_config)
            .send()
            .await
            .map_err(|e| classify_op(&e))?;
        let mut events = ConverseEvents(out.stream);
        match events.next().await {
            Some(Ok(first)) => Ok((first, events)),
            Some(Err(f)) => Err(f),
            None => Err(Failure::Fallback(
                "stream ended before the first event".into(),
            )),
        }
    }
}

/// The rest of an `InvokeModelWithResponseStream`: each item is one chunk's bytes
/// (an Anthropic stream event as JSON).
#[derive(Debug)]
pub struct InvokeStream(
    aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
        aws_sdk_bedrockruntime::types::ResponseStream,
        aws_sdk_bedrockruntime::types::error::ResponseStreamError,
    >,
);

impl InvokeStream {
    /// The next chunk, an error event, or the end.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, Failure>> {
        loop {
            match self.0.recv().await {
                Ok(Some(aws_sdk_bedrockruntime::types::ResponseStream::Chunk(part))) => {
                    if let Some(bytes) = part.bytes {
                        return Some(Ok(bytes.into_inner()));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(e) => return Some(Err(classify(&e, None))),
            }
        }
    }
}

/// The rest of a `ConverseStream`.
#[derive(Debug)]
pub struct ConverseEvents(
    aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
        aws_sdk_bedrockruntime::types::ConverseStreamOutput,
        aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError,
    >,
);

impl ConverseEvents {
    /// The next event, an error event, or the end.
    pub async fn next(
        &mut self,
    ) -> Option<Result<aws_sdk_bedrockruntime::types::ConverseStreamOutput, Failure>> {
        match self.0.recv().await {
            Ok(Some(ev)) => Some(Ok(ev)),
            Ok(None) => None,
            Err(e) => Some(Err(classify(&e, None))),
        }
    }
}
