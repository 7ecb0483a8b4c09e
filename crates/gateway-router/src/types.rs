//! The router's public data: deployments, settings, options, reports, errors.

use gateway_providers::{CallContext, Provider, ProviderError, ProviderKind};
use gateway_types::{DeploymentId, ModelName};
use std::collections::HashMap;
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
    /// Cooldown length after this deployment fails (overrides the router's
    /// `cooldown_time` and the upstream's retry-after).
    pub cooldown_time: Option<Duration>,
    /// Retries within the group after this deployment fails (wins over the
    /// retry policy, the request and the router).
    pub num_retries: Option<u32>,
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
            cooldown_time: None,
            num_retries: None,
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

/// Fallback groups per model group; the key `"*"` applies to any group.
pub type FallbackMap = HashMap<ModelName, Vec<ModelName>>;

/// Router-wide settings (`router_settings`).
#[derive(Debug, Clone, PartialEq)]
pub struct RouterSettings {
    /// How deployments are picked.
    pub strategy: RoutingStrategy,
    /// Retries after the first attempt, per model group.
    pub num_retries: u32,
    /// Whole-request timeout: every attempt, wait and fallback fits in it.
    /// Without one the router never waits for capacity or cooldowns.
    pub timeout: Option<Duration>,
    /// Time-to-first-chunk timeout for streams.
    pub stream_timeout: Option<Duration>,
    /// Groups to try when a group fails (`fallbacks`).
    pub fallbacks: FallbackMap,
    /// Groups to try when the input is too long for a group
    /// (`context_window_fallbacks`); without an entry, `fallbacks` apply.
    pub context_window_fallbacks: FallbackMap,
    /// Groups to try when a content filter blocked the call
    /// (`content_policy_fallbacks`); without an entry, `fallbacks` apply.
    pub content_policy_fallbacks: FallbackMap,
    /// Groups to try for any group without its own `fallbacks` entry, and for
    /// an unknown model (`default_fallbacks`).
    pub default_fallbacks: Vec<ModelName>,
    /// Most fallback groups tried for one request (default 5).
    pub max_fallbacks: u32,
    /// Failures allowed within a minute; one more cools the deployment down
    /// (default 3).
    pub allowed_fails: u32,
    /// How long a failing deployment is skipped (default 5 s).
    pub cooldown_time: Duration,
    /// Never cool deployments down.
    pub disable_cooldowns: bool,
    /// The shortest wait before a retry (`retry_after`, default 0).
    pub retry_after: Duration,
    /// Retries per error class, overriding `num_retries`.
    pub retry_policy: RetryPolicy,
    /// Count the input's tokens and skip deployments whose
    /// `max_input_tokens` is smaller.
    pub enable_pre_call_checks: bool,
    /// Route on the request's tags (`enable_tag_filtering`).
    pub enable_tag_filtering: bool,
    /// Latency-based routing picks at random among the deployments within
    /// this fraction of the fastest (default 0.1, so load spreads).
    pub lowest_latency_buffer: f64,
    /// The tokenizer for pre-call checks.
    pub tokenizer: Tokenizer,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            strategy: RoutingStrategy::SimpleShuffle,
            num_retries: 2,
            timeout: None,
            stream_timeout: None,
            fallbacks: HashMap::new(),
            context_window_fallbacks: HashMap::new(),
            content_policy_fallbacks: HashMap::new(),
            default_fallbacks: Vec::new(),
            max_fallbacks: 5,
            allowed_fails: 3,
            cooldown_time: Duration::from_secs(5),
            disable_cooldowns: false,
            retry_after: Duration::ZERO,
            retry_policy: RetryPolicy::default(),
            enable_pre_call_checks: false,
            enable_tag_filtering: false,
            lowest_latency_buffer: 0.1,
            tokenizer: Tokenizer::default(),
        }
    }
}

/// Retries per error class (`retry_policy`); `None` leaves the class to
/// `num_retries`. A set value also lets authentication and content-policy
/// errors retry; bad requests never retry, whatever the policy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    /// `BadRequestErrorRetries` (accepted; bad requests never retry).
    pub bad_request: Option<u32>,
    /// `AuthenticationErrorRetries`.
    pub authentication: Option<u32>,
    /// `TimeoutErrorRetries`.
    pub timeout: Option<u32>,
    /// `RateLimitErrorRetries`.
    pub rate_limit: Option<u32>,
    /// `ContentPolicyViolationErrorRetries`.
    pub content_policy_violation: Option<u32>,
    /// `InternalServerErrorRetries` (5xx, overload, connection and unreadable answers).
    pub internal_server_error: Option<u32>,
}

/// The BPE vocabulary used to count tokens for pre-call checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tokenizer {
    /// `cl100k_base` (GPT-4, GPT-3.5; LiteLLM's default for other models).
    #[default]
    Cl100k,
    /// `o200k_base` (GPT-4o and later).
    O200k,
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
    /// The input's tokens, when the caller already counted them; pre-call
    /// checks then use this instead of counting again.
    pub input_tokens: Option<u64>,
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
    /// Time spent waiting for capacity or for a cooldown to end.
    pub queued: Duration,
    /// The input's tokens, when pre-call checks counted them.
    pub input_tokens: Option<u64>,
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
///
/// Deliberately exhaustive: the server maps each variant to an HTTP status in
/// one match, and a new variant must make that match decide.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// The input is longer than every deployment of the group takes
    /// (found by pre-call checks, before any call).
    #[error("the input has {input_tokens} tokens; `{group}` takes at most {max_input_tokens}")]
    ContextWindowExceeded {
        /// The group.
        group: ModelName,
        /// Tokens in the input.
        input_tokens: u64,
        /// The largest `max_input_tokens` of the group.
        max_input_tokens: u64,
    },
    /// The router's configuration is invalid.
    #[error("invalid router configuration: {0}")]
    InvalidConfig(String),
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
