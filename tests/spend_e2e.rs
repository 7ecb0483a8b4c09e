//! Spend rows, streams, alerts and database outages through the real
//! server: what lands in the spend log table after traffic and shutdown.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use gateway_tests::relay::{postgres_url, target_of, through, Relay};
use gateway_tests::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const MASTER: &str = "sk-master-test-key-0000";

/// Where the gateway keeps its store in a test.
enum Store {
    Sqlite(TempDir),
    Postgres(String),
}

impl Store {
    fn config_line(&self) -> String {
        match self {
            Store::Sqlite(dir) => format!(
                "database_path: \"{}\"",
                dir.path.join("gateway.db").display()
            ),
            Store::Postgres(url) => format!("database_url: \"{url}\""),
        }
    }

    /// The spend rows of one key: (model_group, model_id, prompt, completion,
    /// spend_nanos, status, error_kind), oldest first.
    async fn rows(&self, key_hash: &str) -> Vec<Row> {
        let sql = "SELECT model_group, model_id, prompt_tokens, completion_tokens, spend_nanos, status, error_kind, request_id FROM gateway_spend_logs WHERE api_key = $1 ORDER BY start_time, request_id";
        match self {
            Store::Sqlite(dir) => {
                let connection = rusqlite::Connection::open(dir.path.join("gateway.db")).unwrap();
                let mut statement = connection.prepare(&sql.replace("$1", "?1")).unwrap();
                let rows = statement
                    .query_map([key_hash], |row| {
                        Ok(Row {
                            model_group: row.get(0)?,
                            model_id: row.get(1)?,
                            prompt_tokens: row.get(2)?,
                            completion_tokens: row.get(3)?,
                            spend_nanos: row.get(4)?,
                            status: row.get(5)?,
                            error_kind: row.get(6)?,
                            request_id: row.get(7)?,
                        })
                    })
                    .unwrap();
                rows.map(Result::unwrap).collect()
            }
            Store::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client
                    .query(sql, &[&key_hash])
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| Row {
                        model_group: row.get(0),
                        model_id: row.get(1),
                        prompt_tokens: row.get(2),
                        completion_tokens: row.get(3),
                        spend_nanos: row.get(4),
                        status: row.get(5),
                        error_kind: row.get(6),
                        request_id: row.get(7),
                    })
                    .collect()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    model_group: String,
    model_id: Option<String>,
    prompt_tokens: i64,
    completion_tokens: i64,
    spend_nanos: i64,
    status: String,
    error_kind: Option<String>,
    request_id: String,
}

fn deployment(alias: &str, id: &str, base: &str) -> String {
    format!(
        "  - model_name: {alias}\n    litellm_params: {{model: openai/gpt-x, api_base: \"{base}\", api_key: sk-upstream-key, input_cost_per_token: 0.0001, output_cost_per_token: 0.0002}}\n    model_info: {{id: {id}}}\n"
    )
}

async fn generate(gateway: &TestGateway, body: Value) -> (String, String) {
    let auth = format!("Bearer {MASTER}");
    let response = post(
        &gateway.url("/key/generate"),
        &[("authorization", auth.as_str())],
        &body,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    (
        body["key"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

async fn chat(gateway: &TestGateway, key: &str, body: Value) -> TestResponse {
    let auth = format!("Bearer {key}");
    post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", auth.as_str())],
        &body,
    )
    .await
}

/// Two chat completions with `key` that must succeed.
async fn two_chats(gateway: &TestGateway, key: &str, model: &str) {
    let message = json!([{"role": "user", "content": "hi"}]);
    for _ in 0..2 {
        let response = chat(gateway, key, json!({"model": model, "messages": message})).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
}

fn usage_chunk(prompt: u64, completion: u64) -> String {
    json!({
        "id": "chatcmpl-upstream-2", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "upstream-model-0613",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    })
    .to_string()
}

async fn spend_rows_scenario(store: Store) {
    let whole = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let streamed = FakeUpstream::start(Reply::Sse {
        events: vec![
            upstream_chunk(Some("Hel"), None),
            upstream_chunk(Some("lo"), Some("stop")),
            usage_chunk(9, 2),
            "[DONE]".to_owned(),
        ],
    })
    .await;
    let gone = Arc::new(Notify::new());
    let endless = FakeUpstream::start(Reply::EndlessSse {
        event: upstream_chunk(Some("abcd"), None),
        gone: Arc::clone(&gone),
    })
    .await;
    let config = format!(
        "model_list:\n{}{}{}general_settings:\n  master_key: {MASTER}\n  {}\n  proxy_batch_write_at: 3600\n",
        deployment("whole", "whole-1", &whole.api_base()),
        deployment("streamed", "streamed-1", &streamed.api_base()),
        deployment("endless", "endless-1", &endless.api_base()),
        store.config_line(),
    );
    let gateway = TestGateway::start_with_store(&config, &[]).await;
    let (key, hash) = generate(&gateway, json!({})).await;
    two_chats(&gateway, &key, "whole").await;
    let message = json!([{"role": "user", "content": "hi"}]);
    let response = chat(
        &gateway,
        &key,
        json!({"model": "streamed", "stream": true, "messages": message}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().ends_with("data: [DONE]\n\n"));

    // A client that reads the first bytes of a stream and goes away.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = hyper::Request::post(gateway.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"model": "endless", "stream": true, "messages": message}).to_string(),
        )))
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, client.request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.data_ref().is_some_and(|data| !data.is_empty()));
    let gone_notified = gone.notified();
    drop(body);
    drop(client);
    // The upstream notices only after the gateway dropped the stream, and
    // the gateway settles the request as it drops it.
    tokio::time::timeout(PATIENCE, gone_notified)
        .await
        .expect("the upstream stream is dropped when the client goes away");

    gateway.stop().await;
    let rows = store.rows(&hash).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let by_model = |group: &str| -> Vec<Row> {
        rows.iter()
            .filter(|row| row.model_group == group)
            .cloned()
            .collect()
    };
    let whole_rows = by_model("whole");
    assert_eq!(whole_rows.len(), 2);
    for row in &whole_rows {
        assert_eq!(row.model_id.as_deref(), Some("whole-1"));
        assert_eq!((row.prompt_tokens, row.completion_tokens), (9, 3));
        // 9 × 0.0001 + 3 × 0.0002 USD.
        assert_eq!(row.spend_nanos, 1_500_000);
        assert_eq!(row.status, "success");
    }
    let stream_row = &by_model("streamed")[0];
    assert_eq!(stream_row.model_id.as_deref(), Some("streamed-1"));
    assert_eq!(
        (stream_row.prompt_tokens, stream_row.completion_tokens),
        (9, 2)
    );
    assert_eq!(stream_row.spend_nanos, 1_300_000);
    let gone_row = &by_model("endless")[0];
    assert_eq!(gone_row.model_id.as_deref(), Some("endless-1"));
    assert!(gone_row.completion_tokens > 0, "{gone_row:?}");
    assert!(gone_row.spend_nanos > 0, "billed for what was generated");
    assert_eq!(gone_row.status, "failure");
    assert_eq!(gone_row.error_kind.as_deref(), Some("client_disconnected"));
}

#[tokio::test]
async fn spend_rows_record_every_request_in_sqlite() {
    spend_rows_scenario(Store::Sqlite(TempDir::new("rows"))).await;
}

#[tokio::test]
async fn spend_rows_record_every_request_in_postgres() {
    let Some(url) = postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set: skipping the PostgreSQL spend rows test");
        return;
    };
    spend_rows_scenario(Store::Postgres(url)).await;
}

/// A client that sends the same `x-request-id` twice made two requests: both
/// are logged (the second under a derived id) and both are in the spend.
async fn reused_request_id_scenario(store: Store) {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let config = format!(
        "model_list:\n{}{}general_settings:\n  master_key: {MASTER}\n  {}\n  proxy_batch_write_at: 3600\n",
        deployment("whole", "whole-1", &upstream.api_base()),
        deployment("other", "other-1", &upstream.api_base()),
        store.config_line(),
    );
    let gateway = TestGateway::start_with_store(&config, &[]).await;
    let (key, hash) = generate(&gateway, json!({})).await;
    let auth = format!("Bearer {key}");
    // Unique per run: request ids are unique across the whole table, and
    // the PostgreSQL test database outlives a run.
    let client_id = format!("client-{}", &hash[..16]);
    // Two models: two requests to one model within one millisecond would be
    // alike in everything a retried row is compared by, and count as one.
    for model in ["whole", "other"] {
        let response = post(
            &gateway.url("/v1/chat/completions"),
            &[
                ("authorization", auth.as_str()),
                ("x-request-id", client_id.as_str()),
            ],
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("x-request-id"), Some(client_id.as_str()));
    }
    gateway.stop().await;
    let mut rows = store.rows(&hash).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    // Both went in one batch: which keeps the client's id is the store's
    // choice; the other has it with its start appended.
    rows.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    assert_eq!(rows[0].request_id, client_id);
    assert!(
        rows[1].request_id.starts_with(&format!("{client_id}~")),
        "{}",
        rows[1].request_id
    );
    let mut models: Vec<&str> = rows.iter().map(|row| row.model_group.as_str()).collect();
    models.sort_unstable();
    assert_eq!(models, ["other", "whole"]);
    assert!(rows.iter().all(|row| row.spend_nanos == 1_500_000));
}

#[tokio::test]
async fn a_reused_request_id_is_logged_twice_in_sqlite() {
    reused_request_id_scenario(Store::Sqlite(TempDir::new("reused"))).await;
}

#[tokio::test]
async fn a_reused_request_id_is_logged_twice_in_postgres() {
    let Some(url) = postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set: skipping the PostgreSQL reused id test");
        return;
    };
    reused_request_id_scenario(Store::Postgres(url)).await;
}

