//! The running gateway: the config in force, the router built from it, hot
//! reload, and the hooks other parts of the gateway plug into.

use crate::access_log::AccessLog;
use crate::budget::{Background, Budgets, Pricing};
use crate::config::{ConfigError, ConfigWarning, GatewayConfig};
use crate::metrics::{self, DeploymentLabels, DeploymentState};
use crate::NameMap;
use bytes::Bytes;
use gateway_providers::{
    BuildContext, BuildError, HttpClient, HttpClientOptions, ProviderRegistry,
};
use gateway_router::{
    Deployment, DeploymentSettings, FallbackMap, RetryPolicy, Router, RouterSettings,
    RoutingStrategy,
};
use gateway_types::{DeploymentId, ModelList, ModelName, ModelObject};
use http::HeaderValue;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The gateway: everything a request needs, swappable as a whole.
///
/// Requests take a snapshot ([`Runtime`]) at their start and finish on it,
/// so a config swap ([`Gateway::reload`]) never changes a request in flight.
#[derive(Debug)]
pub struct Gateway {
    runtime: RwLock<Arc<Runtime>>,
    /// Kept to build providers again on reload.
    registry: ProviderRegistry,
    /// Kept so reloaded providers share the connection pool.
    http: HttpClient,
    /// Serializes reloads; never held across `.await`.
    reloading: Mutex<()>,
    store_health: RwLock<Option<StoreHealthProbe>>,
    /// `--log-bodies`: overrides `general_settings.log_request_bodies`.
    log_bodies: AtomicBool,
    /// `None` when another global metrics recorder was installed first.
    pub(crate) metrics: Option<PrometheusHandle>,
    /// Successful reloads so far; subscribers see each one.
    reloads: tokio::sync::watch::Sender<u64>,
    /// Keys, budgets, the store and spend logs; kept across reloads.
    pub(crate) budgets: Arc<Budgets>,
    /// Where request lines go when not through `tracing`.
    pub(crate) access_log: Option<AccessLog>,
}

/// One immutable generation of configuration: the config, the router built
/// from it, and what is derived from it once instead of per request.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) config: GatewayConfig,
    pub(crate) router: Router,
    /// `GET /v1/models`, encoded once.
    pub(crate) models_json: Bytes,
    /// Metric labels per deployment id.
    pub(crate) deployment_labels: NameMap<DeploymentLabels>,
    /// Response headers naming each deployment, per deployment id.
    pub(crate) deployment_headers: NameMap<DeploymentHeaders>,
    /// Metric labels per model alias (for requests that reached no deployment).
    pub(crate) model_labels: NameMap<DeploymentLabels>,
    /// Every configured credential, scrubbed from logged error messages.
    pub(crate) secrets: Vec<String>,
    /// The cooldown deadline last seen per deployment id, to publish state
    /// changes and count cooldowns entered (see [`Runtime::observe_cooldowns`]).
    cooldowns_seen: Mutex<HashMap<DeploymentId, Option<Instant>>>,
    /// Deployment prices and access groups, for budgets.
    pub(crate) pricing: Arc<Pricing>,
    /// The master key's hash (hex), as spend rows record it; hashed once
    /// here rather than per request.
    pub(crate) master_key_hash: Option<Arc<str>>,
}

/// The `x-litellm-model-id`, `-model-group` and `-model-api-base` values of
/// one deployment, encoded once; cloning a value shares its bytes.
#[derive(Debug)]
pub(crate) struct DeploymentHeaders {
    pub(crate) id: HeaderValue,
    /// The group these headers were built for, and its value.
    pub(crate) group: (String, HeaderValue),
    /// The provider's endpoint, and its value without a query string.
    pub(crate) api_base: Option<(String, HeaderValue)>,
}

impl DeploymentHeaders {
    /// `None` when a name cannot be a header value (then the headers are
    /// built per request, as before).
    fn new(id: &str, group: &str, api_base: Option<&str>) -> Option<Self> {
        let api_base = match api_base {
            Some(api_base) => Some((
                api_base.to_owned(),
                HeaderValue::try_from(api_base_header(api_base)).ok()?,
            )),
            None => None,
        };
        Some(Self {
            id: HeaderValue::try_from(id).ok()?,
            group: (group.to_owned(), HeaderValue::try_from(group).ok()?),
            api_base,
        })
    }
}

