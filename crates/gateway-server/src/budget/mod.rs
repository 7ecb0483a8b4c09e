//! Virtual keys and budgets in the server: the in-memory engine that answers
//! auth and budgets on the request path, the store behind it, and the one
//! pair of calls every model endpoint makes: [`Budgets::admit`] before the
//! upstream call and [`Admission::settle`] after it.
//!
//! The request path never waits on the database: `admit` is a hash lookup
//! and a short engine lock, `settle` a short engine lock and non-blocking
//! sends to the spend writer and the alert sender.

mod background;
mod store;

pub(crate) use background::Background;
pub(crate) use store::LazyStore;

use crate::config::{BudgetSettings, ConfigKey, GatewayConfig};
use crate::errors::ApiError;
use crate::metrics::{self, SpendLabels};
use crate::NameMap;
use gateway_budget::{
    cost, AccessGroups, BudgetDuration, BudgetEngine, EngineConfig, Entity, EntityId, KeyHash,
    KeyLabels, KeyRecord, KeyScope, ModelPrices, PriceBook, Reservation, ReserveRequest,
    Settlement, SpendLogRow, SpendStatus, Timestamp, TokenUsage,
};
use gateway_store::{AlertHandle, SpendWriterHandle};
use gateway_types::{NanoUsd, Secret};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Output tokens reserved for a chat request without `max_tokens`.
pub(crate) const DEFAULT_OUTPUT_ALLOWANCE: u64 = 256;

/// Who is calling.
#[derive(Debug, Clone)]
pub(crate) enum Identity {
    /// The master key: admin, never limited.
    Master,
    /// A virtual key (the live record at authentication).
    Key(Arc<KeyRecord>),
    /// No master key and no keys configured: auth is off.
    Open,
}

/// The budget side of the gateway; lives across config reloads.
#[derive(Debug)]
pub(crate) struct Budgets {
    pub(crate) engine: BudgetEngine,
    pub(crate) store: Arc<LazyStore>,
    pub(crate) settings: BudgetSettings,
    /// Shared, so an admission takes one reference count, not a clone of
    /// each handle.
    sinks: RwLock<Arc<Sinks>>,
    has_keys: AtomicBool,
    /// The keys the config in force declares. A reload that drops one
    /// removes it from the engine and the store.
    declared: std::sync::Mutex<Vec<KeyRecord>>,
    pub(crate) background: tokio::sync::Mutex<Option<Background>>,
}

/// Where finished requests go; empty until the store is started.
#[derive(Debug, Clone, Default)]
struct Sinks {
    writer: Option<SpendWriterHandle>,
    alerts: Option<AlertHandle>,
    /// False with `disable_spend_logs`: counters are still written.
    log_rows: bool,
}

/// Prices and names of every deployment of one config generation.
#[derive(Debug, Default)]
pub(crate) struct Pricing {
    deployments: NameMap<DeploymentPricing>,
    /// Per alias: the highest prices among its deployments, for estimates.
    aliases: NameMap<ModelPrices>,
    /// Alias to its access groups.
    pub(crate) access_groups: AccessGroups,
    /// The spend counter of each (alias, key alias, team) seen.
    spend_counters: metrics::SpendCounters,
}

#[derive(Debug, Clone)]
struct DeploymentPricing {
    prices: Option<ModelPrices>,
    upstream_model: Arc<str>,
    provider: Arc<str>,
}

/// What a model endpoint asks to admit.
#[derive(Debug)]
pub(crate) struct AdmitRequest<'a> {
    /// The requested alias.
    pub(crate) model: &'a str,
    /// `chat_completion`, `embeddings`, ...
    pub(crate) call_type: &'static str,
    /// Size of the request body, for the input estimate.
    pub(crate) body_bytes: usize,
    /// Output tokens to reserve (`max_tokens`, else a default for chat).
    pub(crate) max_output_tokens: u64,
    /// The request id.
    pub(crate) request_id: &'a str,
    /// The OpenAI `user` field.
    pub(crate) end_user: Option<String>,
}

/// An admitted request: its reservation and what its spend row needs.
/// Dropped unsettled, the reservation is released and nothing is logged.
#[derive(Debug)]
pub(crate) struct Admission {
    reservation: Option<Reservation>,
    engine: BudgetEngine,
    sinks: Arc<Sinks>,
    pricing: Arc<Pricing>,
    key: Option<Arc<KeyRecord>>,
    key_hash: Arc<str>,
    /// The key's levels and labels, shared with its other requests.
    scope: Option<Arc<KeyScope>>,
    model: String,
    call_type: &'static str,
    request_id: String,
    end_user: Option<String>,
    started: Timestamp,
    prompt_estimate: u64,
    /// The deployment that answered, once known.
    pub(crate) deployment: Option<Arc<str>>,
}

