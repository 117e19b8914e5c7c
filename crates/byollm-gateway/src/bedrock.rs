//! Amazon Bedrock through `aws-sdk-bedrockruntime`: one connection pool, an
//! SDK client per set of credentials that lives no longer than they do (on the
//! broker's entry, or for the caller's one request), SDK retries off (the
//! gateway's fallback decides). SDK types stay in this crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::Blob;
use byollm_core::broker::Brokered;
use secrecy::{ExposeSecret as _, SecretString};

use crate::outcome::{FailReason, Failure};
use crate::translate::ConverseRequest;

/// Credentials for one Bedrock call: brokered, or the caller's own (flow 4).
#[derive(Debug, Clone)]
pub enum CallCredentials {
    /// From the broker, shared with its entry: the SDK client built from them
    /// hangs on that entry too, so both leave memory when the broker drops it.
    Brokered(Arc<Brokered>),
    /// The caller's own (flow 4): for this request only; the client built from
    /// them is the request's and dies with it.
    Caller(Arc<CallerCredentials>),
}

/// A caller's own AWS credentials, from the request headers (flow 4).
#[derive(Debug)]
pub struct CallerCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: SecretString,
    /// Session token, for temporary credentials.
    pub session_token: Option<SecretString>,
}

impl CallCredentials {
    /// The SDK's view: copies into its own zeroize-on-drop strings, owned by the
    /// client built from them.
    fn sdk(&self) -> Credentials {
        match self {
            // A Bedrock candidate's key is always an AWS target, so its
            // credentials are AWS's; anything else signs nothing AWS accepts.
            CallCredentials::Brokered(b) => match b.aws() {
                Some(c) => Credentials::new(
                    c.access_key_id.clone(),
                    c.secret_access_key.expose_secret().to_owned(),
                    Some(c.session_token.expose_secret().to_owned()),
                    None,
                    "byollm",
                ),
                None => Credentials::new("", "", None, None, "byollm"),
            },
            CallCredentials::Caller(c) => Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.expose_secret().to_owned(),
                c.session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                None,
                "byollm",
            ),
        }
    }
}

/// Maps a Bedrock error (aws-facts §5.7) to a [`Failure`].
pub fn classify_code(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> Failure {
    let msg = message.unwrap_or("").to_owned();
    let code = code.unwrap_or("");
    let reason = match code {
        "ValidationException" => {
            // The model id is wrong for this account or region: a routing matter,
            // not the caller's request.
            if msg.contains("on-demand throughput") || msg.contains("model identifier is invalid") {
                FailReason::ModelNotAvailable(msg)
            } else {
                return Failure::Client {
                    status: 400,
                    message: msg,
                };
            }
        }
        "ExpiredTokenException" | "ExpiredToken" | "UnrecognizedClientException" => {
            FailReason::CredentialsRefused(msg)
        }
        "AccessDeniedException" => FailReason::AccessDenied(msg),
        "ThrottlingException" | "ServiceQuotaExceededException" => FailReason::Throttled(msg),
        "ResourceNotFoundException" => FailReason::NotFound(msg),
        "ModelNotReadyException"
        | "ModelTimeoutException"
        | "ModelErrorException"
        | "ModelStreamErrorException"
        | "InternalServerException"
        | "ServiceUnavailableException" => FailReason::Unavailable {
            code: code.to_owned(),
            message: msg,
        },
        other => {
            let status = status.unwrap_or(0);
            if (400..500).contains(&status) && status != 429 && status != 403 {
                return Failure::Client {
                    status,
                    message: format!("{other}: {msg}"),
                };
            }
            FailReason::Unrecognised {
                code: other.to_owned(),
                status,
                message: msg,
            }
        }
    };
    Failure::Fallback(reason)
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, status: Option<u16>) -> Failure {
    let reason = match err {
        SdkError::ServiceError(_) => return classify_code(err.code(), err.message(), status),
        SdkError::TimeoutError(_) => FailReason::TimedOut("the AWS SDK stopped waiting".into()),
        SdkError::DispatchFailure(f) if f.is_timeout() => crate::limits::connect_timed_out(),
        SdkError::DispatchFailure(_) => FailReason::BedrockUnreachable,
        SdkError::ResponseError(_) => FailReason::UnreadableResponse,
        _ => FailReason::Sdk(format!("{err}")),
    };
    Failure::Fallback(reason)
}

/// Classifies an operation error, with the HTTP status when there is one.
fn classify_op<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    classify(err, err.raw_response().map(|r| r.status().as_u16()))
}

/// Bedrock: one HTTP connection pool, and SDK clients built per set of
/// credentials. No cache of its own: a brokered client lives on the broker's
/// entry ([`Brokered::attached`]) and leaves with it; a caller's is built for
/// the request. [`Bedrock::live_clients`] counts the clients alive.
#[derive(Debug)]
pub struct Bedrock {
    endpoint_url: Option<String>,
    connect_timeout: Duration,
    http: aws_sdk_bedrockruntime::config::SharedHttpClient,
    live: Arc<AtomicU64>,
}

