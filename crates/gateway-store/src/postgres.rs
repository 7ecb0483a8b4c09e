//! `PostgresStore`: PostgreSQL through a deadpool connection pool.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use gateway_budget::{
    aggregate_rows, BudgetStore, Entity, EntityId, Level, ListFilter, SpendCounter, SpendLogQuery,
    SpendLogRow, SpendReportQuery, SpendReportRow, SpendStatus, StoreError, Timestamp,
};
use gateway_types::NanoUsd;

use crate::copy;
use crate::error::{from_json, from_pool, from_postgres};
use crate::migrations::{Migration, POSTGRES, POSTGRES_MIGRATION_LOCK};
use crate::report::{report_grouping, report_row, sort_report, Dialect};
use crate::tables::{entity_table, to_i64, to_u64, SPEND_LOG_COLUMNS};

/// How to reach PostgreSQL.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`. Never logged.
    pub url: String,
    /// A schema to create and use instead of the default search path (tests
    /// use one per run); `[a-z0-9_]` only.
    pub schema: Option<String>,
    /// Pool size.
    pub max_connections: usize,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: Option<String>,
}

type Param<'a> = &'a (dyn ToSql + Sync);

impl PostgresConfig {
    /// Defaults for a URL: the default schema, 8 connections, 5 s connect timeout.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: None,
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"***")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl PostgresStore {
    /// Connects with defaults and applies pending migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::connect_with(PostgresConfig::new(url)).await
    }

    /// Connects and applies pending migrations. Several replicas may start at
    /// once: migrations run under a transaction-scoped advisory lock.
    pub async fn connect_with(config: PostgresConfig) -> Result<PostgresStore, StoreError> {
        let mut pg_config: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|_| StoreError::Database("invalid PostgreSQL URL".to_owned()))?;
        pg_config.connect_timeout(config.connect_timeout);
        if let Some(schema) = &config.schema {
            let valid = !schema.is_empty()
                && schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(StoreError::Database("invalid schema name".to_owned()));
            }
            pg_config.options(format!("-c search_path={schema}"));
        }
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(config.connect_timeout))
            .wait_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let store = PostgresStore {
            pool,
            schema: config.schema,
        };
        store.migrate(POSTGRES).await?;
        Ok(store)
    }

    /// Drops the store's own schema and everything in it (tests clean up with
    /// this). Does nothing without a schema.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let client = self.pool.get().await.map_err(from_pool)?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .map_err(from_postgres)
    }

    async fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(from_pool)?;
        let transaction = client.transaction().await.map_err(from_postgres)?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&POSTGRES_MIGRATION_LOCK],
            )
            .await
            .map_err(from_postgres)?;
        if let Some(schema) = &self.schema {
            // Under the lock: concurrent `CREATE SCHEMA IF NOT EXISTS` can race.
            transaction
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(from_postgres)?;
        }
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await
            .map_err(from_postgres)?;
        let applied: Vec<i64> = transaction
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(from_postgres)?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(from_postgres)?;
        for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
            transaction
                .batch_execute(migration.sql)
                .await
                .map_err(from_postgres)?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[&migration.version, &migration.name],
                )
                .await
                .map_err(from_postgres)?;
        }
        transaction.commit().await.map_err(from_postgres)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(from_pool)
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool.status())
            .finish()
    }
}

fn entity_from_row(level: Level, row: &Row) -> Result<Entity, StoreError> {
    let record: String = row.try_get(0).map_err(from_postgres)?;
    let spend: i64 = row.try_get(1).map_err(from_postgres)?;
    let reset_at: Option<std::time::SystemTime> = row.try_get(2).map_err(from_postgres)?;
    let mut entity = Entity::from_json(level, &record).map_err(from_json)?;
    entity.set_counter(NanoUsd(spend), reset_at.map(Timestamp::from_system_time));
    Ok(entity)
}