/// An endpoint as the `x-litellm-model-api-base` header shows it: without
/// its query string (where Azure-style deployments may carry parameters).
pub(crate) fn api_base_header(api_base: &str) -> &str {
    api_base.split('?').next().unwrap_or("")
}

/// Environment variables that hold credentials adapters may read; their
/// values are scrubbed from logged messages like configured keys.
const CREDENTIAL_VARIABLES: &[&str] = &[
    "LITELLM_MASTER_KEY",
    "DATABASE_URL",
    "OPENAI_API_KEY",
    "HOSTED_VLLM_API_KEY",
    "OPENROUTER_API_KEY",
    "ANTHROPIC_API_KEY",
    "AZURE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
];

/// What a reload changed, by deployment id.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// The model aliases now served.
    pub models: Vec<String>,
    /// Deployments that are new.
    pub added: Vec<String>,
    /// Deployments that are gone.
    pub removed: Vec<String>,
    /// Deployments whose settings changed.
    pub changed: Vec<String>,
    /// How many deployments are the same as before.
    pub unchanged: usize,
    /// Keys in the new config the gateway does not support.
    #[serde(serialize_with = "serialize_warnings")]
    pub warnings: Vec<ConfigWarning>,
}

fn serialize_warnings<S: serde::Serializer>(
    warnings: &[ConfigWarning],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(warnings.len()))?;
    for warning in warnings {
        seq.serialize_element(&serde_json::json!({
            "path": warning.path,
            "message": warning.message,
        }))?;
    }
    seq.end()
}

/// Whether the store (spend log, keys) is reachable, as readiness reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreHealth {
    /// No store is configured (`"db": "Not connected"`).
    NotConfigured,
    /// The store answers (`"db": "connected"`).
    Connected,
    /// The store does not answer; the gateway keeps serving from memory
    /// (`"db": "disconnected"`, `"status": "degraded"`).
    Disconnected,
}

impl StoreHealth {
    /// The `db` value of the readiness body (LiteLLM's wording).
    pub fn as_str(self) -> &'static str {
        match self {
            StoreHealth::NotConfigured => "Not connected",
            StoreHealth::Connected => "connected",
            StoreHealth::Disconnected => "disconnected",
        }
    }
}

/// Reports the store's health without IO (the store keeps its status up to
/// date in the background; readiness must answer at once).
#[derive(Clone)]
pub struct StoreHealthProbe(Arc<dyn Fn() -> StoreHealth + Send + Sync>);

impl StoreHealthProbe {
    /// Wraps a function that returns the store's current health.
    pub fn new(probe: impl Fn() -> StoreHealth + Send + Sync + 'static) -> Self {
        Self(Arc::new(probe))
    }

    /// The store's current health.
    pub fn health(&self) -> StoreHealth {
        (self.0)()
    }
}

impl fmt::Debug for StoreHealthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreHealthProbe")
    }
}

impl Gateway {
    /// Builds a gateway with the built-in providers and a new HTTP client.
    pub fn from_config(config: GatewayConfig) -> Result<Self, ConfigError> {
        let http = HttpClient::new(&HttpClientOptions::default());
        Self::build(config, &ProviderRegistry::builtin(), http)
    }

