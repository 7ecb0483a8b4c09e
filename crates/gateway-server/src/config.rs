//! The config file: LiteLLM's `config.yaml` format, read, resolved and
//! validated into plain structs the libraries take.
//!
//! Loading is a pipeline: read the YAML; merge `include:` files; resolve
//! `environment_variables`; replace every `os.environ/NAME` string (in
//! mappings, and mappings inside lists) with the variable's value; deserialize
//! into typed sections, keeping unknown keys aside; turn each `model_list`
//! entry into a [`DeploymentConfig`]. Every error names the key's path
//! (`model_list[2].litellm_params.api_key: environment variable OPENAI_API_KEY
//! is not set`). Keys the gateway does not support are collected as
//! [`ConfigWarning`]s, logged once at start, never silently ignored.

mod budget;
mod model;
mod router;

pub use budget::{BudgetSettings, ConfigKey, DEFAULT_DATABASE_PATH};
pub use router::{RetryPolicyConfig, RoutingConfig};

pub(crate) use model::is_litellm_provider;
use model::{deployment_config, RawModel, Seconds};

use gateway_providers::{Env, ProviderSpec};
use gateway_types::Secret;
use serde::Deserialize;
use serde_norway::{Mapping, Value as Yaml};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The quickstart config, embedded so the binary runs with no file at all.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../examples/quickstart.yaml");

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// One entry per `model_list` item, in file order.
    pub deployments: Vec<DeploymentConfig>,
    /// `router_settings` merged over the router keys of `litellm_settings`.
    pub router: RouterConfig,
    /// `general_settings`.
    pub general: GeneralConfig,
    /// `litellm_settings` the gateway uses.
    pub litellm: LitellmConfig,
    /// The environment as the config sees it (`environment_variables` first).
    pub env: Env,
    /// Keys present in the file that the gateway does not support.
    pub warnings: Vec<ConfigWarning>,
    /// Where the config was read from, so it can be read again on reload;
    /// `None` for config text given without a path.
    pub source: Option<ConfigSource>,
}

/// Where a config came from: enough to load it again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The main file.
    pub path: PathBuf,
    /// The environment `os.environ/` values were read from (before the
    /// file's own `environment_variables`).
    pub env: Env,
    /// Every file read: the main file, then its `include:` files.
    pub files: Vec<PathBuf>,
}

/// One `model_list` entry.
#[derive(Debug, Clone)]
pub struct DeploymentConfig {
    /// The public alias (`model_name`).
    pub model_name: String,
    /// `model_info.id`, or a stable hash of the entry.
    pub id: String,
    /// What the provider factory needs.
    pub provider: ProviderSpec,
    /// `order` (from `litellm_params` or `model_info`); lower is tried first.
    pub order: u32,
    /// `weight` for weighted-random routing.
    pub weight: Option<f64>,
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Whole-call timeout.
    pub timeout: Option<Duration>,
    /// Time-to-first-chunk timeout.
    pub stream_timeout: Option<Duration>,
    /// Routing tags.
    pub tags: Vec<String>,
    /// `model_info.mode` (`chat`, `embedding`, ...).
    pub mode: Option<String>,
    /// `model_info.max_input_tokens`.
    pub max_input_tokens: Option<u64>,
    /// `model_info.max_tokens` / `max_output_tokens`.
    pub max_output_tokens: Option<u64>,
    /// Price per input token in USD.
    pub input_cost_per_token: Option<f64>,
    /// Price per output token in USD.
    pub output_cost_per_token: Option<f64>,
    /// `model_info.system_prompt`, prepended to every request.
    pub system_prompt: Option<String>,
    /// `model_info.access_groups`.
    pub access_groups: Vec<String>,
    /// `num_retries` for this deployment.
    pub num_retries: Option<u32>,
    /// `cooldown_time` for this deployment.
    pub cooldown_time: Option<Duration>,
}

