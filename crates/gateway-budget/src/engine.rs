//! The in-memory budget engine: authoritative on the request path.
//!
//! A request reserves its estimated cost at every level above its key (key,
//! team, organization, user) under one short lock, so concurrent requests can
//! overshoot a budget by at most the difference between their estimates and
//! their actual costs. The reservation is settled with the actual cost, or
//! released; dropping an unsettled [`Reservation`] releases it, so a cancelled
//! request gives its reservation back.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;

use gateway_types::NanoUsd;

use crate::alert::{AlertKind, BudgetAlert};
use crate::entity::{Entity, EntityId, KeyRecord, Level, Policy, SpendCounter};
use crate::key::KeyHash;
use crate::time::Timestamp;

/// Engine settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Percentages of `max_budget` that raise an alert once per period, below
    /// 100 (crossing 100% is always alerted). Default: 80.
    pub alert_thresholds_percent: Vec<u32>,
    /// Length of the fixed rpm/tpm window, which starts at the first request
    /// in it. Default: 60 s.
    pub rate_window: Duration,
}

/// Model alias to the access groups it belongs to (`model_info.access_groups`).
pub type AccessGroups = HashMap<String, Vec<String>>;

/// The budget engine. Cloning is cheap and clones share state.
#[derive(Clone)]
pub struct BudgetEngine {
    shared: Arc<Shared>,
}

/// What to reserve.
#[derive(Clone, Copy, Debug)]
pub struct ReserveRequest<'a> {
    /// The caller's key.
    pub key: &'a KeyHash,
    /// The requested model alias.
    pub model: &'a str,
    /// Estimated cost, held against every budget until settled.
    pub estimate: NanoUsd,
    /// The current time.
    pub now: Timestamp,
}

/// What a finished request cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The actual cost.
    pub cost: NanoUsd,
    /// Tokens used (prompt + completion), counted against tpm limits.
    pub tokens: u64,
}

/// Budget held for one request. Settle it with [`BudgetEngine::settle`] or
/// give it back with [`BudgetEngine::release`]; dropping it releases it.
#[must_use = "a reservation must be settled or released"]
pub struct Reservation {
    shared: Arc<Shared>,
    scope: Arc<KeyScope>,
    estimate: NanoUsd,
    open: bool,
}

/// What every request of one key shares, derived from the key's record and
/// its team's once per admin change, so a request copies none of it: the
/// levels it is held at and the names its spend is labelled with.
#[derive(Debug)]
pub struct KeyScope {
    levels: Box<[EntityId]>,
    labels: KeyLabels,
}

/// The names a key's spend rows, request log lines and metrics carry,
/// shared rather than copied per request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLabels {
    /// The key's alias.
    pub key_alias: Option<Arc<str>>,
    /// The key's user.
    pub user_id: Option<Arc<str>>,
    /// The key's team.
    pub team_id: Option<Arc<str>>,
    /// The team's alias, or its id without one; `None` without a team
    /// record.
    pub team_alias: Option<Arc<str>>,
    /// The key's organization, else its team's.
    pub organization_id: Option<Arc<str>>,
    /// The key's tags.
    pub tags: Arc<[String]>,
}

impl KeyScope {
    /// The levels a request is held at: the key, then its team,
    /// organization and user, when known.
    pub fn levels(&self) -> &[EntityId] {
        &self.levels
    }

    /// The key's names for spend rows, logs and metrics.
    pub fn labels(&self) -> &KeyLabels {
        &self.labels
    }
}

/// Why a request was refused: facts for the server to map to a response.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{level} {entity_id}: {reason}")]
pub struct Denied {
    /// The level that refused.
    pub level: Level,
    /// The entity id at that level (key hash for keys).
    pub entity_id: String,
    /// The limit hit, with figures.
    pub reason: DenyReason,
}

