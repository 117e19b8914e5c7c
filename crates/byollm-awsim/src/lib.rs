//! A strict local AWS emulator (IAM, STS, Bedrock Runtime) and direct-API
//! emulators (DESIGN §8).
//!
//! Not built yet: it arrives with the emulator issue.
