//! `model_list` entries: the raw YAML shapes and their validation into
//! [`DeploymentConfig`]s.

use super::{invalid, ConfigError, ConfigWarning, DeploymentConfig, LitellmConfig};
use gateway_providers::ProviderSpec;
use gateway_types::{JsonObject, Secret};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    model_name: String,
    litellm_params: RawParams,
    #[serde(default)]
    model_info: RawModelInfo,
}

/// Seconds as an integer or a float.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
pub(super) enum Seconds {
    Int(u64),
    Float(f64),
}

impl Seconds {
    pub(super) fn to_duration(self, path: &str) -> Result<Duration, ConfigError> {
        match self {
            Seconds::Int(seconds) => Ok(Duration::from_secs(seconds)),
            Seconds::Float(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Ok(Duration::from_secs_f64(seconds))
            }
            Seconds::Float(_) => Err(invalid(path, "must be a non-negative number of seconds")),
        }
    }
}

/// A string-to-string map whose values may be numbers in YAML.
#[derive(Deserialize, Default)]
struct HeaderMap(BTreeMap<String, ScalarText>);

#[derive(Deserialize)]
#[serde(untagged)]
enum ScalarText {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl ScalarText {
    fn into_string(self) -> String {
        match self {
            ScalarText::Text(text) => text,
            ScalarText::Int(number) => number.to_string(),
            ScalarText::Float(number) => number.to_string(),
            ScalarText::Bool(flag) => flag.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct RawParams {
    model: String,
    #[serde(default)]
    api_base: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_version: Option<ScalarText>,
    #[serde(default)]
    headers: Option<HeaderMap>,
    #[serde(default)]
    extra_headers: Option<HeaderMap>,
    #[serde(default)]
    extra_body: Option<JsonObject>,
    #[serde(default)]
    timeout: Option<Seconds>,
    #[serde(default)]
    stream_timeout: Option<Seconds>,
    #[serde(default)]
    rpm: Option<u64>,
    #[serde(default)]
    tpm: Option<u64>,
    #[serde(default)]
    order: Option<u32>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    input_cost_per_token: Option<f64>,
    #[serde(default)]
    output_cost_per_token: Option<f64>,
    #[serde(default)]
    num_retries: Option<u32>,
    #[serde(default)]
    cooldown_time: Option<Seconds>,
    #[serde(default)]
    custom_llm_provider: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct RawModelInfo {
    #[serde(default)]
    id: Option<ScalarText>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    max_input_tokens: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    input_cost_per_token: Option<f64>,
    #[serde(default)]
    output_cost_per_token: Option<f64>,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    order: Option<u32>,
    #[serde(default)]
    access_groups: Option<Vec<String>>,
    /// Other model_info keys are informational (LiteLLM echoes them).
    #[serde(flatten)]
    _other: BTreeMap<String, serde_json::Value>,
}

/// Completion parameters that may be set per deployment as defaults.
const COMPLETION_DEFAULTS: &[&str] = &[
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "response_format",
    "reasoning_effort",
    "parallel_tool_calls",
    "logit_bias",
    "user",
];

/// Provider settings the built-in adapters read from `litellm_params`.
const PROVIDER_SETTINGS: &[&str] = &[
    "mock_response",
    "mock_latency_ms",
    "mock_chunk_delay_ms",
    "drop_params",
    "organization",
    "anthropic_version",
    "think",
    "keep_alive",
];

/// `litellm_params` keys accepted and deliberately without effect here.
const IGNORED_PARAMS: &[(&str, &str)] = &[
    (
        "max_retries",
        "provider-SDK retries; the router's num_retries applies",
    ),
    (
        "use_in_pass_through",
        "pass-through endpoints are not supported",
    ),
];

pub(super) fn deployment_config(
    model: RawModel,
    index: usize,
    litellm: &LitellmConfig,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<DeploymentConfig, ConfigError> {
    let path = format!("model_list[{index}]");
    let params_path = format!("{path}.litellm_params");
    let RawModel {
        model_name,
        litellm_params: params,
        model_info: info,
    } = model;
    if model_name.trim().is_empty() {
        return Err(invalid(format!("{path}.model_name"), "must not be empty"));
    }
    let builtin = gateway_providers::ProviderRegistry::builtin();
    let known = |prefix: &str| builtin.knows(prefix) || KNOWN_PREFIXES.contains(&prefix);
    let (prefix, upstream_model) = match &params.custom_llm_provider {
        Some(provider) => (
            provider.clone(),
            params
                .model
                .strip_prefix(&format!("{provider}/"))
                .unwrap_or(&params.model)
                .to_owned(),
        ),
        None => ProviderSpec::split_model(&params.model, params.api_base.is_some(), &known).ok_or_else(|| {
            invalid(
                format!("{params_path}.model"),
                format!(
                    "`{}` has no provider prefix; write it as provider/model, e.g. openai/{}, ollama_chat/{}, mock/{}",
                    params.model, params.model, params.model, params.model
                ),
            )
        })?,
    };
    if upstream_model.is_empty() {
        return Err(invalid(
            format!("{params_path}.model"),
            "the model id after the provider prefix is empty",
        ));
    }

    let mut defaults = JsonObject::new();
    let mut settings = JsonObject::new();
    for (key, value) in params.other {
        if COMPLETION_DEFAULTS.contains(&key.as_str()) {
            defaults.insert(key, value);
        } else if PROVIDER_SETTINGS.contains(&key.as_str()) {
            settings.insert(key, value);
        } else if let Some((_, why)) = IGNORED_PARAMS.iter().find(|(name, _)| *name == key) {
            warnings.push(ConfigWarning {
                path: format!("{params_path}.{key}"),
                message: format!("ignored: {why}"),
            });
        } else {
            warnings.push(ConfigWarning {
                path: format!("{params_path}.{key}"),
                message: "not supported by this gateway; ignored".to_owned(),
            });
        }
    }
    let drop_params = match settings.remove("drop_params") {
        None | Some(serde_json::Value::Null) => litellm.drop_params,
        Some(serde_json::Value::Bool(flag)) => flag,
        Some(_) => {
            return Err(invalid(
                format!("{params_path}.drop_params"),
                "must be true or false",
            ))
        }
    };

    let mut headers = Vec::new();
    for map in [params.headers, params.extra_headers].into_iter().flatten() {
        headers.extend(
            map.0
                .into_iter()
                .map(|(name, value)| (name, value.into_string())),
        );
    }
    let timeout = params
        .timeout
        .map(|seconds| seconds.to_duration(&format!("{params_path}.timeout")))
        .transpose()?;
    let stream_timeout = params
        .stream_timeout
        .map(|seconds| seconds.to_duration(&format!("{params_path}.stream_timeout")))
        .transpose()?;
    let cooldown_time = params
        .cooldown_time
        .map(|seconds| seconds.to_duration(&format!("{params_path}.cooldown_time")))
        .transpose()?;
    if let Some(weight) = params.weight {
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(invalid(
                format!("{params_path}.weight"),
                "must be a non-negative number",
            ));
        }
    }
    let provider = ProviderSpec {
        prefix,
        upstream_model,
        api_base: params.api_base.filter(|base| !base.is_empty()),
        api_key: params
            .api_key
            .filter(|key| !key.is_empty())
            .map(Secret::new),
        api_version: params.api_version.map(ScalarText::into_string),
        headers,
        extra_body: params.extra_body.unwrap_or_default(),
        defaults,
        settings,
        timeout,
        drop_params,
    };
    let id = match info.id {
        Some(id) => id.into_string(),
        None => stable_id(
            &model_name,
            &params.model,
            provider.api_base.as_deref(),
            index,
        ),
    };
    Ok(DeploymentConfig {
        model_name,
        id,
        order: params.order.or(info.order).unwrap_or(0),
        weight: params.weight,
        rpm: params.rpm,
        tpm: params.tpm,
        timeout,
        stream_timeout,
        tags: params.tags.unwrap_or_default(),
        mode: info.mode,
        max_input_tokens: info.max_input_tokens,
        max_output_tokens: info.max_output_tokens.or(info.max_tokens),
        input_cost_per_token: params.input_cost_per_token.or(info.input_cost_per_token),
        output_cost_per_token: params.output_cost_per_token.or(info.output_cost_per_token),
        system_prompt: info.system_prompt,
        access_groups: info.access_groups.unwrap_or_default(),
        num_retries: params.num_retries,
        cooldown_time,
        provider,
    })
}

/// Prefixes LiteLLM knows that are accepted by the parser even when no
/// factory is registered yet, so the error names the provider, not the format.
const KNOWN_PREFIXES: &[&str] = &[
    "anthropic",
    "azure",
    "gemini",
    "ollama",
    "ollama_chat",
    "bedrock",
    "vertex_ai",
    "groq",
    "mistral",
    "deepseek",
    "together_ai",
    "fireworks_ai",
    "xai",
];

/// True for a provider prefix LiteLLM knows, whether or not this gateway
/// ships an adapter for it.
pub(crate) fn is_litellm_provider(prefix: &str) -> bool {
    KNOWN_PREFIXES.contains(&prefix)
}

/// A stable id from the entry's identity: the same entry gets the same id
/// across restarts (FNV-1a, 64 bits, hex).
fn stable_id(model_name: &str, model: &str, api_base: Option<&str>, index: usize) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        model_name,
        model,
        api_base.unwrap_or(""),
        &index.to_string(),
    ] {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}
