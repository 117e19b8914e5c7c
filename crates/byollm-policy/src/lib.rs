//! IAM policy model, evaluator and generators for byollm. Pure: no I/O.
//!
//! - [`parse`]: identity and resource (trust) policies with every element form
//!   IAM accepts, errors naming the JSON path;
//! - [`eval`]: decides a request (principal, action, resource, multi-valued
//!   context) with IAM's rules, naming the deciding statements;
//! - [`conditions`]: the condition operators, set qualifiers and missing-key rules;
//! - [`generate`]: trust and permissions policies, and the setup as a bash script,
//!   Terraform and CloudFormation;
//! - [`gcp`]: Google Cloud's side: workload identity pool and provider setup
//!   (gcloud script, Terraform), the CEL of attribute mappings and conditions,
//!   and which subjects a provider admits;
//! - [`azure`]: Microsoft Azure's side: the managed identity, one federated
//!   identity credential per subject, the Foundry roles (az script,
//!   Terraform), and which members and agents a set of FICs admits;
//! - [`explain`]: which subjects a trust policy admits, decided by the evaluator,
//!   plus lint findings.
//!
//! The AWS behaviour implemented here is documented, with sources, in
//! `reference/aws-facts.md` §3, §4 and §6 of the shared design folder.

pub mod azure;
pub mod conditions;
pub mod eval;
pub mod explain;
pub mod gcp;
pub mod generate;
pub mod model;
pub mod parse;
mod pattern;

pub use conditions::{BaseOperator, ConditionOperator, SetQualifier};
pub use eval::{
    Context, Decision, DecisionKind, Request, RequestPrincipal, StatementRef, evaluate,
    evaluate_one,
};
pub use model::{Effect, Policy, PolicyKind, PolicyVersion, Statement};
pub use parse::{DEFAULT_MAX_BYTES, ParseOptions, PolicyError};
pub use pattern::Template;
