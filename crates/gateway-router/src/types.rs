//! The router's public data: deployments, settings, options, reports, errors.

use gateway_providers::{CallContext, Provider, ProviderError, ProviderKind};
use gateway_types::{DeploymentId, ModelName};
use std::sync::Arc;
use std::time::Duration;

/// One deployment: a provider serving a model group.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Stable id (`model_info.id` or a hash of the configuration).
    pub id: DeploymentId,
    /// The model group (`model_name`) it serves.
    pub model_name: ModelName,
    /// The provider that makes the calls.
    pub provider: Arc<dyn Provider>,
    /// Routing settings.
    pub settings: DeploymentSettings,
}

/// Per-deployment routing settings (`litellm_params` and `model_info`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSettings {
    /// Priority tier: lower is tried first.
    pub order: u32,
    /// Weight for weighted-random picking (default 1).
    pub weight: f64,
    /// Requests per minute this deployment can take.
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment can take.
    pub tpm: Option<u64>,
    /// Whole-call timeout (overrides the router's).
    pub timeout: Option<Duration>,
    /// Time-to-first-chunk timeout for streams (overrides the router's).
    pub stream_timeout: Option<Duration>,
    /// Tags for tag-based routing.
    pub tags: Vec<String>,
    /// Largest input the model takes, for pre-call checks.
    pub max_input_tokens: Option<u64>,
    /// Price per input token in USD, for cost-based routing.
    pub input_cost_per_token: Option<f64>,
    /// Price per output token in USD, for cost-based routing.
    pub output_cost_per_token: Option<f64>,
    /// A system prompt prepended to every request served by this deployment.
    pub system_prompt: Option<String>,
}

impl Default for DeploymentSettings {
    fn default() -> Self {
        Self {
            order: 0,
            weight: 1.0,
            rpm: None,
            tpm: None,
            timeout: None,
            stream_timeout: None,
            tags: Vec::new(),
            max_input_tokens: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            system_prompt: None,
        }
    }
}

/// How a deployment is picked within a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutingStrategy {
    /// Weighted random (`simple-shuffle`).
    #[default]
    SimpleShuffle,
    /// Fewest requests in flight (`least-busy`).
    LeastBusy,
    /// Lowest moving-average latency (`latency-based-routing`).
    LatencyBased,
    /// Furthest from its rpm/tpm limit (`usage-based-routing-v2`).
    UsageBased,
    /// Cheapest by configured price (`cost-based-routing`).
    CostBased,
}

/// Router-wide settings (`router_settings`).
#[derive(Debug, Clone, PartialEq)]
pub struct RouterSettings {
    /// How deployments are picked.
    pub strategy: RoutingStrategy,
    /// Retries after the first attempt, per model group.
    pub num_retries: u32,
    /// Whole-request timeout.
    pub timeout: Option<Duration>,
    /// Time-to-first-chunk timeout for streams.
    pub stream_timeout: Option<Duration>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            strategy: RoutingStrategy::SimpleShuffle,
            num_retries: 2,
            timeout: None,
            stream_timeout: None,
        }
    }
}

/// Per-request routing options, taken from the request by the server.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Passed to the provider.
    pub call: CallContext,
    /// The request's tags, for tag routing.
    pub tags: Vec<String>,
    /// Overrides the router's retries.
    pub num_retries: Option<u32>,
    /// Overrides the router's timeout.
    pub timeout: Option<Duration>,
    /// The request brings its own fallback groups.
    pub fallbacks: Option<Vec<ModelName>>,
    /// Turn fallbacks off for this request.
    pub disable_fallbacks: bool,
}

/// A successful call and what the router did to make it.
#[derive(Debug)]
pub struct Routed<T> {
    /// The provider's answer.
    pub value: T,
    /// What happened on the way.
    pub report: RouteReport,
}

/// What the router did: which deployment answered, after how many attempts.
#[derive(Debug, Clone, Default)]
pub struct RouteReport {
    /// The model group the client asked for.
    pub requested_group: Option<ModelName>,
    /// The group that answered (differs after a fallback).
    pub model_group: Option<ModelName>,
    /// The deployment that answered (or was last tried).
    pub deployment: Option<DeploymentId>,
    /// Its provider kind.
    pub provider: Option<ProviderKind>,
    /// Its endpoint.
    pub api_base: Option<Arc<str>>,
    /// Calls made, in all.
    pub attempts: u32,
    /// Calls after the first within a group.
    pub retries: u32,
    /// Fallback groups tried.
    pub fallbacks: u32,
    /// Each failed attempt.
    pub errors: Vec<AttemptError>,
}

/// One failed attempt.
#[derive(Debug, Clone)]
pub struct AttemptError {
    /// The deployment that failed.
    pub deployment: DeploymentId,
    /// How it failed.
    pub error: ProviderError,
}

/// Why routing failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// No group has this name.
    #[error("model `{0}` is not configured on this gateway")]
    UnknownModel(String),
    /// The group has no deployment that can serve this request.
    #[error("no deployment of `{group}` can serve this request: {reason}")]
    NoDeployment {
        /// The group.
        group: ModelName,
        /// Why (for example, tags matched none).
        reason: String,
    },
    /// Every deployment of the group is cooling down.
    #[error("every deployment of `{group}` is cooling down; retry in {retry_after:?}")]
    NoHealthyDeployment {
        /// The group.
        group: ModelName,
        /// When the first one recovers.
        retry_after: Duration,
    },
    /// Every deployment of the group is at its rpm/tpm limit.
    #[error("every deployment of `{group}` is at its rate limit; retry in {retry_after:?}")]
    RateLimited {
        /// The group.
        group: ModelName,
        /// When capacity frees up.
        retry_after: Duration,
    },
    /// The request's timeout passed.
    #[error("the request timed out after {0:?}")]
    Timeout(Duration),
    /// The last attempt's error, after retries and fallbacks.
    #[error("{0}")]
    Provider(ProviderError),
}

/// A failed call and what the router tried.
#[derive(Debug)]
pub struct RouteFailure {
    /// Why it failed.
    pub error: RouterError,
    /// What was tried.
    pub report: RouteReport,
}