/// `spend_logs_batch_size` reaches the writer: with an hour between
/// interval writes, two rows are a full batch and are written at once.
#[tokio::test]
async fn a_full_spend_log_batch_is_written_before_the_interval() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let store = Store::Sqlite(TempDir::new("batch"));
    let config = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER}\n  {}\n  proxy_batch_write_at: 3600\n  spend_logs_batch_size: 2\n",
        deployment("whole", "whole-1", &upstream.api_base()),
        store.config_line(),
    );
    let gateway = TestGateway::start_with_store(&config, &[]).await;
    let Some(mut writes) = gateway.gateway.subscribe_spend_writes().await else {
        panic!("the spend writer runs once the store is started")
    };
    let (key, hash) = generate(&gateway, json!({})).await;
    two_chats(&gateway, &key, "whole").await;
    // Checked after each write while the gateway runs: stopping it would
    // write everything anyway.
    let written = tokio::time::timeout(PATIENCE, async {
        loop {
            let rows = store.rows(&hash).await;
            if rows.len() == 2 {
                return rows;
            }
            if writes.changed().await.is_err() {
                return rows;
            }
        }
    })
    .await
    .expect("a full batch of two rows is written without waiting an hour");
    assert_eq!(written.len(), 2, "{written:#?}");
    assert!(written.iter().all(|row| row.model_group == "whole"));
    gateway.stop().await;
}

