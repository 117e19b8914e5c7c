//! The agent-side runtime: identity tokens from a run's workload token, STS,
//! refresh ahead of expiry, and credential sinks for tools in a sandbox
//! (DESIGN §2 flows 2 and 4).
//!
//! Not built yet: it arrives with the agent-runtime issue.
