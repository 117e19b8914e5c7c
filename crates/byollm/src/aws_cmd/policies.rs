//! `trust-policy`, `permissions-policy` and `setup-script`.

use anyhow::bail;
use byollm_policy::generate::cloudformation::cloudformation;
use byollm_policy::generate::permissions::{INLINE_POLICY_LIMIT, counted_size};
use byollm_policy::generate::script::setup_script as bash_script;
use byollm_policy::generate::terraform::terraform;
use byollm_policy::generate::{
    AccountId, Grant, Issuer, PermissionsOptions, Region, SetupOptions, SubjectTemplate,
    TrustOptions, TrustScope, permissions_policy as gen_permissions, trust_policy as gen_trust,
};

use super::models::resolve_models;
use super::{PermissionsArgs, SetupArgs, SetupFormat, TrustArgs, TrustFlags, note};

fn trust_options(flags: &TrustFlags) -> anyhow::Result<TrustOptions> {
    let issuer = Issuer::parse(&flags.issuer)?;
    if issuer.has_port() {
        note("warning: the issuer URL names a port; IAM advises provider URLs without one");
    }
    let mut opts = TrustOptions::new(issuer, &flags.team, AccountId::parse(&flags.account)?)?;
    opts.scope = flags.scope.parse::<TrustScope>()?;
    opts.session_tags = flags.session_tags;
    opts.source_identity = flags.source_identity;
    opts.subject_template = SubjectTemplate::parse(&flags.subject_template)?;
    Ok(opts)
}

/// The grant for `--model`/`--broad`; the broad default (with a note) when neither.
fn grant(models: &[String], broad: bool, region: Option<&str>) -> anyhow::Result<Grant> {
    if broad {
        return Ok(Grant::Broad);
    }
    if models.is_empty() {
        note(
            "note: no --model given, so the permissions policy is the broad documented default \
             (every Bedrock model and inference profile); name the team's models for least privilege",
        );
        return Ok(Grant::Broad);
    }
    let Some(region) = region else {
        bail!("--region is required with --model (the inference profiles' source region)");
    };
    Ok(Grant::Models(resolve_models(models, region)?))
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

/// `byollm aws trust-policy`.
pub(super) fn trust_policy(args: &TrustArgs) -> anyhow::Result<String> {
    let opts = trust_options(&args.trust)?;
    note(&opts.scope_note());
    Ok(gen_trust(&opts)?.to_json_pretty())
}

/// `byollm aws permissions-policy`.
pub(super) fn permissions_policy(args: &PermissionsArgs) -> anyhow::Result<String> {
    Region::parse(&args.region)?;
    let grant = grant(&args.models, args.broad, Some(&args.region))?;
    let opts = permissions_options(&args.account, Some(&args.region), grant)?;
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
    let trust = trust_options(&args.trust)?;
    note(&trust.scope_note());
    let region = args.region.as_deref();
    if let Some(r) = region {
        Region::parse(r)?;
    }
    let grant = grant(&args.models, args.broad, region)?;
    let permissions = permissions_options(&args.trust.account, region, grant)?;
    warn_size(&gen_permissions(&permissions)?.to_json_pretty());
    let opts = SetupOptions::new(trust, permissions, &args.role_name)?;
    Ok(match args.format {
        SetupFormat::Bash => bash_script(&opts)?,
        SetupFormat::Terraform => terraform(&opts)?,
        SetupFormat::Cloudformation => cloudformation(&opts)?,
    })
}