#[tokio::test]
async fn crossing_80_percent_of_a_key_budget_alerts_once() {
    let receiver = FakeUpstream::start(Reply::json(200, json!({"ok": true}))).await;
    // Output tokens cost 0.001 USD; the first call (8 output tokens) uses
    // 81% of the 0.01 USD budget, the second (1 token) brings it to 92%.
    let upstream =
        FakeUpstream::start(Reply::json(200, upstream_completion_with_usage("hi", 9, 8))).await;
    let dir = TempDir::new("alerts");
    let config = format!(
        r#"
model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-x, api_base: "{base}", api_key: sk-upstream-key, input_cost_per_token: 0.00001, output_cost_per_token: 0.001}}
general_settings:
  master_key: {MASTER}
  database_path: "{db}"
  alert_to_webhook_url: {{budget_alerts: "http://{hook}/hook"}}
"#,
        base = upstream.api_base(),
        db = dir.path.join("gateway.db").display(),
        hook = receiver.addr,
    );
    let gateway = TestGateway::start_with_store(&config, &[]).await;
    let (key, _) = generate(
        &gateway,
        json!({"key_alias": "alerted", "max_budget": 0.01}),
    )
    .await;
    let body =
        json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&gateway, &key, body.clone()).await.status, 200);
    upstream.set_reply(Reply::json(200, upstream_completion_with_usage("hi", 9, 1)));
    let second = chat(&gateway, &key, body).await;
    assert_eq!(second.status, 200, "{}", second.text());
    // Shutdown delivers every queued alert.
    gateway.stop().await;
    let posts = receiver.received();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].path_and_query, "/hook");
    let text = posts[0].body["text"].as_str().unwrap();
    assert!(
        text.contains("key alerted has 80% of its budget used"),
        "{text}"
    );
    assert!(!text.contains(&key));
}

