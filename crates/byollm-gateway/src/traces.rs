//! Trace attributes of the gateway's spans (`plan`, `attempt`, `upstream`;
//! see `docs/operations.md`): the OpenTelemetry GenAI semantic conventions
//! on the inference (`upstream`) span. The spans themselves are opened where
//! the work happens ([`crate::attempt`]); exporting is `byollm_telemetry`'s.

use byollm_api::catalog::Family;

use crate::plan::Candidate;

/// `gen_ai.system` (OpenTelemetry GenAI conventions) of a route.
pub(crate) fn gen_ai_system(c: &Candidate) -> &'static str {
    match c {
        Candidate::Bedrock { .. } => "aws.bedrock",
        Candidate::Vertex { .. } => "gcp.vertex_ai",
        Candidate::Foundry { family, .. } => match family {
            Family::Openai => "azure.ai.openai",
            Family::Anthropic | Family::Google => "azure.ai.inference",
        },
        Candidate::Direct { family, .. } => match family {
            Family::Anthropic => "anthropic",
            Family::Openai => "openai",
            Family::Google => "gcp.gemini",
        },
    }
}

/// The model id the upstream is asked for (a Bedrock profile or model id,
/// or the vendor's id).
pub(crate) fn upstream_model(c: &Candidate) -> &str {
    match c {
        Candidate::Bedrock { model_ref, .. } | Candidate::Vertex { model_ref, .. } => model_ref,
        Candidate::Foundry { deployment, .. } => deployment,
        Candidate::Direct { direct_id, .. } => direct_id,
    }
}

/// Records a whole answer's usage and stop reason on the current
/// (`upstream`) span.
pub(crate) fn record_usage(input: Option<u64>, output: Option<u64>, finish: Option<&str>) {
    let span = tracing::Span::current();
    if let Some(i) = input {
        span.record("gen_ai.usage.input_tokens", i);
    }
    if let Some(o) = output {
        span.record("gen_ai.usage.output_tokens", o);
    }
    if let Some(f) = finish {
        span.record("gen_ai.response.finish_reasons", f);
    }
}

/// The `finish_reason`s of an OpenAI Chat Completions answer, comma-joined
/// (the exporter writes them as a string array).
pub(crate) fn finish_reasons(v: &serde_json::Value) -> Option<String> {
    let reasons: Vec<&str> = v["choices"]
        .as_array()?
        .iter()
        .filter_map(|c| c["finish_reason"].as_str())
        .collect();
    (!reasons.is_empty()).then(|| reasons.join(","))
}
