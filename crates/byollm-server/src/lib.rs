//! byollm server.
