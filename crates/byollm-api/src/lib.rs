//! byollm's wire contract: route paths, request and response bodies, the error
//! body, and the model catalog; plus the one [`clock::Clock`], because this is
//! the lowest crate every reader of time depends on. Depends on no other byollm
//! crate, so the server, the clients and the emulator share one definition
//! (DESIGN §6, §10).

pub mod catalog;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
pub mod error;
pub mod routes;
pub mod secret;
pub mod types;

pub use error::{ErrorBody, ErrorDetail};
pub use secret::SecretValue;