fn spend_row_from_row(row: &Row) -> Result<SpendLogRow, tokio_postgres::Error> {
    let tags: String = row.try_get(21)?;
    let status: String = row.try_get(18)?;
    Ok(SpendLogRow {
        request_id: row.try_get(0)?,
        call_type: Cow::Owned(row.try_get(1)?),
        key_hash: row.try_get::<_, String>(2)?.into(),
        key_alias: row.try_get::<_, Option<&str>>(3)?.map(Into::into),
        user_id: row.try_get::<_, Option<&str>>(4)?.map(Into::into),
        team_id: row.try_get::<_, Option<&str>>(5)?.map(Into::into),
        organization_id: row.try_get::<_, Option<&str>>(6)?.map(Into::into),
        model_group: row.try_get(7)?,
        deployment_id: row.try_get::<_, Option<String>>(8)?.map(Into::into),
        provider: row.try_get::<_, Option<String>>(9)?.map(Into::into),
        model: row.try_get::<_, String>(10)?.into(),
        prompt_tokens: to_u64(row.try_get(11)?),
        completion_tokens: to_u64(row.try_get(12)?),
        cached_tokens: to_u64(row.try_get(13)?),
        spend: NanoUsd(row.try_get(14)?),
        start_time: Timestamp::from_system_time(row.try_get(15)?),
        end_time: Timestamp::from_system_time(row.try_get(16)?),
        time_to_first_token_ms: row.try_get::<_, Option<i64>>(17)?.map(to_u64),
        status: SpendStatus::parse(&status),
        error_kind: row.try_get(19)?,
        cache_hit: row.try_get(20)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        end_user: row.try_get(22)?,
    })
}

