//! Prometheus metrics: every metric name the gateway exports, the recorder
//! behind `GET /metrics`, and the setters other parts of the gateway call.
//!
//! Metrics go through the [`metrics`] facade to one process-wide recorder
//! from `metrics-exporter-prometheus`, installed by [`install`] the first
//! time a [`Gateway`](crate::Gateway) is built. The exporter's own HTTP
//! listener and push gateway are not compiled in: `/metrics` is served by
//! the gateway's hyper server from the [`PrometheusHandle`].
//!
//! Label values come only from configuration (model aliases, deployment ids,
//! provider kinds, key aliases, team names) or from enums (statuses, error
//! kinds), never from raw client input: a request for a model that is not
//! configured is labelled [`UNKNOWN`].
//!
//! Because the recorder is global, every gateway in one process (tests
//! included) shares one set of series. Tests assert on labels unique to
//! them.
//!
//! Setters meant for code that lands later (budgets, the spend writer, the
//! router's cooldowns) are plain functions here: [`record_spend`],
//! [`set_key_budget_remaining`], [`set_team_budget_remaining`],
//! [`set_spend_queue_depth`], [`record_spend_flush_failure`],
//! [`set_deployment_state`] and [`record_cooldown`].

use gateway_types::NanoUsd;
use metrics::{Counter, Gauge, Histogram, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

/// Requests answered on the model endpoints (counter). Labels: `model`,
/// `deployment`, `provider`, `status`.
pub const REQUESTS_TOTAL: &str = "gateway_requests_total";
/// Failed requests on the model endpoints (counter). Labels: `model`,
/// `deployment`, `provider`, `kind`.
///
/// # Failure kinds
/// Upstream failures use the provider error kind (`connect`, `timeout`,
/// `rate_limited`, `overloaded`, `upstream`, `auth`, `bad_request`,
/// `context_window_exceeded`, `content_filtered`, `not_found`,
/// `invalid_response`, `unsupported`); routing failures are
/// `unknown_model`, `no_deployment`, `no_healthy_deployment`,
/// `rate_limited`, `timeout`; failures before routing are `client_auth`,
/// `invalid_request` and `internal`; a client that leaves before the
/// response head is `client_disconnected` (status 499); a stream that
/// breaks after its first byte adds one failure of the upstream kind with
/// status 200.
pub const REQUEST_FAILURES_TOTAL: &str = "gateway_request_failures_total";
/// Total request time, from the first byte read to the last byte written
/// (histogram, seconds). Labels: `model`, `deployment`.
pub const REQUEST_DURATION_SECONDS: &str = "gateway_request_duration_seconds";
/// Time spent waiting for upstreams, retries included (histogram, seconds).
/// Labels: `model`, `deployment`, `provider`.
pub const UPSTREAM_DURATION_SECONDS: &str = "gateway_upstream_duration_seconds";
/// Streams only: time from the request's start to the first chunk
/// (histogram, seconds). Labels: `model`, `deployment`.
pub const TIME_TO_FIRST_TOKEN_SECONDS: &str = "gateway_time_to_first_token_seconds";
/// The gateway's own time: total minus upstream (histogram, seconds).
/// Labels: `model`.
pub const OVERHEAD_DURATION_SECONDS: &str = "gateway_overhead_duration_seconds";
/// Input (prompt) tokens, as the upstream reported them (counter). Labels:
/// `model`, `deployment`.
pub const INPUT_TOKENS_TOTAL: &str = "gateway_input_tokens_total";
/// Output (completion) tokens (counter). Labels: `model`, `deployment`.
pub const OUTPUT_TOKENS_TOTAL: &str = "gateway_output_tokens_total";
/// Input tokens served from the upstream's prompt cache, a subset of
/// [`INPUT_TOKENS_TOTAL`] (counter). Labels: `model`, `deployment`.
pub const CACHED_TOKENS_TOTAL: &str = "gateway_cached_tokens_total";
/// Spend in nano-dollars (1e-9 USD; divide by 1e9 for USD), fed by the
/// budget code through [`record_spend`] (counter). Labels: `model`,
/// `key_alias`, `team`.
pub const SPEND_NANO_USD_TOTAL: &str = "gateway_spend_nano_usd_total";
/// Deployment state as a state set (gauge): 1 for the state the deployment
/// is in, 0 for the others. Labels: `model`, `deployment`, `provider`,
/// `state` (`healthy`, `cooling`).
pub const DEPLOYMENT_STATE: &str = "gateway_deployment_state";
/// Cooldowns entered (counter). Labels: `model`, `deployment`, `provider`.
pub const DEPLOYMENT_COOLDOWNS_TOTAL: &str = "gateway_deployment_cooldowns_total";
/// Retries within a model group (counter). Labels: `model`.
pub const RETRIES_TOTAL: &str = "gateway_retries_total";
/// Fallback groups tried (counter). Labels: `model` (the requested group).
pub const FALLBACKS_TOTAL: &str = "gateway_fallbacks_total";
/// Model-endpoint requests in flight, streams until their last byte
/// (gauge). No labels.
pub const IN_FLIGHT_REQUESTS: &str = "gateway_in_flight_requests";
/// Remaining budget of a virtual key in USD (gauge). Labels: `key_alias`.
pub const KEY_BUDGET_REMAINING_USD: &str = "gateway_key_budget_remaining_usd";
/// Remaining budget of a team in USD (gauge). Labels: `team`.
pub const TEAM_BUDGET_REMAINING_USD: &str = "gateway_team_budget_remaining_usd";
/// Spend records waiting for the spend writer (gauge). No labels.
pub const SPEND_QUEUE_DEPTH: &str = "gateway_spend_queue_depth";
/// Spend-writer flushes that failed (counter). No labels.
pub const SPEND_FLUSH_FAILURES_TOTAL: &str = "gateway_spend_flush_failures_total";
/// Config reloads (counter). Labels: `result` (`success`, `failure`).
pub const CONFIG_RELOADS_TOTAL: &str = "gateway_config_reloads_total";
/// Always 1 (gauge). Labels: `version`.
pub const BUILD_INFO: &str = "gateway_build_info";

/// Label: the configured model alias (`model_name`), or [`UNKNOWN`].
pub const LABEL_MODEL: &str = "model";
/// Label: the deployment id (`model_info.id` or its stable hash); empty
/// when no deployment was chosen.
pub const LABEL_DEPLOYMENT: &str = "deployment";
/// Label: the provider kind (`openai`, `mock`, ...); empty when no
/// deployment was chosen.
pub const LABEL_PROVIDER: &str = "provider";
/// Label: the HTTP status answered.
pub const LABEL_STATUS: &str = "status";
/// Label: the failure kind.
pub const LABEL_KIND: &str = "kind";
/// Label: the deployment state.
pub const LABEL_STATE: &str = "state";
/// Label: a virtual key's alias (never the key).
pub const LABEL_KEY_ALIAS: &str = "key_alias";
/// Label: a team's alias or id.
pub const LABEL_TEAM: &str = "team";
/// Label: a reload's result.
pub const LABEL_RESULT: &str = "result";
/// Label: the gateway version.
pub const LABEL_VERSION: &str = "version";

/// The `model` label of requests for a model that is not configured.
pub const UNKNOWN: &str = "unknown";

/// Latency buckets in seconds (LiteLLM's).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 420.0,
    600.0,
];
/// Buckets for the gateway's own overhead, in seconds.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Why the recorder could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Another global `metrics` recorder was installed first (by the program
    /// embedding the gateway); metrics go to it and `/metrics` is empty.
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(String),
}

