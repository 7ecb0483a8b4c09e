//! One contract suite, run against every `BudgetStore`: the in-memory store,
//! SQLite on a temp file, and PostgreSQL when `GATEWAY_TEST_DATABASE_URL` is set.

mod support;

use serde_json::json;

use gateway_budget::*;
use gateway_store::SqliteStore;
use gateway_types::NanoUsd;

use support::{postgres_url, row, TempDb, DAY0, HOUR};

fn now() -> Timestamp {
    Timestamp(DAY0 + 10 * HOUR)
}

fn key_record(name: &str, team: Option<&str>, alias: Option<&str>) -> KeyRecord {
    let mut key = KeyRecord::new(KeyHash::of_key(name), key_name(name), now());
    key.team_id = team.map(str::to_owned);
    key.user_id = Some("u1".to_owned());
    key.key_alias = alias.map(str::to_owned);
    key.policy.models = vec!["gpt-4o".to_owned()];
    key.policy.max_budget = Some(NanoUsd::from_usd(2.5));
    key.policy.budget_duration = Some(BudgetDuration::Days(30));
    key.policy.rpm_limit = Some(60);
    key.policy.metadata = json!({"owner": "qa", "nested": {"n": 1}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    key.policy.tags = vec!["prod".to_owned()];
    key.expires = Some(Timestamp(DAY0 + 48 * HOUR));
    key
}

fn expect<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error}"),
    }
}

async fn contract_suite(store: &dyn BudgetStore) {
    expect(store.ping().await, "ping");
    entities_round_trip(store).await;
    updates_keep_counters_and_lists_filter(store).await;
    counters_merge_deltas_by_period(store).await;
    spend_logs_and_reports(store).await;
    a_reused_request_id_is_a_second_row(store).await;
}

/// A client that reuses its `x-request-id` sends a new request under an
/// old id: its row is kept under a derived id, and counted once however
/// often its batch is retried. Far from the other tests' days and keys.
async fn a_reused_request_id_is_a_second_row(store: &dyn BudgetStore) {
    let day = DAY0 + 200 * 24 * HOUR;
    let first = row("reused", "sk-reuse", None, "gpt-4o", day + HOUR, 100);
    let second = row("reused", "sk-reuse", None, "gpt-4o", day + 2 * HOUR, 200);
    let third = row("reused", "sk-reuse", None, "gpt-4o", day + 3 * HOUR, 400);
    expect(
        store.append_spend_logs(std::slice::from_ref(&first)).await,
        "first",
    );
    expect(
        store.append_spend_logs(std::slice::from_ref(&second)).await,
        "second",
    );
    // Retries of both, and a third use of the id within one batch.
    expect(
        store
            .append_spend_logs(&[first.clone(), second.clone(), third.clone(), third.clone()])
            .await,
        "retry with a third",
    );
    let key = KeyHash::of_key("sk-reuse").as_str().to_owned();
    let stored = expect(
        store
            .query_spend_logs(&SpendLogQuery {
                key_hash: Some(key.clone()),
                ..Default::default()
            })
            .await,
        "query",
    );
    let ids: Vec<&str> = stored.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            format!("reused~{}", day + 3 * HOUR),
            format!("reused~{}", day + 2 * HOUR),
            "reused".to_owned()
        ]
    );
    assert_eq!(stored[1].spend, NanoUsd(200));
    let report = expect(
        store
            .spend_report(&SpendReportQuery {
                start_day: Timestamp(day).day(),
                end_day: Timestamp(day).day(),
                group_by: vec![],
                key_hash: Some(key),
                team_id: None,
            })
            .await,
        "report",
    );
    assert_eq!(
        report
            .iter()
            .map(|r| (r.spend, r.requests))
            .collect::<Vec<_>>(),
        [(NanoUsd(700), 3)],
        "each request counted once"
    );
}