/// The limit a request hit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DenyReason {
    /// No such key.
    #[error("unknown key")]
    UnknownKey,
    /// The entity is blocked.
    #[error("blocked")]
    Blocked,
    /// The key expired.
    #[error("expired at {expires}")]
    Expired {
        /// When it expired.
        expires: Timestamp,
    },
    /// The model is not in the entity's allowed list.
    #[error("not allowed to access model {model}; allowed models: {allowed:?}")]
    ModelNotAllowed {
        /// The requested alias.
        model: String,
        /// The entity's list.
        allowed: Vec<String>,
    },
    /// Spend plus reservations plus this estimate would exceed the budget.
    #[error("budget exceeded: spend {spend}, reserved {reserved}, estimate {estimate}, max budget {max_budget}")]
    BudgetExceeded {
        /// Settled spend this period.
        spend: NanoUsd,
        /// Held by requests in flight.
        reserved: NanoUsd,
        /// This request's estimate.
        estimate: NanoUsd,
        /// The budget.
        max_budget: NanoUsd,
    },
    /// A rate limit was hit.
    #[error("rate limit exceeded: {kind:?} limit {limit}, current {current}")]
    RateLimited {
        /// Which limit.
        kind: RateLimitKind,
        /// The limit.
        limit: u64,
        /// The current count.
        current: u64,
        /// How long until the window resets; `None` for parallel requests.
        retry_after: Option<Duration>,
        /// When the window resets; `None` for parallel requests.
        reset_at: Option<Timestamp>,
    },
}

/// Which rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitKind {
    /// `rpm_limit`.
    Requests,
    /// `tpm_limit`.
    Tokens,
    /// `max_parallel_requests`.
    ParallelRequests,
}

struct Shared {
    config: EngineConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Keyed by foldhash, seeded per process: every request looks several
    /// ids up here under the lock. Only management calls insert, so a
    /// caller cannot flood it with colliding ids.
    ledgers: HashMap<EntityId, Ledger, foldhash::fast::RandomState>,
    access_groups: AccessGroups,
    /// Bumped by every admin change (upsert, remove): a key's cached scope
    /// is used only while this has not moved since it was built.
    generation: u64,
}

struct Ledger {
    record: Entity,
    /// For keys: the record as of its last admin change, shared with every
    /// request that authenticates with it. Its counters go stale; the live
    /// ones are in `record`.
    key_snapshot: Option<Arc<KeyRecord>>,
    /// For keys: the levels a request is held at and its labels, and the
    /// generation they were built in. Building them copied the team,
    /// organization and user ids and names on every request.
    scope: Option<(u64, Arc<KeyScope>)>,
    reserved: NanoUsd,
    in_flight: u32,
    requests: Window,
    tokens: Window,
    alerts: AlertFlags,
    /// Spend settled since the counters were last taken for persisting.
    unpersisted: NanoUsd,
    dirty: bool,
}

#[derive(Default)]
struct Window {
    start: Timestamp,
    count: u64,
}

#[derive(Default)]
struct AlertFlags {
    thresholds: Vec<u32>,
    budget_crossed: bool,
    soft_budget_crossed: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            alert_thresholds_percent: vec![80],
            rate_window: Duration::from_secs(60),
        }
    }
}