/// A deployment's state, as [`DEPLOYMENT_STATE`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeploymentState {
    /// Taking traffic.
    Healthy,
    /// Skipped by the router until its cooldown ends.
    Cooling,
    /// No longer configured (after a reload): every state reports 0.
    Removed,
}

impl DeploymentState {
    /// Every state that has its own series.
    const REPORTED: [(DeploymentState, &'static str); 2] = [
        (DeploymentState::Healthy, "healthy"),
        (DeploymentState::Cooling, "cooling"),
    ];
}

/// The labels of one deployment, built once per config from config names.
/// Cloning is cheap (the strings are shared).
#[derive(Debug, Clone)]
pub struct DeploymentLabels {
    /// The model alias.
    pub model: SharedString,
    /// The deployment id.
    pub deployment: SharedString,
    /// The provider kind.
    pub provider: SharedString,
    /// The handles of this deployment's per-request series, registered on
    /// its first request and shared by every clone: registering a series
    /// per request (building its key, hashing it, looking it up) was most
    /// of what recording cost.
    handles: Option<Arc<OnceLock<Handles>>>,
    /// This deployment's labels under the other aliases it answered for
    /// (as a fallback), each with handles of its own; see
    /// [`DeploymentLabels::for_alias`].
    aliases: Option<Arc<RwLock<Vec<DeploymentLabels>>>>,
}

/// Aliases a deployment keeps labels for; past this, requests for further
/// aliases register their series per request, as before.
const MAX_ALIASES: usize = 32;

impl PartialEq for DeploymentLabels {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
            && self.deployment == other.deployment
            && self.provider == other.provider
    }
}

