//! The last step: one `InvokeModel` with `max_tokens: 1` on the role's
//! credentials for every Claude model the team routes through Bedrock (or the
//! one `--model` names), in the configured region, with the inference profile
//! the gateway would use (the team's `model_ref` override, else the catalog's
//! default profile for the region and, behind a global profile, the geographic
//! profile the gateway falls back to), and what each Bedrock refusal means.
//! Every model is called and reported; the first refusal is the diagnosis.

use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Region};
use aws_sdk_bedrockruntime::error::ProvideErrorMetadata as _;
use aws_sdk_bedrockruntime::primitives::Blob;
use byollm_api::catalog::{Catalog, Family, destination_regions};
use byollm_api::types::LlmSettings;
use byollm_federation::aws::TemporaryCredentials;
use byollm_policy::generate::DEFAULT_POLICY_NAME;
use secrecy::ExposeSecret as _;

use super::walk::{Ctx, Options, fail};
use super::{Cause, Diagnosis, ModelCheck, Status, StepName};

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

/// `--model`, else every Claude model the team routes through Bedrock, highest
/// ranked first.
pub(super) fn model_ids(settings: &LlmSettings, wanted: Option<&str>) -> Vec<String> {
    match wanted {
        Some(id) => vec![id.to_owned()],
        None => Catalog::builtin()
            .by_rank()
            .into_iter()
            .filter(|m| {
                m.family == Family::Anthropic
                    && m.bedrock.is_some()
                    && bedrock_enabled(settings, &m.id)
            })
            .map(|m| m.id.clone())
            .collect(),
    }
}

/// One model and every profile the gateway would call for it from `region`:
/// the team's override, else the catalog's default profile and, behind a
/// global one, the geographic profile the gateway falls back to.
pub(super) fn choose_model(
    settings: &LlmSettings,
    id: &str,
    region: &str,
) -> Result<Vec<Choice>, String> {
    let model = Catalog::builtin()
        .get(id)
        .ok_or_else(|| format!("{id} is not in the model catalog"))?;
    let bedrock = model
        .bedrock
        .as_ref()
        .ok_or_else(|| format!("{} is not served by Amazon Bedrock", model.id))?;
    let override_ref = settings
        .models
        .get(&model.id)
        .and_then(|h| h.aws_bedrock.model_ref.clone());
    let choice = |profile, geo, overridden| Choice {
        model: model.id.clone(),
        base_model_id: bedrock.base_model_id.clone(),
        profile,
        geo,
        overridden,
    };
    if let Some(r) = override_ref {
        return Ok(vec![choice(r, None, true)]);
    }
    let routed = bedrock.routed_profiles(region);
    if routed.is_empty() {
        return Err(format!(
            "{} has no inference profile usable from {region}",
            model.id
        ));
    }
    Ok(routed
        .into_iter()
        .map(|p| choice(p.id, Some(p.geo), false))
        .collect())
}

/// Calls Bedrock once per model; every model's result, and the first
/// refusal's diagnosis.
pub(super) async fn bedrock_check(
    opts: &Options,
    ctx: &Ctx,
    creds: &TemporaryCredentials,
) -> (Vec<ModelCheck>, Option<Diagnosis>) {
    let s = StepName::Bedrock;
    let ids = model_ids(&ctx.settings, opts.model.as_deref());
    if ids.is_empty() {
        let d = fail(
            s,
            Cause::ModelNotAvailable,
            "the team routes no Claude model through Bedrock",
            vec![],
            "route a model through Bedrock: byollm settings set --model-bedrock MODEL=on",
        );
        return (vec![], Some(d));
    }
    let client = bedrock_client(opts, ctx, creds);
    // A fix rewrites the role's one inline policy: it must keep every routed model.
    let mut all = model_ids(&ctx.settings, None);
    if let Some(m) = &opts.model
        && !all.contains(m)
    {
        all.push(m.clone());
    }
    let all = all.join(",");
    let mut checks = Vec::with_capacity(ids.len());
    let mut first: Option<Diagnosis> = None;
    for id in ids {
        let choices = match choose_model(&ctx.settings, &id, &ctx.region) {
            Ok(choices) => choices,
            Err(e) => {
                checks.push(ModelCheck {
                    cause: Some(Cause::ModelNotAvailable),
                    ..model_check(&id, "", Status::Failed, e.clone())
                });
                first.get_or_insert_with(|| {
                    fail(
                        s,
                        Cause::ModelNotAvailable,
                        e,
                        vec![],
                        "route a model Bedrock serves from this region, or set its model_ref",
                    )
                });
                continue;
            }
        };
        // The geographic fallback is checked too: a grant for the global
        // profile alone would let the gateway's retry be refused by the role.
        for choice in choices {
            match invoke_once(&client, ctx, &choice, &all).await {
                Ok(detail) => checks.push(model_check(
                    &choice.model,
                    &choice.profile,
                    Status::Ok,
                    detail,
                )),
                Err(d) => {
                    checks.push(ModelCheck {
                        cause: Some(d.cause),
                        ..model_check(
                            &choice.model,
                            &choice.profile,
                            Status::Failed,
                            d.summary.clone(),
                        )
                    });
                    first.get_or_insert(d);
                }
            }
        }
    }
    (checks, first)
}

fn model_check(model: &str, profile: &str, status: Status, detail: String) -> ModelCheck {
    ModelCheck {
        model: model.to_owned(),
        profile: profile.to_owned(),
        status,
        detail,
        cause: None,
    }
}

fn bedrock_client(
    opts: &Options,
    ctx: &Ctx,
    creds: &TemporaryCredentials,
) -> aws_sdk_bedrockruntime::Client {
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
    aws_sdk_bedrockruntime::Client::from_conf(cfg.build())
}

/// Calls Bedrock once for `choice`; `Ok(detail)` or the diagnosis.
async fn invoke_once(
    client: &aws_sdk_bedrockruntime::Client,
    ctx: &Ctx,
    choice: &Choice,
    routed: &str,
) -> Result<String, Diagnosis> {
    let s = StepName::Bedrock;
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
                "InvokeModel {} in {} answered with max_tokens 1",
                choice.profile, ctx.region
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
    let account = ctx.role_arn.split(':').nth(4).unwrap_or_default();
    let global = choice.geo.as_deref() == Some("global");
    let where_ = if global {
        "every region (a global profile: also the region-less foundation-model ARN, with \
         aws:RequestedRegion = unspecified)"
            .to_owned()
    } else {
        format!("every destination region ({})", regions.join(", "))
    };
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
                    "an inference profile needs the profile ARN and the foundation-model ARN in \
                     {where_}: byollm aws permissions-policy --account {account} --region {} \
                     --model {routed} > permissions.json; aws iam put-role-policy --role-name {role} \
                     --policy-name {DEFAULT_POLICY_NAME} --policy-document file://permissions.json",
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
                choose_model(&LlmSettings::default(), model, &ctx.region)
                    .ok()
                    .and_then(|c| c.into_iter().next())
                    .map(|c| c.profile)
                    .unwrap_or_else(|| format!("us.{}", choice.base_model_id))
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
