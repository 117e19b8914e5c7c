//! What one attempt came to, and the words for it.
//!
//! Every way an upstream call or a candidate can end is a variant here, and
//! every text a caller sees about it — the `x-byollm-fallback` header, the
//! attempt list in an error body, a usage row's `attempts`, the mid-stream
//! error event — comes from the `Display` impls and [`AttemptOutcome::listed`]
//! below and nowhere else. The texts are an interface: the docs
//! (`docs/routing-and-fallback.md`, `docs/troubleshooting.md`), the end-to-end
//! tests and the demo quote them, so they change only on purpose.

use std::fmt;

use byollm_core::broker::BrokerError;
use byollm_federation::ExchangeError;

use crate::attempt::Served;

/// The outcome of the attempt that served (filtered out of `x-byollm-fallback`).
pub const OK: &str = "ok";

/// How an upstream call failed, by what the gateway does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request itself is wrong: answer the caller, try nothing else (it
    /// would fail everywhere).
    Client {
        /// HTTP status to return.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// Another route may serve.
    Fallback(FailReason),
}

impl From<FailReason> for Failure {
    fn from(reason: FailReason) -> Self {
        Failure::Fallback(reason)
    }
}

impl fmt::Display for Failure {
    /// The cause in attempt lists and mid-stream error events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Client { status, message } => write!(f, "client error {status}: {message}"),
            Failure::Fallback(reason) => reason.fmt(f),
        }
    }
}

/// Why a call failed in a way another route may not share (DESIGN §5 "what
/// moves to the next candidate"). Bedrock's cases follow aws-facts §5.7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// Bedrock: the credentials expired or were not recognised (the gateway
    /// refreshes brokered credentials once before giving up on the route).
    CredentialsRefused(String),
    /// Bedrock: access denied (a region-deny policy on a global profile, a
    /// missing grant); a refused global profile lets its geographic one run.
    AccessDenied(String),
    /// Bedrock: the model id is wrong for this account or region.
    ModelNotAvailable(String),
    /// Bedrock: throttling or an exhausted service quota.
    Throttled(String),
    /// Bedrock: `ResourceNotFoundException`.
    NotFound(String),
    /// Bedrock: a model or service fault, by its error code.
    Unavailable {
        /// The AWS error code (`ModelTimeoutException`, …).
        code: String,
        /// AWS's message.
        message: String,
    },
    /// Bedrock: an error code not classified above that is not the caller's fault.
    Unrecognised {
        /// The AWS error code, possibly empty.
        code: String,
        /// The HTTP status, 0 when there was none.
        status: u16,
        /// AWS's message.
        message: String,
    },
    /// The upstream (Bedrock or a vendor API) did not connect or start its
    /// answer within a `[gateway]` timeout; the text says which wait ran out
    /// and names its config key.
    TimedOut(String),
    /// No connection to Bedrock.
    BedrockUnreachable,
    /// Bedrock's response could not be read.
    UnreadableResponse,
    /// Any other SDK failure, in the SDK's words.
    Sdk(String),
    /// Bedrock's `InvokeModelWithResponseStream` closed before its first chunk.
    NoFirstChunk,
    /// Bedrock's `ConverseStream` closed before its first event.
    NoFirstEvent,
    /// This server has no endpoint for the vendor.
    DirectNotConfigured,
    /// The platform's key for the vendor cannot be sent as a header.
    DirectKeyInvalid,
    /// The vendor's API could not be reached (the error without its URL).
    DirectUnreachable(String),
    /// The vendor answered with a status another route may not get (its own
    /// key, rate limits, outages); the message never quotes the platform's key.
    DirectStatus {
        /// HTTP status.
        status: u16,
        /// The vendor's message, or ours for 401/403.
        message: String,
    },
    /// The vendor's stream closed before its first chunk.
    DirectStreamEmpty,
    /// The vendor's stream broke before its first chunk.
    DirectStream(String),
    /// The vendor's whole body could not be read.
    DirectBody(String),
    /// The upstream request body could not be encoded.
    Encode(String),
    /// A Bedrock candidate reached its provider without credentials (a gateway
    /// bug: the attempt loop always supplies them).
    NoCredentials,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::CredentialsRefused(m) => write!(f, "credentials refused: {m}"),
            FailReason::AccessDenied(m) => write!(f, "access denied: {m}"),
            FailReason::ModelNotAvailable(m) => write!(f, "model not available: {m}"),
            FailReason::Throttled(m) => write!(f, "throttled: {m}"),
            FailReason::NotFound(m) => write!(f, "not found: {m}"),
            FailReason::Unavailable { code, message } => write!(f, "{code}: {message}"),
            FailReason::Unrecognised {
                code,
                status,
                message,
            } => write!(f, "{code} ({status}): {message}"),
            FailReason::TimedOut(m) => write!(f, "timed out: {m}"),
            FailReason::BedrockUnreachable => f.write_str("Bedrock unreachable"),
            FailReason::UnreadableResponse => f.write_str("unreadable response from Bedrock"),
            FailReason::Sdk(m) | FailReason::Encode(m) => f.write_str(m),
            FailReason::NoFirstChunk => f.write_str("stream ended before the first chunk"),
            FailReason::NoFirstEvent => f.write_str("stream ended before the first event"),
            FailReason::DirectNotConfigured => {
                f.write_str("direct API not configured on this server")
            }
            FailReason::DirectKeyInvalid => {
                f.write_str("direct API key is not a valid header value")
            }
            FailReason::DirectUnreachable(m) => write!(f, "direct API unreachable: {m}"),
            FailReason::DirectStatus { status, message } => {
                write!(f, "direct API {status}: {message}")
            }
            FailReason::DirectStreamEmpty => f.write_str("direct API stream ended at once"),
            FailReason::DirectStream(m) => write!(f, "direct API stream: {m}"),
            FailReason::DirectBody(m) => write!(f, "direct API body: {m}"),
            FailReason::NoCredentials => f.write_str("no credentials"),
        }
    }
}

