//! `SqliteStore`: the embedded default, one database file in WAL mode.
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool with
//! the single connection behind a mutex; the request path never calls the
//! store, so one connection is enough.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_budget::{
    aggregate_rows, BudgetStore, Entity, EntityId, Level, ListFilter, SpendCounter, SpendLogQuery,
    SpendLogRow, SpendReportQuery, SpendReportRow, SpendStatus, StoreError, Timestamp,
};
use gateway_types::NanoUsd;

use crate::error::{from_join, from_json, from_sqlite};
use crate::migrations::{Migration, SQLITE};
use crate::report::{report_grouping, report_row, sort_report, Dialect};
use crate::tables::{entity_table, to_i64, to_u64, SPEND_LOG_COLUMNS};

/// The embedded store.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, enables WAL and applies
    /// pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let opened_path = path.clone();
        let connection = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            // Several processes opening a new file at once can get SQLITE_BUSY
            // from paths that bypass the busy handler (setting up WAL); the
            // open is idempotent, so it is retried for up to ~5 s.
            let mut attempts = 0;
            loop {
                match open_and_migrate(&opened_path) {
                    Err(StoreError::Unavailable(reason))
                        if reason != "CannotOpen" && attempts < 100 =>
                    {
                        attempts += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    other => return other,
                }
            }
        })
        .await
        .map_err(from_join)??;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut guard)
        })
        .await
        .map_err(from_join)?
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Opens the file, sets the connection up and applies pending migrations.
fn open_and_migrate(path: &Path) -> Result<Connection, StoreError> {
    let mut connection = Connection::open(path).map_err(from_sqlite)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(from_sqlite)?;
    connection
        .execute_batch(
            // A 16 MiB page cache keeps a 5,000-row batch in memory until its
            // commit instead of spilling pages to the WAL mid-way.
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16384;",
        )
        .map_err(from_sqlite)?;
    migrate(&mut connection, SQLITE)?;
    Ok(connection)
}

/// Applies pending migrations under `BEGIN IMMEDIATE`, which takes the
/// database write lock so concurrent openers apply each migration once.
fn migrate(connection: &mut Connection, migrations: &[Migration]) -> Result<(), StoreError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(from_sqlite)?;
    transaction
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at INTEGER NOT NULL)",
        )
        .map_err(from_sqlite)?;
    for migration in migrations {
        let applied: Option<i64> = transaction
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [migration.version],
                |row| row.get(0),
            )
            .optional()
            .map_err(from_sqlite)?;
        if applied.is_none() {
            transaction
                .execute_batch(migration.sql)
                .map_err(from_sqlite)?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, strftime('%s', 'now'))",
                    params![migration.version, migration.name],
                )
                .map_err(from_sqlite)?;
        }
    }
    transaction.commit().map_err(from_sqlite)
}

fn entity_from_row(level: Level, row: &Row<'_>) -> Result<Entity, StoreError> {
    let record: String = row.get(0).map_err(from_sqlite)?;
    let spend: i64 = row.get(1).map_err(from_sqlite)?;
    let reset_at: Option<i64> = row.get(2).map_err(from_sqlite)?;
    let mut entity = Entity::from_json(level, &record).map_err(from_json)?;
    entity.set_counter(NanoUsd(spend), reset_at.map(Timestamp));
    Ok(entity)
}

