//! `trust-policy`, `permissions-policy` and `setup-script`.

use anyhow::{anyhow, bail};
use byollm_api::catalog::{Catalog, ResolveError, RoutedProfile};
use byollm_policy::generate::cloudformation::cloudformation;
use byollm_policy::generate::permissions::{INLINE_POLICY_LIMIT, counted_size};
use byollm_policy::generate::script::setup_script as bash_script;
use byollm_policy::generate::terraform::terraform;
use byollm_policy::generate::{
    AccountId, Grant, Issuer, ModelProfile, PermissionsOptions, Region, SetupOptions,
    SubjectTemplate, TrustOptions, TrustScope, permissions_policy as gen_permissions,
    trust_policy as gen_trust,
};

use super::from_server::ServerView;
use super::{PermissionsArgs, SetupArgs, SetupFormat, TrustArgs, TrustFlags, note};

/// The identity settings: the flags, filled in from the server's view.
fn trust_options(flags: &TrustFlags, view: Option<&ServerView>) -> anyhow::Result<TrustOptions> {
    let missing = |flag: &str| anyhow!("--{flag} is required (or read it with --from-server)");
    let issuer = match (&flags.issuer, view) {
        (Some(i), _) => i.clone(),
        (None, Some(v)) => v.issuer.clone(),
        (None, None) => return Err(missing("issuer")),
    };
    let team = match (&flags.team, view) {
        (Some(t), _) => t.clone(),
        (None, Some(v)) => v.team.clone(),
        (None, None) => return Err(missing("team")),
    };
    let account = match (&flags.account, view) {
        (Some(a), _) => a.clone(),
        (None, Some(v)) => v.account()?,
        (None, None) => return Err(missing("account")),
    };
    let issuer = Issuer::parse(&issuer)?;
    if issuer.has_port() {
        note("warning: the issuer URL names a port; IAM advises provider URLs without one");
    }
    let mut opts = TrustOptions::new(issuer, &team, AccountId::parse(&account)?)?;
    opts.scope = flags.scope.parse::<TrustScope>()?;
    let settings = view.map(|v| &v.settings);
    opts.session_tags = flags.session_tags || settings.is_some_and(|s| s.session_tags);
    opts.source_identity = flags.source_identity || settings.is_some_and(|s| s.source_identity);
    let template = match settings {
        Some(s) if flags.subject_template.is_empty() => &s.subject_template,
        _ => &flags.subject_template,
    };
    opts.subject_template = SubjectTemplate::parse(template)?;
    Ok(opts)
}

/// The grant for `--model`/`--broad`; with neither, the team's routed models
/// under `--from-server`, else the broad default (with a note).
fn grant(
    models: &[String],
    broad: bool,
    region: Option<&str>,
    view: Option<&ServerView>,
) -> anyhow::Result<Grant> {
    if broad {
        return Ok(Grant::Broad);
    }
    let routed;
    let models = match view {
        Some(v) if models.is_empty() => {
            routed = v.models()?;
            &routed
        }
        _ => models,
    };
    if models.is_empty() {
        note(
            "note: no --model given, so the permissions policy is the broad documented default \
             (every Bedrock model and inference profile); name the team's models for least \
             privilege, or read them with --from-server",
        );
        return Ok(Grant::Broad);
    }
    let Some(region) = region else {
        bail!("--region is required with --model (the inference profiles' source region)");
    };
    Ok(Grant::Models(resolve_models(models, region)?))
}

/// `--model` values through the catalog ([`Catalog::resolve_models`]), as
/// the profiles the permissions policy grants.
fn resolve_models(values: &[String], region: &str) -> anyhow::Result<Vec<ModelProfile>> {
    match Catalog::builtin().resolve_models(values, region) {
        Ok(routed) => Ok(routed.into_iter().map(policy_profile).collect()),
        Err(ResolveError::Model { value, message }) => {
            Err(anyhow!(message).context(format!("--model {value}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A catalog profile as the policy generator takes it (the crates share no
/// type: `byollm-api` and `byollm-policy` depend on neither).
fn policy_profile(r: RoutedProfile) -> ModelProfile {
    ModelProfile {
        model_id: r.model_id,
        base_model_id: r.base_model_id,
        profile_id: r.profile_id,
        destination_regions: r.destination_regions,
    }
}

fn permissions_options(
    account: &str,
    region: Option<&str>,
    grant: Grant,
) -> anyhow::Result<PermissionsOptions> {
    Ok(PermissionsOptions {
        account: AccountId::parse(account)?,
        // The broad policy is region-agnostic; any valid name serves when none is given.
        region: Region::parse(region.unwrap_or("us-east-1"))?,
        grant,
    })
}

/// `--region`, else the team's region under `--from-server`.
fn region(flag: Option<&String>, view: Option<&ServerView>) -> anyhow::Result<Option<String>> {
    let r = match (flag, view) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(v)) => Some(v.region()?),
        (None, None) => None,
    };
    if let Some(r) = &r {
        Region::parse(r)?;
    }
    Ok(r)
}

/// `byollm aws trust-policy`.
pub(super) fn trust_policy(args: &TrustArgs) -> anyhow::Result<String> {
    let view = args.trust.from.read()?;
    let opts = trust_options(&args.trust, view.as_ref())?;
    note(&opts.scope_note());
    Ok(gen_trust(&opts)?.to_json_pretty())
}

/// `byollm aws permissions-policy`.
pub(super) fn permissions_policy(args: &PermissionsArgs) -> anyhow::Result<String> {
    let view = args.from.read()?;
    let account = match (&args.account, &view) {
        (Some(a), _) => a.clone(),
        (None, Some(v)) => v.account()?,
        (None, None) => bail!("--account is required (or read it with --from-server)"),
    };
    let region = region(args.region.as_ref(), view.as_ref())?;
    let grant = grant(&args.models, args.broad, region.as_deref(), view.as_ref())?;
    let opts = permissions_options(&account, region.as_deref(), grant)?;
    let doc = gen_permissions(&opts)?.to_json_pretty();
    warn_size(&doc);
    Ok(doc)
}

fn warn_size(doc: &str) {
    let size = counted_size(doc);
    if size > INLINE_POLICY_LIMIT {
        note(&format!(
            "warning: the permissions policy is {size} characters without whitespace, over IAM's \
             {INLINE_POLICY_LIMIT}-character limit for a role's inline policies; enable fewer models or use --broad"
        ));
    }
}

/// `byollm aws setup-script`.
pub(super) fn setup_script(args: &SetupArgs) -> anyhow::Result<String> {
    let view = args.trust.from.read()?;
    let view = view.as_ref();
    let trust = trust_options(&args.trust, view)?;
    note(&trust.scope_note());
    let region = region(args.region.as_ref(), view)?;
    let grant = grant(&args.models, args.broad, region.as_deref(), view)?;
    let permissions = permissions_options(trust.account.as_str(), region.as_deref(), grant)?;
    warn_size(&gen_permissions(&permissions)?.to_json_pretty());
    let role_name = match (&args.role_name, view) {
        (Some(n), _) => n.clone(),
        (None, Some(v)) => v.role_name()?,
        (None, None) => bail!("--role-name is required (or read it with --from-server)"),
    };
    let opts = SetupOptions::new(trust, permissions, &role_name)?;
    Ok(match args.format {
        SetupFormat::Bash => bash_script(&opts)?,
        SetupFormat::Terraform => terraform(&opts)?,
        SetupFormat::Cloudformation => cloudformation(&opts)?,
    })
}
