//! The running gateway: the config in force, the router built from it, and
//! request dispatch.

use crate::config::{ConfigError, GatewayConfig};
use bytes::Bytes;
use gateway_providers::{BuildContext, HttpClient, HttpClientOptions, ProviderRegistry};
use gateway_router::{
    Deployment, DeploymentSettings, FallbackMap, RetryPolicy, Router, RouterSettings,
    RoutingStrategy,
};
use gateway_types::{DeploymentId, ModelList, ModelName, ModelObject};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The gateway: everything a request needs, swappable as a whole.
///
/// Requests take a snapshot ([`Runtime`]) at their start and finish on it,
/// so a later config swap never changes a request in flight.
#[derive(Debug)]
pub struct Gateway {
    runtime: RwLock<Arc<Runtime>>,
}

/// One immutable generation of configuration: the config, the router built
/// from it, and responses derived from it once instead of per request.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) config: GatewayConfig,
    pub(crate) router: Router,
    /// `GET /v1/models`, encoded once.
    pub(crate) models_json: Bytes,
}

impl Gateway {
    /// Builds a gateway with the built-in providers and a new HTTP client.
    pub fn from_config(config: GatewayConfig) -> Result<Self, ConfigError> {
        let http = HttpClient::new(&HttpClientOptions::default());
        Self::build(config, &ProviderRegistry::builtin(), http)
    }

    /// Builds a gateway with the given provider registry (to add providers
    /// from other crates) and HTTP client.
    pub fn build(
        config: GatewayConfig,
        registry: &ProviderRegistry,
        http: HttpClient,
    ) -> Result<Self, ConfigError> {
        let runtime = Runtime::build(config, registry, http)?;
        Ok(Self {
            runtime: RwLock::new(Arc::new(runtime)),
        })
    }

    /// The config in force.
    pub fn config(&self) -> GatewayConfig {
        self.runtime().config.clone()
    }

    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(guard) => Arc::clone(&guard),
            // A panic while holding the lock cannot leave the Arc half-written.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl Runtime {
    fn build(
        config: GatewayConfig,
        registry: &ProviderRegistry,
        http: HttpClient,
    ) -> Result<Self, ConfigError> {
        let cx = BuildContext {
            http,
            env: config.env.clone(),
        };
        let mut deployments = Vec::with_capacity(config.deployments.len());
        for (index, deployment) in config.deployments.iter().enumerate() {
            let provider = registry.build(&deployment.provider, &cx).map_err(|error| {
                ConfigError::Invalid {
                    path: format!("model_list[{index}].litellm_params"),
                    reason: error.to_string(),
                }
            })?;
            deployments.push(Deployment {
                id: DeploymentId::new(deployment.id.as_str()),
                model_name: ModelName::new(deployment.model_name.as_str()),
                provider,
                settings: DeploymentSettings {
                    order: deployment.order,
                    weight: deployment.weight.unwrap_or(1.0),
                    rpm: deployment.rpm,
                    tpm: deployment.tpm,
                    timeout: deployment.timeout,
                    stream_timeout: deployment.stream_timeout,
                    tags: deployment.tags.clone(),
                    max_input_tokens: deployment.max_input_tokens,
                    input_cost_per_token: deployment.input_cost_per_token,
                    output_cost_per_token: deployment.output_cost_per_token,
                    system_prompt: deployment.system_prompt.clone(),
                    cooldown_time: deployment.cooldown_time,
                    num_retries: deployment.num_retries,
                },
            });
        }
        let strategy = match config.router.routing_strategy.as_deref() {
            None | Some("simple-shuffle") => RoutingStrategy::SimpleShuffle,
            Some("least-busy") => RoutingStrategy::LeastBusy,
            Some("latency-based-routing") => RoutingStrategy::LatencyBased,
            Some("usage-based-routing" | "usage-based-routing-v2") => RoutingStrategy::UsageBased,
            Some("cost-based-routing") => RoutingStrategy::CostBased,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    path: "router_settings.routing_strategy".to_owned(),
                    reason: format!("unknown strategy `{other}`"),
                })
            }
        };
        let settings = router_settings(&config, strategy);
        let router = Router::new(settings, deployments).map_err(|error| ConfigError::Invalid {
            path: "model_list".to_owned(),
            reason: error.to_string(),
        })?;
        let models = ModelList::new(
            router
                .model_names()
                .iter()
                .map(|name| ModelObject::alias(name.as_str()))
                .collect(),
        );
        let models_json = serde_json::to_vec(&models)
            .map(Bytes::from)
            .unwrap_or_default();
        Ok(Self {
            config,
            router,
            models_json,
        })
    }
}

/// LiteLLM's default request timeout (`litellm.request_timeout`), used when
/// the config sets none: the router only waits for capacity or a cooldown
/// within a deadline, so there always is one.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(6000);

/// Maps the config's routing keys onto the router's settings.
fn router_settings(config: &GatewayConfig, strategy: RoutingStrategy) -> RouterSettings {
    let defaults = RouterSettings::default();
    let routing = &config.router.routing;
    let fallback_map = |rules: &[(String, Vec<String>)]| {
        let mut map = FallbackMap::new();
        for (group, targets) in rules {
            map.entry(ModelName::new(group.as_str()))
                .or_default()
                .extend(targets.iter().map(|target| ModelName::new(target.as_str())));
        }
        map
    };
    let policy = &routing.retry_policy;
    RouterSettings {
        strategy,
        num_retries: config.router.num_retries.unwrap_or(defaults.num_retries),
        timeout: Some(config.router.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)),
        stream_timeout: config.router.stream_timeout,
        fallbacks: fallback_map(&routing.fallbacks),
        context_window_fallbacks: fallback_map(&routing.context_window_fallbacks),
        content_policy_fallbacks: fallback_map(&routing.content_policy_fallbacks),
        default_fallbacks: routing
            .default_fallbacks
            .iter()
            .map(|name| ModelName::new(name.as_str()))
            .collect(),
        max_fallbacks: routing.max_fallbacks.unwrap_or(defaults.max_fallbacks),
        allowed_fails: routing.allowed_fails.unwrap_or(defaults.allowed_fails),
        cooldown_time: routing.cooldown_time.unwrap_or(defaults.cooldown_time),
        disable_cooldowns: routing.disable_cooldowns,
        retry_after: routing.retry_after.unwrap_or(defaults.retry_after),
        retry_policy: RetryPolicy {
            bad_request: policy.bad_request,
            authentication: policy.authentication,
            timeout: policy.timeout,
            rate_limit: policy.rate_limit,
            content_policy_violation: policy.content_policy_violation,
            internal_server_error: policy.internal_server_error,
        },
        enable_pre_call_checks: routing.enable_pre_call_checks,
        enable_tag_filtering: routing.enable_tag_filtering,
        ..defaults
    }
}