fn placeholders(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn spend_row_from_row(row: &Row<'_>) -> rusqlite::Result<SpendLogRow> {
    let tags: String = row.get(21)?;
    Ok(SpendLogRow {
        request_id: row.get(0)?,
        call_type: std::borrow::Cow::Owned(row.get(1)?),
        key_hash: row.get(2)?,
        key_alias: row.get(3)?,
        user_id: row.get(4)?,
        team_id: row.get(5)?,
        organization_id: row.get(6)?,
        model_group: row.get(7)?,
        deployment_id: row.get(8)?,
        provider: row.get(9)?,
        model: row.get(10)?,
        prompt_tokens: to_u64(row.get(11)?),
        completion_tokens: to_u64(row.get(12)?),
        cached_tokens: to_u64(row.get(13)?),
        spend: NanoUsd(row.get(14)?),
        start_time: Timestamp(row.get(15)?),
        end_time: Timestamp(row.get(16)?),
        time_to_first_token_ms: row.get::<_, Option<i64>>(17)?.map(to_u64),
        status: SpendStatus::parse(&row.get::<_, String>(18)?),
        error_kind: row.get(19)?,
        cache_hit: row.get(20)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        end_user: row.get(22)?,
    })
}

/// Inserts one spend row unless its request id is stored; 1 if it was
/// inserted, 0 if not.
fn insert_spend_row(
    insert: &mut rusqlite::CachedStatement<'_>,
    row: &SpendLogRow,
) -> Result<usize, StoreError> {
    let tags = serde_json::to_string(&row.tags).map_err(from_json)?;
    insert
        .execute(params![
            row.request_id,
            row.call_type,
            row.key_hash,
            row.key_alias,
            row.user_id,
            row.team_id,
            row.organization_id,
            row.model_group,
            row.deployment_id,
            row.provider,
            row.model,
            to_i64(row.prompt_tokens),
            to_i64(row.completion_tokens),
            to_i64(row.cached_tokens),
            row.spend.0,
            row.start_time.0,
            row.end_time.0,
            row.time_to_first_token_ms.map(to_i64),
            row.status.as_str(),
            row.error_kind,
            row.cache_hit,
            tags,
            row.end_user,
            to_i64(row.latency_ms()),
        ])
        .map_err(from_sqlite)
}

#[async_trait]
impl BudgetStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(from_sqlite)
        })
        .await
    }

    async fn load_all(&self) -> Result<Vec<Entity>, StoreError> {
        self.run(|connection| {
            let mut all = Vec::new();
            for level in Level::ALL {
                let table = entity_table(level);
                let sql = format!(
                    "SELECT record, spend_nanos, budget_reset_at FROM {} ORDER BY {}",
                    table.name, table.id
                );
                let mut statement = connection.prepare(&sql).map_err(from_sqlite)?;
                let mut rows = statement.query([]).map_err(from_sqlite)?;
                while let Some(row) = rows.next().map_err(from_sqlite)? {
                    all.push(entity_from_row(level, row)?);
                }
            }
            Ok(all)
        })
        .await
    }

    async fn create(&self, entity: &Entity) -> Result<(), StoreError> {
        let entity = entity.clone();
        self.run(move |connection| {
            let table = entity_table(entity.level());
            let columns = entity.columns();
            let record = entity.to_json().map_err(from_json)?;
            let names = table.insert_columns();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                names.join(", "),
                placeholders(names.len(), 1)
            );
            let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
                Box::new(columns.id.to_owned()),
                Box::new(columns.alias.map(str::to_owned)),
            ];
            for owner in table.owners {
                values.push(Box::new(owner.value(&columns).map(str::to_owned)));
            }
            let (created, updated) = (columns.created_at, columns.updated_at);
            values.push(Box::new(columns.blocked));
            values.push(Box::new(columns.spend.0));
            values.push(Box::new(columns.budget_reset_at.map(|t| t.0)));
            values.push(Box::new(record));
            values.push(Box::new(created.0));
            values.push(Box::new(updated.0));
            connection
                .execute(&sql, rusqlite::params_from_iter(values.iter()))
                .map_err(from_sqlite)
                .map(drop)
        })
        .await
    }

    async fn update(&self, entity: &Entity) -> Result<(), StoreError> {
        let entity = entity.clone();
        self.run(move |connection| {
            let table = entity_table(entity.level());
            let columns = entity.columns();
            let record = entity.to_json().map_err(from_json)?;
            let mut assignments = vec![format!("{} = ?1", table.alias)];
            let mut values: Vec<Box<dyn rusqlite::ToSql>> =
                vec![Box::new(columns.alias.map(str::to_owned))];
            for owner in table.owners {
                values.push(Box::new(owner.value(&columns).map(str::to_owned)));
                assignments.push(format!("{} = ?{}", owner.column(), values.len()));
            }
            let updated = columns.updated_at;
            for (name, value) in [
                (
                    "blocked",
                    Box::new(columns.blocked) as Box<dyn rusqlite::ToSql>,
                ),
                ("record", Box::new(record)),
                ("updated_at", Box::new(updated.0)),
            ] {
                values.push(value);
                assignments.push(format!("{name} = ?{}", values.len()));
            }
            values.push(Box::new(columns.id.to_owned()));
            let sql = format!(
                "UPDATE {} SET {} WHERE {} = ?{}",
                table.name,
                assignments.join(", "),
                table.id,
                values.len()
            );
            let changed = connection
                .execute(&sql, rusqlite::params_from_iter(values.iter()))
                .map_err(from_sqlite)?;
            if changed == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn get(&self, id: &EntityId) -> Result<Option<Entity>, StoreError> {
        let id = id.clone();
        self.run(move |connection| {
            let table = entity_table(id.level());
            let sql = format!(
                "SELECT record, spend_nanos, budget_reset_at FROM {} WHERE {} = ?1",
                table.name, table.id
            );
            let mut statement = connection.prepare(&sql).map_err(from_sqlite)?;
            let mut rows = statement.query([id.as_str()]).map_err(from_sqlite)?;
            match rows.next().map_err(from_sqlite)? {
                Some(row) => entity_from_row(id.level(), row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list(&self, level: Level, filter: &ListFilter) -> Result<Vec<Entity>, StoreError> {
        let filter = filter.clone();
        self.run(move |connection| {
            let table = entity_table(level);
            if table.filter_cannot_match(&filter) {
                return Ok(Vec::new());
            }
            let mut conditions = vec![format!("(?1 IS NULL OR {} = ?1)", table.alias)];
            let mut values: Vec<Option<String>> = vec![filter.alias.clone()];
            for owner in table.owners {
                values.push(owner.filter(&filter).map(str::to_owned));
                conditions.push(format!("(?{n} IS NULL OR {c} = ?{n})", n = values.len(), c = owner.column()));
            }
            let sql = format!(
                "SELECT record, spend_nanos, budget_reset_at FROM {} WHERE {} ORDER BY {} LIMIT {} OFFSET {}",
                table.name,
                conditions.join(" AND "),
                table.id,
                filter.limit.map_or(-1, i64::from),
                filter.offset
            );
            let mut statement = connection.prepare(&sql).map_err(from_sqlite)?;
            let mut rows = statement.query(rusqlite::params_from_iter(values.iter())).map_err(from_sqlite)?;
            let mut all = Vec::new();
            while let Some(row) = rows.next().map_err(from_sqlite)? {
                all.push(entity_from_row(level, row)?);
            }
            Ok(all)
        })
        .await
    }

    async fn delete(&self, id: &EntityId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(move |connection| {
            let table = entity_table(id.level());
            let sql = format!("DELETE FROM {} WHERE {} = ?1", table.name, table.id);
            Ok(connection
                .execute(&sql, [id.as_str()])
                .map_err(from_sqlite)?
                > 0)
        })
        .await
    }

    async fn save_counters(&self, counters: &[SpendCounter]) -> Result<(), StoreError> {
        let counters = counters.to_vec();
        self.run(move |connection| {
            let transaction = connection.transaction().map_err(from_sqlite)?;
            for counter in &counters {
                let table = entity_table(counter.id.level());
                let sql = format!(
                    "UPDATE {} SET spend_nanos = CASE \
                     WHEN budget_reset_at IS ?2 THEN spend_nanos + ?1 \
                     WHEN ?2 IS NULL THEN spend_nanos + ?1 \
                     WHEN budget_reset_at IS NULL OR budget_reset_at < ?2 THEN ?1 \
                     ELSE spend_nanos END, \
                     budget_reset_at = CASE \
                     WHEN ?2 IS NULL THEN NULL \
                     WHEN budget_reset_at IS NULL OR budget_reset_at < ?2 THEN ?2 \
                     ELSE budget_reset_at END \
                     WHERE {} = ?3",
                    table.name, table.id
                );
                transaction
                    .execute(
                        &sql,
                        params![
                            counter.spend_delta.0,
                            counter.budget_reset_at.map(|t| t.0),
                            counter.id.as_str()
                        ],
                    )
                    .map_err(from_sqlite)?;
            }
            transaction.commit().map_err(from_sqlite)
        })
        .await
    }

    async fn append_spend_logs(&self, rows: &[SpendLogRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.run(move |connection| {
            let transaction = connection.transaction().map_err(from_sqlite)?;
            let mut fresh = Vec::new();
            {
                let sql = format!(
                    "INSERT INTO gateway_spend_logs ({}) VALUES ({}) ON CONFLICT (request_id) DO NOTHING",
                    SPEND_LOG_COLUMNS.join(", "),
                    placeholders(SPEND_LOG_COLUMNS.len(), 1)
                );
                let mut insert = transaction.prepare_cached(&sql).map_err(from_sqlite)?;
                let select = format!(
                    "SELECT {} FROM gateway_spend_logs WHERE request_id = ?1",
                    SPEND_LOG_COLUMNS.join(", ")
                );
                let mut stored = transaction.prepare_cached(&select).map_err(from_sqlite)?;
                for row in rows {
                    if insert_spend_row(&mut insert, &row)? > 0 {
                        fresh.push(row);
                        continue;
                    }
                    // The id is taken: by this request (a retried batch),
                    // or by another that reused the id, which is kept as a
                    // second row under a derived id.
                    let holder = stored
                        .query_row(params![row.request_id], spend_row_from_row)
                        .map_err(from_sqlite)?;
                    if row.is_same_request(&holder) {
                        continue;
                    }
                    let reissued = row.reissued();
                    if insert_spend_row(&mut insert, &reissued)? > 0 {
                        fresh.push(reissued);
                    }
                }
                let mut upsert = transaction
                    .prepare_cached(
                        "INSERT INTO gateway_daily_spend (day, api_key, team_id, model_group, spend_nanos, \
                         prompt_tokens, completion_tokens, requests) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (day, api_key, team_id, model_group) DO UPDATE SET \
                         spend_nanos = spend_nanos + excluded.spend_nanos, \
                         prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
                         completion_tokens = completion_tokens + excluded.completion_tokens, \
                         requests = requests + excluded.requests",
                    )
                    .map_err(from_sqlite)?;
                for (key, totals) in aggregate_rows(&fresh) {
                    upsert
                        .execute(params![
                            key.day.to_string(),
                            key.key_hash,
                            key.team_id,
                            key.model_group,
                            totals.spend.0,
                            to_i64(totals.prompt_tokens),
                            to_i64(totals.completion_tokens),
                            to_i64(totals.requests),
                        ])
                        .map_err(from_sqlite)?;
                }
            }
            transaction.commit().map_err(from_sqlite)
        })
        .await
    }

    async fn query_spend_logs(
        &self,
        query: &SpendLogQuery,
    ) -> Result<Vec<SpendLogRow>, StoreError> {
        let query = query.clone();
        self.run(move |connection| {
            let sql = format!(
                "SELECT {} FROM gateway_spend_logs WHERE (?1 IS NULL OR api_key = ?1) AND (?2 IS NULL OR team_id = ?2) \
                 AND (?3 IS NULL OR user_id = ?3) AND (?4 IS NULL OR model_group = ?4) \
                 AND (?5 IS NULL OR start_time >= ?5) AND (?6 IS NULL OR start_time < ?6) \
                 ORDER BY start_time DESC, request_id DESC LIMIT ?7",
                SPEND_LOG_COLUMNS.join(", ")
            );
            let mut statement = connection.prepare_cached(&sql).map_err(from_sqlite)?;
            let rows = statement
                .query_map(
                    params![
                        query.key_hash,
                        query.team_id,
                        query.user_id,
                        query.model_group,
                        query.start.map(|t| t.0),
                        query.end.map(|t| t.0),
                        query.limit.map_or(-1, i64::from),
                    ],
                    spend_row_from_row,
                )
                .map_err(from_sqlite)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(from_sqlite)
        })
        .await
    }

    async fn spend_report(
        &self,
        query: &SpendReportQuery,
    ) -> Result<Vec<SpendReportRow>, StoreError> {
        let query = query.clone();
        self.run(move |connection| {
            let (select, group) = report_grouping(&query, Dialect::Sqlite);
            let sql = format!(
                "SELECT {select}, SUM(spend_nanos), SUM(prompt_tokens), SUM(completion_tokens), SUM(requests) \
                 FROM gateway_daily_spend WHERE day >= ?1 AND day <= ?2 AND (?3 IS NULL OR api_key = ?3) \
                 AND (?4 IS NULL OR team_id = ?4) {group} HAVING COUNT(*) > 0"
            );
            let mut statement = connection.prepare(&sql).map_err(from_sqlite)?;
            let rows = statement
                .query_map(
                    params![query.start_day.to_string(), query.end_day.to_string(), query.key_hash, query.team_id],
                    |row| {
                        Ok((
                            row.get::<_, Option<String>>(0)?,
                            row.get::<_, Option<String>>(1)?,
                            row.get::<_, Option<String>>(2)?,
                            row.get::<_, Option<String>>(3)?,
                            [row.get::<_, i64>(4)?, row.get(5)?, row.get(6)?, row.get(7)?],
                        ))
                    },
                )
                .map_err(from_sqlite)?;
            let mut report = Vec::new();
            for row in rows {
                let (day, key_hash, team_id, model_group, sums) = row.map_err(from_sqlite)?;
                report.push(report_row(day, key_hash, team_id, model_group, sums)?);
            }
            sort_report(&mut report);
            Ok(report)
        })
        .await
    }

    async fn prune_spend_logs(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        self.run(move |connection| {
            let deleted = connection
                .execute(
                    "DELETE FROM gateway_spend_logs WHERE start_time < ?1",
                    [older_than.0],
                )
                .map_err(from_sqlite)?;
            Ok(deleted as u64)
        })
        .await
    }
}
