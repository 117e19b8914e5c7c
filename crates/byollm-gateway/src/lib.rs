//! The inference gateway: providers (Bedrock, Anthropic, OpenAI), routing and
//! fallback, SSE and event-stream translation (DESIGN §5).

pub mod translate;