impl BudgetEngine {
    /// Builds the engine from every stored record (see
    /// `BudgetStore::load_all`). Budget periods that ended while the gateway
    /// was down are reset here, and the resets are reported by
    /// [`BudgetEngine::take_dirty`] for persisting.
    pub fn new(config: EngineConfig, records: Vec<Entity>, now: Timestamp) -> Self {
        let mut config = config;
        config
            .alert_thresholds_percent
            .retain(|percent| *percent > 0 && *percent < 100);
        config.alert_thresholds_percent.sort_unstable();
        config.alert_thresholds_percent.dedup();
        let engine = BudgetEngine {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State::default()),
            }),
        };
        for record in records {
            engine.upsert(record, now);
        }
        engine
    }

    /// Replaces the model-to-access-groups map (on start and config reload).
    pub fn set_access_groups(&self, groups: AccessGroups) {
        self.shared.lock().access_groups = groups;
    }

    /// Adds or updates a record after an admin change. Live counters (spend,
    /// reservations, rate windows) of an existing record are kept; the budget
    /// period restarts only when `budget_duration` changed.
    pub fn upsert(&self, record: Entity, now: Timestamp) {
        let thresholds = &self.shared.config.alert_thresholds_percent;
        let mut state = self.shared.lock();
        state.generation += 1;
        let id = record.id();
        match state.ledgers.get_mut(&id) {
            Some(ledger) => {
                let duration_changed =
                    ledger.record.policy().budget_duration != record.policy().budget_duration;
                let (spend, mut reset_at) = counter(&ledger.record);
                if duration_changed {
                    reset_at = record.policy().budget_duration.map(|d| d.next_reset(now));
                    // A new period id: the store must take the whole spend.
                    ledger.unpersisted = spend;
                    ledger.dirty = true;
                }
                ledger.record = record;
                ledger.record.set_counter(spend, reset_at);
                ledger.key_snapshot = key_snapshot(&ledger.record);
            }
            None => {
                let mut ledger = Ledger::new(record);
                ledger.alerts = AlertFlags::already_crossed(&ledger.record, thresholds);
                ledger.maybe_reset(now);
                state.ledgers.insert(id, ledger);
            }
        }
    }

    /// Forgets a record (deleted by an admin).
    pub fn remove(&self, id: &EntityId) -> bool {
        let mut state = self.shared.lock();
        state.generation += 1;
        state.ledgers.remove(id).is_some()
    }

    /// The live record, spend included.
    pub fn get(&self, id: &EntityId) -> Option<Entity> {
        self.shared
            .lock()
            .ledgers
            .get(id)
            .map(|ledger| ledger.record.clone())
    }

    /// Reads one live record under the engine's lock without copying it
    /// ([`BudgetEngine::get`] clones the whole record). `read` runs with the
    /// lock held: keep it short, and do not call the engine from it.
    pub fn read<R>(&self, id: &EntityId, read: impl FnOnce(&Entity) -> R) -> Option<R> {
        self.shared
            .lock()
            .ledgers
            .get(id)
            .map(|ledger| read(&ledger.record))
    }

    /// One level's spend so far and its budget, without copying the record
    /// ([`BudgetEngine::get`] clones it). For per-request bookkeeping.
    pub fn spend_and_budget(&self, id: &EntityId) -> Option<(NanoUsd, Option<NanoUsd>)> {
        self.read(id, |record| (counter(record).0, record.policy().max_budget))
    }

    /// Calls `each` with every record that has a `max_budget`, its spend so
    /// far and that budget, under the engine's lock: keep `each` short (copy
    /// what you need out), and do not call the engine from it. For exporting
    /// budget gauges when metrics are scraped, instead of on every request.
    pub fn for_each_budget(&self, mut each: impl FnMut(&Entity, NanoUsd, NanoUsd)) {
        for ledger in self.shared.lock().ledgers.values() {
            if let Some(max) = ledger.record.policy().max_budget {
                each(&ledger.record, counter(&ledger.record).0, max);
            }
        }
    }

    /// Spend held by requests in flight at one level.
    pub fn reserved(&self, id: &EntityId) -> Option<NanoUsd> {
        self.shared
            .lock()
            .ledgers
            .get(id)
            .map(|ledger| ledger.reserved)
    }

    /// Authenticates a key: it must exist, be unblocked (and its team too)
    /// and unexpired. Returns the key's record as of its last admin change,
    /// shared, not copied: a request used to clone the whole record (its
    /// model list, tags and metadata included) under the engine's lock. Its
    /// `spend` and `budget_reset_at` are not live; read those with
    /// [`spend_and_budget`](Self::spend_and_budget).
    pub fn authenticate(&self, key: &KeyHash, now: Timestamp) -> Result<Arc<KeyRecord>, Denied> {
        let mut state = self.shared.lock();
        let scope = state.scope_of(key)?;
        for id in scope.levels.iter() {
            if let Some(ledger) = state.ledgers.get(id) {
                ledger.check_usable(now)?;
            }
        }
        state
            .ledgers
            .get(&EntityId::Key(key.clone()))
            .and_then(|ledger| ledger.key_snapshot.clone())
            .ok_or_else(|| unknown_key(key))
    }

    /// Checks expiry, blocks, model access, budgets and rate limits at every
    /// level, then holds `estimate` against every budget and counts the
    /// request against every rate limit, atomically.
    pub fn reserve(&self, request: &ReserveRequest<'_>) -> Result<Reservation, Denied> {
        let now = request.now;
        let mut state = self.shared.lock();
        let scope = state.scope_of(request.key)?;
        let levels = &scope.levels;
        let has_team = levels.iter().any(|id| id.level() == Level::Team);
        let window = self.shared.config.rate_window;
        for id in levels.iter() {
            if let Some(ledger) = state.ledgers.get_mut(id) {
                ledger.maybe_reset(now);
                ledger.requests.roll(now, window);
                ledger.tokens.roll(now, window);
            }
        }
        for id in levels.iter() {
            if let Some(ledger) = state.ledgers.get(id) {
                ledger.check_usable(now)?;
            }
        }
        let team_models = levels
            .iter()
            .find(|id| id.level() == Level::Team)
            .and_then(|id| state.ledgers.get(id))
            .map(|ledger| ledger.record.policy().models.as_slice());
        let groups = state
            .access_groups
            .get(request.model)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for id in levels.iter() {
            // A user's own budget and models apply only to keys without a team,
            // as in LiteLLM; the user's rate limits always apply.
            let personal_only = id.level() == Level::User && has_team;
            let Some(ledger) = state.ledgers.get(id) else {
                continue;
            };
            if !personal_only {
                ledger.check_model(request.model, groups, team_models)?;
                ledger.check_budget(request.estimate)?;
            }
            ledger.check_rates(now, window)?;
        }
        for id in levels.iter() {
            if let Some(ledger) = state.ledgers.get_mut(id) {
                ledger.reserved += request.estimate;
                ledger.in_flight = ledger.in_flight.saturating_add(1);
                ledger.requests.count = ledger.requests.count.saturating_add(1);
            }
        }
        Ok(Reservation {
            shared: Arc::clone(&self.shared),
            scope,
            estimate: request.estimate,
            open: true,
        })
    }

    /// Records the actual cost and tokens at every level, frees the
    /// reservation, and returns the alerts to send (each threshold at most
    /// once per level and budget period).
    pub fn settle(
        &self,
        mut reservation: Reservation,
        settlement: Settlement,
        now: Timestamp,
    ) -> Vec<BudgetAlert> {
        reservation.open = false;
        let config = &self.shared.config;
        let mut state = self.shared.lock();
        let mut alerts = Vec::new();
        for id in reservation.scope.levels.iter() {
            let Some(ledger) = state.ledgers.get_mut(id) else {
                continue;
            };
            ledger.free(reservation.estimate);
            ledger.maybe_reset(now);
            let (spend, reset_at) = counter(&ledger.record);
            ledger.record.set_counter(spend + settlement.cost, reset_at);
            ledger.tokens.roll(now, config.rate_window);
            ledger.tokens.count = ledger.tokens.count.saturating_add(settlement.tokens);
            ledger.unpersisted += settlement.cost;
            ledger.dirty |= settlement.cost != NanoUsd::ZERO;
            ledger.collect_alerts(&config.alert_thresholds_percent, now, &mut alerts);
        }
        alerts
    }

    /// Gives a reservation back without recording spend (the request failed
    /// before costing anything).
    pub fn release(&self, reservation: Reservation) {
        drop(reservation);
    }

    /// Resets every level whose budget period has ended, so idle entities
    /// are reset too. Returns how many were reset.
    pub fn reset_due(&self, now: Timestamp) -> usize {
        let mut state = self.shared.lock();
        state
            .ledgers
            .values_mut()
            .map(|ledger| usize::from(ledger.maybe_reset(now)))
            .sum()
    }

    /// Spend deltas and period changes since the last call, to persist with
    /// `BudgetStore::save_counters`. On a failed write hand them back with
    /// [`BudgetEngine::return_unsaved`].
    pub fn take_dirty(&self) -> Vec<SpendCounter> {
        let mut state = self.shared.lock();
        let mut counters = Vec::new();
        for (id, ledger) in state.ledgers.iter_mut().filter(|(_, l)| l.dirty) {
            ledger.dirty = false;
            let (_, budget_reset_at) = counter(&ledger.record);
            counters.push(SpendCounter {
                id: id.clone(),
                spend_delta: std::mem::take(&mut ledger.unpersisted),
                budget_reset_at,
            });
        }
        counters.sort_by(|a, b| a.id.cmp(&b.id));
        counters
    }

    /// Takes back counters whose write failed, so the next
    /// [`BudgetEngine::take_dirty`] includes them. A delta whose period has
    /// since been reset is dropped: that period's spend no longer matters.
    pub fn return_unsaved(&self, counters: Vec<SpendCounter>) {
        let mut state = self.shared.lock();
        for returned in counters {
            if let Some(ledger) = state.ledgers.get_mut(&returned.id) {
                ledger.dirty = true;
                if counter(&ledger.record).1 == returned.budget_reset_at {
                    ledger.unpersisted += returned.spend_delta;
                }
            }
        }
    }

    /// Folds in counters stored by other replicas (from
    /// `BudgetStore::load_all`, called periodically by the server): in the
    /// same period, spend becomes the stored spend plus what this replica
    /// has not yet written. Records in another period are left alone.
    pub fn refresh_counters(&self, stored: &[Entity]) {
        let mut state = self.shared.lock();
        for record in stored {
            let Some(ledger) = state.ledgers.get_mut(&record.id()) else {
                continue;
            };
            let stored_columns = record.columns();
            let (_, reset_at) = counter(&ledger.record);
            if stored_columns.budget_reset_at == reset_at {
                let spend = stored_columns.spend + ledger.unpersisted;
                ledger.record.set_counter(spend, reset_at);
            }
        }
    }
}