/// How a request ended, for [`Admission::settle`].
#[derive(Debug, Default)]
pub(crate) struct Finished<'a> {
    /// Usage the upstream reported.
    pub(crate) usage: Option<TokenUsage>,
    /// Characters streamed to the client, priced when no usage came.
    pub(crate) streamed_chars: usize,
    /// The failure kind, when the request failed.
    pub(crate) failure: Option<&'a str>,
    /// Time to the first streamed chunk.
    pub(crate) time_to_first_token: Option<Duration>,
}

/// What settling charged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settled {
    pub(crate) cost: NanoUsd,
    /// The key's spend after this request.
    pub(crate) key_spend: Option<NanoUsd>,
}

/// The current time as the budget crate takes it.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

impl Budgets {
    /// Sets the remaining-budget gauges of every key with an alias, and every
    /// team, that has a `max_budget`. Called when `/metrics` is scraped, so
    /// the values are exact then (a budget reset shows at once) and the
    /// request path sets no gauge: registering one per request cost more
    /// than the rest of settling it.
    pub(crate) fn export_budget_gauges(&self) {
        let mut keys = Vec::new();
        let mut teams = Vec::new();
        // Names are copied out; the gauges are set after the lock is released.
        self.engine.for_each_budget(|record, spend, max| {
            let remaining = (max - spend).as_usd();
            match record {
                Entity::Key(key) => {
                    if let Some(alias) = &key.key_alias {
                        keys.push((alias.clone(), remaining));
                    }
                }
                Entity::Team(team) => teams.push((team.label().to_owned(), remaining)),
                Entity::User(_) | Entity::Organization(_) => {}
            }
        });
        for (alias, remaining) in keys {
            metrics::set_key_budget_remaining(&alias, remaining);
        }
        for (alias, remaining) in teams {
            metrics::set_team_budget_remaining(&alias, remaining);
        }
    }

    /// The engine with the config's keys; no store yet.
    pub(crate) fn new(config: &GatewayConfig) -> Self {
        let settings = config.general.budget.clone();
        let engine = BudgetEngine::new(
            EngineConfig {
                alert_thresholds_percent: settings.alert_thresholds_percent.clone(),
                ..EngineConfig::default()
            },
            Vec::new(),
            now(),
        );
        let budgets = Self {
            engine,
            store: Arc::new(LazyStore::default()),
            settings,
            sinks: RwLock::new(Arc::default()),
            has_keys: AtomicBool::new(false),
            declared: std::sync::Mutex::new(Vec::new()),
            background: tokio::sync::Mutex::new(None),
        };
        budgets.apply_config(config);
        budgets
    }

