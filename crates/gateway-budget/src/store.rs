//! The `BudgetStore` port: the durable record behind the in-memory engine.

use async_trait::async_trait;
use std::fmt;
use thiserror::Error;

use crate::entity::{Entity, EntityId, Level, ListFilter, SpendCounter};
use crate::spend::{SpendLogQuery, SpendLogRow, SpendReportQuery, SpendReportRow};
use crate::time::Timestamp;

/// Why a store call failed. Messages never contain SQL or secrets.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// A record with this id or unique alias exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database cannot be reached; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the operation.
    #[error("database error: {0}")]
    Database(String),
    /// A stored value could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// The durable record of keys, teams, users, organizations, their spend, and
/// the spend log. The request path never waits on it: the engine serves
/// from memory and a writer persists in batches.
#[async_trait]
pub trait BudgetStore: Send + Sync + fmt::Debug + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Every record, to build the engine at start.
    async fn load_all(&self) -> Result<Vec<Entity>, StoreError>;

    /// Inserts a record; [`StoreError::Conflict`] when its id (or a key's
    /// alias) is taken.
    async fn create(&self, entity: &Entity) -> Result<(), StoreError>;

    /// Replaces a record's settings. Spend and reset time are not written:
    /// counters change only through [`BudgetStore::save_counters`].
    async fn update(&self, entity: &Entity) -> Result<(), StoreError>;

    /// One record.
    async fn get(&self, id: &EntityId) -> Result<Option<Entity>, StoreError>;

    /// Records of one level, ordered by id.
    async fn list(&self, level: Level, filter: &ListFilter) -> Result<Vec<Entity>, StoreError>;

    /// Deletes a record; false when it did not exist.
    async fn delete(&self, id: &EntityId) -> Result<bool, StoreError>;

    /// Blocks or unblocks a record and returns it.
    async fn set_blocked(&self, id: &EntityId, blocked: bool) -> Result<Entity, StoreError> {
        let mut entity = self.get(id).await?.ok_or(StoreError::NotFound)?;
        entity.policy_mut().blocked = blocked;
        self.update(&entity).await?;
        Ok(entity)
    }

    /// Adds spend deltas to the stored counters, merging periods as
    /// [`SpendCounter::apply`] describes, atomically per counter. Unknown ids
    /// are skipped.
    async fn save_counters(&self, counters: &[SpendCounter]) -> Result<(), StoreError>;

    /// Appends spend log rows and adds them to the daily aggregates in one
    /// transaction. Rows whose `request_id` is already stored are skipped, so
    /// a retried batch is not counted twice.
    async fn append_spend_logs(&self, rows: &[SpendLogRow]) -> Result<(), StoreError>;

    /// Spend log rows, newest first.
    async fn query_spend_logs(&self, query: &SpendLogQuery)
        -> Result<Vec<SpendLogRow>, StoreError>;

    /// A report from the daily aggregates, ordered by the grouped fields.
    async fn spend_report(
        &self,
        query: &SpendReportQuery,
    ) -> Result<Vec<SpendReportRow>, StoreError>;

    /// Deletes spend log rows that started before `older_than` and returns how
    /// many. Daily aggregates are kept.
    async fn prune_spend_logs(&self, older_than: Timestamp) -> Result<u64, StoreError>;
}