impl fmt::Debug for BudgetEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entities = self.shared.lock().ledgers.len();
        f.debug_struct("BudgetEngine")
            .field("config", &self.shared.config)
            .field("entities", &entities)
            .finish()
    }
}

impl Reservation {
    /// The held estimate.
    pub fn estimate(&self) -> NanoUsd {
        self.estimate
    }

    /// The levels the reservation holds budget at: the key first.
    pub fn levels(&self) -> &[EntityId] {
        &self.scope.levels
    }

    /// The key's levels and labels, shared with its other requests.
    pub fn scope(&self) -> &Arc<KeyScope> {
        &self.scope
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            self.open = false;
            let mut state = self.shared.lock();
            for id in self.scope.levels.iter() {
                if let Some(ledger) = state.ledgers.get_mut(id) {
                    ledger.free(self.estimate);
                }
            }
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("levels", &self.scope.levels)
            .field("estimate", &self.estimate)
            .field("open", &self.open)
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters consistent enough to
        // keep serving: every update is a few field writes.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// The key's levels and labels: built once per admin change and shared
    /// by every request of the key.
    fn scope_of(&mut self, key: &KeyHash) -> Result<Arc<KeyScope>, Denied> {
        let key_id = EntityId::Key(key.clone());
        let generation = self.generation;
        let ledger = self.ledgers.get(&key_id);
        if let Some((built, scope)) = ledger.and_then(|ledger| ledger.scope.as_ref()) {
            if *built == generation {
                return Ok(Arc::clone(scope));
            }
        }
        let scope = Arc::new(self.build_scope(key_id.clone(), key)?);
        if let Some(ledger) = self.ledgers.get_mut(&key_id) {
            ledger.scope = Some((generation, Arc::clone(&scope)));
        }
        Ok(scope)
    }

    /// The key, then its team, organization and user, when known; and the
    /// names its spend is labelled with.
    fn build_scope(&self, key_id: EntityId, key: &KeyHash) -> Result<KeyScope, Denied> {
        let Some(Entity::Key(record)) = self.ledgers.get(&key_id).map(|l| &l.record) else {
            return Err(unknown_key(key));
        };
        let shared = |text: &Option<String>| text.as_deref().map(Arc::<str>::from);
        let mut labels = KeyLabels {
            key_alias: shared(&record.key_alias),
            user_id: shared(&record.user_id),
            team_id: shared(&record.team_id),
            team_alias: None,
            organization_id: None,
            tags: record.policy.tags.as_slice().into(),
        };
        let mut organization = record.organization_id.clone();
        let mut levels = vec![key_id];
        if let Some(team_id) = &record.team_id {
            let team = EntityId::Team(team_id.clone());
            if let Some(Entity::Team(team_record)) = self.ledgers.get(&team).map(|l| &l.record) {
                organization = organization.or_else(|| team_record.organization_id.clone());
                labels.team_alias = Some(team_record.label().into());
                levels.push(team);
            }
        }
        labels.organization_id = organization.as_deref().map(Arc::from);
        if let Some(organization) = organization {
            let organization = EntityId::Organization(organization);
            if self.ledgers.contains_key(&organization) {
                levels.push(organization);
            }
        }
        if let Some(user_id) = &record.user_id {
            let user = EntityId::User(user_id.clone());
            if self.ledgers.contains_key(&user) {
                levels.push(user);
            }
        }
        Ok(KeyScope {
            levels: levels.into_boxed_slice(),
            labels,
        })
    }
}

impl Ledger {
    fn new(record: Entity) -> Self {
        Ledger {
            key_snapshot: key_snapshot(&record),
            scope: None,
            record,
            reserved: NanoUsd::ZERO,
            in_flight: 0,
            requests: Window::default(),
            tokens: Window::default(),
            alerts: AlertFlags::default(),
            unpersisted: NanoUsd::ZERO,
            dirty: false,
        }
    }