/// `$1, $2, ...` with the casts some columns need.
fn entity_placeholders(names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| match *name {
            "record" => format!("${}::text::jsonb", i + 1),
            _ => format!("${}", i + 1),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The select list reading spend log rows.
fn spend_log_select() -> String {
    spend_log_columns_with_tags_as("text")
}

/// The spend-log columns in `SPEND_LOG_COLUMNS` order, `request_tags` cast
/// to `tags_type`.
fn spend_log_columns_with_tags_as(tags_type: &str) -> String {
    SPEND_LOG_COLUMNS
        .iter()
        .map(|column| {
            if *column == "request_tags" {
                format!("request_tags::{tags_type}")
            } else {
                (*column).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl BudgetStore for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("SELECT 1", &[])
            .await
            .map_err(from_postgres)
            .map(drop)
    }

    async fn load_all(&self) -> Result<Vec<Entity>, StoreError> {
        let client = self.client().await?;
        let mut all = Vec::new();
        for level in Level::ALL {
            let table = entity_table(level);
            let sql = format!(
                "SELECT record::text, spend_nanos, budget_reset_at FROM {} ORDER BY {}",
                table.name, table.id
            );
            for row in client.query(&sql, &[]).await.map_err(from_postgres)? {
                all.push(entity_from_row(level, &row)?);
            }
        }
        Ok(all)
    }

    async fn create(&self, entity: &Entity) -> Result<(), StoreError> {
        let table = entity_table(entity.level());
        let columns = entity.columns();
        let record = entity.to_json().map_err(from_json)?;
        let names = table.insert_columns();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            names.join(", "),
            entity_placeholders(&names)
        );
        let owners: Vec<Option<&str>> = table
            .owners
            .iter()
            .map(|owner| owner.value(&columns))
            .collect();
        let (created, updated) = (columns.created_at, columns.updated_at);
        let reset_at = columns.budget_reset_at.map(Timestamp::to_system_time);
        let (created, updated) = (created.to_system_time(), updated.to_system_time());
        let mut params: Vec<Param<'_>> = vec![&columns.id, &columns.alias];
        params.extend(owners.iter().map(|owner| owner as Param<'_>));
        params.extend([
            &columns.blocked as Param<'_>,
            &columns.spend.0,
            &reset_at,
            &record,
            &created,
            &updated,
        ]);
        self.client()
            .await?
            .execute(&sql, &params)
            .await
            .map_err(from_postgres)
            .map(drop)
    }

    async fn update(&self, entity: &Entity) -> Result<(), StoreError> {
        let table = entity_table(entity.level());
        let columns = entity.columns();
        let record = entity.to_json().map_err(from_json)?;
        let owners: Vec<Option<&str>> = table
            .owners
            .iter()
            .map(|owner| owner.value(&columns))
            .collect();
        let updated = columns.updated_at.to_system_time();
        let mut assignments = vec![format!("{} = $1", table.alias)];
        let mut params: Vec<Param<'_>> = vec![&columns.alias];
        for (owner, value) in table.owners.iter().zip(&owners) {
            params.push(value);
            assignments.push(format!("{} = ${}", owner.column(), params.len()));
        }
        params.push(&columns.blocked);
        assignments.push(format!("blocked = ${}", params.len()));
        params.push(&record);
        assignments.push(format!("record = ${}::text::jsonb", params.len()));
        params.push(&updated);
        assignments.push(format!("updated_at = ${}", params.len()));
        params.push(&columns.id);
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ${}",
            table.name,
            assignments.join(", "),
            table.id,
            params.len()
        );
        let changed = self
            .client()
            .await?
            .execute(&sql, &params)
            .await
            .map_err(from_postgres)?;
        if changed == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn get(&self, id: &EntityId) -> Result<Option<Entity>, StoreError> {
        let table = entity_table(id.level());
        let sql = format!(
            "SELECT record::text, spend_nanos, budget_reset_at FROM {} WHERE {} = $1",
            table.name, table.id
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&id.as_str()])
            .await
            .map_err(from_postgres)?;
        row.map(|row| entity_from_row(id.level(), &row)).transpose()
    }

    async fn list(&self, level: Level, filter: &ListFilter) -> Result<Vec<Entity>, StoreError> {
        let table = entity_table(level);
        if table.filter_cannot_match(filter) {
            return Ok(Vec::new());
        }
        let owners: Vec<Option<&str>> = table
            .owners
            .iter()
            .map(|owner| owner.filter(filter))
            .collect();
        let mut conditions = vec![format!("($1::text IS NULL OR {} = $1)", table.alias)];
        let mut params: Vec<Param<'_>> = vec![&filter.alias];
        for (owner, value) in table.owners.iter().zip(&owners) {
            params.push(value);
            conditions.push(format!(
                "(${n}::text IS NULL OR {c} = ${n})",
                n = params.len(),
                c = owner.column()
            ));
        }
        let limit = filter.limit.map(i64::from);
        let offset = i64::from(filter.offset);
        params.push(&limit);
        params.push(&offset);
        let sql = format!(
            "SELECT record::text, spend_nanos, budget_reset_at FROM {} WHERE {} ORDER BY {} LIMIT ${} OFFSET ${}",
            table.name,
            conditions.join(" AND "),
            table.id,
            params.len() - 1,
            params.len()
        );
        let rows = self
            .client()
            .await?
            .query(&sql, &params)
            .await
            .map_err(from_postgres)?;
        rows.iter().map(|row| entity_from_row(level, row)).collect()
    }

    async fn delete(&self, id: &EntityId) -> Result<bool, StoreError> {
        let table = entity_table(id.level());
        let sql = format!("DELETE FROM {} WHERE {} = $1", table.name, table.id);
        Ok(self
            .client()
            .await?
            .execute(&sql, &[&id.as_str()])
            .await
            .map_err(from_postgres)?
            > 0)
    }

    async fn save_counters(&self, counters: &[SpendCounter]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(from_postgres)?;
        for counter in counters {
            let table = entity_table(counter.id.level());
            let sql = format!(
                "UPDATE {} SET spend_nanos = CASE \
                 WHEN budget_reset_at IS NOT DISTINCT FROM $2 THEN spend_nanos + $1 \
                 WHEN $2::timestamptz IS NULL THEN spend_nanos + $1 \
                 WHEN budget_reset_at IS NULL OR budget_reset_at < $2 THEN $1 \
                 ELSE spend_nanos END, \
                 budget_reset_at = CASE \
                 WHEN $2::timestamptz IS NULL THEN NULL \
                 WHEN budget_reset_at IS NULL OR budget_reset_at < $2 THEN $2 \
                 ELSE budget_reset_at END \
                 WHERE {} = $3",
                table.name, table.id
            );
            let reset_at = counter.budget_reset_at.map(Timestamp::to_system_time);
            transaction
                .execute(
                    &sql,
                    &[&counter.spend_delta.0, &reset_at, &counter.id.as_str()],
                )
                .await
                .map_err(from_postgres)?;
        }
        transaction.commit().await.map_err(from_postgres)
    }

    async fn append_spend_logs(&self, rows: &[SpendLogRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        // Nearly every batch is new: it goes in with binary COPY, the
        // database's cheapest way in (no statement to plan, no arrays to
        // unpack, no ON CONFLICT probe of the primary key per row).
        let transaction = client.transaction().await.map_err(from_postgres)?;
        match copy_spend_logs(&transaction, rows).await {
            Ok(()) => {
                add_daily_spend(&transaction, rows.iter()).await?;
                return transaction.commit().await.map_err(from_postgres);
            }
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                transaction.rollback().await.map_err(from_postgres)?;
            }
            Err(error) => return Err(from_postgres(error)),
        }
        // Some ids are stored already: a batch retried after a commit whose
        // answer was lost, or a request id reused. Insert what is new, in
        // one statement (the rows travel as one array per column and UNNEST
        // turns them back into rows); RETURNING names the ids that went in.
        let columns = SpendColumns::of(rows)?;
        let params = columns.params();
        let transaction = client.transaction().await.map_err(from_postgres)?;
        let inserted = transaction
            .query(spend_log_insert_new(), &params)
            .await
            .map_err(from_postgres)?;
        let inserted: std::collections::HashSet<String> = inserted
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<Result<_, _>>()
            .map_err(from_postgres)?;
        // A row whose id was stored before, or is twice in this batch (one
        // of them went in, in no set order), is checked against the stored
        // row: the same request is skipped (a retry) or is the one that went
        // in; another request under a reused id is kept as a second row
        // under a derived id (`SpendLogRow::reissued`).
        let mut uses = std::collections::HashMap::<&str, usize>::new();
        for row in rows {
            *uses.entry(row.request_id.as_str()).or_default() += 1;
        }
        let (mut stored_now, check): (Vec<&SpendLogRow>, Vec<&SpendLogRow>) =
            rows.iter().partition(|row| {
                inserted.contains(&row.request_id) && uses.get(row.request_id.as_str()) == Some(&1)
            });
        let mut reissued = Vec::new();
        if !check.is_empty() {
            let ids: Vec<&str> = check.iter().map(|row| row.request_id.as_str()).collect();
            let stored = transaction
                .query(
                    &format!(
                        "SELECT {} FROM gateway_spend_logs WHERE request_id = ANY($1)",
                        spend_log_select()
                    ),
                    &[&ids],
                )
                .await
                .map_err(from_postgres)?;
            let mut holders = std::collections::HashMap::with_capacity(stored.len());
            for found in &stored {
                let holder = spend_row_from_row(found).map_err(from_postgres)?;
                holders.insert(holder.request_id.clone(), holder);
            }
            let mut claimed = std::collections::HashSet::new();
            for row in check {
                match holders.get(&row.request_id) {
                    Some(holder) if row.is_same_request(holder) => {
                        if inserted.contains(&row.request_id)
                            && claimed.insert(row.request_id.as_str())
                        {
                            stored_now.push(row);
                        }
                    }
                    _ => reissued.push(row.reissued()),
                }
            }
        }
        let mut reissued_in = std::collections::HashSet::new();
        if !reissued.is_empty() {
            let columns = SpendColumns::of(&reissued)?;
            let params = columns.params();
            for row in transaction
                .query(spend_log_insert_new(), &params)
                .await
                .map_err(from_postgres)?
            {
                reissued_in.insert(row.try_get::<_, String>(0).map_err(from_postgres)?);
            }
        }
        let mut claimed_again = std::collections::HashSet::new();
        let fresh = stored_now.into_iter().chain(reissued.iter().filter(|row| {
            reissued_in.contains(&row.request_id) && claimed_again.insert(row.request_id.as_str())
        }));
        add_daily_spend(&transaction, fresh).await?;
        transaction.commit().await.map_err(from_postgres)
    }

    async fn query_spend_logs(
        &self,
        query: &SpendLogQuery,
    ) -> Result<Vec<SpendLogRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM gateway_spend_logs WHERE ($1::text IS NULL OR api_key = $1) \
             AND ($2::text IS NULL OR team_id = $2) AND ($3::text IS NULL OR user_id = $3) \
             AND ($4::text IS NULL OR model_group = $4) \
             AND ($5::timestamptz IS NULL OR start_time >= $5) AND ($6::timestamptz IS NULL OR start_time < $6) \
             ORDER BY start_time DESC, request_id DESC LIMIT $7",
            spend_log_select()
        );
        let start = query.start.map(Timestamp::to_system_time);
        let end = query.end.map(Timestamp::to_system_time);
        let limit = query.limit.map(i64::from);
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[
                    &query.key_hash,
                    &query.team_id,
                    &query.user_id,
                    &query.model_group,
                    &start,
                    &end,
                    &limit,
                ],
            )
            .await
            .map_err(from_postgres)?;
        rows.iter()
            .map(spend_row_from_row)
            .collect::<Result<_, _>>()
            .map_err(from_postgres)
    }

    async fn spend_report(
        &self,
        query: &SpendReportQuery,
    ) -> Result<Vec<SpendReportRow>, StoreError> {
        let (select, group) = report_grouping(query, Dialect::Postgres);
        let sql = format!(
            "SELECT {select}, SUM(spend_nanos)::bigint, SUM(prompt_tokens)::bigint, SUM(completion_tokens)::bigint, \
             SUM(requests)::bigint FROM gateway_daily_spend WHERE day >= $1::text::date AND day <= $2::text::date \
             AND ($3::text IS NULL OR api_key = $3) AND ($4::text IS NULL OR team_id = $4) {group} \
             HAVING COUNT(*) > 0"
        );
        let (start, end) = (query.start_day.to_string(), query.end_day.to_string());
        let rows = self
            .client()
            .await?
            .query(&sql, &[&start, &end, &query.key_hash, &query.team_id])
            .await
            .map_err(from_postgres)?;
        let mut report = Vec::new();
        for row in rows {
            let text = |i: usize| row.try_get::<_, Option<String>>(i).map_err(from_postgres);
            let number = |i: usize| row.try_get::<_, i64>(i).map_err(from_postgres);
            report.push(report_row(
                text(0)?,
                text(1)?,
                text(2)?,
                text(3)?,
                [number(4)?, number(5)?, number(6)?, number(7)?],
            )?);
        }
        sort_report(&mut report);
        Ok(report)
    }

    async fn prune_spend_logs(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        let cutoff = older_than.to_system_time();
        self.client()
            .await?
            .execute(
                "DELETE FROM gateway_spend_logs WHERE start_time < $1",
                &[&cutoff],
            )
            .await
            .map_err(from_postgres)
    }
}

/// The spend-log insert for batches with stored rows: only the new rows,
/// returning their request ids. Built once.
fn spend_log_insert_new() -> &'static str {
    static STATEMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STATEMENT.get_or_init(|| {
        let casts = SPEND_LOG_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| format!("${}::{}[]", i + 1, spend_column_type(column)))
            .collect::<Vec<_>>()
            .join(", ");
        let select = spend_log_columns_with_tags_as("jsonb");
        format!(
            "INSERT INTO gateway_spend_logs ({columns}) SELECT {select} FROM UNNEST({casts}) AS batch({columns}) \
             ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
            columns = SPEND_LOG_COLUMNS.join(", "),
        )
    })
}

