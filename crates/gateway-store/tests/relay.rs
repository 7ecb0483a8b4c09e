//! The spend writer keeps rows while PostgreSQL is unreachable and delivers
//! them once it is back. A TCP relay in front of the database is cut and
//! restored. Skipped (with a note) when GATEWAY_TEST_DATABASE_URL is unset.

mod support;

use std::sync::Arc;
use std::time::Duration;

use gateway_budget::{BudgetStore, SpendLogQuery, StoreError};
use gateway_store::{PostgresConfig, PostgresStore, SpendWriter, SpendWriterConfig};

use support::relay::{target_of, through, Relay};
use support::{row, unique_name, DAY0};

async fn connect(url: String, schema: &str) -> PostgresStore {
    let mut config = PostgresConfig::new(url);
    config.schema = Some(schema.to_owned());
    config.max_connections = 2;
    config.connect_timeout = Duration::from_secs(5);
    match PostgresStore::connect_with(config).await {
        Ok(store) => store,
        Err(error) => panic!("connect: {error}"),
    }
}

#[tokio::test]
async fn writer_keeps_rows_while_postgres_is_unreachable_and_delivers_them_after() {
    let Some(url) = support::postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set; skipping the PostgreSQL outage test");
        return;
    };
    let relay = Relay::start(target_of(&url)).await;
    let relayed_url = through(&url, relay.address);
    let schema = unique_name("gw_test");
    let direct = connect(url.clone(), &schema).await;
    let store = Arc::new(connect(relayed_url, &schema).await);
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            batch_interval: Duration::from_secs(3_600),
            ..SpendWriterConfig::default()
        },
    );

    relay.cut();
    for i in 0..5 {
        assert!(writer.handle().submit(row(
            &format!("outage-{i}"),
            "sk-a",
            Some("t1"),
            "gpt-4o",
            DAY0,
            10
        )));
    }
    assert!(matches!(
        writer.handle().flush().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store.ping().await.is_err());
    assert_eq!(writer.stats().buffered(), 5);
    assert!(writer.stats().flush_failures() >= 1);

    relay.restore();
    let mut delivered = Err(StoreError::NotFound);
    for _ in 0..10 {
        // A pooled connection broken by the cut may fail once more.
        delivered = writer.handle().flush().await;
        if delivered.is_ok() {
            break;
        }
    }
    assert_eq!(delivered, Ok(5));
    let stored = match direct.query_spend_logs(&SpendLogQuery::default()).await {
        Ok(rows) => rows,
        Err(error) => panic!("query: {error}"),
    };
    assert_eq!(stored.len(), 5);
    assert_eq!(writer.shutdown().await, 0);
    if let Err(error) = direct.drop_schema().await {
        panic!("drop schema: {error}");
    }
}