    /// Builds a gateway with the given provider registry (to add providers
    /// from other crates) and HTTP client. Both are kept for reloads.
    ///
    /// Installs the process-wide Prometheus recorder on first use (see
    /// [`metrics`](crate::metrics)).
    pub fn build(
        config: GatewayConfig,
        registry: &ProviderRegistry,
        http: HttpClient,
    ) -> Result<Self, ConfigError> {
        let handle = match metrics::install() {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::warn!(%error, "/metrics will be empty");
                None
            }
        };
        let runtime = Runtime::build(config, registry, &http, None)?;
        runtime.publish_deployment_states(None);
        let budgets = Arc::new(Budgets::new(&runtime.config));
        Ok(Self {
            budgets,
            runtime: RwLock::new(Arc::new(runtime)),
            registry: registry.clone(),
            http,
            reloading: Mutex::new(()),
            store_health: RwLock::new(None),
            log_bodies: AtomicBool::new(false),
            metrics: handle,
            reloads: tokio::sync::watch::Sender::new(0),
            access_log: None,
        })
    }

    /// Writes each request's log line straight to `log` instead of
    /// emitting a `tracing` event (see [`access_log`](crate::access_log)):
    /// for a program that owns its log output and wants the line cheaply.
    /// The `tracing` filter for `gateway_server::observe` still applies.
    #[must_use]
    pub fn with_access_log(mut self, log: AccessLog) -> Self {
        self.access_log = Some(log);
        self
    }

    /// The config in force.
    pub fn config(&self) -> GatewayConfig {
        self.runtime().config.clone()
    }

    /// Swaps in a new config: builds every provider and the router off to
    /// the side, then replaces the running generation atomically. Requests
    /// in flight finish on the old one. On error nothing changes.
    pub fn reload(&self, config: GatewayConfig) -> Result<ReloadReport, ConfigError> {
        let _serialized = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = self.runtime();
        let built = Runtime::build(config, &self.registry, &self.http, Some(&previous));
        let runtime = match built {
            Ok(runtime) => runtime,
            Err(error) => {
                metrics::record_reload(false);
                return Err(error);
            }
        };
        let report = ReloadReport::between(&previous.config, &runtime.config);
        runtime.publish_deployment_states(Some(&previous));
        self.budgets.apply_config(&runtime.config);
        let runtime = Arc::new(runtime);
        match self.runtime.write() {
            Ok(mut guard) => *guard = runtime,
            Err(poisoned) => *poisoned.into_inner() = runtime,
        }
        metrics::record_reload(true);
        self.reloads.send_modify(|count| *count += 1);
        Ok(report)
    }

    /// Reads the config file again (the one the config in force was loaded
    /// from, with the same environment) and [`reload`](Self::reload)s it.
    /// This is what SIGHUP, `--watch` and `POST /config/reload` do.
    pub fn reload_from_file(&self) -> Result<ReloadReport, ConfigError> {
        let current = self.runtime();
        let Some(reread) = current.config.reread() else {
            return Err(ConfigError::Invalid {
                path: "config".to_owned(),
                reason: "the gateway was not started from a config file (--config), so there is nothing to reload".to_owned(),
            });
        };
        match reread {
            Ok(config) => self.reload(config),
            Err(error) => {
                metrics::record_reload(false);
                Err(error)
            }
        }
    }

    /// Counts successful reloads; `changed()` resolves after each one. For
    /// whatever must follow the config in force (and for tests).
    pub fn subscribe_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Plugs in the store's health, reported by `/health/readiness`. Until
    /// this is called readiness says `"db": "Not connected"`.
    pub fn set_store_health(&self, probe: StoreHealthProbe) {
        match self.store_health.write() {
            Ok(mut guard) => *guard = Some(probe),
            Err(poisoned) => *poisoned.into_inner() = Some(probe),
        }
    }

    /// The store's health as readiness reports it.
    pub fn store_health(&self) -> StoreHealth {
        let probe = match self.store_health.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        probe.map_or(StoreHealth::NotConfigured, |probe| probe.health())
    }

    /// Opens the store (`general_settings.database_url`, else the SQLite
    /// file at `database_path`), loads keys, teams, users and organizations
    /// into memory, and starts the spend writer, alert delivery, budget
    /// resets and retention pruning. When the database is unreachable the
    /// gateway keeps serving from the config (readiness says `degraded`)
    /// and connects in the background. Call [`Gateway::shutdown`] after
    /// the server stops, so queued spend is written.
    ///
    /// Without this call keys come from the config only and spend is not
    /// recorded (for embedding the gateway without a database).
    pub async fn start_store(&self) {
        let database_url = self.runtime().config.general.database_url.clone();
        self.budgets.start(database_url).await;
        let store = Arc::clone(&self.budgets.store);
        self.set_store_health(StoreHealthProbe::new(move || {
            if store.is_healthy() {
                StoreHealth::Connected
            } else {
                StoreHealth::Disconnected
            }
        }));
    }

    /// Resolves once the store is connected (at once when it was reachable
    /// at start; else when the background reconnect succeeds). Never
    /// resolves when [`Gateway::start_store`] was not called.
    pub async fn store_connected(&self) {
        self.budgets.store.wait_connected().await;
    }

    /// Writes every queued spend log row now; returns how many were
    /// written, or the store's error (the rows stay queued).
    pub async fn flush_spend(&self) -> Result<usize, gateway_budget::StoreError> {
        match self.budgets.writer() {
            Some(writer) => writer.flush().await,
            None => Ok(0),
        }
    }

    /// Counts the spend writer's write attempts (successful or not);
    /// `changed()` resolves after each one. `None` before
    /// [`Gateway::start_store`] or after [`Gateway::shutdown`]. For health
    /// hooks that follow the spend log (and for tests).
    pub async fn subscribe_spend_writes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.budgets
            .background
            .lock()
            .await
            .as_ref()
            .map(Background::spend_writes)
    }

    /// Stops the background work started by [`Gateway::start_store`]:
    /// writes every queued spend row (retrying for a while if the database
    /// is down) and delivers queued alerts. Call it after
    /// [`server::serve`](crate::server::serve) returns.
    pub async fn shutdown(&self) {
        self.budgets.shutdown().await;
    }

    /// Logs request bodies (keys redacted) whatever the config says: the
    /// binary's `--log-bodies`. Survives reloads.
    pub fn set_log_request_bodies(&self, enabled: bool) {
        self.log_bodies.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn log_request_bodies(&self, runtime: &Runtime) -> bool {
        self.log_bodies.load(Ordering::Relaxed) || runtime.config.general.log_request_bodies
    }

    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(guard) => Arc::clone(&guard),
            // A panic while holding the lock cannot leave the Arc half-written.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl ReloadReport {
    fn between(old: &GatewayConfig, new: &GatewayConfig) -> Self {
        // Debug prints secrets as `***`; compare the keys themselves too so a
        // rotated key counts as a change. The fingerprints are never printed.
        let fingerprint = |config: &GatewayConfig| -> BTreeMap<String, (String, Option<String>)> {
            config
                .deployments
                .iter()
                .map(|deployment| {
                    let key = deployment
                        .provider
                        .api_key
                        .as_ref()
                        .map(|key| key.expose().to_owned());
                    (deployment.id.clone(), (format!("{deployment:?}"), key))
                })
                .collect()
        };
        let (old, new_map) = (fingerprint(old), fingerprint(new));
        let mut report = ReloadReport {
            models: new.model_names().into_iter().map(str::to_owned).collect(),
            warnings: new.warnings.clone(),
            ..ReloadReport::default()
        };
        for (id, settings) in &new_map {
            match old.get(id) {
                None => report.added.push(id.clone()),
                Some(before) if before != settings => report.changed.push(id.clone()),
                Some(_) => report.unchanged += 1,
            }
        }
        report.removed = old
            .keys()
            .filter(|id| !new_map.contains_key(*id))
            .cloned()
            .collect();
        report
    }
}