impl Eq for DeploymentLabels {}

impl DeploymentLabels {
    /// Labels from config names.
    pub fn new(model: &str, deployment: &str, provider: &'static str) -> Self {
        Self {
            model: SharedString::from(Arc::<str>::from(model)),
            deployment: SharedString::from(Arc::<str>::from(deployment)),
            provider: SharedString::const_str(provider),
            handles: Some(Arc::default()),
            aliases: Some(Arc::default()),
        }
    }

    /// These labels for a request that asked for `alias` (a configured
    /// model name) and was answered by this deployment, as a fallback is:
    /// `model` is the alias, the deployment and provider are this one's.
    /// Made on first use and kept, with handles of their own, so a request
    /// that falls back does not register its series again (~10k
    /// instructions a request in the `fallback` benchmark). `None` for
    /// labels without a deployment, and once [`MAX_ALIASES`] are kept.
    pub(crate) fn for_alias(&self, alias: &SharedString) -> Option<DeploymentLabels> {
        let aliases = self.aliases.as_ref()?;
        let find = |kept: &[DeploymentLabels]| kept.iter().find(|l| l.model == *alias).cloned();
        if let Some(found) = find(&aliases.read().unwrap_or_else(PoisonError::into_inner)) {
            return Some(found);
        }
        let mut kept = aliases.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&kept) {
            return Some(found);
        }
        if kept.len() >= MAX_ALIASES {
            return None;
        }
        let labels = DeploymentLabels {
            model: alias.clone(),
            deployment: self.deployment.clone(),
            provider: self.provider.clone(),
            handles: Some(Arc::default()),
            aliases: None,
        };
        kept.push(labels.clone());
        Some(labels)
    }

    /// The labels of a request for `model` that reached no deployment.
    pub fn model_only(model: SharedString) -> Self {
        Self {
            model,
            deployment: SharedString::const_str(""),
            provider: SharedString::const_str(""),
            handles: None,
            aliases: None,
        }
    }

    /// The labels of a request for a model that is not configured.
    pub fn unknown() -> Self {
        Self::model_only(SharedString::const_str(UNKNOWN))
    }

    fn handles(&self) -> Option<&Handles> {
        self.handles
            .as_ref()
            .map(|handles| handles.get_or_init(|| Handles::register(self)))
    }
}

/// A deployment's series that every answered request touches.
#[derive(Debug)]
struct Handles {
    /// `requests_total` with status 200.
    ok: Counter,
    duration: Histogram,
    upstream: Histogram,
    overhead: Histogram,
    time_to_first_token: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
    cached_tokens: Counter,
}

impl Handles {
    fn register(labels: &DeploymentLabels) -> Self {
        let model = || labels.model.clone();
        let deployment = || labels.deployment.clone();
        let provider = || labels.provider.clone();
        let tokens = |name: &'static str| metrics::counter!(name, LABEL_MODEL => model(), LABEL_DEPLOYMENT => deployment());
        Self {
            ok: metrics::counter!(
                REQUESTS_TOTAL,
                LABEL_MODEL => model(),
                LABEL_DEPLOYMENT => deployment(),
                LABEL_PROVIDER => provider(),
                LABEL_STATUS => status_label(200),
            ),
            duration: metrics::histogram!(
                REQUEST_DURATION_SECONDS,
                LABEL_MODEL => model(),
                LABEL_DEPLOYMENT => deployment(),
            ),
            upstream: metrics::histogram!(
                UPSTREAM_DURATION_SECONDS,
                LABEL_MODEL => model(),
                LABEL_DEPLOYMENT => deployment(),
                LABEL_PROVIDER => provider(),
            ),
            overhead: metrics::histogram!(OVERHEAD_DURATION_SECONDS, LABEL_MODEL => model()),
            time_to_first_token: metrics::histogram!(
                TIME_TO_FIRST_TOKEN_SECONDS,
                LABEL_MODEL => model(),
                LABEL_DEPLOYMENT => deployment(),
            ),
            input_tokens: tokens(INPUT_TOKENS_TOTAL),
            output_tokens: tokens(OUTPUT_TOKENS_TOTAL),
            cached_tokens: tokens(CACHED_TOKENS_TOTAL),
        }
    }
}

