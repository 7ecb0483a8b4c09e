//! Virtual keys through the real server: the admin API, auth with keys,
//! model access, budgets and rate limits, and the cost headers.

#![allow(clippy::unwrap_used)]

use gateway_tests::*;
use serde_json::{json, Value};

const MASTER: &str = "sk-master-test-key-0000";

/// Prices per token: input 0.0001 USD, output 0.0002 USD. The fake upstream
/// reports 9 prompt and 3 completion tokens: 0.0015 USD per call.
const CALL_COST: f64 = 9.0 * 0.0001 + 3.0 * 0.0002;

struct Setup {
    gateway: TestGateway,
    upstream: FakeUpstream,
    dir: TempDir,
}

async fn setup(name: &str) -> Setup {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let dir = TempDir::new(name);
    let config = format!(
        r#"
model_list:
  - model_name: cheap
    litellm_params: {{model: openai/gpt-x, api_base: "{base}", api_key: sk-upstream-key, input_cost_per_token: 0.0001, output_cost_per_token: 0.0002}}
    model_info: {{id: cheap-1, access_groups: [beta]}}
  - model_name: other
    litellm_params: {{model: openai/gpt-y, api_base: "{base}", api_key: sk-upstream-key, input_cost_per_token: 0.0001, output_cost_per_token: 0.0002}}
    model_info: {{id: other-1}}
general_settings:
  master_key: {MASTER}
  database_path: "{db}"
  proxy_batch_write_at: 3600
"#,
        base = upstream.api_base(),
        db = dir.path.join("gateway.db").display(),
    );
    let gateway = TestGateway::start_with_store(&config, &[]).await;
    Setup {
        gateway,
        upstream,
        dir,
    }
}

async fn admin(setup: &Setup, path: &str, body: Value) -> TestResponse {
    let auth = format!("Bearer {MASTER}");
    post(
        &setup.gateway.url(path),
        &[("authorization", auth.as_str())],
        &body,
    )
    .await
}

async fn admin_get(setup: &Setup, path: &str) -> TestResponse {
    let auth = format!("Bearer {MASTER}");
    send(
        "GET",
        &setup.gateway.url(path),
        &[("authorization", auth.as_str())],
        "",
    )
    .await
}