impl Runtime {
    /// Builds one generation from a validated config: every provider, the
    /// router, and the derived responses and labels.
    ///
    /// `previous` is the generation being replaced on reload: the new router
    /// takes over its cooldown, limit and latency state for every deployment
    /// whose id is unchanged (`Router::new_with_state`).
    pub(crate) fn build(
        config: GatewayConfig,
        registry: &ProviderRegistry,
        http: &HttpClient,
        previous: Option<&Runtime>,
    ) -> Result<Self, ConfigError> {
        let cx = BuildContext {
            http: http.clone(),
            env: config.env.clone(),
        };
        let mut deployments = Vec::with_capacity(config.deployments.len());
        let capacity = config.deployments.len();
        let mut deployment_labels = NameMap::with_capacity_and_hasher(capacity, Default::default());
        let mut model_labels = NameMap::default();
        let mut deployment_headers =
            NameMap::with_capacity_and_hasher(capacity, Default::default());
        let mut secrets = Vec::new();
        for (index, deployment) in config.deployments.iter().enumerate() {
            let provider = match registry.build(&deployment.provider, &cx) {
                Ok(provider) => provider,
                // A provider LiteLLM knows but this gateway does not ship:
                // serve the rest of the config, as LiteLLM skips invalid
                // deployments, and say so loudly.
                Err(BuildError::UnknownProvider(prefix, supported))
                    if crate::config::is_litellm_provider(&prefix) =>
                {
                    tracing::warn!(
                        key = %format!("model_list[{index}].litellm_params.model"),
                        model_name = %deployment.model_name,
                        "provider `{prefix}/` is not supported by this gateway; this deployment is skipped (supported: {supported})"
                    );
                    continue;
                }
                Err(error) => {
                    return Err(ConfigError::Invalid {
                        path: format!("model_list[{index}].litellm_params"),
                        reason: error.to_string(),
                    })
                }
            };
            let labels = DeploymentLabels::new(
                &deployment.model_name,
                &deployment.id,
                provider.kind().as_str(),
            );
            model_labels
                .entry(deployment.model_name.clone())
                .or_insert_with(|| DeploymentLabels::model_only(labels.model.clone()));
            deployment_labels.insert(deployment.id.clone(), labels);
            if let Some(headers) =
                DeploymentHeaders::new(&deployment.id, &deployment.model_name, provider.api_base())
            {
                deployment_headers.insert(deployment.id.clone(), headers);
            }
            if let Some(key) = &deployment.provider.api_key {
                secrets.push(key.expose().to_owned());
            }
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
        for secret in [&config.general.master_key, &config.general.database_url]
            .into_iter()
            .flatten()
        {
            secrets.push(secret.expose().to_owned());
        }
        // Adapters fall back to these when a deployment has no api_key.
        secrets.extend(
            CREDENTIAL_VARIABLES
                .iter()
                .filter_map(|name| config.env.get(name)),
        );
        // Short values would scrub ordinary words from messages.
        secrets.retain(|secret| secret.len() >= 8);
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
        let router = match previous {
            Some(previous) => Router::new_with_state(settings, deployments, &previous.router),
            None => Router::new(settings, deployments),
        }
        .map_err(|error| ConfigError::Invalid {
            path: "model_list".to_owned(),
            reason: error.to_string(),
        })?;
        // Wildcard groups (`*`, `openai/*`) are routes, not models to list.
        let models = ModelList::new(
            router
                .model_names()
                .iter()
                .filter(|name| !name.as_str().contains('*'))
                .map(|name| ModelObject::alias(name.as_str()))
                .collect(),
        );
        let models_json = serde_json::to_vec(&models)
            .map(Bytes::from)
            .unwrap_or_default();
        let pricing = Arc::new(Pricing::build(&config));
        let master_key_hash = config
            .general
            .master_key
            .as_ref()
            .map(|key| gateway_budget::KeyHash::of_key(key.expose()).shared());
        Ok(Self {
            pricing,
            master_key_hash,
            config,
            router,
            models_json,
            deployment_labels,
            deployment_headers,
            model_labels,
            secrets,
            cooldowns_seen: Mutex::new(HashMap::new()),
        })
    }

    /// Marks the new deployments of this generation healthy, and those of
    /// `previous` that are gone as removed.
    fn publish_deployment_states(&self, previous: Option<&Runtime>) {
        if let Some(previous) = previous {
            for (id, labels) in &previous.deployment_labels {
                if self.deployment_labels.get(id) != Some(labels) {
                    metrics::set_deployment_state(labels, DeploymentState::Removed);
                }
            }
        }
        // Deployments that carry over keep the state they report.
        for (id, labels) in &self.deployment_labels {
            let carried = previous.and_then(|previous| previous.deployment_labels.get(id));
            if carried != Some(labels) {
                metrics::set_deployment_state(labels, DeploymentState::Healthy);
            }
        }
    }

    /// The metric labels of a request: the deployment's when one was
    /// chosen, else the configured alias's, else `unknown`.
    /// `model` is the requested alias (as the router resolved it), so a
    /// request that fell back is still counted under the alias asked for.
    /// For a name that is not a model group: the wildcard group that takes
    /// it (`*`, `openai/*`, `claude-*`; the most specific pattern wins) and
    /// the text its `*` matched. `None` for configured groups and names no
    /// pattern takes.
    pub(crate) fn wildcard_match<'a>(&'a self, model: &str) -> Option<(&'a str, String)> {
        if self.router.has_model(model) {
            return None;
        }
        self.router
            .model_names()
            .iter()
            .filter_map(|group| {
                let (prefix, suffix) = group.as_str().split_once('*')?;
                let fits = model.len() >= prefix.len() + suffix.len()
                    && model.starts_with(prefix)
                    && model.ends_with(suffix);
                fits.then(|| (group.as_str(), prefix.len() + suffix.len()))
            })
            .max_by_key(|(_, specificity)| *specificity)
            .map(|(group, _)| {
                let (prefix, suffix) = group.split_once('*').unwrap_or((group, ""));
                (
                    group,
                    model[prefix.len()..model.len() - suffix.len()].to_owned(),
                )
            })
    }