/// Installs the process-wide Prometheus recorder once and returns its
/// handle. Later calls return the same handle (or the same error).
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    static HANDLE: OnceLock<Result<PrometheusHandle, MetricsError>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(OVERHEAD_DURATION_SECONDS.to_owned()),
                        OVERHEAD_BUCKETS,
                    )
                })
                .map_err(|error| MetricsError::Install(error.to_string()))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|error| MetricsError::Install(error.to_string()))?;
            describe();
            metrics::gauge!(BUILD_INFO, LABEL_VERSION => env!("CARGO_PKG_VERSION")).set(1.0);
            Ok(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS_TOTAL, "Requests answered on the model endpoints.");
    describe_counter!(
        REQUEST_FAILURES_TOTAL,
        "Failed requests on the model endpoints, by failure kind."
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Total request time, streams until their last byte."
    );
    describe_histogram!(
        UPSTREAM_DURATION_SECONDS,
        Unit::Seconds,
        "Time spent waiting for upstreams, retries included."
    );
    describe_histogram!(
        TIME_TO_FIRST_TOKEN_SECONDS,
        Unit::Seconds,
        "Streams: time from the request's start to the first chunk."
    );
    describe_histogram!(
        OVERHEAD_DURATION_SECONDS,
        Unit::Seconds,
        "The gateway's own time: total minus upstream."
    );
    describe_counter!(INPUT_TOKENS_TOTAL, "Input (prompt) tokens.");
    describe_counter!(OUTPUT_TOKENS_TOTAL, "Output (completion) tokens.");
    describe_counter!(
        CACHED_TOKENS_TOTAL,
        "Input tokens served from a prompt cache."
    );
    describe_counter!(SPEND_NANO_USD_TOTAL, "Spend in nano-dollars (1e-9 USD).");
    describe_gauge!(
        DEPLOYMENT_STATE,
        "1 for the state a deployment is in (healthy, cooling), 0 for the others."
    );
    describe_counter!(DEPLOYMENT_COOLDOWNS_TOTAL, "Cooldowns entered.");
    describe_counter!(RETRIES_TOTAL, "Retries within a model group.");
    describe_counter!(FALLBACKS_TOTAL, "Fallback groups tried.");
    describe_gauge!(IN_FLIGHT_REQUESTS, "Model-endpoint requests in flight.");
    describe_gauge!(KEY_BUDGET_REMAINING_USD, "Remaining budget of a key, USD.");
    describe_gauge!(
        TEAM_BUDGET_REMAINING_USD,
        "Remaining budget of a team, USD."
    );
    describe_gauge!(SPEND_QUEUE_DEPTH, "Spend records waiting for the writer.");
    describe_counter!(
        SPEND_FLUSH_FAILURES_TOTAL,
        "Spend-writer flushes that failed."
    );
    describe_counter!(CONFIG_RELOADS_TOTAL, "Config reloads, by result.");
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label.");
}

/// Adds one request's cost to [`SPEND_NANO_USD_TOTAL`]. For the budget code:
/// call it when a request is settled. Negative amounts are ignored.
pub fn record_spend(labels: &SpendLabels<'_>, cost: NanoUsd) {
    if let Some(amount) = spend_amount(cost) {
        labels.register().increment(amount);
    }
}

/// What a cost adds to [`SPEND_NANO_USD_TOTAL`]: nothing when zero or
/// negative.
fn spend_amount(cost: NanoUsd) -> Option<u64> {
    u64::try_from(cost.0).ok().filter(|&amount| amount > 0)
}

/// Series of [`SPEND_NANO_USD_TOTAL`] kept past this are not cached: their
/// requests register their labels again, as [`record_spend`] does.
const SPEND_COUNTERS_KEPT: usize = 4_096;

/// Registered [`SPEND_NANO_USD_TOTAL`] counters by their labels, for one
/// config generation. [`record_spend`] copies three label Strings and looks
/// the series up in the registry on every call (~1k instructions a keyed
/// request); here the labels are hashed once, borrowed, under a read lock.
#[derive(Debug, Default)]
pub(crate) struct SpendCounters {
    by_labels: RwLock<HashMap<Box<[u8]>, Counter, foldhash::fast::RandomState>>,
}

