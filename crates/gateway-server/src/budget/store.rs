//! The store behind the engine, which may come and go: a [`BudgetStore`]
//! that forwards to the real one once connected, answers
//! [`StoreError::Unavailable`] until then, and tracks its health for
//! readiness. The spend writer holds this one, so rows written while the
//! database is down stay buffered and arrive after it is back.

use async_trait::async_trait;
use gateway_budget::{
    BudgetStore, Entity, EntityId, Level, ListFilter, SpendCounter, SpendLogQuery, SpendLogRow,
    SpendReportQuery, SpendReportRow, StoreError, Timestamp,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// A store that may not be connected yet.
#[derive(Debug, Default)]
pub(crate) struct LazyStore {
    inner: RwLock<Option<Arc<dyn BudgetStore>>>,
    healthy: AtomicBool,
    /// Becomes true once connected.
    connected: tokio::sync::watch::Sender<bool>,
}

impl LazyStore {
    /// Plugs in the connected store.
    pub(crate) fn connect(&self, store: Arc<dyn BudgetStore>) {
        match self.inner.write() {
            Ok(mut guard) => *guard = Some(store),
            Err(poisoned) => *poisoned.into_inner() = Some(store),
        }
        self.healthy.store(true, Ordering::Relaxed);
        self.connected.send_replace(true);
    }

    /// Resolves once connected.
    pub(crate) async fn wait_connected(&self) {
        let mut connected = self.connected.subscribe();
        // The sender lives as long as `self`, so this cannot fail while borrowed.
        let _ = connected.wait_for(|connected| *connected).await;
    }

    /// True once connected.
    pub(crate) fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// True when the last call reached the database.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn current(&self) -> Option<Arc<dyn BudgetStore>> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self) -> Result<Arc<dyn BudgetStore>, StoreError> {
        self.current()
            .ok_or_else(|| StoreError::Unavailable("the database is not connected yet".to_owned()))
    }

    fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Err(StoreError::Unavailable(_)) => self.healthy.store(false, Ordering::Relaxed),
            _ => self.healthy.store(true, Ordering::Relaxed),
        }
        result
    }
}

#[async_trait]
impl BudgetStore for LazyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let result = match self.store() {
            Ok(store) => store.ping().await,
            Err(error) => Err(error),
        };
        self.observe(result)
    }

    async fn load_all(&self) -> Result<Vec<Entity>, StoreError> {
        let store = self.store()?;
        self.observe(store.load_all().await)
    }

    async fn create(&self, entity: &Entity) -> Result<(), StoreError> {
        let store = self.store()?;
        self.observe(store.create(entity).await)
    }

    async fn update(&self, entity: &Entity) -> Result<(), StoreError> {
        let store = self.store()?;
        self.observe(store.update(entity).await)
    }

    async fn get(&self, id: &EntityId) -> Result<Option<Entity>, StoreError> {
        let store = self.store()?;
        self.observe(store.get(id).await)
    }

    async fn list(&self, level: Level, filter: &ListFilter) -> Result<Vec<Entity>, StoreError> {
        let store = self.store()?;
        self.observe(store.list(level, filter).await)
    }

    async fn delete(&self, id: &EntityId) -> Result<bool, StoreError> {
        let store = self.store()?;
        self.observe(store.delete(id).await)
    }

    async fn set_blocked(&self, id: &EntityId, blocked: bool) -> Result<Entity, StoreError> {
        let store = self.store()?;
        self.observe(store.set_blocked(id, blocked).await)
    }

    async fn save_counters(&self, counters: &[SpendCounter]) -> Result<(), StoreError> {
        let store = self.store()?;
        self.observe(store.save_counters(counters).await)
    }

    async fn append_spend_logs(&self, rows: &[SpendLogRow]) -> Result<(), StoreError> {
        let store = self.store()?;
        self.observe(store.append_spend_logs(rows).await)
    }

    async fn query_spend_logs(
        &self,
        query: &SpendLogQuery,
    ) -> Result<Vec<SpendLogRow>, StoreError> {
        let store = self.store()?;
        self.observe(store.query_spend_logs(query).await)
    }

    async fn spend_report(
        &self,
        query: &SpendReportQuery,
    ) -> Result<Vec<SpendReportRow>, StoreError> {
        let store = self.store()?;
        self.observe(store.spend_report(query).await)
    }

    async fn prune_spend_logs(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        let store = self.store()?;
        self.observe(store.prune_spend_logs(older_than).await)
    }
}
