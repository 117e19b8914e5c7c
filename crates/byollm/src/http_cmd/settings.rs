//! `byollm settings get|set|put`: the team's LLM settings (DESIGN §4, §6).
//! `set` sends a JSON Merge Patch (`PATCH`) of only what the flags change, so
//! it never overwrites another admin's concurrent edit; `put` replaces the
//! whole document with a JSON file (`PUT`, every field required). Every
//! answer ends with the per-model routing: what each catalog model does under
//! these settings.

use anyhow::{Context as _, anyhow, bail};
use byollm_api::catalog::Catalog;
use byollm_api::client::Client;
use byollm_api::types::{Enforcement, LlmSettings};
use byollm_gateway::plan;
use clap::{Args, Subcommand};

use super::table::Table;
use crate::out;

/// Parses a switch. Every boolean flag of the CLI is spelled `on|off`; the
/// other spellings (`true|false`, `yes|no`) are accepted with a hint on stderr,
/// so an old script keeps working and its author learns the one spelling.
pub fn parse_switch(s: &str) -> Result<bool, String> {
    let (value, canonical) = match s {
        "on" => return Ok(true),
        "off" => return Ok(false),
        "true" | "yes" => (true, "on"),
        "false" | "no" => (false, "off"),
        _ => return Err(format!("expected on or off, not `{s}`")),
    };
    out::err(&format!(
        "hint: `{s}` read as `{canonical}`; byollm's switches are spelled on|off"
    ));
    Ok(value)
}

/// `byollm settings …`.
#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show the settings.
    Get,
    /// Change some settings (admins).
    Set(SetArgs),
    /// Replace the whole document with a JSON file (`-` for stdin; admins).
    Put {
        /// The settings document.
        file: String,
    },
}

/// `byollm settings set` flags; each changes one field.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Route through the team's Amazon Bedrock.
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    bedrock: Option<bool>,
    /// The team's IAM role (`null` clears it).
    #[arg(long, value_name = "ARN")]
    role_arn: Option<String>,
    /// The team's Bedrock region (`null` clears it).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// enforce (every member through Bedrock) or respect_user_setting (members opt in).
    #[arg(long, value_name = "MODE")]
    enforcement: Option<String>,
    /// Models absent from `models` stay off Bedrock.
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    opt_out_of_new_models: Option<bool>,
    /// Allow the direct APIs (Anthropic, OpenAI).
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    direct_api: Option<bool>,
    /// Let a request Bedrock cannot serve fall back to the direct API.
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    fallback_outside_cloud: Option<bool>,
    /// Session tags in identity tokens (the trust policy then needs sts:TagSession).
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    session_tags: Option<bool>,
    /// A source identity in identity tokens (needs sts:SetSourceIdentity).
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    source_identity: Option<bool>,
    /// Let run workload tokens mint identity tokens (worker-side STS).
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    worker_identity_tokens: Option<bool>,
    /// The subject template: scoped_principal[,run_id].
    #[arg(long, value_name = "T,…", value_delimiter = ',')]
    subject_template: Option<Vec<String>>,
    /// The audiences tokens may be minted for.
    #[arg(long, value_name = "AUD,…", value_delimiter = ',')]
    token_audiences: Option<Vec<String>>,
    /// Route one model through Bedrock or not: ID=on|off (repeatable).
    #[arg(long, value_name = "ID=on|off")]
    model_bedrock: Vec<String>,
    /// One model's Bedrock inference profile: ID=PROFILE-ID, or ID=null for the
    /// catalog's (repeatable).
    #[arg(long, value_name = "ID=REF")]
    model_ref: Vec<String>,
    /// Allow one model on the direct API or not: ID=on|off (repeatable).
    #[arg(long, value_name = "ID=on|off")]
    model_direct: Vec<String>,
}

fn nullable(v: &str) -> Option<String> {
    (v != "null").then(|| v.to_owned())
}

fn pair<'a>(flag: &str, v: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    v.split_once('=')
        .filter(|(id, _)| !id.is_empty())
        .ok_or_else(|| anyhow!("--{flag} {v}: expected ID=VALUE"))
}