impl SpendCounters {
    /// Adds one request's cost, as [`record_spend`] does.
    pub(crate) fn record(&self, labels: &SpendLabels<'_>, cost: NanoUsd) {
        let Some(amount) = spend_amount(cost) else {
            return;
        };
        SPEND_SERIES_KEY.with_borrow_mut(|key| {
            labels.write_key(key);
            let counters = self
                .by_labels
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(counter) = counters.get(key.as_slice()) {
                counter.increment(amount);
                return;
            }
            let kept = counters.len();
            drop(counters);
            let counter = labels.register();
            counter.increment(amount);
            if kept < SPEND_COUNTERS_KEPT {
                self.by_labels
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.as_slice().into(), counter);
            }
        });
    }
}

thread_local! {
    /// The lookup key of [`SpendCounters::record`], reused.
    static SPEND_SERIES_KEY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Who a cost is charged to, for [`record_spend`]. Every value must come
/// from configuration (the model alias, the key's alias, the team's alias),
/// never from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendLabels<'a> {
    /// The configured model alias.
    pub model: &'a str,
    /// The key's alias; empty when the key has none. Never the key.
    pub key_alias: &'a str,
    /// The team's alias; empty when the key has no team.
    pub team: &'a str,
}

impl SpendLabels<'_> {
    /// The series' handle from the registry.
    fn register(&self) -> Counter {
        metrics::counter!(
            SPEND_NANO_USD_TOTAL,
            LABEL_MODEL => self.model.to_owned(),
            LABEL_KEY_ALIAS => self.key_alias.to_owned(),
            LABEL_TEAM => self.team.to_owned(),
        )
    }

    /// The three labels, each after its length, so no two label sets share
    /// a key.
    fn write_key(&self, key: &mut Vec<u8>) {
        key.clear();
        for label in [self.model, self.key_alias, self.team] {
            key.extend_from_slice(&label.len().to_le_bytes());
            key.extend_from_slice(label.as_bytes());
        }
    }
}

/// Sets [`KEY_BUDGET_REMAINING_USD`] for a key. For the budget code.
pub fn set_key_budget_remaining(key_alias: &str, remaining_usd: f64) {
    metrics::gauge!(KEY_BUDGET_REMAINING_USD, LABEL_KEY_ALIAS => key_alias.to_owned())
        .set(remaining_usd);
}

/// Sets [`TEAM_BUDGET_REMAINING_USD`] for a team. For the budget code.
pub fn set_team_budget_remaining(team: &str, remaining_usd: f64) {
    metrics::gauge!(TEAM_BUDGET_REMAINING_USD, LABEL_TEAM => team.to_owned()).set(remaining_usd);
}

/// Sets [`SPEND_QUEUE_DEPTH`]. For the spend writer.
pub fn set_spend_queue_depth(depth: usize) {
    metrics::gauge!(SPEND_QUEUE_DEPTH).set(depth as f64);
}

/// Counts one failed flush in [`SPEND_FLUSH_FAILURES_TOTAL`]. For the spend
/// writer.
pub fn record_spend_flush_failure() {
    metrics::counter!(SPEND_FLUSH_FAILURES_TOTAL).increment(1);
}

/// Sets [`DEPLOYMENT_STATE`] for a deployment. For the router glue: the
/// server sets every configured deployment healthy when a config is loaded,
/// and the router's cooldown reports will call this.
pub fn set_deployment_state(labels: &DeploymentLabels, state: DeploymentState) {
    for (reported, name) in DeploymentState::REPORTED {
        let value = if reported == state { 1.0 } else { 0.0 };
        metrics::gauge!(
            DEPLOYMENT_STATE,
            LABEL_MODEL => labels.model.clone(),
            LABEL_DEPLOYMENT => labels.deployment.clone(),
            LABEL_PROVIDER => labels.provider.clone(),
            LABEL_STATE => name,
        )
        .set(value);
    }
}

/// Counts one cooldown in [`DEPLOYMENT_COOLDOWNS_TOTAL`] and marks the
/// deployment cooling. For the router glue.
pub fn record_cooldown(labels: &DeploymentLabels) {
    metrics::counter!(
        DEPLOYMENT_COOLDOWNS_TOTAL,
        LABEL_MODEL => labels.model.clone(),
        LABEL_DEPLOYMENT => labels.deployment.clone(),
        LABEL_PROVIDER => labels.provider.clone(),
    )
    .increment(1);
    set_deployment_state(labels, DeploymentState::Cooling);
}

