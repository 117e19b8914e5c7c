//! The last step: one `InvokeModel` with `max_tokens: 1` on the role's
//! credentials, in the configured region, with the inference profile the
//! gateway would use (the team's `model_ref` override, else the catalog's
//! default profile for the region), and what each Bedrock refusal means.

use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::primitives::Blob;
use byollm_api::catalog::{Catalog, Family, destination_regions};
use byollm_api::types::LlmSettings;
use byollm_federation::aws::TemporaryCredentials;
use secrecy::ExposeSecret as _;

use super::walk::{Ctx, Options, fail};
use super::{Cause, Diagnosis, StepName};

/// The model and profile to call.
#[derive(Debug, Clone)]
pub(super) struct Choice {
    pub model: String,
    pub base_model_id: String,
    pub profile: String,
    pub geo: Option<String>,
    pub overridden: bool,
}

fn bedrock_enabled(settings: &LlmSettings, id: &str) -> bool {
    match settings.models.get(id) {
        Some(h) => h.aws_bedrock.enabled,
        None => !settings.hosts.aws_bedrock.opt_out_of_new_models,
    }
}

/// `--model`, else the highest-ranked Claude model the team names in its
/// settings and routes through Bedrock, else the highest-ranked one it routes
/// there; with its profile.
pub(super) fn choose_model(
    settings: &LlmSettings,
    wanted: Option<&str>,
    region: &str,
) -> Result<Choice, String> {
    let catalog = Catalog::builtin();
    let model = match wanted {
        Some(id) => catalog
            .get(id)
            .ok_or_else(|| format!("{id} is not in the model catalog"))?,
        None => {
            let usable: Vec<_> = catalog
                .by_rank()
                .into_iter()
                .filter(|m| {
                    m.family == Family::Anthropic
                        && m.bedrock.is_some()
                        && bedrock_enabled(settings, &m.id)
                })
                .collect();
            // A model the admin named in the settings is the one the team uses
            // (and the one a least-privilege policy grants).
            usable
                .iter()
                .find(|m| settings.models.contains_key(&m.id))
                .or(usable.first())
                .copied()
                .ok_or("the team routes no Claude model through Bedrock")?
        }
    };
    let bedrock = model
        .bedrock
        .as_ref()
        .ok_or_else(|| format!("{} is not served by Amazon Bedrock", model.id))?;
    let override_ref = settings
        .models
        .get(&model.id)
        .and_then(|h| h.aws_bedrock.model_ref.clone());
    let (profile, geo, overridden) = match override_ref {
        Some(r) => (r, None, true),
        None => {
            let p = bedrock.default_profile(region).ok_or_else(|| {
                format!("{} has no inference profile usable from {region}", model.id)
            })?;
            (p.id, Some(p.geo), false)
        }
    };
    Ok(Choice {
        model: model.id.clone(),
        base_model_id: bedrock.base_model_id.clone(),
        profile,
        geo,
        overridden,
    })
}