/// Writes every row with `COPY … FROM STDIN BINARY`. A stored request id
/// fails the whole COPY with a unique violation.
async fn copy_spend_logs(
    transaction: &tokio_postgres::Transaction<'_>,
    rows: &[SpendLogRow],
) -> Result<(), tokio_postgres::Error> {
    use futures_util::SinkExt;
    /// Bytes per CopyData message: large enough that a 5,000-row batch is a
    /// few dozen messages, small enough not to hold the batch twice.
    const CHUNK: usize = 64 * 1024;
    static STATEMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let statement = STATEMENT.get_or_init(|| {
        format!(
            "COPY gateway_spend_logs ({}) FROM STDIN BINARY",
            SPEND_LOG_COLUMNS.join(", ")
        )
    });
    let sink = transaction
        .copy_in::<_, bytes::Bytes>(statement.as_str())
        .await?;
    futures_util::pin_mut!(sink);
    // Each message gets a buffer of its own, with room for the row that
    // crosses CHUNK. Splitting one buffer instead made the next rows grow
    // what was left of it while the sent part was still shared: an
    // allocation and a copy of the rows so far, several times per message.
    let fresh = || bytes::BytesMut::with_capacity(CHUNK + 4 * 1024);
    let mut buffer = fresh();
    buffer.extend_from_slice(copy::HEADER);
    for row in rows {
        copy::encode_spend_row(&mut buffer, row);
        if buffer.len() >= CHUNK {
            sink.send(std::mem::replace(&mut buffer, fresh()).freeze())
                .await?;
        }
    }
    buffer.extend_from_slice(copy::TRAILER);
    sink.send(buffer.freeze()).await?;
    sink.finish().await?;
    Ok(())
}