    pub(crate) fn labels(&self, model: Option<&str>, deployment: Option<&str>) -> DeploymentLabels {
        let chosen = deployment.and_then(|id| self.deployment_labels.get(id));
        if let Some(chosen) = chosen {
            if model == Some(&*chosen.model) {
                // The usual case: these labels carry the series' handles.
                return chosen.clone();
            }
        }
        // Looked up only now: the usual case above needs no second lookup.
        let configured = model.and_then(|name| self.model_labels.get(name));
        let model_only = || {
            configured
                .cloned()
                .unwrap_or_else(DeploymentLabels::unknown)
        };
        let Some(chosen) = chosen else {
            return model_only();
        };
        // A fallback: the deployment answered for another alias.
        if let Some(labels) = configured.and_then(|alias| chosen.for_alias(&alias.model)) {
            return labels;
        }
        let mut labels = model_only();
        labels.deployment = chosen.deployment.clone();
        labels.provider = chosen.provider.clone();
        labels
    }

    /// Publishes which deployments are cooling and counts the cooldowns
    /// entered since the last look. Called on every `/metrics` scrape, and
    /// for the deployments that failed after any request with a failed
    /// attempt ([`Runtime::observe_cooldowns_of`]), so the success path pays
    /// nothing. A cooldown re-extended between two looks counts once.
    pub(crate) fn observe_cooldowns(&self) {
        self.observe_cooldowns_of(self.deployment_labels.keys().map(String::as_str));
    }