fn apply(s: &mut LlmSettings, a: SetArgs) -> anyhow::Result<()> {
    let b = &mut s.hosts.aws_bedrock;
    if let Some(v) = a.bedrock {
        b.enabled = v;
    }
    if let Some(v) = &a.role_arn {
        b.role_arn = nullable(v);
    }
    if let Some(v) = &a.region {
        b.region = nullable(v);
    }
    if let Some(v) = &a.enforcement {
        b.enforcement = serde_json::from_value::<Enforcement>(serde_json::json!(v))
            .map_err(|_| anyhow!("--enforcement {v}: expected enforce or respect_user_setting"))?;
    }
    if let Some(v) = a.opt_out_of_new_models {
        b.opt_out_of_new_models = v;
    }
    if let Some(v) = a.direct_api {
        s.hosts.direct_api.enabled = v;
    }
    if let Some(v) = a.fallback_outside_cloud {
        s.allow_fallback_outside_cloud = v;
    }
    if let Some(v) = a.session_tags {
        s.session_tags = v;
    }
    if let Some(v) = a.source_identity {
        s.source_identity = v;
    }
    if let Some(v) = a.worker_identity_tokens {
        s.worker_identity_tokens = v;
    }
    if let Some(v) = a.subject_template {
        s.subject_template = v;
    }
    if let Some(v) = a.token_audiences {
        s.token_audiences = v;
    }
    for v in &a.model_bedrock {
        let (id, on) = pair("model-bedrock", v)?;
        let on = parse_switch(on).map_err(|e| anyhow!("--model-bedrock {v}: {e}"))?;
        s.models
            .entry(id.to_owned())
            .or_default()
            .aws_bedrock
            .enabled = on;
    }
    for v in &a.model_ref {
        let (id, r) = pair("model-ref", v)?;
        s.models
            .entry(id.to_owned())
            .or_default()
            .aws_bedrock
            .model_ref = nullable(r);
    }
    for v in &a.model_direct {
        let (id, on) = pair("model-direct", v)?;
        let on = parse_switch(on).map_err(|e| anyhow!("--model-direct {v}: {e}"))?;
        s.models
            .entry(id.to_owned())
            .or_default()
            .direct_api
            .enabled = on;
    }
    Ok(())
}

fn on(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

fn print(s: &LlmSettings) {
    let b = &s.hosts.aws_bedrock;
    let enforcement = serde_json::to_value(b.enforcement)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut t = Table::new(&["setting", "value"]);
    t.row(["aws_bedrock", on(b.enabled)]);
    t.row(["  role_arn", b.role_arn.as_deref().unwrap_or("-")]);
    t.row(["  region", b.region.as_deref().unwrap_or("-")]);
    t.row(["  enforcement", &enforcement]);
    t.row(["  opt_out_of_new_models", on(b.opt_out_of_new_models)]);
    t.row(["direct_api", on(s.hosts.direct_api.enabled)]);
    t.row([
        "allow_fallback_outside_cloud",
        on(s.allow_fallback_outside_cloud),
    ]);
    t.row(["subject_template", &s.subject_template.join(",")]);
    t.row(["session_tags", on(s.session_tags)]);
    t.row(["source_identity", on(s.source_identity)]);
    t.row(["worker_identity_tokens", on(s.worker_identity_tokens)]);
    t.row(["token_audiences", &s.token_audiences.join(",")]);
    t.print();
    out::line("");
    routing_table(s).print();
}

/// Per-model routing: for every model of the catalog, whether the team's
/// settings send it to Bedrock (and through which profile) and whether the
/// direct API may serve it, by the gateway's own rules (`plan`), so what this
/// shows is what requests do.
fn routing_table(s: &LlmSettings) -> Table {
    let bedrock_on = s.hosts.aws_bedrock.enabled;
    let direct_on = s.hosts.direct_api.enabled;
    let mut t = Table::new(&["model", "bedrock", "profile", "direct_api"]);
    for m in Catalog::builtin().by_rank() {
        let overrides = s.models.get(&m.id);
        let bedrock = if m.bedrock.is_none() {
            "- (not on Bedrock)"
        } else if !plan::bedrock_enabled(s, m) {
            "off"
        } else if bedrock_on {
            "on"
        } else {
            "on (aws_bedrock off)"
        };
        let profile = match overrides.and_then(|h| h.aws_bedrock.model_ref.as_deref()) {
            _ if !plan::bedrock_enabled(s, m) => "-",
            Some(r) => r,
            None => "(catalog)",
        };
        let direct = if m.direct_api_id.is_none() {
            "-"
        } else if overrides.is_some_and(|h| !h.direct_api.enabled) {
            "off"
        } else if direct_on {
            "on"
        } else {
            "on (direct_api off)"
        };
        t.row([m.id.as_str(), bedrock, profile, direct]);
    }
    t
}

/// Runs one `byollm settings` command.
pub async fn run(c: &Client, json: bool, cmd: SettingsCommand) -> anyhow::Result<()> {
    let s = match cmd {
        SettingsCommand::Get => c.llm_settings().await?,
        SettingsCommand::Set(args) => {
            let old = c.llm_settings().await?;
            let mut new = old.clone();
            apply(&mut new, args)?;
            let patch = byollm_core::merge_patch::diff(
                &serde_json::to_value(&old)?,
                &serde_json::to_value(&new)?,
            );
            c.patch_llm_settings(&patch).await?
        }
        SettingsCommand::Put { file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            if text.trim().is_empty() {
                bail!("{file} is empty");
            }
            let doc: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
            c.put_llm_settings_document(&doc).await?
        }
    };
    if json {
        return out::json(&s);
    }
    print(&s);
    Ok(())
}