/// Adds newly stored rows to the daily aggregate, one upsert per
/// (day, key, team, model group).
async fn add_daily_spend<'a>(
    transaction: &tokio_postgres::Transaction<'_>,
    rows: impl Iterator<Item = &'a SpendLogRow>,
) -> Result<(), StoreError> {
    let upsert = transaction
        .prepare(
            "INSERT INTO gateway_daily_spend (day, api_key, team_id, model_group, spend_nanos, prompt_tokens, \
             completion_tokens, requests) VALUES ($1::text::date, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (day, api_key, team_id, model_group) DO UPDATE SET \
             spend_nanos = gateway_daily_spend.spend_nanos + excluded.spend_nanos, \
             prompt_tokens = gateway_daily_spend.prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = gateway_daily_spend.completion_tokens + excluded.completion_tokens, \
             requests = gateway_daily_spend.requests + excluded.requests",
        )
        .await
        .map_err(from_postgres)?;
    for (key, totals) in aggregate_rows(rows) {
        let day = key.day.to_string();
        let sums = [
            totals.spend.0,
            to_i64(totals.prompt_tokens),
            to_i64(totals.completion_tokens),
            to_i64(totals.requests),
        ];
        transaction
            .execute(
                &upsert,
                &[
                    &day,
                    &key.key_hash,
                    &key.team_id,
                    &key.model_group,
                    &sums[0],
                    &sums[1],
                    &sums[2],
                    &sums[3],
                ],
            )
            .await
            .map_err(from_postgres)?;
    }
    Ok(())
}