/// Counts one config reload.
pub(crate) fn record_reload(success: bool) {
    let result = if success { "success" } else { "failure" };
    metrics::counter!(CONFIG_RELOADS_TOTAL, LABEL_RESULT => result).increment(1);
}

/// One finished model-endpoint request, as the metrics see it.
#[derive(Debug)]
pub(crate) struct RequestSample<'a> {
    pub(crate) labels: &'a DeploymentLabels,
    pub(crate) status: u16,
    pub(crate) failure: Option<&'static str>,
    pub(crate) total: Duration,
    pub(crate) upstream: Option<Duration>,
    pub(crate) time_to_first_token: Option<Duration>,
    pub(crate) tokens: Option<TokenCounts>,
    pub(crate) retries: u32,
    pub(crate) fallbacks: u32,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenCounts {
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cached: u64,
}

impl RequestSample<'_> {
    pub(crate) fn record(&self) {
        let labels = self.labels;
        let handles = labels.handles();
        match handles {
            Some(handles) if self.status == 200 => handles.ok.increment(1),
            _ => metrics::counter!(
                REQUESTS_TOTAL,
                LABEL_MODEL => labels.model.clone(),
                LABEL_DEPLOYMENT => labels.deployment.clone(),
                LABEL_PROVIDER => labels.provider.clone(),
                LABEL_STATUS => status_label(self.status),
            )
            .increment(1),
        }
        if let Some(kind) = self.failure {
            metrics::counter!(
                REQUEST_FAILURES_TOTAL,
                LABEL_MODEL => labels.model.clone(),
                LABEL_DEPLOYMENT => labels.deployment.clone(),
                LABEL_PROVIDER => labels.provider.clone(),
                LABEL_KIND => kind,
            )
            .increment(1);
        }
        let total = self.total.as_secs_f64();
        match handles {
            Some(handles) => handles.duration.record(total),
            None => metrics::histogram!(
                REQUEST_DURATION_SECONDS,
                LABEL_MODEL => labels.model.clone(),
                LABEL_DEPLOYMENT => labels.deployment.clone(),
            )
            .record(total),
        }
        if let Some(upstream) = self.upstream {
            let overhead = self.total.saturating_sub(upstream).as_secs_f64();
            let upstream = upstream.as_secs_f64();
            match handles {
                Some(handles) => {
                    handles.upstream.record(upstream);
                    handles.overhead.record(overhead);
                }
                None => {
                    metrics::histogram!(
                        UPSTREAM_DURATION_SECONDS,
                        LABEL_MODEL => labels.model.clone(),
                        LABEL_DEPLOYMENT => labels.deployment.clone(),
                        LABEL_PROVIDER => labels.provider.clone(),
                    )
                    .record(upstream);
                    metrics::histogram!(OVERHEAD_DURATION_SECONDS, LABEL_MODEL => labels.model.clone())
                        .record(overhead);
                }
            }
        }
        if let Some(first) = self.time_to_first_token {
            let first = first.as_secs_f64();
            match handles {
                Some(handles) => handles.time_to_first_token.record(first),
                None => metrics::histogram!(
                    TIME_TO_FIRST_TOKEN_SECONDS,
                    LABEL_MODEL => labels.model.clone(),
                    LABEL_DEPLOYMENT => labels.deployment.clone(),
                )
                .record(first),
            }
        }
        if let Some(tokens) = self.tokens {
            match handles {
                Some(handles) => {
                    handles.input_tokens.increment(tokens.input);
                    handles.output_tokens.increment(tokens.output);
                    handles.cached_tokens.increment(tokens.cached);
                }
                None => {
                    for (name, count) in [
                        (INPUT_TOKENS_TOTAL, tokens.input),
                        (OUTPUT_TOKENS_TOTAL, tokens.output),
                        (CACHED_TOKENS_TOTAL, tokens.cached),
                    ] {
                        metrics::counter!(
                            name,
                            LABEL_MODEL => labels.model.clone(),
                            LABEL_DEPLOYMENT => labels.deployment.clone(),
                        )
                        .increment(count);
                    }
                }
            }
        }
        if self.retries > 0 {
            metrics::counter!(RETRIES_TOTAL, LABEL_MODEL => labels.model.clone())
                .increment(u64::from(self.retries));
        }
        if self.fallbacks > 0 {
            metrics::counter!(FALLBACKS_TOTAL, LABEL_MODEL => labels.model.clone())
                .increment(u64::from(self.fallbacks));
        }
    }
}

