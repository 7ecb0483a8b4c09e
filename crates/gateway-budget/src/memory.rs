//! `InMemoryStore`: a `BudgetStore` for tests and for running without a
//! database, with a switch that simulates an outage.

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::entity::{Entity, EntityId, Level, ListFilter, SpendCounter};
use crate::spend::{
    aggregate_rows, group_report, DailyKey, DailyTotals, SpendLogQuery, SpendLogRow,
    SpendReportQuery, SpendReportRow,
};
use crate::store::{BudgetStore, StoreError};
use crate::time::Timestamp;

/// Keeps everything in memory. Nothing survives the process.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<MemoryState>,
    failure: Mutex<Option<StoreError>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    entities: BTreeMap<EntityId, Entity>,
    logs: Vec<SpendLogRow>,
    /// Each stored row's id, with its position in `logs`.
    log_ids: HashMap<String, usize>,
    daily: BTreeMap<DailyKey, DailyTotals>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail with [`StoreError::Unavailable`] (true) or
    /// succeed again (false), to test behaviour during outages.
    pub fn set_unavailable(&self, unavailable: bool) {
        let failure = unavailable
            .then(|| StoreError::Unavailable("the in-memory store is switched off".to_owned()));
        self.fail_with(failure);
    }

    /// Makes every call fail with this error, or succeed again with `None`.
    pub fn fail_with(&self, failure: Option<StoreError>) {
        *self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = failure;
    }

    fn lock(&self) -> Result<MutexGuard<'_, MemoryState>, StoreError> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(failure) = failure {
            return Err(failure);
        }
        Ok(self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

#[async_trait]
impl BudgetStore for InMemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(drop)
    }

    async fn load_all(&self) -> Result<Vec<Entity>, StoreError> {
        Ok(self.lock()?.entities.values().cloned().collect())
    }

    async fn create(&self, entity: &Entity) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let id = entity.id();
        if state.entities.contains_key(&id) {
            return Err(StoreError::Conflict(format!(
                "{} {}",
                id.level(),
                id.as_str()
            )));
        }
        if let Some(alias) = key_alias(entity) {
            if state
                .entities
                .values()
                .any(|other| key_alias(other) == Some(alias))
            {
                return Err(StoreError::Conflict(format!("key alias {alias}")));
            }
        }
        state.entities.insert(id, entity.clone());
        Ok(())
    }

    async fn update(&self, entity: &Entity) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let id = entity.id();
        if let Some(alias) = key_alias(entity) {
            let taken = state
                .entities
                .iter()
                .any(|(other_id, other)| *other_id != id && key_alias(other) == Some(alias));
            if taken {
                return Err(StoreError::Conflict(format!("key alias {alias}")));
            }
        }
        let stored = state.entities.get_mut(&id).ok_or(StoreError::NotFound)?;
        let columns = stored.columns();
        let (spend, reset_at) = (columns.spend, columns.budget_reset_at);
        *stored = entity.clone();
        stored.set_counter(spend, reset_at);
        Ok(())
    }

    async fn get(&self, id: &EntityId) -> Result<Option<Entity>, StoreError> {
        Ok(self.lock()?.entities.get(id).cloned())
    }

    async fn list(&self, level: Level, filter: &ListFilter) -> Result<Vec<Entity>, StoreError> {
        let state = self.lock()?;
        let matching = state
            .entities
            .values()
            .filter(|entity| entity.level() == level && entity.matches(filter))
            .skip(filter.offset as usize)
            .take(filter.limit.map_or(usize::MAX, |limit| limit as usize));
        Ok(matching.cloned().collect())
    }

    async fn delete(&self, id: &EntityId) -> Result<bool, StoreError> {
        Ok(self.lock()?.entities.remove(id).is_some())
    }

    async fn save_counters(&self, counters: &[SpendCounter]) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        for counter in counters {
            if let Some(entity) = state.entities.get_mut(&counter.id) {
                let columns = entity.columns();
                let (spend, reset_at) = counter.apply(columns.spend, columns.budget_reset_at);
                entity.set_counter(spend, reset_at);
            }
        }
        Ok(())
    }

    async fn append_spend_logs(&self, rows: &[SpendLogRow]) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let mut fresh = Vec::new();
        for row in rows {
            // A reused request id gets a second row under a derived id; a
            // retried row (the same request) is stored once.
            let row = match state.log_ids.get(&row.request_id) {
                None => row.clone(),
                Some(&at)
                    if state
                        .logs
                        .get(at)
                        .is_some_and(|stored| row.is_same_request(stored)) =>
                {
                    continue
                }
                Some(_) => row.reissued(),
            };
            if state.log_ids.contains_key(&row.request_id) {
                continue;
            }
            let at = state.logs.len();
            state.log_ids.insert(row.request_id.clone(), at);
            state.logs.push(row.clone());
            fresh.push(row);
        }
        for (key, totals) in aggregate_rows(&fresh) {
            state.daily.entry(key).or_default().add(&totals);
        }
        Ok(())
    }

    async fn query_spend_logs(
        &self,
        query: &SpendLogQuery,
    ) -> Result<Vec<SpendLogRow>, StoreError> {
        let state = self.lock()?;
        let mut rows: Vec<SpendLogRow> = state
            .logs
            .iter()
            .filter(|row| row.matches(query))
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| b.request_id.cmp(&a.request_id))
        });
        rows.truncate(query.limit.map_or(usize::MAX, |limit| limit as usize));
        Ok(rows)
    }

    async fn spend_report(
        &self,
        query: &SpendReportQuery,
    ) -> Result<Vec<SpendReportRow>, StoreError> {
        let state = self.lock()?;
        Ok(group_report(&state.daily, query))
    }

    async fn prune_spend_logs(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        let mut state = self.lock()?;
        let before = state.logs.len();
        let (kept, pruned): (Vec<_>, Vec<_>) = std::mem::take(&mut state.logs)
            .into_iter()
            .partition(|row| row.start_time >= older_than);
        drop(pruned);
        state.log_ids = kept
            .iter()
            .enumerate()
            .map(|(at, row)| (row.request_id.clone(), at))
            .collect();
        state.logs = kept;
        Ok((before - state.logs.len()) as u64)
    }
}

fn key_alias(entity: &Entity) -> Option<&str> {
    match entity {
        Entity::Key(key) => key.key_alias.as_deref(),
        _ => None,
    }
}
