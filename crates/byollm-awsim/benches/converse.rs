//! Placeholder until the emulator bench lands.
fn main() {}