    fn denied(&self, reason: DenyReason) -> Denied {
        Denied {
            level: self.record.level(),
            entity_id: self.record.id().as_str().to_owned(),
            reason,
        }
    }

    /// Resets spend when the period ended; sets the first reset time when a
    /// duration is configured without one. True when spend was reset.
    fn maybe_reset(&mut self, now: Timestamp) -> bool {
        let Some(duration) = self.record.policy().budget_duration else {
            return false;
        };
        let (spend, reset_at) = counter(&self.record);
        match reset_at {
            None => {
                self.record
                    .set_counter(spend, Some(duration.next_reset(now)));
                // A new period id: the store must take the whole spend.
                self.unpersisted = spend;
                self.dirty = true;
                false
            }
            Some(reset_at) if now >= reset_at => {
                self.record
                    .set_counter(NanoUsd::ZERO, Some(duration.next_reset(now)));
                self.alerts = AlertFlags::default();
                self.unpersisted = NanoUsd::ZERO;
                self.dirty = true;
                true
            }
            Some(_) => false,
        }
    }

    fn check_usable(&self, now: Timestamp) -> Result<(), Denied> {
        if self.record.policy().blocked {
            return Err(self.denied(DenyReason::Blocked));
        }
        if let Entity::Key(KeyRecord {
            expires: Some(expires),
            ..
        }) = &self.record
        {
            if now >= *expires {
                return Err(self.denied(DenyReason::Expired { expires: *expires }));
            }
        }
        Ok(())
    }