impl FailReason {
    /// A stable word for the failure's kind (the `reason` label of the
    /// fallback metric; the texts above carry the detail).
    pub fn kind(&self) -> &'static str {
        match self {
            FailReason::CredentialsRefused(_) => "credentials_refused",
            FailReason::AccessDenied(_) => "access_denied",
            FailReason::ModelNotAvailable(_) => "model_not_available",
            FailReason::Throttled(_) => "throttled",
            FailReason::NotFound(_) => "not_found",
            FailReason::Unavailable { .. } => "unavailable",
            FailReason::Unrecognised { .. } => "unrecognised",
            FailReason::TimedOut(_) => "timed_out",
            FailReason::BedrockUnreachable | FailReason::DirectUnreachable(_) => "unreachable",
            FailReason::UnreadableResponse
            | FailReason::DirectBody(_)
            | FailReason::DirectStream(_)
            | FailReason::DirectStreamEmpty
            | FailReason::NoFirstChunk
            | FailReason::NoFirstEvent => "bad_response",
            FailReason::Sdk(_) => "sdk",
            FailReason::DirectNotConfigured => "not_configured",
            FailReason::DirectKeyInvalid => "key_invalid",
            FailReason::DirectStatus { .. } => "upstream_status",
            FailReason::Encode(_) | FailReason::NoCredentials => "internal",
        }
    }

    /// Whether the same request may succeed later (throttling, timeouts, outages,
    /// broken connections), as opposed to a refusal an admin or the caller must
    /// fix first. Decides the final status when every route failed: SDKs retry
    /// a 5xx, so a permanent refusal must not be one.
    pub fn is_transient(&self) -> bool {
        match self {
            FailReason::CredentialsRefused(_)
            | FailReason::AccessDenied(_)
            | FailReason::ModelNotAvailable(_)
            | FailReason::NotFound(_)
            | FailReason::DirectNotConfigured
            | FailReason::DirectKeyInvalid
            | FailReason::Encode(_)
            | FailReason::NoCredentials => false,
            FailReason::DirectStatus { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            FailReason::Unrecognised { status, .. } => *status == 0 || *status >= 500,
            _ => true,
        }
    }

    /// A refusal of the team's (or the platform's) permissions, as opposed to a
    /// model or request the route cannot serve.
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            FailReason::CredentialsRefused(_)
                | FailReason::AccessDenied(_)
                | FailReason::DirectKeyInvalid
                | FailReason::DirectStatus {
                    status: 401 | 403,
                    ..
                }
        )
    }
}