/// The PostgreSQL type of each spend-log column, for the UNNEST casts.
fn spend_column_type(column: &str) -> &'static str {
    match column {
        "prompt_tokens"
        | "completion_tokens"
        | "cached_tokens"
        | "spend_nanos"
        | "time_to_first_token_ms"
        | "request_duration_ms" => "bigint",
        "start_time" | "end_time" => "timestamptz",
        "cache_hit" => "boolean",
        _ => "text",
    }
}

/// A batch of spend-log rows as one array per column, in
/// `SPEND_LOG_COLUMNS` order.
struct SpendColumns<'a> {
    text: [Vec<Option<&'a str>>; 13],
    owned_text: [Vec<String>; 2],
    numbers: [Vec<Option<i64>>; 6],
    times: [Vec<std::time::SystemTime>; 2],
    flags: Vec<bool>,
}

impl<'a> SpendColumns<'a> {
    fn of(rows: &'a [SpendLogRow]) -> Result<Self, StoreError> {
        let text_of = |pick: fn(&'a SpendLogRow) -> Option<&'a str>| {
            rows.iter().map(pick).collect::<Vec<_>>()
        };
        let number_of =
            |pick: fn(&SpendLogRow) -> Option<i64>| rows.iter().map(pick).collect::<Vec<_>>();
        let tags = rows
            .iter()
            .map(|row| serde_json::to_string(&row.tags).map_err(from_json))
            .collect::<Result<Vec<_>, _>>()?;
        let statuses = rows
            .iter()
            .map(|row| row.status.as_str().to_owned())
            .collect();
        Ok(SpendColumns {
            text: [
                text_of(|row| Some(row.request_id.as_str())),
                text_of(|row| Some(&*row.call_type)),
                text_of(|row| Some(&*row.key_hash)),
                text_of(|row| row.key_alias.as_deref()),
                text_of(|row| row.user_id.as_deref()),
                text_of(|row| row.team_id.as_deref()),
                text_of(|row| row.organization_id.as_deref()),
                text_of(|row| Some(row.model_group.as_str())),
                text_of(|row| row.deployment_id.as_deref()),
                text_of(|row| row.provider.as_deref()),
                text_of(|row| Some(&*row.model)),
                text_of(|row| row.error_kind.as_deref()),
                text_of(|row| row.end_user.as_deref()),
            ],
            owned_text: [statuses, tags],
            numbers: [
                number_of(|row| Some(to_i64(row.prompt_tokens))),
                number_of(|row| Some(to_i64(row.completion_tokens))),
                number_of(|row| Some(to_i64(row.cached_tokens))),
                number_of(|row| Some(row.spend.0)),
                number_of(|row| row.time_to_first_token_ms.map(to_i64)),
                number_of(|row| Some(to_i64(row.latency_ms()))),
            ],
            times: [
                rows.iter()
                    .map(|row| row.start_time.to_system_time())
                    .collect(),
                rows.iter()
                    .map(|row| row.end_time.to_system_time())
                    .collect(),
            ],
            flags: rows.iter().map(|row| row.cache_hit).collect(),
        })
    }

    /// The parameters in `SPEND_LOG_COLUMNS` order.
    fn params(&self) -> Vec<Param<'_>> {
        let [request_id, call_type, key_hash, key_alias, user_id, team_id, organization_id, model_group, deployment_id, provider, model, error_kind, end_user] =
            &self.text;
        let [status, tags] = &self.owned_text;
        let [prompt, completion, cached, spend, first_token, duration] = &self.numbers;
        let [start, end] = &self.times;
        vec![
            request_id,
            call_type,
            key_hash,
            key_alias,
            user_id,
            team_id,
            organization_id,
            model_group,
            deployment_id,
            provider,
            model,
            prompt,
            completion,
            cached,
            spend,
            start,
            end,
            first_token,
            status,
            error_kind,
            &self.flags,
            tags,
            end_user,
            duration,
        ]
    }
}
