//! Choosing a store at start, and the retention pruner the server runs
//! periodically.

use std::path::Path;
use std::sync::Arc;

use gateway_budget::{BudgetDuration, BudgetStore, StoreError, Timestamp};

use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;

/// Opens PostgreSQL when a database URL is set, else the embedded SQLite
/// file at `sqlite_path` (the default). Migrations are applied either way.
pub async fn open_store(
    database_url: Option<&str>,
    sqlite_path: &Path,
) -> Result<Arc<dyn BudgetStore>, StoreError> {
    match database_url.filter(|url| !url.trim().is_empty()) {
        Some(url) => Ok(Arc::new(PostgresStore::connect(url).await?)),
        None => Ok(Arc::new(SqliteStore::open(sqlite_path).await?)),
    }
}

/// Deletes spend log rows older than `retention` (`spend_logs_retention`,
/// e.g. `30d`) as of `now`; returns how many. Daily aggregates are kept, so
/// reports over older days still work.
pub async fn prune_spend_logs(
    store: &dyn BudgetStore,
    retention: BudgetDuration,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let cutoff = retention.before(now);
    let deleted = store.prune_spend_logs(cutoff).await?;
    if deleted > 0 {
        tracing::info!(deleted, %cutoff, "pruned spend logs past retention");
    }
    Ok(deleted)
}
