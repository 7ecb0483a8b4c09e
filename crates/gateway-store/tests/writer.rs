//! The spend writer: batching, outages, drops, shutdown and counters, with
//! paused tokio time and the in-memory store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use gateway_budget::*;
use gateway_store::{SpendWriter, SpendWriterConfig};
use gateway_types::NanoUsd;

use support::{row, DAY0};

fn config() -> SpendWriterConfig {
    SpendWriterConfig {
        batch_interval: Duration::from_secs(10),
        max_batch_rows: 100,
        queue_capacity: 100,
        max_buffered_rows: 1_000,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(8),
        shutdown_timeout: Duration::from_secs(5),
        max_rejections: 5,
    }
}

fn rows(count: usize) -> Vec<SpendLogRow> {
    (0..count)
        .map(|i| row(&format!("req-{i}"), "sk-a", Some("t1"), "gpt-4o", DAY0, 10))
        .collect()
}

async fn stored_rows(store: &InMemoryStore) -> usize {
    match store.query_spend_logs(&SpendLogQuery::default()).await {
        Ok(rows) => rows.len(),
        Err(error) => panic!("query: {error}"),
    }
}

async fn next_flush(events: &mut watch::Receiver<u64>) {
    if events.changed().await.is_err() {
        panic!("writer stopped");
    }
}

#[tokio::test(start_paused = true)]
async fn rows_are_written_in_one_batch_when_the_interval_elapses() {
    let store = Arc::new(InMemoryStore::new());
    let writer = SpendWriter::start(store.clone(), None, config());
    let mut events = writer.flush_events();
    let start = Instant::now();
    for row in rows(3) {
        assert!(writer.handle().submit(row));
    }
    tokio::task::yield_now().await;
    assert_eq!(stored_rows(&store).await, 0);
    assert_eq!(writer.stats().depth(), 3);
    next_flush(&mut events).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
    assert_eq!(stored_rows(&store).await, 3);
    assert_eq!((writer.stats().written(), writer.stats().depth()), (3, 0));
    assert_eq!(writer.shutdown().await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_written_without_waiting_for_the_interval() {
    let store = Arc::new(InMemoryStore::new());
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            max_batch_rows: 2,
            ..config()
        },
    );
    let mut events = writer.flush_events();
    let start = Instant::now();
    for row in rows(2) {
        assert!(writer.handle().submit(row));
    }
    next_flush(&mut events).await;
    assert_eq!(Instant::now(), start);
    assert_eq!(stored_rows(&store).await, 2);
    assert_eq!(writer.shutdown().await, 0);
}

