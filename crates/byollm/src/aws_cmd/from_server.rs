//! `--from-server`: the team's identity settings and Bedrock routing, read
//! from the byollm server with the CLI's own key (`BYOLLM_API_KEY` or
//! `byollm login`), so the generated policies admit exactly the team's tokens
//! and grant exactly the models the team routes through Bedrock (issue: the
//! guide's two-model policy against a seven-model routing left the doctor
//! failing). A flag given on the command line still wins over the server's value.

use anyhow::{Context as _, bail};
use byollm_api::catalog::{Catalog, Family};
use byollm_api::types::LlmSettings;
use serde_json::Value;

/// What the server says about the team.
#[derive(Debug)]
pub(crate) struct ServerView {
    /// The issuer tokens carry (`iss`), from the discovery document.
    pub issuer: String,
    /// The key's team.
    pub team: String,
    /// The team's settings.
    pub settings: LlmSettings,
}

/// Reads the team from `server` (default as for every command).
pub(crate) fn read(server: Option<&str>) -> anyhow::Result<ServerView> {
    crate::operator::runtime()?.block_on(async {
        let c = crate::credentials::client(&crate::credentials::server(server))?;
        let me = c
            .me()
            .await
            .context("--from-server: asking the server who the key acts as")?;
        let settings = c
            .llm_settings()
            .await
            .context("--from-server: reading the team's settings")?;
        let discovery = c
            .discovery()
            .await
            .context("--from-server: reading the issuer's discovery document")?;
        let issuer = discovery
            .get("issuer")
            .and_then(Value::as_str)
            .context("--from-server: the discovery document names no issuer")?
            .to_owned();
        Ok(ServerView {
            issuer,
            team: me.team.uid,
            settings,
        })
    })
}

impl ServerView {
    /// The team's role ARN, or a message saying how to give one.
    pub fn role_arn(&self) -> anyhow::Result<&str> {
        self.settings.hosts.aws_bedrock.role_arn.as_deref().context(
            "--from-server: the team has no Bedrock role yet; pass --account (and \
                 --role-name), or set it with `byollm settings set --role-arn ARN`",
        )
    }

    /// The account of the team's role ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
    pub fn account(&self) -> anyhow::Result<String> {
        let arn = self.role_arn()?;
        arn.split(':')
            .nth(4)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .with_context(|| format!("--from-server: the team's role `{arn}` is not a role ARN"))
    }

    /// The name of the team's role (the last path segment of the ARN).
    pub fn role_name(&self) -> anyhow::Result<String> {
        let arn = self.role_arn()?;
        arn.split_once(":role/")
            .and_then(|(_, path)| path.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .with_context(|| format!("--from-server: the team's role `{arn}` is not a role ARN"))
    }

    /// The team's Bedrock region, or a message saying how to give one.
    pub fn region(&self) -> anyhow::Result<String> {
        self.settings.hosts.aws_bedrock.region.clone().context(
            "--from-server: the team has no Bedrock region yet; pass --region, or set it with \
             `byollm settings set --region REGION`",
        )
    }

    /// The `--model` values for what the team routes through Bedrock: every
    /// Claude model the gateway's routing sends there (`plan::bedrock_enabled`),
    /// with the team's `model_ref` override as `ID=REF`.
    pub fn models(&self) -> anyhow::Result<Vec<String>> {
        let s = &self.settings;
        if !s.hosts.aws_bedrock.enabled {
            super::note(
                "note: Bedrock is off for the team; the policy grants what the team's routing \
                 sends to Bedrock once it is on (`byollm settings set --bedrock on`)",
            );
        }
        let models: Vec<String> = Catalog::builtin()
            .by_rank()
            .into_iter()
            .filter(|m| {
                m.family == Family::Anthropic && byollm_gateway::plan::bedrock_enabled(s, m)
            })
            .map(|m| {
                match s
                    .models
                    .get(&m.id)
                    .and_then(|h| h.aws_bedrock.model_ref.as_deref())
                {
                    Some(r) => format!("{}={r}", m.id),
                    None => m.id.clone(),
                }
            })
            .collect();
        if models.is_empty() {
            bail!(
                "--from-server: the team routes no model through Bedrock (see `byollm settings \
                 get`); enable some with `byollm settings set --model-bedrock ID=on`"
            );
        }
        super::note(&format!(
            "note: granting the {} model(s) the team routes through Bedrock: {}",
            models.len(),
            models.join(", ")
        ));
        Ok(models)
    }
}