/// The role of a Bedrock candidate could not be assumed (or its identity token
/// not minted): no call was made, and within one request the same role is not
/// asked again for the next model.
#[derive(Debug, Clone)]
pub struct RoleRefused(pub BrokerError);

impl RoleRefused {
    /// Whether assuming the role may work later (STS throttled or unreachable,
    /// our own STS rate limit) rather than being refused until an admin acts.
    pub fn is_transient(&self) -> bool {
        match &self.0 {
            BrokerError::Sts(e) => e.is_transient(),
            BrokerError::RateLimited | BrokerError::Mint(_) => true,
        }
    }
}

impl fmt::Display for RoleRefused {
    /// AWS's role assumption, or another cloud's token exchange (whose
    /// error names its service: `Google STS: unauthorized_client: …`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BrokerError::Sts(e @ ExchangeError::Cloud { .. }) => {
                write!(f, "token exchange failed: {e}")
            }
            other => write!(f, "role assumption failed: {other}"),
        }
    }
}

/// Why a candidate was passed over without a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A geographic profile runs only when the global profile before it was
    /// refused with access denied; otherwise it is not an attempt at all and is
    /// not listed.
    GlobalNotDenied,
    /// A route out of the customer's cloud after an in-cloud failure, while the
    /// team keeps requests inside its cloud (`allow_fallback_outside_cloud`).
    StayInCloud,
}

impl SkipReason {
    /// The outcome listed for this skip, if it is listed.
    pub fn listed(self) -> Option<&'static str> {
        match self {
            SkipReason::GlobalNotDenied => None,
            SkipReason::StayInCloud => Some("skipped: allow_fallback_outside_cloud is false"),
        }
    }
}

/// What one candidate of the plan came to.
pub(crate) enum AttemptOutcome {
    /// Passed over without a call.
    Skipped(SkipReason),
    /// No credentials for a Bedrock candidate: try the next.
    RoleRefused(RoleRefused),
    /// An answer (for a stream, its first chunk): commit to this route.
    Served(Served),
    /// The upstream rejected the request itself: stop with its error.
    ClientError {
        /// The upstream's HTTP status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// The call failed: try the next.
    Failed(FailReason),
}

impl From<Result<Served, Failure>> for AttemptOutcome {
    fn from(result: Result<Served, Failure>) -> Self {
        match result {
            Ok(served) => AttemptOutcome::Served(served),
            Err(Failure::Client { status, message }) => {
                AttemptOutcome::ClientError { status, message }
            }
            Err(Failure::Fallback(reason)) => AttemptOutcome::Failed(reason),
        }
    }
}

impl AttemptOutcome {
    /// The failure's kind word when another route may be tried after it.
    pub(crate) fn fallback_reason(&self) -> Option<&'static str> {
        match self {
            AttemptOutcome::RoleRefused(_) => Some("role_refused"),
            AttemptOutcome::Failed(reason) => Some(reason.kind()),
            _ => None,
        }
    }