async fn generate(setup: &Setup, body: Value) -> String {
    let response = admin(setup, "/key/generate", body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["key"].as_str().unwrap().to_owned()
}

async fn chat(setup: &Setup, key: &str, model: &str) -> TestResponse {
    let auth = format!("Bearer {key}");
    post(
        &setup.gateway.url("/v1/chat/completions"),
        &[("authorization", auth.as_str())],
        &json!({"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

fn header_usd(response: &TestResponse, name: &str) -> f64 {
    response
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .parse()
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Every text column of every table in the SQLite file, concatenated.
fn sqlite_dump(path: &std::path::Path) -> String {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut dump = String::new();
    for table in [
        "gateway_keys",
        "gateway_teams",
        "gateway_users",
        "gateway_organizations",
        "gateway_spend_logs",
    ] {
        let mut statement = connection
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap();
        let columns = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for index in 0..columns {
                if let Ok(text) = row.get::<_, String>(index) {
                    dump.push_str(&text);
                    dump.push('\n');
                }
            }
        }
    }
    dump
}

#[tokio::test]
async fn admin_api_manages_keys_teams_orgs_users_and_reports_spend() {
    let setup = setup("admin").await;
    let generated = admin(
        &setup,
        "/key/generate",
        json!({"key_alias": "alice", "max_budget": 1.0, "models": ["cheap"]}),
    )
    .await;
    assert_eq!(generated.status, 200, "{}", generated.text());
    let body = generated.json();
    let key = body["key"].as_str().unwrap().to_owned();
    let hash = body["token"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-") && key.len() >= 35, "{key}");
    assert_eq!(hash.len(), 64);
    assert_eq!(body["key_name"], format!("sk-...{}", &key[key.len() - 4..]));
    assert_eq!(body["max_budget"], 1.0);

    let response = chat(&setup, &key, "cheap").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(close(
        header_usd(&response, "x-litellm-response-cost"),
        CALL_COST
    ));
    assert!(close(
        header_usd(&response, "x-litellm-key-spend"),
        CALL_COST
    ));
    assert_eq!(response.header("x-litellm-key-max-budget"), Some("1"));
    let samples = parse_exposition(
        &send("GET", &setup.gateway.url("/metrics"), &[], "")
            .await
            .text(),
    );
    let remaining = metric_sum(
        &samples,
        "gateway_key_budget_remaining_usd",
        &[("key_alias", "alice")],
    );
    assert!(close(remaining, 1.0 - CALL_COST), "{remaining}");
    let spent = metric_sum(
        &samples,
        "gateway_spend_nano_usd_total",
        &[("key_alias", "alice")],
    );
    assert_eq!(spent, 1_500_000.0);

    let info = admin_get(&setup, &format!("/key/info?key={key}")).await;
    assert_eq!(info.status, 200, "{}", info.text());
    let info = info.json();
    assert!(close(info["info"]["spend"].as_f64().unwrap(), CALL_COST));
    assert_eq!(info["info"]["key_alias"], "alice");
    assert!(info["info"].get("token").is_none());

    // Limits change at once.
    let updated = admin(
        &setup,
        "/key/update",
        json!({"key": key, "rpm_limit": 100, "models": []}),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["rpm_limit"], 100);
    assert_eq!(chat(&setup, &key, "other").await.status, 200);

    // Block and unblock.
    assert_eq!(
        admin(&setup, "/key/block", json!({"key": key}))
            .await
            .status,
        200
    );
    chat(&setup, &key, "cheap")
        .await
        .assert_error(401, "key_blocked");
    assert_eq!(
        admin(&setup, "/key/unblock", json!({"key": hash}))
            .await
            .status,
        200
    );
    assert_eq!(chat(&setup, &key, "cheap").await.status, 200);

    // Regenerate: the old key stops working, the new one works.
    let regenerated = admin(&setup, "/key/regenerate", json!({"key": key})).await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.text());
    let new_key = regenerated.json()["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    chat(&setup, &key, "cheap")
        .await
        .assert_error(401, "token_not_found_in_db");
    assert_eq!(chat(&setup, &new_key, "cheap").await.status, 200);

    // Teams and organizations: spend rolls up.
    let org = admin(
        &setup,
        "/organization/new",
        json!({"organization_alias": "acme", "max_budget": 10.0}),
    )
    .await;
    assert_eq!(org.status, 200, "{}", org.text());
    let org_id = org.json()["organization_id"].as_str().unwrap().to_owned();
    let team = admin(
        &setup,
        "/team/new",
        json!({"team_alias": "qa", "organization_id": org_id, "max_budget": 5.0}),
    )
    .await;
    assert_eq!(team.status, 200, "{}", team.text());
    let team_id = team.json()["team_id"].as_str().unwrap().to_owned();
    let team_key = generate(
        &setup,
        json!({"team_id": team_id, "key_alias": "qa-bot", "tags": ["nightly"]}),
    )
    .await;
    assert_eq!(chat(&setup, &team_key, "cheap").await.status, 200);
    let team_info = admin_get(&setup, &format!("/team/info?team_id={team_id}")).await;
    assert_eq!(team_info.status, 200, "{}", team_info.text());
    let team_info = team_info.json();
    assert!(close(
        team_info["team_info"]["spend"].as_f64().unwrap(),
        CALL_COST
    ));
    assert_eq!(team_info["keys"].as_array().unwrap().len(), 1);
    let org_info = admin_get(
        &setup,
        &format!("/organization/info?organization_id={org_id}"),
    )
    .await;
    assert_eq!(org_info.status, 200, "{}", org_info.text());
    assert!(close(org_info.json()["spend"].as_f64().unwrap(), CALL_COST));
    assert_eq!(
        admin_get(&setup, "/team/list")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        admin_get(&setup, "/organization/list")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Users get a key of their own.
    let user = admin(
        &setup,
        "/user/new",
        json!({"user_id": "u1", "user_email": "u1@example.com"}),
    )
    .await;
    assert_eq!(user.status, 200, "{}", user.text());
    let user_key = user.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(chat(&setup, &user_key, "cheap").await.status, 200);
    let user_info = admin_get(&setup, "/user/info?user_id=u1").await.json();
    assert_eq!(user_info["user_info"]["user_email"], "u1@example.com");
    assert_eq!(user_info["keys"].as_array().unwrap().len(), 1);

    let listed = admin_get(&setup, "/key/list?size=100").await.json();
    assert_eq!(listed["total_count"], 3);

    // Spend logs and the report include the calls.
    setup.gateway.gateway.flush_spend().await.unwrap();
    let logs = admin_get(&setup, &format!("/spend/logs?api_key={new_key}")).await;
    assert_eq!(logs.status, 200, "{}", logs.text());
    let logs = logs.json();
    assert_eq!(logs.as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs[0]["model_group"], "cheap");
    assert_eq!(logs[0]["model_id"], "cheap-1");
    // A team key's row names its alias, team, the team's organization and
    // its tags; a user's key names the user.
    let team_logs = admin_get(&setup, &format!("/spend/logs?api_key={team_key}")).await;
    let team_logs = team_logs.json();
    assert_eq!(team_logs.as_array().unwrap().len(), 1, "{team_logs}");
    assert_eq!(team_logs[0]["key_alias"], "qa-bot");
    assert_eq!(team_logs[0]["team_id"], team_id.as_str());
    assert_eq!(team_logs[0]["organization_id"], org_id.as_str());
    assert_eq!(team_logs[0]["request_tags"], json!(["nightly"]));
    assert_eq!(team_logs[0]["user"], Value::Null);
    let user_logs = admin_get(&setup, &format!("/spend/logs?api_key={user_key}")).await;
    let user_logs = user_logs.json();
    assert_eq!(user_logs[0]["user"], "u1", "{user_logs}");
    assert_eq!(user_logs[0]["team_id"], Value::Null);
    let today = today();
    let report = admin_get(
        &setup,
        &format!("/global/spend/report?start_date={today}&end_date={today}&group_by=api_key"),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text());
    let report = report.json();
    let total: f64 = report
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["total_cost"].as_f64().unwrap())
        .sum();
    assert!(close(total, 6.0 * CALL_COST), "{report}");

    // Delete: the key stops working.
    let deleted = admin(&setup, "/key/delete", json!({"keys": [new_key]})).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    chat(&setup, &new_key, "cheap")
        .await
        .assert_error(401, "token_not_found_in_db");

    // The database never holds a plaintext key.
    let db = setup.dir.path.join("gateway.db");
    setup.gateway.stop().await;
    let dump = sqlite_dump(&db);
    assert!(dump.contains(&hash), "the key hash is stored");
    for plaintext in [&key, &new_key, &team_key, &user_key] {
        assert!(!dump.contains(plaintext.as_str()), "plaintext key stored");
    }
    drop(setup.upstream);
}

/// The remaining budget of a key and of its team, as `/metrics` shows it.
async fn remaining_budgets(setup: &Setup, key_alias: &str, team: &str) -> (f64, f64) {
    let samples = parse_exposition(
        &send("GET", &setup.gateway.url("/metrics"), &[], "")
            .await
            .text(),
    );
    (
        metric_sum(
            &samples,
            "gateway_key_budget_remaining_usd",
            &[("key_alias", key_alias)],
        ),
        metric_sum(
            &samples,
            "gateway_team_budget_remaining_usd",
            &[("team", team)],
        ),
    )
}

#[tokio::test]
async fn budget_gauges_are_computed_when_scraped_even_before_a_request() {
    let setup = setup("gauges").await;
    let team = admin(
        &setup,
        "/team/new",
        json!({"team_alias": "gauge-team", "max_budget": 5.0}),
    )
    .await;
    assert_eq!(team.status, 200, "{}", team.text());
    let team_id = team.json()["team_id"].as_str().unwrap().to_owned();
    let key = generate(
        &setup,
        json!({"team_id": team_id, "key_alias": "gauge-key", "max_budget": 2.0}),
    )
    .await;
    // No request yet: the gauges are there, at the full budgets.
    assert_eq!(
        remaining_budgets(&setup, "gauge-key", "gauge-team").await,
        (2.0, 5.0)
    );
    assert_eq!(chat(&setup, &key, "cheap").await.status, 200);
    let (key_left, team_left) = remaining_budgets(&setup, "gauge-key", "gauge-team").await;
    assert!(close(key_left, 2.0 - CALL_COST), "{key_left}");
    assert!(close(team_left, 5.0 - CALL_COST), "{team_left}");
}

#[tokio::test]
async fn unknown_expired_and_blocked_keys_are_refused_with_their_types() {
    let setup = setup("auth").await;
    chat(&setup, "sk-not-a-key-0000000000000000000000", "cheap")
        .await
        .assert_error(401, "token_not_found_in_db");
    let expired = generate(&setup, json!({"duration": "0s"})).await;
    chat(&setup, &expired, "cheap")
        .await
        .assert_error(401, "expired_key");
    let blocked = generate(&setup, json!({"blocked": true})).await;
    chat(&setup, &blocked, "cheap")
        .await
        .assert_error(401, "key_blocked");
    // A normal key may not call the admin API.
    let normal = generate(&setup, json!({})).await;
    let auth = format!("Bearer {normal}");
    let response = post(
        &setup.gateway.url("/key/generate"),
        &[("authorization", auth.as_str())],
        &json!({}),
    )
    .await;
    response.assert_error(403, "auth_error");
    // But it may read its own record, and only its own.
    let own = send(
        "GET",
        &setup.gateway.url(&format!("/key/info?key={blocked}")),
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(
        own.json()["key"],
        format!("sk-...{}", &normal[normal.len() - 4..])
    );
    assert_eq!(own.json()["info"]["blocked"], false);
    // One whose metadata says proxy_admin may.
    let admin_key = generate(&setup, json!({"metadata": {"user_role": "proxy_admin"}})).await;
    let auth = format!("Bearer {admin_key}");
    let response = post(
        &setup.gateway.url("/key/generate"),
        &[("authorization", auth.as_str())],
        &json!({}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
}

#[tokio::test]
async fn models_outside_the_key_or_team_list_are_forbidden_and_hidden() {
    let setup = setup("models").await;
    let key = generate(&setup, json!({"models": ["other"]})).await;
    let denied = chat(&setup, &key, "cheap").await;
    let body = denied.assert_error(403, "key_model_access_denied");
    assert_eq!(body["error"]["param"], "model");
    assert_eq!(chat(&setup, &key, "other").await.status, 200);

    // Access groups count as model names.
    let beta = generate(&setup, json!({"models": ["beta"]})).await;
    assert_eq!(chat(&setup, &beta, "cheap").await.status, 200);
    let auth = format!("Bearer {beta}");
    let models = send(
        "GET",
        &setup.gateway.url("/v1/models"),
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    let models = models.json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["cheap"]);

    let team = admin(
        &setup,
        "/team/new",
        json!({"team_id": "t-other", "models": ["other"]}),
    )
    .await;
    assert_eq!(team.status, 200, "{}", team.text());
    let team_key = generate(&setup, json!({"team_id": "t-other"})).await;
    chat(&setup, &team_key, "cheap")
        .await
        .assert_error(403, "team_model_access_denied");
}

#[tokio::test]
async fn budget_exceeded_after_spend_crosses_max_budget() {
    let setup = setup("budget").await;
    // 9 prompt + 20 completion tokens: 0.0049 USD, over the 0.003 budget.
    setup.upstream.set_reply(Reply::json(
        200,
        upstream_completion_with_usage("hi", 9, 20),
    ));
    let key = generate(&setup, json!({"max_budget": 0.003})).await;
    let first = chat(&setup, &key, "cheap").await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(close(
        header_usd(&first, "x-litellm-response-cost"),
        9.0 * 0.0001 + 20.0 * 0.0002
    ));
    let second = chat(&setup, &key, "cheap").await;
    let body = second.assert_error(429, "budget_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Key budget"), "{message}");
    assert!(
        message.contains("$0.004900") && message.contains("$0.003000"),
        "{message}"
    );
}

#[tokio::test]
async fn rate_limits_per_key_and_per_team_answer_429_with_headers() {
    let setup = setup("rates").await;
    let key = generate(&setup, json!({"rpm_limit": 2})).await;
    for _ in 0..2 {
        let ok = chat(&setup, &key, "cheap").await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(ok.header("x-litellm-key-rpm-limit"), Some("2"));
    }
    let limited = chat(&setup, &key, "cheap").await;
    limited.assert_error(429, "rate_limit_error");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(
        limited.header("x-ratelimit-api_key-remaining-requests"),
        Some("0")
    );
    assert_eq!(
        limited.header("x-ratelimit-api_key-limit-requests"),
        Some("2")
    );

    let team = admin(
        &setup,
        "/team/new",
        json!({"team_id": "t-rpm", "rpm_limit": 1}),
    )
    .await;
    assert_eq!(team.status, 200, "{}", team.text());
    let first = generate(&setup, json!({"team_id": "t-rpm"})).await;
    let second = generate(&setup, json!({"team_id": "t-rpm"})).await;
    assert_eq!(chat(&setup, &first, "cheap").await.status, 200);
    let limited = chat(&setup, &second, "cheap").await;
    limited.assert_error(429, "rate_limit_error");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        limited.header("x-ratelimit-team-remaining-requests"),
        Some("0")
    );
    assert_eq!(limited.header("x-ratelimit-team-limit-requests"), Some("1"));
}

#[tokio::test]
async fn concurrent_requests_overshoot_a_budget_by_at_most_one_request() {
    let setup = setup("overshoot").await;
    let budget = 0.03;
    let key = generate(&setup, json!({"max_budget": budget})).await;
    let setup = std::sync::Arc::new(setup);
    let calls = (0..200).map(|_| {
        let setup = std::sync::Arc::clone(&setup);
        let key = key.clone();
        tokio::spawn(async move { chat(&setup, &key, "cheap").await.status })
    });
    let statuses = futures_util::future::join_all(calls).await;
    let ok = statuses
        .iter()
        .filter(|s| *s.as_ref().unwrap() == 200)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| *s.as_ref().unwrap() == 429)
        .count();
    assert_eq!(ok + refused, 200);
    assert!(ok > 0);
    let info = admin_get(&setup, &format!("/key/info?key={key}"))
        .await
        .json();
    let spend = info["info"]["spend"].as_f64().unwrap();
    assert!(
        close(spend, ok as f64 * CALL_COST),
        "spend {spend} for {ok} calls"
    );
    assert!(
        spend <= budget + CALL_COST + 1e-9,
        "spend {spend} overshoots {budget}"
    );
}

#[tokio::test]
async fn config_declared_keys_work_without_the_admin_api() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let config = format!(
        r#"
model_list:
  - model_name: cheap
    litellm_params: {{model: openai/gpt-x, api_base: "{base}", api_key: sk-upstream-key}}
general_settings:
  keys:
    - {{key: os.environ/APP_KEY, key_alias: app, models: [cheap], rpm_limit: 1}}
"#,
        base = upstream.api_base(),
    );
    let app_key = "sk-app-key-from-the-environment-0123456789";
    let gateway = TestGateway::start(&config, &[("APP_KEY", app_key)]).await;
    let url = gateway.url("/v1/chat/completions");
    let body = json!({"model": "cheap", "messages": [{"role": "user", "content": "hi"}]});
    // Keys configured: no key is no longer open.
    post(&url, &[], &body).await.assert_error(401, "auth_error");
    let auth = format!("Bearer {app_key}");
    assert_eq!(
        post(&url, &[("authorization", auth.as_str())], &body)
            .await
            .status,
        200
    );
    post(&url, &[("authorization", auth.as_str())], &body)
        .await
        .assert_error(429, "rate_limit_error");
}

#[tokio::test]
async fn a_reload_reapplies_config_declared_keys() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let dir = TempDir::new("reload-keys");
    let config = |rpm: u32| {
        format!(
            "model_list:\n  - model_name: cheap\n    litellm_params: {{model: openai/gpt-x, api_base: \"{}\", api_key: sk-upstream-key}}\ngeneral_settings:\n  keys:\n    - {{key: os.environ/APP_KEY, rpm_limit: {rpm}}}\n",
            upstream.api_base()
        )
    };
    let path = dir.write("config.yaml", &config(1));
    let app_key = "sk-app-key-for-the-reload-test-0123456789";
    let gateway = TestGateway::start_file(&path, &[("APP_KEY", app_key)]).await;
    let url = gateway.url("/v1/chat/completions");
    let auth = format!("Bearer {app_key}");
    let body = json!({"model": "cheap", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post(&url, &[("authorization", auth.as_str())], &body)
            .await
            .status,
        200
    );
    post(&url, &[("authorization", auth.as_str())], &body)
        .await
        .assert_error(429, "rate_limit_error");
    dir.write("config.yaml", &config(5));
    gateway.gateway.reload_from_file().unwrap();
    assert_eq!(
        post(&url, &[("authorization", auth.as_str())], &body)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_request_log_line_names_the_key_alias_team_and_cost() {
    let logs = CapturedLogs::install();
    let setup = setup("log-line").await;
    let team = admin(
        &setup,
        "/team/new",
        json!({"team_id": "t-log", "team_alias": "logging"}),
    )
    .await;
    assert_eq!(team.status, 200, "{}", team.text());
    let key = generate(&setup, json!({"key_alias": "logged", "team_id": "t-log"})).await;
    let response = chat(&setup, &key, "cheap").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let request_id = response.header("x-request-id").unwrap().to_owned();
    let lines = logs.wait_for_request(&request_id).await;
    let fields = &lines[0]["fields"];
    assert_eq!(fields["key_alias"], "logged");
    assert_eq!(fields["team"], "logging");
    assert!(
        close(fields["cost_usd"].as_f64().unwrap(), CALL_COST),
        "{fields}"
    );
    assert!(!logs.text().contains(&key), "a key was logged");
}

#[tokio::test]
async fn anthropic_ingress_enforces_virtual_keys_in_its_own_error_shape() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let config = format!(
        r#"
model_list:
  - model_name: cheap
    litellm_params: {{model: openai/gpt-x, api_base: "{base}", api_key: sk-upstream-key}}
  - model_name: premium
    litellm_params: {{model: openai/gpt-y, api_base: "{base}", api_key: sk-upstream-key}}
general_settings:
  master_key: sk-master-for-the-ingress-test-0123456789
  keys:
    - {{key: os.environ/APP_KEY, key_alias: app, models: [cheap]}}
"#,
        base = upstream.api_base(),
    );
    let app_key = "sk-app-key-for-the-ingress-test-0123456789";
    let gateway = TestGateway::start(&config, &[("APP_KEY", app_key)]).await;
    let url = gateway.url("/v1/messages");
    let body = |model: &str| json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});

    let allowed = post(&url, &[("x-api-key", app_key)], &body("cheap")).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.json()["type"], "message");
    assert!(allowed.header("x-litellm-key-spend").is_some());

    post(&url, &[("x-api-key", app_key)], &body("premium"))
        .await
        .assert_anthropic_error(403, "permission_error");
    post(
        &url,
        &[("x-api-key", "sk-not-a-key-of-this-gateway-0123456789")],
        &body("cheap"),
    )
    .await
    .assert_anthropic_error(401, "authentication_error");
    assert_eq!(
        upstream.received().len(),
        1,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn a_key_dropped_from_the_config_stops_working_at_once_and_after_a_restart() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let dir = TempDir::new("drop-keys");
    let database = dir.path.join("gateway.db");
    let config = |keys: &str| {
        format!(
            "model_list:\n  - model_name: cheap\n    litellm_params: {{model: openai/gpt-x, api_base: \"{}\", api_key: sk-upstream-key}}\ngeneral_settings:\n  master_key: sk-master-for-the-drop-test-0123456789\n  database_path: \"{}\"\n  keys:\n{keys}",
            upstream.api_base(),
            database.display()
        )
    };
    let both = "    - {key: os.environ/KEPT_KEY}\n    - {key: os.environ/LEAKED_KEY}\n";
    let kept_only = "    - {key: os.environ/KEPT_KEY}\n";
    let kept = "sk-kept-key-for-the-drop-test-0123456789";
    let leaked = "sk-leaked-key-for-the-drop-test-012345678";
    let env = [("KEPT_KEY", kept), ("LEAKED_KEY", leaked)];
    let body = json!({"model": "cheap", "messages": [{"role": "user", "content": "hi"}]});
    let call = |gateway: &TestGateway, key: &str| {
        let url = gateway.url("/v1/chat/completions");
        let auth = format!("Bearer {key}");
        let body = body.clone();
        async move { post(&url, &[("authorization", auth.as_str())], &body).await }
    };

    let path = dir.write("config.yaml", &config(both));
    let gateway = TestGateway::start_file(&path, &env).await;
    gateway.gateway.start_store().await;
    tokio::time::timeout(PATIENCE, gateway.gateway.store_connected())
        .await
        .unwrap();
    assert_eq!(call(&gateway, leaked).await.status, 200);

    // The operator removes the leaked key from the file and reloads.
    dir.write("config.yaml", &config(kept_only));
    gateway.gateway.reload_from_file().unwrap();
    call(&gateway, leaked)
        .await
        .assert_error(401, "token_not_found_in_db");
    assert_eq!(call(&gateway, kept).await.status, 200);
    gateway.stop().await;

    // A restart on the same database does not bring it back.
    let restarted = TestGateway::start_file(&path, &env).await;
    restarted.gateway.start_store().await;
    tokio::time::timeout(PATIENCE, restarted.gateway.store_connected())
        .await
        .unwrap();
    call(&restarted, leaked)
        .await
        .assert_error(401, "token_not_found_in_db");
    assert_eq!(call(&restarted, kept).await.status, 200);
    restarted.stop().await;
}
