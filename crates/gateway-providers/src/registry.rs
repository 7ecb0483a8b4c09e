//! Building providers from configuration: specs, factories and the registry.

use crate::http::HttpClient;
use crate::provider::Provider;
use gateway_types::{JsonObject, Secret};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Everything a factory needs to build one deployment's provider: the
/// validated `litellm_params` of one `model_list` entry.
#[derive(Debug, Clone, Default)]
pub struct ProviderSpec {
    /// The provider prefix (`openai`, `mock`, ...), the text before the first `/`.
    pub prefix: String,
    /// The model id sent upstream (the text after the prefix).
    pub upstream_model: String,
    /// The endpoint, when configured.
    pub api_base: Option<String>,
    /// The credential, when configured.
    pub api_key: Option<Secret>,
    /// Azure's `api-version`.
    pub api_version: Option<String>,
    /// Extra upstream headers (`headers` and `extra_headers`, in that order).
    pub headers: Vec<(String, String)>,
    /// Fields merged into every upstream JSON body, overriding the request's.
    pub extra_body: JsonObject,
    /// Completion parameters configured on the deployment (`max_tokens`,
    /// `temperature`, ...): defaults that the request's own values override.
    pub defaults: JsonObject,
    /// Provider-specific settings not covered above (`mock_latency_ms`, ...).
    pub settings: JsonObject,
    /// The deployment's whole-call timeout, for providers that use it.
    pub timeout: Option<Duration>,
    /// LiteLLM's `drop_params` (global `litellm_settings.drop_params` or the
    /// deployment's own): a request parameter the upstream cannot take is
    /// dropped instead of failing the call with a `BadRequest` naming it.
    pub drop_params: bool,
}

impl ProviderSpec {
    /// Splits `provider/upstream-model`. A model without a known prefix is
    /// inferred (`gpt-*`, `o1*`, `o3*`, `o4*` are OpenAI; `claude-*` Anthropic);
    /// with an `api_base` it is taken as OpenAI-compatible.
    pub fn split_model(
        model: &str,
        has_api_base: bool,
        known: &dyn Fn(&str) -> bool,
    ) -> Option<(String, String)> {
        if let Some((prefix, rest)) = model.split_once('/') {
            if known(prefix) {
                return Some((prefix.to_owned(), rest.to_owned()));
            }
        }
        let inferred = if model.starts_with("gpt-")
            || model.starts_with("o1")
            || model.starts_with("o3")
            || model.starts_with("o4")
            || model.starts_with("text-embedding-")
        {
            Some("openai")
        } else if model.starts_with("claude-") {
            Some("anthropic")
        } else if has_api_base {
            Some("openai")
        } else {
            None
        };
        inferred
            .filter(|prefix| known(prefix))
            .map(|prefix| (prefix.to_owned(), model.to_owned()))
    }
}

/// Environment variables as the config sees them: the config file's
/// `environment_variables` first, then the process environment. Providers
/// read their default endpoint and key from here (`OPENAI_API_KEY`, ...).
#[derive(Debug, Clone, Default)]
pub struct Env {
    overlay: BTreeMap<String, String>,
    use_process: bool,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            overlay: BTreeMap::new(),
            use_process: true,
        }
    }

    /// Only the given variables; the process environment is not read. For tests.
    pub fn isolated(variables: BTreeMap<String, String>) -> Self {
        Self {
            overlay: variables,
            use_process: false,
        }
    }

    /// Adds variables that take precedence over the process environment.
    pub fn with_overlay(mut self, variables: BTreeMap<String, String>) -> Self {
        self.overlay.extend(variables);
        self
    }

    /// Reads a variable. Empty values count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        self.overlay
            .get(name)
            .cloned()
            .or_else(|| {
                if self.use_process {
                    std::env::var(name).ok()
                } else {
                    None
                }
            })
            .filter(|value| !value.is_empty())
    }
}