/// Calls Bedrock once; `Ok(detail)` or the diagnosis.
pub(super) async fn bedrock_check(
    opts: &Options,
    ctx: &Ctx,
    creds: &TemporaryCredentials,
) -> Result<String, Diagnosis> {
    let s = StepName::Bedrock;
    let choice = choose_model(&ctx.settings, opts.model.as_deref(), &ctx.region).map_err(|e| {
        fail(
            s,
            Cause::ModelNotAvailable,
            e,
            vec![],
            "enable a Claude model for Bedrock in the team's settings, or pass --model",
        )
    })?;
    let mut cfg = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(ctx.region.clone()))
        .credentials_provider(Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_owned(),
            Some(creds.session_token.expose_secret().to_owned()),
            None,
            "byollm-doctor",
        ))
        // One call, one answer: a throttle is a finding, not something to wait out.
        .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled());
    if let Some(url) = &opts.aws_endpoint_url {
        cfg = cfg.endpoint_url(url);
    }
    let client = aws_sdk_bedrockruntime::Client::from_conf(cfg.build());
    let body = serde_json::json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "ping"}],
    });
    let result = client
        .invoke_model()
        .model_id(&choice.profile)
        .content_type("application/json")
        .accept("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await;
    let err = match result {
        Ok(_) => {
            return Ok(format!(
                "InvokeModel {} ({}) in {} answered with max_tokens 1",
                choice.profile, choice.model, ctx.region
            ));
        }
        Err(e) => e,
    };
    let code = err.code().unwrap_or_default().to_owned();
    let message = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{err}"));
    let evidence = vec![format!(
        "Bedrock InvokeModel {} in {}: {code}: {message}",
        choice.profile, ctx.region
    )];
    let regions: Vec<&str> = match &choice.geo {
        Some(g) => destination_regions(g).to_vec(),
        None => vec![ctx.region.as_str()],
    };
    let model = &choice.model;
    let role = super::iam::role_name(&ctx.role_arn).unwrap_or("ROLE");
    Err(match code.as_str() {
        "AccessDeniedException" if message.contains("is not authorized to perform") => {
            let resource = message
                .split_once("on resource: ")
                .map(|(_, r)| r.split_whitespace().next().unwrap_or(r).to_owned())
                .unwrap_or_default();
            fail(
                s,
                Cause::ModelPermissionMissing,
                format!(
                    "the role's permissions policy does not allow {model} through {} (missing: {resource})",
                    choice.profile
                ),
                evidence,
                format!(
                    "an inference profile needs the profile ARN and the foundation-model ARN in every \
                     destination region ({}; a global profile also the region-less ARN with \
                     aws:RequestedRegion = unspecified): byollm aws permissions-policy --account ACCOUNT \
                     --region {} --model {model} > permissions.json; aws iam put-role-policy --role-name \
                     {role} --policy-name byollm-bedrock --policy-document file://permissions.json",
                    regions.join(", "),
                    ctx.region
                ),
            )
        }
        "AccessDeniedException" => fail(
            s,
            Cause::ModelNotEnabled,
            format!(
                "the account has no access to {} ({model}) in {}",
                choice.base_model_id, ctx.region
            ),
            evidence,
            format!(
                "enable model access for {} in the Bedrock console (Model access) in {}; some models \
                 also need an AWS Marketplace subscription or Anthropic's use-case form",
                choice.base_model_id,
                regions.join(", ")
            ),
        ),
        "ValidationException" if message.contains("on-demand throughput") => fail(
            s,
            Cause::NeedsInferenceProfile,
            format!(
                "{} cannot be invoked on demand; Bedrock needs an inference profile id",
                choice.profile
            ),
            evidence,
            format!(
                "set the team's models.{model}.aws_bedrock.model_ref to an inference profile such as \
                 {} (or clear it to use the catalog's default)",
                choose_model(&LlmSettings::default(), Some(model), &ctx.region)
                    .map(|c| c.profile)
                    .unwrap_or_else(|_| format!("us.{}", choice.base_model_id))
            ),
        ),
        "ValidationException" | "ResourceNotFoundException" => fail(
            s,
            Cause::ModelNotAvailable,
            format!(
                "{} is not available in {}{}",
                choice.profile,
                ctx.region,
                if choice.overridden {
                    " (the team's model_ref override)"
                } else {
                    ""
                }
            ),
            evidence,
            "choose a region where the model is offered, or a model_ref whose profile serves this region",
        ),
        "ThrottlingException" | "ServiceQuotaExceededException" | "TooManyRequestsException" => {
            fail(
                s,
                Cause::Throttled,
                format!("Bedrock throttled {} in {}", choice.profile, ctx.region),
                evidence,
                "Bedrock quotas are per model and region (requests and tokens per minute): request an \
                 increase in Service Quotas, use a global or geographic profile to spread load, and keep \
                 max_tokens small (Bedrock reserves quota for it)",
            )
        }
        _ => fail(
            s,
            Cause::BedrockFailed,
            "Bedrock refused the call",
            evidence,
            "see Bedrock's message above",
        ),
    })
}
