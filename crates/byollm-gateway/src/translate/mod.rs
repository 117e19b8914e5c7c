//! Translations between the callers' API formats and Bedrock's.
