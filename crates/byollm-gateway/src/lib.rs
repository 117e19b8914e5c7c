//! The inference gateway: providers (Bedrock, Anthropic, OpenAI), routing and
//! fallback, SSE and event-stream translation (DESIGN §5).
//!
//! Not built yet: it arrives with the gateway issue. The crate exists so the
//! workspace layout of DESIGN §10 holds from the start.