/// Router settings the gateway reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterConfig {
    /// `routing_strategy`, as written.
    pub routing_strategy: Option<String>,
    /// `num_retries`.
    pub num_retries: Option<u32>,
    /// `timeout` (else `litellm_settings.request_timeout`).
    pub timeout: Option<Duration>,
    /// `stream_timeout`.
    pub stream_timeout: Option<Duration>,
    /// Retries, fallbacks and cooldowns.
    pub routing: RoutingConfig,
    /// Every other `router_settings` key, for the router to interpret.
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `general_settings` the gateway reads.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneralConfig {
    /// The admin key; `None` means auth is off.
    pub master_key: Option<Secret>,
    /// Largest request body accepted.
    pub max_request_bytes: usize,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// `database_url` (else `DATABASE_URL`).
    pub database_url: Option<Secret>,
    /// `log_request_bodies`: log request bodies (keys redacted) in the
    /// request log line. Off by default; a debugging aid.
    pub log_request_bodies: bool,
    /// Keys, budgets, the store and spend logs.
    pub budget: BudgetSettings,
    /// Every other `general_settings` key.
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Default for GeneralConfig {
    fn default() -> Self {
        Self {
            master_key: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_MB * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            database_url: None,
            log_request_bodies: false,
            budget: BudgetSettings::default(),
            other: BTreeMap::new(),
        }
    }
}

/// `litellm_settings` the gateway reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LitellmConfig {
    /// Drop parameters a provider cannot take instead of failing.
    pub drop_params: bool,
    /// `require_auth_for_metrics_endpoint`: `/metrics` needs the master key
    /// (it is open by default, as in LiteLLM).
    pub require_auth_for_metrics_endpoint: bool,
    /// Every other `litellm_settings` key.
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A key the gateway read but does not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The key's path, e.g. `litellm_settings.cache`.
    pub path: String,
    /// What the gateway does with it.
    pub message: String,
}

/// Why a config could not be loaded. The message always names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid YAML.
    #[error("{path}: invalid YAML: {reason}")]
    Yaml {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// A key has an invalid value.
    #[error("{path}: {reason}")]
    Invalid {
        /// The key's path.
        path: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Default `max_request_size_mb`.
pub const DEFAULT_MAX_REQUEST_MB: usize = 4;

impl GatewayConfig {
    /// Loads a config file, reading `os.environ/` values from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        Self::parse(&text, Some(path), Env::process())
    }

    /// Parses config text. `path` locates `include:` files and names the file
    /// in errors; `env` supplies `os.environ/` values.
    pub fn parse(text: &str, path: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let name = path.map_or_else(|| "config".to_owned(), |p| p.display().to_string());
        let mut root = parse_yaml(text, &name)?;
        if root.is_null() {
            return Err(invalid(
                name,
                "the config is empty; see examples/quickstart.yaml",
            ));
        }
        let Some(mapping) = root.as_mapping_mut() else {
            return Err(invalid(
                name,
                "the config must be a mapping of sections (model_list, router_settings, ...)",
            ));
        };
        let base_dir = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let included = merge_includes(mapping, &base_dir)?;
        let source = path.map(|path| ConfigSource {
            path: path.to_path_buf(),
            env: env.clone(),
            files: std::iter::once(path.to_path_buf())
                .chain(included)
                .collect(),
        });

        // environment_variables first, so os.environ/ elsewhere sees them.
        let mut overlay = BTreeMap::new();
        if let Some(variables) = mapping.get_mut("environment_variables") {
            resolve_env(variables, "environment_variables", &env)?;
            let Some(variables) = variables.as_mapping() else {
                return Err(invalid(
                    "environment_variables",
                    "must be a mapping of NAME: value",
                ));
            };
            for (key, value) in variables {
                let Some(key) = key.as_str() else {
                    return Err(invalid(
                        "environment_variables",
                        "variable names must be strings",
                    ));
                };
                let value = match value {
                    Yaml::String(text) => text.clone(),
                    Yaml::Number(number) => number.to_string(),
                    Yaml::Bool(flag) => flag.to_string(),
                    _ => {
                        return Err(invalid(
                            format!("environment_variables.{key}"),
                            "must be a string, number or boolean",
                        ))
                    }
                };
                overlay.insert(key.to_owned(), value);
            }
        }
        let env = env.with_overlay(overlay);
        resolve_env(&mut root, "", &env)?;

        let raw: RawConfig = deserialize(root)?;
        let mut warnings = Vec::new();
        for key in raw.unknown.keys() {
            warnings.push(ConfigWarning {
                path: key.clone(),
                message: "unknown top-level section; ignored".to_owned(),
            });
        }
        let litellm = litellm_config(raw.litellm_settings, &mut warnings);
        let general = general_config(raw.general_settings, &env, &mut warnings)?;
        let router = router_config(raw.router_settings, &litellm, &mut warnings)?;
        let deployments = raw
            .model_list
            .into_iter()
            .enumerate()
            .map(|(index, model)| deployment_config(model, index, &litellm, &mut warnings))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            deployments,
            router,
            general,
            litellm,
            env,
            warnings,
            source,
        })
    }

    /// Loads the config again from where it came from (same file, same
    /// environment). `None` when it was not read from a file.
    pub fn reread(&self) -> Option<Result<Self, ConfigError>> {
        let source = self.source.as_ref()?;
        Some(
            read(&source.path)
                .and_then(|text| Self::parse(&text, Some(&source.path), source.env.clone())),
        )
    }

    /// The embedded quickstart config (mock models, no keys).
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::parse(EMBEDDED_DEFAULT, None, Env::process())
    }

    /// The model aliases, in file order, without duplicates.
    pub fn model_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for deployment in &self.deployments {
            if !names.contains(&deployment.model_name.as_str()) {
                names.push(&deployment.model_name);
            }
        }
        names
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        reason: error.to_string(),
    })
}

