//! Helpers shared by the store test binaries.
#![allow(dead_code)]

pub mod relay;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use gateway_budget::{KeyHash, SpendLogRow, SpendStatus, Timestamp};
use gateway_store::{PostgresConfig, PostgresStore};
use gateway_types::NanoUsd;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call, for files and schemas.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A database file path in the temp directory, removed with its WAL files on drop.
pub struct TempDb(pub PathBuf);

impl TempDb {
    pub fn new() -> Self {
        TempDb(std::env::temp_dir().join(format!("{}.db", unique_name("gateway_store_test"))))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The test database URL, when configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("GATEWAY_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A PostgreSQL store in a fresh schema; call `drop_schema` at the end.
pub async fn postgres_store(url: &str) -> PostgresStore {
    let mut config = PostgresConfig::new(url);
    config.schema = Some(unique_name("gw_test"));
    match PostgresStore::connect_with(config).await {
        Ok(store) => store,
        Err(error) => panic!("cannot connect to GATEWAY_TEST_DATABASE_URL: {error}"),
    }
}

/// 2024-06-14T00:00:00Z.
pub const DAY0: i64 = 1_718_323_200_000;
pub const HOUR: i64 = 3_600_000;

/// A spend row.
pub fn row(
    request_id: &str,
    key: &str,
    team: Option<&str>,
    model: &str,
    start: i64,
    nanos: i64,
) -> SpendLogRow {
    SpendLogRow {
        request_id: request_id.to_owned(),
        call_type: "acompletion".into(),
        key_hash: KeyHash::of_key(key).shared(),
        key_alias: Some(format!("{key}-alias").into()),
        user_id: Some("u1".into()),
        team_id: team.map(Into::into),
        organization_id: None,
        model_group: model.to_owned(),
        deployment_id: Some("dep-1".into()),
        provider: Some("openai".into()),
        model: format!("openai/{model}").into(),
        prompt_tokens: 100,
        completion_tokens: 20,
        cached_tokens: 10,
        spend: NanoUsd(nanos),
        start_time: Timestamp(start),
        end_time: Timestamp(start + 1_500),
        time_to_first_token_ms: Some(200),
        status: SpendStatus::Success,
        error_kind: None,
        cache_hit: false,
        tags: vec!["prod".to_owned(), "batch".to_owned()].into(),
        end_user: Some("customer-7".to_owned()),
    }
}