/// What factories share: the pooled HTTP client and the environment.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The shared upstream client.
    pub http: HttpClient,
    /// Environment variables for provider defaults.
    pub env: Env,
}

/// Why a provider could not be built. The config loader prefixes the
/// deployment's path, so messages say what is wrong with the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No factory is registered for the prefix.
    #[error("unknown provider `{0}`; supported: {1}")]
    UnknownProvider(String, String),
    /// A setting the provider needs is missing.
    #[error("{0}")]
    Missing(String),
    /// A setting has a value the provider cannot use.
    #[error("{0}")]
    Invalid(String),
}

/// Builds providers of one kind. Register one per prefix in a
/// [`ProviderRegistry`].
pub trait ProviderFactory: Send + Sync + Debug + 'static {
    /// Builds one deployment's provider.
    fn build(
        &self,
        spec: &ProviderSpec,
        cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError>;
}

/// Factories by model prefix.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    factories: HashMap<String, Arc<dyn ProviderFactory>>,
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The providers this crate ships: the OpenAI-compatible family,
    /// Anthropic, Ollama, Azure OpenAI, Gemini and the mock.
    pub fn builtin() -> Self {
        let mut registry = Self::new();
        registry.register("anthropic", crate::anthropic::AnthropicFactory);
        registry.register("azure", crate::azure::AzureFactory);
        registry.register("gemini", crate::gemini::GeminiFactory);
        registry.register("ollama", crate::ollama::OllamaFactory);
        registry.register("ollama_chat", crate::ollama::OllamaFactory);
        for flavor in crate::openai::Flavor::ALL {
            registry.register(flavor.prefix(), crate::openai::OpenAiFactory::new(flavor));
        }
        registry.register("mock", crate::mock::MockFactory);
        registry
    }

    /// Registers (or replaces) the factory for `prefix`.
    pub fn register(&mut self, prefix: &str, factory: impl ProviderFactory) {
        self.factories.insert(prefix.to_owned(), Arc::new(factory));
    }

    /// True when a factory is registered for `prefix`.
    pub fn knows(&self, prefix: &str) -> bool {
        self.factories.contains_key(prefix)
    }

    /// The registered prefixes, sorted.
    pub fn prefixes(&self) -> Vec<&str> {
        let mut prefixes: Vec<&str> = self.factories.keys().map(String::as_str).collect();
        prefixes.sort_unstable();
        prefixes
    }

    /// Builds the provider for a spec with the factory of its prefix.
    pub fn build(
        &self,
        spec: &ProviderSpec,
        cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        match self.factories.get(&spec.prefix) {
            Some(factory) => factory.build(spec, cx),
            None => Err(BuildError::UnknownProvider(
                spec.prefix.clone(),
                self.prefixes().join(", "),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(model: &str, has_api_base: bool) -> Option<(String, String)> {
        let known = |prefix: &str| ["openai", "anthropic", "mock", "ollama_chat"].contains(&prefix);
        ProviderSpec::split_model(model, has_api_base, &known)
    }

    #[test]
    fn model_prefixes_are_split_or_inferred() {
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(split("openai/gpt-4o", false), pair("openai", "gpt-4o"));
        assert_eq!(
            split("ollama_chat/llama3:8b", false),
            pair("ollama_chat", "llama3:8b")
        );
        assert_eq!(split("gpt-4o-mini", false), pair("openai", "gpt-4o-mini"));
        assert_eq!(
            split("claude-3-5-sonnet", false),
            pair("anthropic", "claude-3-5-sonnet")
        );
        assert_eq!(
            split("meta-llama/Llama-3-8B", true),
            pair("openai", "meta-llama/Llama-3-8B")
        );
        assert_eq!(split("meta-llama/Llama-3-8B", false), None);
    }

    #[test]
    fn env_overlay_wins_and_empty_is_unset() {
        let env = Env::isolated(BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]));
        assert_eq!(env.get("A").as_deref(), Some("1"));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(env.get("PATH"), None);
    }
}