fn parse_yaml(text: &str, name: &str) -> Result<Yaml, ConfigError> {
    serde_norway::from_str(text).map_err(|error| ConfigError::Yaml {
        path: name.to_owned(),
        reason: error.to_string(),
    })
}

/// `include: [a.yaml]`: top-level merge, lists concatenated, other values
/// replaced; one level deep, paths relative to the main file.
fn merge_includes(mapping: &mut Mapping, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let Some(includes) = mapping.remove("include") else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    let Some(includes) = includes.as_sequence().cloned() else {
        return Err(invalid("include", "must be a list of file paths"));
    };
    for (index, include) in includes.iter().enumerate() {
        let Some(relative) = include.as_str() else {
            return Err(invalid(format!("include[{index}]"), "must be a file path"));
        };
        let path: PathBuf = base_dir.join(relative);
        let text = read(&path)?;
        let included = parse_yaml(&text, &path.display().to_string())?;
        files.push(path.clone());
        let Yaml::Mapping(included) = included else {
            return Err(invalid(
                format!("include[{index}]"),
                "the included file must be a mapping",
            ));
        };
        for (key, value) in included {
            if key.as_str() == Some("include") {
                continue;
            }
            match (mapping.get_mut(&key), value) {
                (Some(Yaml::Sequence(existing)), Yaml::Sequence(more)) => existing.extend(more),
                (_, value) => {
                    mapping.insert(key, value);
                }
            }
        }
    }
    Ok(files)
}

/// Replaces `os.environ/NAME` strings in mappings (and mappings in lists).
/// Plain strings directly inside lists are left alone, as LiteLLM does.
fn resolve_env(value: &mut Yaml, path: &str, env: &Env) -> Result<(), ConfigError> {
    match value {
        Yaml::Mapping(mapping) => {
            for (key, child) in mapping.iter_mut() {
                let key = key
                    .as_str()
                    .map_or_else(|| format!("{key:?}"), str::to_owned);
                let child_path = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                if let Yaml::String(text) = child {
                    if let Some(name) = text.strip_prefix("os.environ/") {
                        let Some(resolved) = env.get(name) else {
                            return Err(invalid(
                                child_path,
                                format!("environment variable {name} is not set"),
                            ));
                        };
                        *child = Yaml::String(resolved);
                        continue;
                    }
                }
                resolve_env(child, &child_path, env)?;
            }
        }
        Yaml::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                if item.is_mapping() || item.is_sequence() {
                    resolve_env(item, &format!("{path}[{index}]"), env)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn deserialize<T: serde::de::DeserializeOwned>(value: Yaml) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." {
            "config".to_owned()
        } else {
            path
        };
        invalid(path, error.into_inner().to_string())
    })
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    model_list: Vec<RawModel>,
    #[serde(default)]
    router_settings: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    litellm_settings: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    general_settings: BTreeMap<String, serde_json::Value>,
    #[serde(default, rename = "environment_variables")]
    _environment_variables: Option<Yaml>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Yaml>,
}

fn take<T: serde::de::DeserializeOwned>(
    map: &mut BTreeMap<String, serde_json::Value>,
    section: &str,
    key: &str,
) -> Result<Option<T>, ConfigError> {
    match map.remove(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|error| invalid(format!("{section}.{key}"), error.to_string())),
    }
}

fn take_seconds(
    map: &mut BTreeMap<String, serde_json::Value>,
    section: &str,
    key: &str,
) -> Result<Option<Duration>, ConfigError> {
    take::<Seconds>(map, section, key)?
        .map(|seconds| seconds.to_duration(&format!("{section}.{key}")))
        .transpose()
}

/// `litellm_settings` keys this gateway acts on, or hands to the router.
const LITELLM_ROUTER_KEYS: &[&str] = &[
    "num_retries",
    "request_timeout",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "default_fallbacks",
    "allowed_fails",
];

fn litellm_config(
    mut map: BTreeMap<String, serde_json::Value>,
    warnings: &mut Vec<ConfigWarning>,
) -> LitellmConfig {
    let drop_params = matches!(
        map.remove("drop_params"),
        Some(serde_json::Value::Bool(true))
    );
    let require_auth_for_metrics_endpoint = matches!(
        map.remove("require_auth_for_metrics_endpoint"),
        Some(serde_json::Value::Bool(true))
    );
    // `/metrics` is always served, so the `prometheus` callback is built in.
    for key in ["callbacks", "success_callback", "failure_callback"] {
        if let Some(serde_json::Value::Array(names)) = map.get_mut(key) {
            names.retain(|name| name.as_str() != Some("prometheus"));
            if names.is_empty() {
                map.remove(key);
            }
        }
    }
    for key in map.keys() {
        if !LITELLM_ROUTER_KEYS.contains(&key.as_str()) {
            warnings.push(ConfigWarning {
                path: format!("litellm_settings.{key}"),
                message: "not supported by this gateway; ignored".to_owned(),
            });
        }
    }
    LitellmConfig {
        drop_params,
        require_auth_for_metrics_endpoint,
        other: map,
    }
}