/// An SDK client built from one set of credentials, for one region; counted
/// in [`Bedrock::live_clients`] until dropped.
#[derive(Debug)]
pub(crate) struct CredClient {
    client: aws_sdk_bedrockruntime::Client,
    region: String,
    live: Arc<AtomicU64>,
}

impl std::ops::Deref for CredClient {
    type Target = aws_sdk_bedrockruntime::Client;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Drop for CredClient {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An InvokeModel response.
#[derive(Debug)]
pub struct Invoked {
    /// The model's JSON body.
    pub body: Vec<u8>,
}

impl Bedrock {
    /// Bedrock at AWS, or at `endpoint_url` (the emulator), giving up on a
    /// connection after `connect_timeout`. The wait for the answer is bounded by
    /// the caller ([`crate::limits`]), not here: the SDK's read timeout covers
    /// only the response head, which an event stream sends before its first
    /// event.
    pub fn new(endpoint_url: Option<String>, connect_timeout: Duration) -> Self {
        use aws_smithy_http_client::tls;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        Self {
            endpoint_url,
            connect_timeout,
            http,
            live: Arc::new(AtomicU64::new(0)),
        }
    }

    /// SDK clients alive now (held by a broker entry or a request in flight).
    pub fn live_clients(&self) -> u64 {
        self.live.load(Ordering::SeqCst)
    }

    fn client(&self, region: &str, creds: &CallCredentials) -> Arc<CredClient> {
        if let CallCredentials::Brokered(b) = creds
            && let Some(c) = b.attached(|| self.build(region, creds))
            && c.region == region
        {
            return c;
        }
        Arc::new(self.build(region, creds))
    }

    fn build(&self, region: &str, creds: &CallCredentials) -> CredClient {
        let mut cfg = aws_sdk_bedrockruntime::Config::builder()
            .http_client(self.http.clone())
            .credentials_provider(creds.sdk())
            .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
            // Models may pause between events longer than the SDK's
            // stall detector allows; the gateway's own timeouts govern.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .build(),
            );
        if let Some(url) = &self.endpoint_url {
            cfg = cfg.endpoint_url(url);
        }
        self.live.fetch_add(1, Ordering::SeqCst);
        CredClient {
            client: aws_sdk_bedrockruntime::Client::from_conf(cfg.build()),
            region: region.to_owned(),
            live: self.live.clone(),
        }
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
            .customize()
            .mutate_request(with_traceparent())
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
            .customize()
            .mutate_request(with_traceparent())
            .send()
            .await
            .map_err(|e| classify_op(&e))?;
        let mut stream = InvokeStream(out.body);
        match stream.next().await {
            Some(Ok(first)) => Ok((first, stream)),
            Some(Err(f)) => Err(f),
            None => Err(FailReason::NoFirstChunk.into()),
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
            .customize()
            .mutate_request(with_traceparent())
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
            .customize()
            .mutate_request(with_traceparent())
            .send()
            .await
            .map_err(|e| classify_op(&e))?;
        let mut events = ConverseEvents(out.stream);
        match events.next().await {
            Some(Ok(first)) => Ok((first, events)),
            Some(Err(f)) => Err(f),
            None => Err(FailReason::NoFirstEvent.into()),
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

/// Adds the current span's `traceparent` (when traces are on) to a Bedrock
/// request, so the caller's trace continues upstream. Read once, when the
/// call is built, inside its `upstream` span.
fn with_traceparent()
-> impl Fn(&mut aws_sdk_bedrockruntime::config::http::HttpRequest) + Send + Sync + 'static {
    let tp = byollm_telemetry::trace::current_traceparent();
    move |req| {
        if let Some(tp) = &tp {
            // Hex and dashes: always a valid header value.
            let _ = req
                .headers_mut()
                .try_insert(crate::HDR_TRACEPARENT, tp.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(code: &str, message: &str, status: u16) -> String {
        classify_code(Some(code), Some(message), Some(status)).to_string()
    }

    /// What moves to the next route and in which words (aws-facts §5.7).
    #[test]
    fn classification_and_its_words() {
        assert_eq!(cause("ThrottlingException", "slow", 429), "throttled: slow");
        assert_eq!(
            cause(
                "ValidationException",
                "The provided model identifier is invalid.",
                400
            ),
            "model not available: The provided model identifier is invalid."
        );
        assert_eq!(
            cause("ModelTimeoutException", "late", 408),
            "ModelTimeoutException: late"
        );
        assert_eq!(
            cause("ResourceNotFoundException", "gone", 404),
            "not found: gone"
        );
        assert_eq!(
            cause("ExpiredTokenException", "old", 403),
            "credentials refused: old"
        );
        assert_eq!(
            cause("AccessDeniedException", "no", 403),
            "access denied: no"
        );
        assert_eq!(cause("Weird", "x", 502), "Weird (502): x");
        assert_eq!(
            classify_code(Some("ValidationException"), Some("bad role"), Some(400)),
            Failure::Client {
                status: 400,
                message: "bad role".into()
            }
        );
        assert_eq!(
            classify_code(Some("Weird"), Some("x"), Some(409)),
            Failure::Client {
                status: 409,
                message: "Weird: x".into()
            }
        );
    }
}
