//! The inference gateway (DESIGN §5): `POST /v1/messages`, `POST
//! /v1/chat/completions` and `GET /v1/models` on the customer's cloud (Bedrock,
//! Vertex AI) with brokered short-lived credentials (or the caller's own AWS
//! ones), falling back to the
//! vendors' APIs only as the team allows, committing on the first chunk, and
//! recording a usage row per request. Request bodies and every upstream wait
//! are bounded (`[gateway]` in `byollm.toml`, [`limits`]).

mod anthropic;
mod attempt;
pub mod bedrock;
mod body;
mod caller;
mod credentials;
pub mod direct;
pub mod error;
pub mod foundry;
pub mod gateway;
mod hop;
pub mod limits;
mod models;
mod openai;
pub mod outcome;
pub mod plan;
mod relay;
pub mod sse;
mod stream;
mod traces;
pub mod translate;
pub mod vertex;

pub use attempt::RouteTaken;
pub use gateway::{Gateway, GatewayConfig, GatewayStats, HDR_REQUEST_ID};
pub use limits::Timeouts;
pub use stream::Streams;

/// The W3C trace context header sent upstream (Bedrock and the vendors' APIs)
/// when traces are on.
pub const HDR_TRACEPARENT: &str = "traceparent";