    fn check_model(
        &self,
        model: &str,
        groups: &[String],
        team_models: Option<&[String]>,
    ) -> Result<(), Denied> {
        let allowed = &self.record.policy().models;
        let uses_team_list = self.record.level() == Level::Key
            && allowed.iter().any(|entry| entry == "all-team-models");
        let list = match (uses_team_list, team_models) {
            (true, Some(team_models)) => team_models,
            _ => allowed.as_slice(),
        };
        if model_allowed(list, model, groups) {
            Ok(())
        } else {
            Err(self.denied(DenyReason::ModelNotAllowed {
                model: model.to_owned(),
                allowed: list.to_vec(),
            }))
        }
    }

    fn check_budget(&self, estimate: NanoUsd) -> Result<(), Denied> {
        let Some(max_budget) = self.record.policy().max_budget else {
            return Ok(());
        };
        let (spend, _) = counter(&self.record);
        if spend >= max_budget || spend + self.reserved + estimate > max_budget {
            return Err(self.denied(DenyReason::BudgetExceeded {
                spend,
                reserved: self.reserved,
                estimate,
                max_budget,
            }));
        }
        Ok(())
    }

    fn check_rates(&self, now: Timestamp, window: Duration) -> Result<(), Denied> {
        let policy = self.record.policy();
        if let Some(limit) = policy.max_parallel_requests {
            if self.in_flight >= limit {
                return Err(self.denied(DenyReason::RateLimited {
                    kind: RateLimitKind::ParallelRequests,
                    limit: u64::from(limit),
                    current: u64::from(self.in_flight),
                    retry_after: None,
                    reset_at: None,
                }));
            }
        }
        let limits = [
            (RateLimitKind::Requests, policy.rpm_limit, &self.requests),
            (RateLimitKind::Tokens, policy.tpm_limit, &self.tokens),
        ];
        for (kind, limit, counts) in limits {
            let Some(limit) = limit else { continue };
            if counts.count >= limit {
                let reset_at = counts.start.plus(window);
                return Err(self.denied(DenyReason::RateLimited {
                    kind,
                    limit,
                    current: counts.count,
                    retry_after: Some(reset_at.since(now).max(Duration::from_secs(1))),
                    reset_at: Some(reset_at),
                }));
            }
        }
        Ok(())
    }

