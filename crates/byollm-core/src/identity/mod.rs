//! The OIDC issuer's identity machinery (DESIGN §3): signing keys encrypted at
//! rest, the key lifecycle (pending → active → retired → removed), JWT minting
//! with every claim AWS reads, subjects and session tags.

pub mod jwt;
pub mod kek;
pub mod keyring;
pub mod keys;
pub mod names;

/// `Cache-Control: max-age` of discovery and JWKS. Shorter than
/// [`PREPUBLISH_SECONDS`], so every cache has seen a new key before it signs.
pub const JWKS_MAX_AGE_SECONDS: i64 = 300;

/// How long a new key is published before it may sign: three JWKS cache lifetimes.
pub const PREPUBLISH_SECONDS: i64 = 3 * JWKS_MAX_AGE_SECONDS;

/// Extra time a retired key stays published after the longest token it can have
/// signed expires: AWS accepts tokens up to five minutes past `exp`
/// (aws-facts §2, "Clock skew"), plus one minute for replicas that have not yet
/// reloaded the keyring and still sign with the old key.
pub const RETIRE_LEEWAY_SECONDS: i64 = 300 + 60;

/// `nbf` is back-dated by this much so verifiers with a slow clock accept a fresh
/// token (DESIGN §3: at most 30 s).
pub const NBF_BACKDATE_SECONDS: i64 = 30;

/// Default and ceiling of `requested_duration_seconds`.
pub const DEFAULT_MAX_TOKEN_TTL_SECONDS: i64 = 3600;

/// Floor of `requested_duration_seconds`.
pub const MIN_TOKEN_TTL_SECONDS: i64 = 60;