#[tokio::test(start_paused = true)]
async fn the_writer_sleeps_until_a_batch_is_ready() {
    let store = Arc::new(InMemoryStore::new());
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            max_batch_rows: 4,
            ..config()
        },
    );
    let mut events = writer.flush_events();
    let start = Instant::now();
    let mut batch = rows(4);
    let Some(last) = batch.pop() else {
        panic!("four rows")
    };
    for row in batch {
        assert!(writer.handle().submit(row));
    }
    // Short of a batch the task is not woken: the rows stay queued, not
    // taken one by one (a wake-up per row cost every request a wake-up of
    // the writer's thread).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!((writer.stats().queued(), writer.stats().buffered()), (3, 0));
    assert!(writer.handle().submit(last));
    next_flush(&mut events).await;
    assert_eq!(Instant::now(), start);
    assert_eq!(stored_rows(&store).await, 4);
    assert_eq!((writer.stats().written(), writer.stats().depth()), (4, 0));
    assert_eq!(writer.shutdown().await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_queue_smaller_than_a_batch_is_emptied_before_it_fills() {
    let store = Arc::new(InMemoryStore::new());
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            queue_capacity: 4,
            max_batch_rows: 100,
            ..config()
        },
    );
    for row in rows(20) {
        assert!(
            writer.handle().submit(row),
            "dropped at {:?}",
            writer.stats()
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(writer.stats().dropped(), 0);
    assert_eq!(writer.stats().depth(), 20);
    assert_eq!(writer.handle().flush().await, Ok(20));
    assert_eq!(stored_rows(&store).await, 20);
    assert_eq!(writer.shutdown().await, 0);
}

#[tokio::test(start_paused = true)]
async fn rows_are_kept_during_an_outage_and_retried_with_backoff() {
    let store = Arc::new(InMemoryStore::new());
    store.set_unavailable(true);
    let writer = SpendWriter::start(store.clone(), None, config());
    let mut events = writer.flush_events();
    for row in rows(3) {
        assert!(writer.handle().submit(row));
    }
    let start = Instant::now();
    next_flush(&mut events).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
    next_flush(&mut events).await;
    assert_eq!(Instant::now() - start, Duration::from_millis(10_500));
    next_flush(&mut events).await;
    assert_eq!(
        Instant::now() - start,
        Duration::from_millis(11_500),
        "the backoff doubles"
    );
    assert_eq!(writer.stats().flush_failures(), 3);
    assert_eq!(writer.stats().buffered(), 3);
    assert!(writer.handle().flush().await.is_err());
    events.borrow_and_update();

    store.set_unavailable(false);
    next_flush(&mut events).await;
    assert_eq!(stored_rows(&store).await, 3);
    assert_eq!(writer.stats().buffered(), 0);
    assert_eq!(writer.shutdown().await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_rows_and_counts_them() {
    let store = Arc::new(InMemoryStore::new());
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            queue_capacity: 2,
            ..config()
        },
    );
    // The writer task has not run yet on this single-threaded runtime.
    let accepted: Vec<bool> = rows(5)
        .into_iter()
        .map(|row| writer.handle().submit(row))
        .collect();
    assert_eq!(accepted, [true, true, false, false, false]);
    assert_eq!((writer.stats().dropped(), writer.stats().queued()), (3, 2));
    assert_eq!(writer.shutdown().await, 0);
    assert_eq!(stored_rows(&store).await, 2);
}

#[tokio::test(start_paused = true)]
async fn the_buffer_is_bounded_while_the_database_is_down() {
    let store = Arc::new(InMemoryStore::new());
    store.set_unavailable(true);
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            max_buffered_rows: 4,
            ..config()
        },
    );
    for row in rows(6) {
        assert!(writer.handle().submit(row));
    }
    assert!(writer.handle().flush().await.is_err());
    assert_eq!(
        (writer.stats().buffered(), writer.stats().dropped()),
        (4, 2)
    );
    store.set_unavailable(false);
    assert_eq!(writer.handle().flush().await, Ok(4));
    assert_eq!(writer.shutdown().await, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_writes_everything_queued() {
    let store = Arc::new(InMemoryStore::new());
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            batch_interval: Duration::from_secs(3_600),
            max_batch_rows: 2,
            ..config()
        },
    );
    let handle = writer.handle();
    for row in rows(7) {
        assert!(handle.submit(row));
    }
    assert_eq!(writer.shutdown().await, 0);
    assert_eq!(stored_rows(&store).await, 7);
    assert!(
        !handle.submit(row("late", "sk-a", None, "m", DAY0, 1)),
        "a stopped writer refuses rows"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_rows_it_could_not_write() {
    let store = Arc::new(InMemoryStore::new());
    store.set_unavailable(true);
    let writer = SpendWriter::start(store.clone(), None, config());
    for row in rows(2) {
        assert!(writer.handle().submit(row));
    }
    assert_eq!(writer.shutdown().await, 2);
}

#[tokio::test(start_paused = true)]
async fn engine_counters_and_resets_are_persisted_with_each_flush() {
    let now = Timestamp(DAY0);
    let store = Arc::new(InMemoryStore::new());
    let generated = key_record();
    let id = EntityId::Key(generated.token.clone());
    if let Err(error) = store.create(&generated.clone().into()).await {
        panic!("create: {error}");
    }
    let loaded = match store.load_all().await {
        Ok(records) => records,
        Err(error) => panic!("load: {error}"),
    };
    let engine = BudgetEngine::new(EngineConfig::default(), loaded, now);
    let writer = SpendWriter::start(store.clone(), Some(engine.clone()), config());
    let request = ReserveRequest {
        key: &generated.token,
        model: "m",
        estimate: NanoUsd(10),
        now,
    };
    let Ok(reservation) = engine.reserve(&request) else {
        panic!("refused")
    };
    let _ = engine.settle(
        reservation,
        Settlement {
            cost: NanoUsd(7),
            tokens: 3,
        },
        now,
    );
    assert_eq!(writer.handle().flush().await, Ok(0));
    let stored = match store.get(&id).await {
        Ok(Some(entity)) => entity,
        other => panic!("get: {other:?}"),
    };
    assert_eq!(stored.columns().spend, NanoUsd(7));
    assert_eq!(
        stored.columns().budget_reset_at,
        Some(Timestamp(DAY0).day().next().start())
    );

    store.set_unavailable(true);
    let _ = engine.reset_due(Timestamp(DAY0).day().next().start());
    assert!(writer.handle().flush().await.is_ok(), "no rows to write");
    assert_eq!(writer.stats().counter_failures(), 1);
    store.set_unavailable(false);
    assert_eq!(writer.handle().flush().await, Ok(0));
    let stored = match store.get(&id).await {
        Ok(Some(entity)) => entity,
        other => panic!("get: {other:?}"),
    };
    assert_eq!(
        stored.columns().spend,
        NanoUsd::ZERO,
        "the reset reached the store after the outage"
    );
    assert_eq!(writer.shutdown().await, 0);
}

fn key_record() -> KeyRecord {
    let mut key = KeyRecord::new(
        KeyHash::of_key("sk-counted"),
        key_name("sk-counted"),
        Timestamp(DAY0),
    );
    key.policy.budget_duration = Some(BudgetDuration::Days(1));
    key
}

#[tokio::test]
async fn retention_prunes_rows_older_than_the_window() {
    let store = InMemoryStore::new();
    let day = 24 * support::HOUR;
    let old = row("old", "sk-a", None, "m", DAY0, 1);
    let recent = row("recent", "sk-a", None, "m", DAY0 + 29 * day, 1);
    if let Err(error) = store.append_spend_logs(&[old, recent]).await {
        panic!("append: {error}");
    }
    let now = Timestamp(DAY0 + 30 * day + 1);
    let pruned = gateway_store::prune_spend_logs(&store, BudgetDuration::Days(30), now).await;
    assert_eq!(pruned, Ok(1));
    assert_eq!(stored_rows(&store).await, 1);
}

#[tokio::test]
async fn without_a_database_url_the_sqlite_file_is_the_store() {
    let file = support::TempDb::new();
    let store = gateway_store::open_store(None, &file.0).await;
    let Ok(store) = store else {
        panic!("open: {store:?}")
    };
    assert!(format!("{store:?}").starts_with("SqliteStore"));
    assert_eq!(store.ping().await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_batch_the_database_keeps_refusing_is_dropped_so_later_rows_flow() {
    let store = Arc::new(InMemoryStore::new());
    store.fail_with(Some(StoreError::Database("value out of range".to_owned())));
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            max_rejections: 2,
            max_batch_rows: 2,
            ..config()
        },
    );
    for row in rows(3) {
        assert!(writer.handle().submit(row));
    }
    assert!(writer.handle().flush().await.is_err());
    assert_eq!(writer.stats().buffered(), 3, "one refusal is retried");
    assert!(writer.handle().flush().await.is_err());
    assert_eq!(
        (writer.stats().buffered(), writer.stats().dropped()),
        (1, 2)
    );
    store.fail_with(None);
    assert_eq!(writer.handle().flush().await, Ok(1));
    assert_eq!(writer.shutdown().await, 0);
}