    /// [`Runtime::observe_cooldowns`] for some deployments: after a request,
    /// the ones that failed in it. Only a failure starts a cooldown, and a
    /// scrape looks at every deployment (and sees cooldowns end), so a
    /// failing request costs its own failures, not a walk over every
    /// deployment of the config.
    pub(crate) fn observe_cooldowns_of<'a>(&self, ids: impl Iterator<Item = &'a str> + Clone) {
        let now = tokio::time::Instant::now().into_std();
        let mut current: Vec<(DeploymentId, Option<Instant>)> = Vec::new();
        self.router.state().update(&mut |table| {
            current.clear();
            for id in ids.clone() {
                let id = DeploymentId::new(id);
                let until = table
                    .by_id(&id)
                    .and_then(|stats| stats.cooldown_until)
                    .filter(|until| *until > now);
                current.push((id, until));
            }
        });
        let mut seen = match self.cooldowns_seen.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (id, until) in current {
            let Some(labels) = self.deployment_labels.get(id.as_str()) else {
                continue;
            };
            let previous = seen.insert(id, until).flatten();
            if until.is_some() && until != previous {
                metrics::record_cooldown(labels);
            }
            if until.is_some() != previous.is_some() || until != previous {
                let state = if until.is_some() {
                    DeploymentState::Cooling
                } else {
                    DeploymentState::Healthy
                };
                metrics::set_deployment_state(labels, state);
            }
        }
    }

    /// `text` with every configured credential replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
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
