//! The running gateway: the config in force, the router built from it, and
//! request dispatch.

use crate::config::{ConfigError, GatewayConfig};
use bytes::Bytes;
use gateway_providers::{BuildContext, HttpClient, HttpClientOptions, ProviderRegistry};
use gateway_router::{Deployment, DeploymentSettings, Router, RouterSettings, RoutingStrategy};
use gateway_types::{DeploymentId, ModelList, ModelName, ModelObject};
use std::sync::{Arc, RwLock};

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
        let defaults = RouterSettings::default();
        let settings = RouterSettings {
            strategy,
            num_retries: config.router.num_retries.unwrap_or(defaults.num_retries),
            timeout: config.router.timeout,
            stream_timeout: config.router.stream_timeout,
        };
        let router = Router::new(settings, deployments);
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
