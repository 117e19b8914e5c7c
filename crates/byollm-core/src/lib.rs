//! byollm core.