    fn free(&mut self, estimate: NanoUsd) {
        self.reserved = if self.reserved > estimate {
            self.reserved - estimate
        } else {
            NanoUsd::ZERO
        };
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn collect_alerts(&mut self, thresholds: &[u32], now: Timestamp, out: &mut Vec<BudgetAlert>) {
        let policy = self.record.policy();
        let (spend, _) = counter(&self.record);
        let mut fired = Vec::new();
        if let Some(max_budget) = policy.max_budget.filter(|b| b.0 > 0) {
            for percent in thresholds {
                let reached =
                    i128::from(spend.0) * 100 >= i128::from(max_budget.0) * i128::from(*percent);
                if reached && !self.alerts.thresholds.contains(percent) {
                    self.alerts.thresholds.push(*percent);
                    fired.push((
                        AlertKind::ThresholdCrossed { percent: *percent },
                        max_budget,
                    ));
                }
            }
            if spend >= max_budget && !self.alerts.budget_crossed {
                self.alerts.budget_crossed = true;
                fired.push((AlertKind::BudgetCrossed, max_budget));
            }
        }
        if let Some(soft_budget) = policy.soft_budget.filter(|b| b.0 > 0) {
            if spend >= soft_budget && !self.alerts.soft_budget_crossed {
                self.alerts.soft_budget_crossed = true;
                fired.push((AlertKind::SoftBudgetCrossed, soft_budget));
            }
        }
        for (kind, budget) in fired {
            out.push(BudgetAlert {
                level: self.record.level(),
                entity_id: self.record.id().as_str().to_owned(),
                display_name: display_name(&self.record),
                kind,
                spend,
                budget,
                at: now,
            });
        }
    }
}

impl Window {
    fn roll(&mut self, now: Timestamp, length: Duration) {
        if now >= self.start.plus(length) || now < self.start {
            self.start = now;
            self.count = 0;
        }
    }
}

impl AlertFlags {
    /// Flags for a record loaded with spend already past some thresholds, so
    /// a restart does not alert again in the same period.
    fn already_crossed(record: &Entity, thresholds: &[u32]) -> Self {
        let mut flags = AlertFlags::default();
        let (spend, _) = counter(record);
        let policy: &Policy = record.policy();
        if let Some(max_budget) = policy.max_budget.filter(|b| b.0 > 0) {
            flags.thresholds = thresholds
                .iter()
                .copied()
                .filter(|p| i128::from(spend.0) * 100 >= i128::from(max_budget.0) * i128::from(*p))
                .collect();
            flags.budget_crossed = spend >= max_budget;
        }
        flags.soft_budget_crossed = policy.soft_budget.is_some_and(|s| s.0 > 0 && spend >= s);
        flags
    }
}

/// True when `model` is allowed by a `models` list: empty, `*` and
/// `all-proxy-models` allow everything; entries match the alias exactly, as a
/// `prefix/*` wildcard, or as one of the model's access groups.
pub fn model_allowed(allowed: &[String], model: &str, groups: &[String]) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|entry| {
            entry == "*"
                || entry == "all-proxy-models"
                || entry == model
                || entry
                    .strip_suffix('*')
                    .is_some_and(|prefix| model.starts_with(prefix))
                || groups.iter().any(|group| group == entry)
        })
}

fn key_snapshot(record: &Entity) -> Option<Arc<KeyRecord>> {
    match record {
        Entity::Key(key) => Some(Arc::new(key.clone())),
        _ => None,
    }
}

fn counter(record: &Entity) -> (NanoUsd, Option<Timestamp>) {
    match record {
        Entity::Key(key) => (key.spend, key.budget_reset_at),
        Entity::Team(team) => (team.spend, team.budget_reset_at),
        Entity::User(user) => (user.spend, user.budget_reset_at),
        Entity::Organization(org) => (org.spend, org.budget_reset_at),
    }
}

fn display_name(record: &Entity) -> String {
    let columns = record.columns();
    match (columns.alias, record) {
        (Some(alias), _) => alias.to_owned(),
        (None, Entity::Key(key)) => key.key_name.clone(),
        (None, _) => columns.id.to_owned(),
    }
}

fn unknown_key(key: &KeyHash) -> Denied {
    Denied {
        level: Level::Key,
        entity_id: key.as_str().to_owned(),
        reason: DenyReason::UnknownKey,
    }
}