async fn entities_round_trip(store: &dyn BudgetStore) {
    let key = key_record("sk-one", Some("t1"), Some("first"));
    let mut team = TeamRecord::new("t1", now());
    team.team_alias = Some("Team One".to_owned());
    team.organization_id = Some("o1".to_owned());
    team.policy.soft_budget = Some(NanoUsd(123));
    let mut user = UserRecord::new("u1", now());
    user.user_email = Some("u1@example.com".to_owned());
    let mut org = OrgRecord::new("o1", now());
    org.organization_alias = Some("Org".to_owned());
    org.spend = NanoUsd(77);
    org.budget_reset_at = Some(Timestamp(DAY0 + 24 * HOUR));
    let records: Vec<Entity> = vec![key.clone().into(), team.into(), user.into(), org.into()];
    for record in &records {
        expect(store.create(record).await, "create");
        assert_eq!(
            expect(store.get(&record.id()).await, "get").as_ref(),
            Some(record)
        );
    }
    assert!(matches!(
        store.create(&records[0]).await,
        Err(StoreError::Conflict(_))
    ));
    let same_alias = key_record("sk-two", None, Some("first"));
    assert!(matches!(
        store.create(&same_alias.into()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create(&records[1]).await,
        Err(StoreError::Conflict(_))
    ));

    let mut loaded = expect(store.load_all().await, "load_all");
    loaded.sort_by_key(Entity::id);
    let mut expected = records.clone();
    expected.sort_by_key(Entity::id);
    assert_eq!(loaded, expected);

    let blocked = expect(store.set_blocked(&records[0].id(), true).await, "block");
    assert!(blocked.policy().blocked);
    let fetched = expect(store.get(&records[0].id()).await, "get");
    assert_eq!(fetched.map(|e| e.policy().blocked), Some(true));
    assert!(matches!(
        store
            .set_blocked(&EntityId::Team("missing".to_owned()), true)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn updates_keep_counters_and_lists_filter(store: &dyn BudgetStore) {
    for (name, team, alias) in [
        ("sk-a", Some("t1"), None),
        ("sk-b", Some("t2"), Some("bee")),
        ("sk-c", None, None),
    ] {
        expect(
            store.create(&key_record(name, team, alias).into()).await,
            "create key",
        );
    }
    let id = EntityId::Key(KeyHash::of_key("sk-a"));
    let reset_at = Some(Timestamp(DAY0 + 30 * 24 * HOUR));
    let counters = [
        SpendCounter {
            id: id.clone(),
            spend_delta: NanoUsd(5_000),
            budget_reset_at: reset_at,
        },
        SpendCounter {
            id: EntityId::Team("ghost".to_owned()),
            spend_delta: NanoUsd(1),
            budget_reset_at: None,
        },
    ];
    expect(store.save_counters(&counters).await, "save counters");
    let mut changed = key_record("sk-a", Some("t2"), Some("renamed"));
    changed.policy.max_budget = Some(NanoUsd(9));
    changed.spend = NanoUsd(1); // ignored: counters change only through save_counters
    expect(store.update(&changed.clone().into()).await, "update");
    let Some(Entity::Key(stored)) = expect(store.get(&id).await, "get") else {
        panic!("key missing")
    };
    assert_eq!(stored.policy.max_budget, Some(NanoUsd(9)));
    assert_eq!(stored.key_alias.as_deref(), Some("renamed"));
    assert_eq!(
        (stored.spend, stored.budget_reset_at),
        (NanoUsd(5_000), reset_at)
    );
    let clash = key_record("sk-a", None, Some("bee"));
    assert!(matches!(
        store.update(&clash.into()).await,
        Err(StoreError::Conflict(_))
    ));
    let missing = key_record("sk-missing", None, None);
    assert!(matches!(
        store.update(&missing.into()).await,
        Err(StoreError::NotFound)
    ));

    let list = |filter: ListFilter| async move {
        let entities = expect(store.list(Level::Key, &filter).await, "list");
        entities.iter().map(|e| e.id()).collect::<Vec<_>>()
    };
    let mut all = vec!["sk-one", "sk-a", "sk-b", "sk-c"]
        .into_iter()
        .map(|k| EntityId::Key(KeyHash::of_key(k)))
        .collect::<Vec<_>>();
    all.sort();
    assert_eq!(list(ListFilter::default()).await, all);
    let mut in_t2 = vec![
        EntityId::Key(KeyHash::of_key("sk-a")),
        EntityId::Key(KeyHash::of_key("sk-b")),
    ];
    in_t2.sort();
    assert_eq!(
        list(ListFilter {
            team_id: Some("t2".to_owned()),
            ..ListFilter::default()
        })
        .await,
        in_t2
    );
    assert_eq!(
        list(ListFilter {
            alias: Some("bee".to_owned()),
            ..ListFilter::default()
        })
        .await,
        vec![EntityId::Key(KeyHash::of_key("sk-b"))]
    );
    assert_eq!(
        list(ListFilter {
            limit: Some(2),
            offset: 1,
            ..ListFilter::default()
        })
        .await,
        all[1..3].to_vec()
    );
    let teams = expect(
        store
            .list(
                Level::Team,
                &ListFilter {
                    organization_id: Some("o1".to_owned()),
                    ..ListFilter::default()
                },
            )
            .await,
        "list teams",
    );
    assert_eq!(teams.len(), 1);
    let teams_by_user = expect(
        store
            .list(
                Level::Team,
                &ListFilter {
                    user_id: Some("u1".to_owned()),
                    ..ListFilter::default()
                },
            )
            .await,
        "list",
    );
    assert!(teams_by_user.is_empty());

    assert!(expect(store.delete(&id).await, "delete"));
    assert!(!expect(store.delete(&id).await, "delete again"));
    assert_eq!(expect(store.get(&id).await, "get"), None);
}

/// Deltas from several replicas add up within a period; a newer period
/// replaces the stored spend; a delta from an ended period is ignored.
async fn counters_merge_deltas_by_period(store: &dyn BudgetStore) {
    let id = EntityId::Key(KeyHash::of_key("sk-b"));
    let period = |days: i64| Some(Timestamp(DAY0 + days * 24 * HOUR));
    let save = |delta: i64, reset_at: Option<Timestamp>| {
        let counter = SpendCounter {
            id: id.clone(),
            spend_delta: NanoUsd(delta),
            budget_reset_at: reset_at,
        };
        async move { expect(store.save_counters(&[counter]).await, "save counters") }
    };
    let stored = || async {
        let entity = expect(store.get(&id).await, "get");
        entity.map(|e| (e.columns().spend, e.columns().budget_reset_at))
    };
    save(100, period(1)).await;
    save(20, period(1)).await;
    save(3, period(1)).await;
    assert_eq!(stored().await, Some((NanoUsd(123), period(1))));
    save(7, period(2)).await;
    assert_eq!(stored().await, Some((NanoUsd(7), period(2))));
    save(1_000, period(1)).await;
    assert_eq!(
        stored().await,
        Some((NanoUsd(7), period(2))),
        "a stale period is ignored"
    );
    save(1, None).await;
    assert_eq!(stored().await, Some((NanoUsd(8), None)));
}

async fn spend_logs_and_reports(store: &dyn BudgetStore) {
    let day1 = DAY0 + 24 * HOUR;
    let rows = [
        row("r1", "sk-a", Some("t1"), "gpt-4o", DAY0 + HOUR, 100),
        row("r2", "sk-a", Some("t1"), "gpt-4o", DAY0 + 2 * HOUR, 200),
        row("r3", "sk-a", Some("t1"), "claude", DAY0 + 3 * HOUR, 400),
        row("r4", "sk-b", None, "gpt-4o", day1 + HOUR, 800),
        row("r5", "sk-b", Some("t2"), "claude", day1 + 2 * HOUR, 1_600),
    ];
    expect(store.append_spend_logs(&rows[..3]).await, "append");
    // A retried batch overlapping stored rows is not counted twice.
    expect(store.append_spend_logs(&rows[2..]).await, "append retry");
    expect(store.append_spend_logs(&[]).await, "append nothing");

    let query = |q: SpendLogQuery| async move {
        let found = expect(store.query_spend_logs(&q).await, "query");
        found
            .iter()
            .map(|r| r.request_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        query(SpendLogQuery::default()).await,
        ["r5", "r4", "r3", "r2", "r1"]
    );
    let key_a = KeyHash::of_key("sk-a").as_str().to_owned();
    assert_eq!(
        query(SpendLogQuery {
            key_hash: Some(key_a.clone()),
            ..Default::default()
        })
        .await,
        ["r3", "r2", "r1"]
    );
    assert_eq!(
        query(SpendLogQuery {
            team_id: Some("t2".to_owned()),
            ..Default::default()
        })
        .await,
        ["r5"]
    );
    assert_eq!(
        query(SpendLogQuery {
            model_group: Some("claude".to_owned()),
            ..Default::default()
        })
        .await,
        ["r5", "r3"]
    );
    assert_eq!(
        query(SpendLogQuery {
            start: Some(Timestamp(DAY0 + 2 * HOUR)),
            end: Some(Timestamp(day1 + HOUR)),
            ..Default::default()
        })
        .await,
        ["r3", "r2"]
    );
    assert_eq!(
        query(SpendLogQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        ["r5", "r4"]
    );
    let stored = expect(
        store
            .query_spend_logs(&SpendLogQuery {
                user_id: Some("u1".to_owned()),
                ..Default::default()
            })
            .await,
        "query",
    );
    assert_eq!(stored.last(), Some(&rows[0]));

    let report = |group_by: Vec<ReportDimension>, key_hash: Option<String>| {
        let query = SpendReportQuery {
            start_day: Timestamp(DAY0).day(),
            end_day: Timestamp(day1).day(),
            group_by,
            key_hash,
            team_id: None,
        };
        async move { expect(store.spend_report(&query).await, "report") }
    };
    let total = report(vec![], None).await;
    assert_eq!(total.len(), 1);
    assert_eq!(
        (total[0].spend, total[0].requests, total[0].prompt_tokens),
        (NanoUsd(3_100), 5, 500)
    );
    let by_day = report(vec![ReportDimension::Day], None).await;
    let day_totals: Vec<_> = by_day
        .iter()
        .map(|r| (r.day, r.spend, r.requests))
        .collect();
    assert_eq!(
        day_totals,
        vec![
            (Some(Timestamp(DAY0).day()), NanoUsd(700), 3),
            (Some(Timestamp(day1).day()), NanoUsd(2_400), 2)
        ]
    );
    let by_team = report(vec![ReportDimension::Team], None).await;
    let team_totals: Vec<_> = by_team
        .iter()
        .map(|r| (r.team_id.clone(), r.spend))
        .collect();
    assert_eq!(
        team_totals,
        vec![
            (Some(String::new()), NanoUsd(800)),
            (Some("t1".to_owned()), NanoUsd(700)),
            (Some("t2".to_owned()), NanoUsd(1_600))
        ]
    );
    let key_model = report(
        vec![ReportDimension::Model, ReportDimension::Key],
        Some(key_a.clone()),
    )
    .await;
    let key_model: Vec<_> = key_model
        .iter()
        .map(|r| (r.key_hash.clone(), r.model_group.clone(), r.spend, r.day))
        .collect();
    assert_eq!(
        key_model,
        vec![
            (
                Some(key_a.clone()),
                Some("claude".to_owned()),
                NanoUsd(400),
                None
            ),
            (
                Some(key_a.clone()),
                Some("gpt-4o".to_owned()),
                NanoUsd(300),
                None
            )
        ]
    );
    let empty = SpendReportQuery {
        start_day: Timestamp(DAY0 + 100 * 24 * HOUR).day(),
        end_day: Timestamp(DAY0 + 101 * 24 * HOUR).day(),
        group_by: vec![],
        key_hash: None,
        team_id: None,
    };
    assert!(expect(store.spend_report(&empty).await, "empty report").is_empty());

    let many: Vec<SpendLogRow> = (0..1_000)
        .map(|i| {
            row(
                &format!("bulk-{i}"),
                "sk-bulk",
                None,
                "bulk-model",
                day1 + 3 * HOUR,
                1,
            )
        })
        .collect();
    expect(store.append_spend_logs(&many).await, "append a large batch");
    let bulk_key = Some(KeyHash::of_key("sk-bulk").as_str().to_owned());
    // The batch spans several COPY messages on PostgreSQL: every row lands.
    let stored = SpendLogQuery {
        key_hash: bulk_key.clone(),
        ..Default::default()
    };
    let stored = expect(store.query_spend_logs(&stored).await, "list a large batch");
    assert_eq!(stored.len(), 1_000);
    let bulk = report(vec![ReportDimension::Model], bulk_key).await;
    assert_eq!((bulk[0].spend, bulk[0].requests), (NanoUsd(1_000), 1_000));

    assert_eq!(
        expect(store.prune_spend_logs(Timestamp(day1)).await, "prune"),
        3
    );
    let remaining = SpendLogQuery {
        key_hash: Some(KeyHash::of_key("sk-b").as_str().to_owned()),
        ..Default::default()
    };
    assert_eq!(query(remaining).await, ["r5", "r4"]);
    assert_eq!(
        report(vec![], None).await[0].spend,
        NanoUsd(4_100),
        "aggregates outlive pruned rows"
    );
}

#[tokio::test]
async fn in_memory_store_meets_the_contract() {
    contract_suite(&InMemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_meets_the_contract() {
    let file = TempDb::new();
    let store = expect(SqliteStore::open(&file.0).await, "open sqlite");
    contract_suite(&store).await;
    drop(store);
    // Reopening applies no migration twice and keeps the data.
    let reopened = expect(SqliteStore::open(&file.0).await, "reopen sqlite");
    assert_eq!(expect(reopened.load_all().await, "load").len(), 6);
}

#[tokio::test]
async fn postgres_store_meets_the_contract() {
    let Some(url) = postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set; skipping the PostgreSQL contract run");
        return;
    };
    let store = support::postgres_store(&url).await;
    contract_suite(&store).await;
    expect(store.drop_schema().await, "drop schema");
}

#[tokio::test]
async fn postgres_spend_logs_carry_only_the_indexes_their_queries_need() {
    let Some(url) = postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set; skipping");
        return;
    };
    let schema = support::unique_name("gw_test");
    let mut config = gateway_store::PostgresConfig::new(url.clone());
    config.schema = Some(schema.clone());
    let store = expect(
        gateway_store::PostgresStore::connect_with(config).await,
        "connect",
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("connect a client: {error}"));
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT indexname, indexdef FROM pg_indexes \
             WHERE schemaname = $1 AND tablename = 'gateway_spend_logs' ORDER BY indexname",
            &[&schema],
        )
        .await
        .unwrap_or_else(|error| panic!("list indexes: {error}"));
    let indexes: Vec<(String, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    let names: Vec<&str> = indexes.iter().map(|(name, _)| name.as_str()).collect();
    // Every logged request pays for each of these (migration 2).
    assert_eq!(
        names,
        [
            "gateway_spend_logs_key_start",
            "gateway_spend_logs_pkey",
            "gateway_spend_logs_start",
            "gateway_spend_logs_team_start",
        ]
    );
    assert!(
        indexes[3].1.ends_with("WHERE (team_id IS NOT NULL)"),
        "{}",
        indexes[3].1
    );
    expect(store.drop_schema().await, "drop schema");
}

#[tokio::test]
async fn concurrent_starts_migrate_once() {
    let file = TempDb::new();
    let opens = (0..4).map(|_| SqliteStore::open(file.0.clone()));
    for result in futures_util::future::join_all(opens).await {
        expect(result, "concurrent sqlite open");
    }
    let Some(url) = postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set; skipping the PostgreSQL part");
        return;
    };
    let schema = support::unique_name("gw_test");
    let connects = (0..4).map(|_| {
        let mut config = gateway_store::PostgresConfig::new(url.clone());
        config.schema = Some(schema.clone());
        gateway_store::PostgresStore::connect_with(config)
    });
    let stores: Vec<_> = futures_util::future::join_all(connects)
        .await
        .into_iter()
        .map(|result| expect(result, "concurrent postgres connect"))
        .collect();
    expect(stores[0].ping().await, "ping");
    expect(stores[0].drop_schema().await, "drop schema");
}