    /// The `outcome` of this attempt in attempt lists, `x-byollm-fallback` and
    /// usage rows; `None` for a skip that is not listed.
    pub(crate) fn listed(&self) -> Option<String> {
        match self {
            AttemptOutcome::Skipped(why) => why.listed().map(str::to_owned),
            AttemptOutcome::RoleRefused(refused) => Some(refused.to_string()),
            AttemptOutcome::Served(_) => Some(OK.to_owned()),
            // The upstream's message goes in the error body, not the list.
            AttemptOutcome::ClientError { status, .. } => Some(format!("client error {status}")),
            AttemptOutcome::Failed(reason) => Some(reason.to_string()),
        }
    }
}

/// How a committed stream ended: the last attempt's outcome in the request's
/// usage row (the caller already has the route, so nothing else is tried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The upstream finished and every frame was sent.
    Completed,
    /// The caller went away; the upstream read stopped.
    ClientGone,
    /// The upstream broke after the first chunk; the caller got the format's
    /// error event.
    BrokeMidStream(String),
    /// The server shut down past its grace period; the caller got the format's
    /// error event.
    ShutDown,
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Completed => f.write_str(OK),
            StreamEnd::ClientGone => f.write_str("client disconnected"),
            StreamEnd::BrokeMidStream(cause) => write!(f, "failed mid-stream: {cause}"),
            StreamEnd::ShutDown => f.write_str("ended by server shutdown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words are an interface (docs, demo, end-to-end tests quote them).
    #[test]
    fn texts_are_stable() {
        let cases: [(FailReason, &str); 9] = [
            (
                FailReason::TimedOut("no first byte within 300 ms (first_byte_timeout_ms)".into()),
                "timed out: no first byte within 300 ms (first_byte_timeout_ms)",
            ),
            (
                FailReason::CredentialsRefused("x".into()),
                "credentials refused: x",
            ),
            (FailReason::AccessDenied("x".into()), "access denied: x"),
            (
                FailReason::Unrecognised {
                    code: "Weird".into(),
                    status: 502,
                    message: "x".into(),
                },
                "Weird (502): x",
            ),
            (
                FailReason::Unavailable {
                    code: "ServiceUnavailableException".into(),
                    message: "x".into(),
                },
                "ServiceUnavailableException: x",
            ),
            (
                FailReason::DirectStatus {
                    status: 529,
                    message: "x".into(),
                },
                "direct API 529: x",
            ),
            (
                FailReason::NoFirstChunk,
                "stream ended before the first chunk",
            ),
            (FailReason::Sdk("raw".into()), "raw"),
            (FailReason::NoCredentials, "no credentials"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
        assert_eq!(
            Failure::Client {
                status: 400,
                message: "bad".into()
            }
            .to_string(),
            "client error 400: bad"
        );
        assert_eq!(
            RoleRefused(BrokerError::RateLimited).to_string(),
            "role assumption failed: too many STS calls from this server; try again shortly"
        );
        assert_eq!(
            RoleRefused(BrokerError::Sts(ExchangeError::Cloud {
                class: byollm_federation::ErrorClass::Refused,
                message: "Google STS: unauthorized_client: rejected".into()
            }))
            .to_string(),
            "token exchange failed: Google STS: unauthorized_client: rejected"
        );
        assert_eq!(
            SkipReason::StayInCloud.listed(),
            Some("skipped: allow_fallback_outside_cloud is false")
        );
        assert_eq!(SkipReason::GlobalNotDenied.listed(), None);
        let client = AttemptOutcome::ClientError {
            status: 422,
            message: "not listed".into(),
        };
        assert_eq!(client.listed().as_deref(), Some("client error 422"));
        assert_eq!(StreamEnd::Completed.to_string(), OK);
        assert_eq!(StreamEnd::ClientGone.to_string(), "client disconnected");
        assert_eq!(StreamEnd::ShutDown.to_string(), "ended by server shutdown");
        assert_eq!(
            StreamEnd::BrokeMidStream("throttled: x".into()).to_string(),
            "failed mid-stream: throttled: x"
        );
    }
}