/// `router_settings` keys the router implements (besides the typed ones).
const ROUTER_KEYS: &[&str] = &[
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "default_fallbacks",
    "max_fallbacks",
    "allowed_fails",
    "cooldown_time",
    "disable_cooldowns",
    "retry_after",
    "retry_policy",
    "enable_pre_call_checks",
    "enable_tag_filtering",
];

const ROUTING_STRATEGIES: &[&str] = &[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
    "cost-based-routing",
];

fn router_config(
    mut map: BTreeMap<String, serde_json::Value>,
    litellm: &LitellmConfig,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<RouterConfig, ConfigError> {
    let section = "router_settings";
    let routing_strategy: Option<String> = take(&mut map, section, "routing_strategy")?;
    if let Some(strategy) = &routing_strategy {
        if !ROUTING_STRATEGIES.contains(&strategy.as_str()) {
            return Err(invalid(
                format!("{section}.routing_strategy"),
                format!(
                    "unknown strategy `{strategy}`; use one of {}",
                    ROUTING_STRATEGIES.join(", ")
                ),
            ));
        }
    }
    let mut litellm_other = litellm.other.clone();
    let num_retries = match take::<u32>(&mut map, section, "num_retries")? {
        Some(retries) => Some(retries),
        None => take(&mut litellm_other, "litellm_settings", "num_retries")?,
    };
    let timeout = match take_seconds(&mut map, section, "timeout")? {
        Some(timeout) => Some(timeout),
        None => take_seconds(&mut litellm_other, "litellm_settings", "request_timeout")?,
    };
    let stream_timeout = take_seconds(&mut map, section, "stream_timeout")?;
    // Router keys may also be set in litellm_settings; router_settings wins.
    for key in LITELLM_ROUTER_KEYS {
        if let Some(value) = litellm_other.remove(*key) {
            map.entry((*key).to_owned()).or_insert(value);
        }
    }
    let routing = router::routing_config(&mut map)?;
    for key in map.keys() {
        if !ROUTER_KEYS.contains(&key.as_str()) {
            warnings.push(ConfigWarning {
                path: format!("{section}.{key}"),
                message: "not supported by this gateway; ignored".to_owned(),
            });
        }
    }
    Ok(RouterConfig {
        routing_strategy,
        num_retries,
        timeout,
        stream_timeout,
        routing,
        other: map,
    })
}

/// `general_settings` keys read by parts of the gateway other than this loader.
const GENERAL_KEYS: &[&str] = &[];

fn general_config(
    mut map: BTreeMap<String, serde_json::Value>,
    env: &Env,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<GeneralConfig, ConfigError> {
    let section = "general_settings";
    let master_key = take::<String>(&mut map, section, "master_key")?
        .or_else(|| env.get("LITELLM_MASTER_KEY"))
        .filter(|key| !key.is_empty())
        .map(Secret::new);
    let max_request_bytes = match take::<f64>(&mut map, section, "max_request_size_mb")? {
        None => DEFAULT_MAX_REQUEST_MB * 1024 * 1024,
        Some(megabytes) if megabytes.is_finite() && megabytes > 0.0 => {
            (megabytes * 1024.0 * 1024.0) as usize
        }
        Some(_) => {
            return Err(invalid(
                format!("{section}.max_request_size_mb"),
                "must be a positive number",
            ))
        }
    };
    let header_read_timeout =
        take_seconds(&mut map, section, "header_read_timeout")?.unwrap_or(Duration::from_secs(30));
    let database_url = take::<String>(&mut map, section, "database_url")?
        .or_else(|| env.get("DATABASE_URL"))
        .map(Secret::new);
    let log_request_bodies =
        take::<bool>(&mut map, section, "log_request_bodies")?.unwrap_or(false);
    let budget = budget::budget_settings(&mut map, env)?;
    for key in map.keys() {
        if !GENERAL_KEYS.contains(&key.as_str()) {
            warnings.push(ConfigWarning {
                path: format!("{section}.{key}"),
                message: "not supported by this gateway; ignored".to_owned(),
            });
        }
    }
    Ok(GeneralConfig {
        master_key,
        max_request_bytes,
        header_read_timeout,
        database_url,
        log_request_bodies,
        budget,
        other: map,
    })
}

#[cfg(test)]
mod tests;