/// The status as a label without allocating for the common ones.
fn status_label(status: u16) -> SharedString {
    let text = match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return SharedString::from_owned(other.to_string()),
    };
    SharedString::const_str(text)
}

/// Counts a request in flight until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(());

impl InFlight {
    pub(crate) fn start() -> Self {
        in_flight_gauge().increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight_gauge().decrement(1.0);
    }
}

/// The in-flight gauge, registered once. Only called while serving, after
/// [`install`] ran (the gateway installs the recorder when it is built).
fn in_flight_gauge() -> &'static Gauge {
    static GAUGE: OnceLock<Gauge> = OnceLock::new();
    GAUGE.get_or_init(|| metrics::gauge!(IN_FLIGHT_REQUESTS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_counters_keep_one_handle_per_label_set_and_add_up() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let counters = SpendCounters::default();
        fn labels<'a>(key_alias: &'a str, team: &'a str) -> SpendLabels<'a> {
            SpendLabels {
                model: "spend-model",
                key_alias,
                team,
            }
        }
        metrics::with_local_recorder(&recorder, || {
            counters.record(&labels("ab", "c"), NanoUsd(5));
            // Concatenated, these labels would read the same as the first.
            counters.record(&labels("a", "bc"), NanoUsd(7));
            counters.record(&labels("ab", "c"), NanoUsd(10));
            counters.record(&labels("ab", "c"), NanoUsd(0));
            counters.record(&labels("ab", "c"), NanoUsd(-3));
        });
        let text = handle.render();
        assert!(
            text.contains(
                r#"gateway_spend_nano_usd_total{model="spend-model",key_alias="ab",team="c"} 15"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"gateway_spend_nano_usd_total{model="spend-model",key_alias="a",team="bc"} 7"#
            ),
            "{text}"
        );
        let kept = |counters: &SpendCounters| {
            counters
                .by_labels
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
        };
        assert_eq!(kept(&counters), 2);
        // Bounded: past the cap a series is still counted, only not kept.
        metrics::with_local_recorder(&recorder, || {
            for n in 2..=SPEND_COUNTERS_KEPT {
                let team = n.to_string();
                counters.record(&labels("bulk", &team), NanoUsd(1));
            }
            counters.record(&labels("one-more", ""), NanoUsd(4));
            counters.record(&labels("one-more", ""), NanoUsd(4));
        });
        assert_eq!(kept(&counters), SPEND_COUNTERS_KEPT);
        assert!(handle.render().contains(
            r#"gateway_spend_nano_usd_total{model="spend-model",key_alias="one-more",team=""} 8"#
        ));
    }

    #[test]
    fn a_deployment_keeps_one_set_of_labels_per_alias_it_answers_for() {
        let deployment = DeploymentLabels::new("fallback-group", "fallback-1", "openai");
        let primary = SharedString::from(Arc::<str>::from("primary-group"));
        let Some(first) = deployment.for_alias(&primary) else {
            panic!("no labels for the alias")
        };
        assert_eq!(
            (&*first.model, &*first.deployment, &*first.provider),
            ("primary-group", "fallback-1", "openai")
        );
        let Some(again) = deployment.for_alias(&primary) else {
            panic!("no labels the second time")
        };
        let same_handles = match (&first.handles, &again.handles) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        assert!(
            same_handles,
            "the second request reuses the first's handles"
        );
        let own = deployment.handles.as_ref().map(Arc::as_ptr);
        assert_ne!(first.handles.as_ref().map(Arc::as_ptr), own);
        // Bounded: aliases past the cap are not kept.
        for n in 1..MAX_ALIASES {
            let alias = SharedString::from(Arc::<str>::from(format!("alias-{n}")));
            assert!(deployment.for_alias(&alias).is_some());
        }
        let one_more = SharedString::from(Arc::<str>::from("one-too-many"));
        assert!(deployment.for_alias(&one_more).is_none());
        assert!(deployment.for_alias(&primary).is_some(), "kept ones stay");
        assert!(DeploymentLabels::unknown().for_alias(&primary).is_none());
    }

    #[test]
    fn common_statuses_are_static_labels() {
        assert_eq!(&*status_label(200), "200");
        assert_eq!(&*status_label(418), "418");
    }
}