#[tokio::test]
async fn gateway_keeps_answering_while_postgres_is_down_and_spend_arrives_after() {
    let Some(url) = postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set: skipping the PostgreSQL outage test");
        return;
    };
    let relay = Relay::start(target_of(&url)).await;
    let relayed = through(&url, relay.address);
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let config = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER}\n  database_url: \"{relayed}\"\n  proxy_batch_write_at: 3600\n",
        deployment("m", "m-1", &upstream.api_base()),
    );
    let gateway = TestGateway::start_with_store(&config, &[]).await;
    let (key, hash) = generate(&gateway, json!({"max_budget": 10.0})).await;
    let readiness = || async {
        send("GET", &gateway.url("/health/readiness"), &[], "")
            .await
            .json()
    };
    assert_eq!(readiness().await["status"], "healthy");

    relay.cut();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        let response = chat(&gateway, &key, body.clone()).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
    // A write attempt finds the database gone: readiness says so.
    assert!(gateway.gateway.flush_spend().await.is_err());
    let ready = readiness().await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["db"], "disconnected");

    relay.restore();
    // Pooled connections broken by the cut may fail a first attempt.
    let mut written = false;
    for _ in 0..5 {
        if gateway.gateway.flush_spend().await.is_ok() {
            written = true;
            break;
        }
    }
    assert!(written, "spend rows are written once the database is back");
    assert_eq!(readiness().await["status"], "healthy");
    gateway.stop().await;
    let store = Store::Postgres(url);
    assert_eq!(store.rows(&hash).await.len(), 3);
}

#[tokio::test]
async fn gateway_starts_without_postgres_and_connects_when_it_is_back() {
    let Some(url) = postgres_url() else {
        eprintln!(
            "GATEWAY_TEST_DATABASE_URL is not set: skipping the PostgreSQL start-up outage test"
        );
        return;
    };
    let relay = Relay::start(target_of(&url)).await;
    relay.cut();
    let relayed = through(&url, relay.address);
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let app_key = "sk-config-key-for-the-outage-test-0123456789";
    let config = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER}\n  database_url: \"{relayed}\"\n  proxy_batch_write_at: 3600\n  keys:\n    - {{key: os.environ/APP_KEY}}\n",
        deployment("m", "m-1", &upstream.api_base()),
    );
    let gateway = TestGateway::start_with_store(&config, &[("APP_KEY", app_key)]).await;
    let ready = send("GET", &gateway.url("/health/readiness"), &[], "")
        .await
        .json();
    assert_eq!(ready["status"], "degraded", "{ready}");
    // The config's key and the master key work from memory.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&gateway, app_key, body.clone()).await.status, 200);
    assert_eq!(chat(&gateway, MASTER, body.clone()).await.status, 200);
    // The admin API needs the database.
    let auth = format!("Bearer {MASTER}");
    post(
        &gateway.url("/key/generate"),
        &[("authorization", auth.as_str())],
        &json!({}),
    )
    .await
    .assert_error(500, "internal_server_error");

    relay.restore();
    tokio::time::timeout(Duration::from_secs(60), gateway.gateway.store_connected())
        .await
        .expect("the gateway connects once the database is back");
    let ready = send("GET", &gateway.url("/health/readiness"), &[], "")
        .await
        .json();
    assert_eq!(ready["status"], "healthy", "{ready}");
    let (key, _) = generate(&gateway, json!({})).await;
    assert_eq!(chat(&gateway, &key, body).await.status, 200);
    gateway.gateway.flush_spend().await.unwrap();
    let app_hash = gateway_budget::KeyHash::of_key(app_key).to_string();
    gateway.stop().await;
    assert!(!Store::Postgres(url).rows(&app_hash).await.is_empty());
}
