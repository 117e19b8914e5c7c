//! Integration tests of the byollm server, in one binary (STYLE.md "Tests"):
//! the issuer end to end over a socket, the authorization matrix, bad input and a
//! scan for secrets left on disk or in the logs.

mod authz_matrix;
mod bad_input;
mod common;
mod oidc_e2e;