    /// Re-applies what the config declares: its keys and access groups.
    /// A key the previous config declared and this one does not stops
    /// working at once, and is deleted from the store (so a restart does not
    /// bring it back): removing a leaked key from the file and reloading is
    /// a rotation.
    pub(crate) fn apply_config(&self, config: &GatewayConfig) {
        let now = now();
        let keys = config_keys(&config.general.budget.keys, now);
        let dropped: Vec<EntityId> = {
            let mut declared = self
                .declared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let dropped = declared
                .iter()
                .filter(|old| !keys.iter().any(|new| new.token == old.token))
                .map(|old| EntityId::Key(old.token.clone()))
                .collect();
            declared.clone_from(&keys);
            dropped
        };
        for id in &dropped {
            self.engine.remove(id);
        }
        for key in keys {
            self.upsert(key.into(), now);
        }
        self.engine.set_access_groups(access_groups(config));
        if !dropped.is_empty() && self.store.is_connected() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let store = Arc::clone(&self.store);
                runtime.spawn(async move {
                    for id in dropped {
                        if let Err(error) = gateway_budget::BudgetStore::delete(store.as_ref(), &id).await {
                            tracing::warn!(%error, "a key dropped from the config could not be deleted from the store");
                        }
                    }
                });
            }
        }
    }

    /// The keys the config in force declares.
    pub(crate) fn declared_keys(&self) -> Vec<KeyRecord> {
        self.declared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Adds or replaces a record in the engine.
    pub(crate) fn upsert(&self, entity: Entity, now: Timestamp) {
        if matches!(entity, Entity::Key(_)) {
            self.has_keys.store(true, Ordering::Relaxed);
        }
        self.engine.upsert(entity, now);
    }

    /// True once any virtual key is known: auth is then required even
    /// without a master key.
    pub(crate) fn has_keys(&self) -> bool {
        self.has_keys.load(Ordering::Relaxed)
    }

    fn set_sinks(&self, writer: Option<SpendWriterHandle>, alerts: Option<AlertHandle>) {
        let sinks = Arc::new(Sinks {
            writer,
            alerts,
            log_rows: !self.settings.disable_spend_logs,
        });
        match self.sinks.write() {
            Ok(mut guard) => *guard = sinks,
            Err(poisoned) => *poisoned.into_inner() = sinks,
        }
    }

    fn sinks(&self) -> Arc<Sinks> {
        match self.sinks.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The spend writer's handle, once started.
    pub(crate) fn writer(&self) -> Option<SpendWriterHandle> {
        self.sinks().writer.clone()
    }

    /// Checks the caller's key may make this request and reserves its
    /// estimated cost. The master key and open mode are not limited.
    pub(crate) fn admit(
        &self,
        identity: Identity,
        pricing: &Arc<Pricing>,
        request: AdmitRequest<'_>,
        master_key_hash: Option<&Arc<str>>,
    ) -> Result<Admission, ApiError> {
        let now = now();
        let prompt_estimate = u64::try_from(request.body_bytes / 4).unwrap_or(u64::MAX);
        let estimate = pricing
            .aliases
            .get(request.model)
            .map_or(NanoUsd::ZERO, |prices| {
                cost(
                    prices,
                    TokenUsage {
                        prompt_tokens: prompt_estimate,
                        completion_tokens: request.max_output_tokens,
                        cached_tokens: 0,
                    },
                )
            });
        let mut admission = Admission {
            reservation: None,
            engine: self.engine.clone(),
            sinks: self.sinks(),
            pricing: Arc::clone(pricing),
            key: None,
            key_hash: Arc::default(),
            scope: None,
            model: request.model.to_owned(),
            call_type: request.call_type,
            request_id: request.request_id.to_owned(),
            end_user: request.end_user,
            started: now,
            prompt_estimate,
            deployment: None,
        };
        match identity {
            Identity::Open => {}
            Identity::Master => {
                if let Some(hash) = master_key_hash {
                    admission.key_hash = Arc::clone(hash);
                }
            }
            Identity::Key(record) => {
                let reservation = self
                    .engine
                    .reserve(&ReserveRequest {
                        key: &record.token,
                        model: request.model,
                        estimate,
                        now,
                    })
                    .map_err(|denied| ApiError::from_denied(&denied, &record.key_name))?;
                admission.key_hash = record.token.shared();
                admission.scope = Some(Arc::clone(reservation.scope()));
                admission.reservation = Some(reservation);
                admission.key = Some(record);
            }
        }
        Ok(admission)
    }

    /// Starts the store, the spend writer and the background tasks.
    pub(crate) async fn start(self: &Arc<Self>, database_url: Option<Secret>) {
        let background = Background::start(Arc::clone(self), database_url).await;
        self.set_sinks(Some(background.writer_handle()), background.alert_handle());
        *self.background.lock().await = Some(background);
    }

    /// Drains the spend writer and the alert sender and stops the tasks.
    pub(crate) async fn shutdown(&self) {
        let background = self.background.lock().await.take();
        self.set_sinks(None, None);
        if let Some(background) = background {
            background.shutdown().await;
        }
    }
}

impl Admission {
    /// The caller's key, when a virtual key called.
    pub(crate) fn key(&self) -> Option<&KeyRecord> {
        self.key.as_deref()
    }

    /// The key's live spend, before this request is settled. (The record
    /// from [`key`](Self::key) is shared and its spend is not live.)
    pub(crate) fn key_spend(&self) -> Option<NanoUsd> {
        let key = self.key.as_ref()?;
        self.engine
            .spend_and_budget(&EntityId::Key(key.token.clone()))
            .map(|(spend, _)| spend)
    }

    /// The key's names (alias, team alias, ...), when a virtual key called.
    pub(crate) fn labels(&self) -> Option<&KeyLabels> {
        self.scope.as_deref().map(KeyScope::labels)
    }

    /// Records the request's real cost: settles the reservation, queues the
    /// spend row and any budget alerts, and counts the spend in metrics.
    pub(crate) fn settle(mut self, finished: Finished<'_>) -> Settled {
        let now = now();
        let deployment = self
            .deployment
            .as_deref()
            .and_then(|id| self.pricing.deployments.get(id));
        let prices = deployment
            .and_then(|deployment| deployment.prices)
            .or_else(|| self.pricing.aliases.get(&self.model).copied());
        let usage = finished.usage.unwrap_or_else(|| TokenUsage {
            prompt_tokens: if finished.streamed_chars > 0 {
                self.prompt_estimate
            } else {
                0
            },
            completion_tokens: u64::try_from(finished.streamed_chars.div_ceil(4))
                .unwrap_or(u64::MAX),
            cached_tokens: 0,
        });
        let charged = prices.map_or(NanoUsd::ZERO, |prices| cost(&prices, usage));
        let mut key_spend = None;
        if let Some(reservation) = self.reservation.take() {
            let alerts = self.engine.settle(
                reservation,
                Settlement {
                    cost: charged,
                    tokens: usage.total(),
                },
                now,
            );
            if let (Some(sender), false) = (&self.sinks.alerts, alerts.is_empty()) {
                sender.send(alerts);
            }
            if let Some(key) = &self.key {
                // The spend is read live, without copying the record. The
                // budget gauges are set when /metrics is scraped
                // (`Budgets::export_budget_gauges`), not on every request.
                if let Some((spend, _)) = self
                    .engine
                    .spend_and_budget(&EntityId::Key(key.token.clone()))
                {
                    key_spend = Some(spend);
                }
            }
        }
        let labels = self.scope.as_deref().map(KeyScope::labels);
        let (key_alias, team) = labels.map_or(("", ""), |labels| {
            (
                labels.key_alias.as_deref().unwrap_or_default(),
                labels.team_alias.as_deref().unwrap_or_default(),
            )
        });
        self.pricing.spend_counters.record(
            &SpendLabels {
                model: &self.model,
                key_alias,
                team,
            },
            charged,
        );
        if let (Some(writer), true) = (&self.sinks.writer, self.sinks.log_rows) {
            // `self` is consumed: its own strings move into the row; the
            // key's names are shared with its scope.
            let labels = labels.cloned().unwrap_or_default();
            let model = deployment.map_or_else(
                || Arc::from(self.model.as_str()),
                |d| Arc::clone(&d.upstream_model),
            );
            writer.submit(SpendLogRow {
                request_id: std::mem::take(&mut self.request_id),
                call_type: Cow::Borrowed(self.call_type),
                key_hash: std::mem::take(&mut self.key_hash),
                key_alias: labels.key_alias,
                user_id: labels.user_id,
                team_id: labels.team_id,
                organization_id: labels.organization_id,
                model_group: std::mem::take(&mut self.model),
                deployment_id: self.deployment.take(),
                provider: deployment.map(|deployment| Arc::clone(&deployment.provider)),
                model,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cached_tokens: usage.cached_tokens,
                spend: charged,
                start_time: self.started,
                end_time: now,
                time_to_first_token_ms: finished
                    .time_to_first_token
                    .map(|ttft| u64::try_from(ttft.as_millis()).unwrap_or(u64::MAX)),
                status: if finished.failure.is_some() {
                    SpendStatus::Failure
                } else {
                    SpendStatus::Success
                },
                error_kind: finished.failure.map(str::to_owned),
                cache_hit: false,
                tags: labels.tags,
                end_user: self.end_user.take(),
            });
        }
        Settled {
            cost: charged,
            key_spend,
        }
    }
}

impl Pricing {
    /// Prices every deployment of a config: its configured prices, else the
    /// price book's for its upstream model.
    pub(crate) fn build(config: &GatewayConfig) -> Self {
        let book = PriceBook::builtin();
        let mut pricing = Pricing {
            access_groups: access_groups(config),
            ..Pricing::default()
        };
        for deployment in &config.deployments {
            let configured = match (
                deployment.input_cost_per_token,
                deployment.output_cost_per_token,
            ) {
                (None, None) => None,
                (input, output) => Some(ModelPrices::per_token(
                    input.unwrap_or(0.0),
                    output.unwrap_or(0.0),
                    None,
                )),
            };
            let prices = book.resolve(configured, &deployment.provider.upstream_model, None);
            if let Some(prices) = prices {
                let entry = pricing
                    .aliases
                    .entry(deployment.model_name.clone())
                    .or_insert(prices);
                entry.input_pico_per_token =
                    entry.input_pico_per_token.max(prices.input_pico_per_token);
                entry.output_pico_per_token = entry
                    .output_pico_per_token
                    .max(prices.output_pico_per_token);
            }
            pricing.deployments.insert(
                deployment.id.clone(),
                DeploymentPricing {
                    prices,
                    upstream_model: deployment.provider.upstream_model.as_str().into(),
                    provider: deployment.provider.prefix.as_str().into(),
                },
            );
        }
        pricing
    }
}

/// Which aliases a caller may use (`/v1/models`): everything for the master
/// key and open mode; for a key, what the key and its team allow.
pub(crate) fn model_visible(
    budgets: &Budgets,
    identity: &Identity,
    pricing: &Pricing,
    model: &str,
) -> bool {
    let Identity::Key(key) = identity else {
        return true;
    };
    let groups = pricing
        .access_groups
        .get(model)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let team_models = key
        .team_id
        .as_ref()
        .and_then(|team| budgets.engine.get(&EntityId::Team(team.clone())))
        .map(|team| team.policy().models.clone());
    let key_list = if key.policy.models.iter().any(|m| m == "all-team-models") {
        team_models.clone().unwrap_or_default()
    } else {
        key.policy.models.clone()
    };
    gateway_budget::model_allowed(&key_list, model, groups)
        && team_models.is_none_or(|list| gateway_budget::model_allowed(&list, model, groups))
}

/// True when the key may call the admin API: its metadata or its user says
/// `user_role: proxy_admin`.
pub(crate) fn is_admin_key(budgets: &Budgets, key: &KeyRecord) -> bool {
    let admin = |role: Option<&str>| role == Some("proxy_admin");
    if admin(
        key.policy
            .metadata
            .get("user_role")
            .and_then(serde_json::Value::as_str),
    ) {
        return true;
    }
    key.user_id
        .as_ref()
        .and_then(|user| budgets.engine.get(&EntityId::User(user.clone())))
        .is_some_and(|user| match user {
            Entity::User(user) => admin(user.user_role.as_deref()),
            _ => false,
        })
}

/// Metadata flag on keys that come from the config file.
pub(crate) const DECLARED_IN_CONFIG: &str = "declared_in_config";

/// The key records the config declares.
pub(crate) fn config_keys(keys: &[ConfigKey], now: Timestamp) -> Vec<KeyRecord> {
    keys.iter()
        .map(|declared| {
            let hash = KeyHash::of_key(declared.key.expose());
            let mut record =
                KeyRecord::new(hash, gateway_budget::key_name(declared.key.expose()), now);
            record.key_alias.clone_from(&declared.key_alias);
            record.team_id.clone_from(&declared.team_id);
            record.user_id.clone_from(&declared.user_id);
            let policy = &mut record.policy;
            policy.models.clone_from(&declared.models);
            policy.max_budget = declared.max_budget.map(NanoUsd::from_usd);
            policy.soft_budget = declared.soft_budget.map(NanoUsd::from_usd);
            policy.budget_duration = declared
                .budget_duration
                .as_deref()
                .and_then(|text| text.parse::<BudgetDuration>().ok());
            policy.rpm_limit = declared.rpm_limit;
            policy.tpm_limit = declared.tpm_limit;
            policy.max_parallel_requests = declared.max_parallel_requests;
            policy.metadata.clone_from(&declared.metadata);
            // Marks the record as the config's, so that a config that no
            // longer declares it deletes it from the store.
            policy
                .metadata
                .insert(DECLARED_IN_CONFIG.to_owned(), serde_json::json!(true));
            if let Some(role) = &declared.user_role {
                policy
                    .metadata
                    .insert("user_role".to_owned(), serde_json::json!(role));
            }
            record
        })
        .collect()
}

fn access_groups(config: &GatewayConfig) -> AccessGroups {
    let mut groups = AccessGroups::new();
    for deployment in &config.deployments {
        let entry: &mut Vec<String> = groups.entry(deployment.model_name.clone()).or_default();
        for group in &deployment.access_groups {
            if !entry.contains(group) {
                entry.push(group.clone());
            }
        }
    }
    groups
}
