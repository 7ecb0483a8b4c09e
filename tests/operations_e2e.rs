//! Operating the gateway end to end: `/metrics` after known traffic, hot
//! reload (the SIGHUP path and `POST /config/reload`) while a stream is in
//! flight, readiness with a store that stops answering, request ids, the one
//! log line per request, and that no configured secret is ever logged.
//!
//! The `metrics` recorder and the tracing subscriber are process-wide: every
//! test here shares them. Tests use model aliases and request ids of their
//! own and assert only on those.

#![allow(clippy::unwrap_used)]

use gateway_server::{reload, StoreHealth, StoreHealthProbe};
use gateway_tests::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MASTER: &str = "sk-ops-master-7f3a9c1e5b2d8046";
const PROVIDER_KEY: &str = "sk-ops-provider-c0ffee1234567890";

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "x"}]})
}

async fn metrics_samples(gateway: &TestGateway) -> (String, Vec<Sample>) {
    let response = send("GET", &gateway.url("/metrics"), &[], "").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response
        .header("content-type")
        .is_some_and(|value| value.starts_with("text/plain")));
    let text = response.text();
    let samples = parse_exposition(&text);
    (text, samples)
}

/// Sends a streaming chat request over a raw socket and reads until the
/// first SSE event, so the caller knows the stream is in flight.
async fn open_stream(
    gateway: &TestGateway,
    model: &str,
    request_id: &str,
    key: Option<&str>,
) -> (TcpStream, Vec<u8>) {
    let mut socket = TcpStream::connect(gateway.addr).await.unwrap();
    let body = json!({"model": model, "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x"}]}).to_string();
    let auth = key.map_or_else(String::new, |key| {
        format!("authorization: Bearer {key}\r\n")
    });
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n{auth}x-request-id: {request_id}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    read_until(&mut socket, &mut seen, "data: ").await;
    (socket, seen)
}

async fn read_until(socket: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) {
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "stream ended before {needle:?}: {}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
}

#[tokio::test]
async fn metrics_count_known_traffic_by_alias_status_and_failure_kind() {
    let logs = CapturedLogs::install();
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("ok"))).await;
    let config = format!(
        r#"
model_list:
  - model_name: metrics-chat
    litellm_params: {{model: openai/upstream-model, api_base: "{}", api_key: upstream-key}}
    model_info: {{id: metrics-chat-deployment}}
  - model_name: metrics-stream
    litellm_params: {{model: mock/streamer, mock_response: "one two three four five six"}}
    model_info: {{id: metrics-stream-deployment}}
router_settings: {{num_retries: 0}}
"#,
        upstream.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    for _ in 0..3 {
        let ok = post(
            &gateway.url("/v1/chat/completions"),
            &[],
            &chat_body("metrics-chat"),
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    upstream.set_reply(Reply::json(500, json!({"error": {"message": "melted"}})));
    post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat_body("metrics-chat"),
    )
    .await
    .assert_error(502, "upstream_error");
    post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat_body("metrics-no-such-model-4242"),
    )
    .await
    .assert_error(404, "model_not_found");
    let stream = post(
        &gateway.url("/v1/chat/completions"),
        &[("x-request-id", "metrics-stream-1")],
        &json!({"model": "metrics-stream", "stream": true, "messages": [{"role": "user", "content": "a b"}]}),
    )
    .await;
    assert_eq!(stream.status, 200);
    // The stream's metrics are recorded when its body is dropped, right
    // after the last frame; its log line is written at the same moment.
    logs.wait_for_request("metrics-stream-1").await;

    let (text, samples) = metrics_samples(&gateway).await;
    let chat = ("model", "metrics-chat");
    let sum = |name: &str, labels: &[(&str, &str)]| metric_sum(&samples, name, labels);
    assert_eq!(
        sum("gateway_requests_total", &[chat, ("status", "200")]),
        3.0
    );
    assert_eq!(
        sum(
            "gateway_requests_total",
            &[
                chat,
                ("status", "200"),
                ("deployment", "metrics-chat-deployment"),
                ("provider", "openai")
            ]
        ),
        3.0,
        "the labels name the deployment and provider"
    );
    assert_eq!(
        sum("gateway_requests_total", &[chat, ("status", "502")]),
        1.0
    );
    assert_eq!(
        sum(
            "gateway_request_failures_total",
            &[chat, ("kind", "upstream")]
        ),
        1.0
    );
    assert_eq!(sum("gateway_request_failures_total", &[chat]), 1.0);
    assert_eq!(sum("gateway_request_duration_seconds_count", &[chat]), 4.0);
    assert_eq!(sum("gateway_upstream_duration_seconds_count", &[chat]), 4.0);
    assert_eq!(sum("gateway_overhead_duration_seconds_count", &[chat]), 4.0);
    assert_eq!(
        sum(
            "gateway_request_duration_seconds_bucket",
            &[chat, ("le", "+Inf")]
        ),
        4.0
    );
    assert_eq!(sum("gateway_input_tokens_total", &[chat]), 27.0);
    assert_eq!(sum("gateway_output_tokens_total", &[chat]), 9.0);
    assert_eq!(
        sum(
            "gateway_deployment_state",
            &[
                ("deployment", "metrics-chat-deployment"),
                ("state", "healthy")
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(
            "gateway_deployment_state",
            &[
                ("deployment", "metrics-chat-deployment"),
                ("state", "cooling")
            ]
        ),
        0.0
    );

    // An unconfigured model is counted as `unknown`, never under its name.
    assert!(
        sum(
            "gateway_requests_total",
            &[("model", "unknown"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        !text.contains("metrics-no-such-model-4242"),
        "client input must not become a label value"
    );

    let streamed = ("model", "metrics-stream");
    assert_eq!(
        sum(
            "gateway_requests_total",
            &[streamed, ("status", "200"), ("provider", "mock")]
        ),
        1.0
    );
    assert_eq!(
        sum("gateway_time_to_first_token_seconds_count", &[streamed]),
        1.0
    );
    assert_eq!(sum("gateway_output_tokens_total", &[streamed]), 6.0);
    assert_eq!(sum("gateway_input_tokens_total", &[streamed]), 2.0);
    assert!(samples
        .iter()
        .any(|sample| sample.name == "gateway_in_flight_requests"));
    assert_eq!(sum("gateway_build_info", &[]), 1.0);
}

#[tokio::test]
async fn a_fallback_is_counted_under_the_requested_alias_and_the_answering_deployment() {
    let upstream =
        FakeUpstream::start(Reply::json(500, json!({"error": {"message": "melted"}}))).await;
    let config = format!(
        r#"
model_list:
  - model_name: labels-primary
    litellm_params: {{model: openai/upstream-model, api_base: "{}", api_key: upstream-key}}
    model_info: {{id: labels-primary-deployment}}
  - model_name: labels-backup
    litellm_params: {{model: mock/backup, mock_response: "from the backup"}}
    model_info: {{id: labels-backup-deployment}}
router_settings:
  num_retries: 0
  disable_cooldowns: true
  fallbacks: [{{"labels-primary": ["labels-backup"]}}]
"#,
        upstream.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    for _ in 0..3 {
        let response = post(
            &gateway.url("/v1/chat/completions"),
            &[],
            &chat_body("labels-primary"),
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("x-litellm-attempted-fallbacks"), Some("1"));
    }
    assert_eq!(upstream.received().len(), 3);
    let (_, samples) = metrics_samples(&gateway).await;
    let sum = |name: &str, labels: &[(&str, &str)]| metric_sum(&samples, name, labels);
    let answered = [
        ("model", "labels-primary"),
        ("deployment", "labels-backup-deployment"),
        ("provider", "mock"),
    ];
    assert_eq!(
        sum(
            "gateway_requests_total",
            &[answered[0], answered[1], answered[2], ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        sum(
            "gateway_request_duration_seconds_count",
            &[answered[0], answered[1]]
        ),
        3.0
    );
    assert_eq!(
        sum("gateway_output_tokens_total", &[answered[0], answered[1]]),
        9.0
    );
    assert_eq!(
        sum("gateway_requests_total", &[("model", "labels-backup")]),
        0.0,
        "the backup's own alias counted nothing"
    );
}

fn slow_config(alias: &str) -> String {
    let words: Vec<String> = (1..=120).map(|n| format!("w{n}")).collect();
    format!(
        "model_list:\n  - model_name: {alias}\n    litellm_params: {{model: mock/slow, mock_chunk_delay_ms: 10, mock_response: \"{}\"}}\ngeneral_settings:\n  master_key: os.environ/MASTER\n",
        words.join(" ")
    )
}

#[tokio::test]
async fn a_sighup_reload_swaps_models_while_a_stream_on_the_old_config_completes() {
    let dir = TempDir::new("sighup");
    let path = dir.write("config.yaml", &slow_config("before-reload"));
    let gateway = TestGateway::start_file(&path, &[("MASTER", MASTER)]).await;
    let (mut socket, mut seen) =
        open_stream(&gateway, "before-reload", "reload-stream-1", Some(MASTER)).await;

    dir.write(
        "config.yaml",
        "model_list:\n  - model_name: after-reload\n    litellm_params: {model: mock/fresh, mock_response: fresh}\n    model_info: {id: after-reload-deployment}\ngeneral_settings:\n  master_key: os.environ/MASTER\n",
    );
    // What SIGHUP and --watch run.
    let report = reload::reload_and_log(&gateway.gateway, "sighup").unwrap();
    assert_eq!(report.models, vec!["after-reload"]);
    assert_eq!(report.added, vec!["after-reload-deployment"]);
    assert_eq!(report.removed.len(), 1);

    let auth = format!("Bearer {MASTER}");
    let fresh = post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &auth)],
        &chat_body("after-reload"),
    )
    .await;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    assert_eq!(fresh.json()["choices"][0]["message"]["content"], "fresh");
    post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &auth)],
        &chat_body("before-reload"),
    )
    .await
    .assert_error(404, "model_not_found");

    // The stream that started before the reload finishes on the old config.
    read_until(&mut socket, &mut seen, "data: [DONE]").await;
    let text = String::from_utf8_lossy(&seen);
    for word in ["w1", "w60", "w120"] {
        assert!(
            text.contains(&format!("{word} ")) || text.contains(&format!("{word}\"")),
            "{word} missing: {text}"
        );
    }
    assert!(!text.contains("\"error\""), "{text}");
}

#[tokio::test]
async fn config_reload_endpoint_needs_the_master_key_and_reports_what_changed() {
    let dir = TempDir::new("endpoint");
    let first = "model_list:\n  - model_name: endpoint-a\n    litellm_params: {model: mock/a}\n    model_info: {id: endpoint-a-1}\n  - model_name: endpoint-b\n    litellm_params: {model: mock/b}\n    model_info: {id: endpoint-b-1}\ngeneral_settings:\n  master_key: os.environ/MASTER\n";
    let path = dir.write("config.yaml", first);
    let gateway = TestGateway::start_file(&path, &[("MASTER", MASTER)]).await;
    send("POST", &gateway.url("/config/reload"), &[], "")
        .await
        .assert_error(401, "auth_error");

    dir.write(
        "config.yaml",
        &first
            .replace("model: mock/b", "model: mock/b2")
            .replace("  - model_name: endpoint-a\n    litellm_params: {model: mock/a}\n    model_info: {id: endpoint-a-1}\n", "  - model_name: endpoint-c\n    litellm_params: {model: mock/c}\n    model_info: {id: endpoint-c-1}\n"),
    );
    let auth = format!("Bearer {MASTER}");
    let reloaded = send(
        "POST",
        &gateway.url("/config/reload"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());
    let body = reloaded.json();
    assert_eq!(body["status"], "reloaded");
    assert_eq!(body["models"], json!(["endpoint-c", "endpoint-b"]));
    assert_eq!(body["added"], json!(["endpoint-c-1"]));
    assert_eq!(body["removed"], json!(["endpoint-a-1"]));
    assert_eq!(body["changed"], json!(["endpoint-b-1"]));
    let models = send(
        "GET",
        &gateway.url("/v1/models"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    let ids: Vec<String> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["endpoint-c", "endpoint-b"]);

    // A gateway started without a file has nothing to reload.
    let textual = TestGateway::start(first, &[("MASTER", MASTER)]).await;
    let error = send(
        "POST",
        &textual.url("/config/reload"),
        &[("authorization", &auth)],
        "",
    )
    .await
    .assert_error(400, "invalid_config");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not started from a config file"));
}

#[tokio::test]
async fn an_invalid_reload_keeps_serving_the_old_config() {
    let dir = TempDir::new("invalid");
    let good = "model_list:\n  - model_name: still-here\n    litellm_params: {model: mock/kept, mock_response: kept}\ngeneral_settings:\n  master_key: os.environ/MASTER\n";
    let path = dir.write("config.yaml", good);
    let gateway = TestGateway::start_file(&path, &[("MASTER", MASTER)]).await;
    let auth = format!("Bearer {MASTER}");

    let broken = [
        (
            "model_list:\n  - model_name: replaced\n    litellm_params: {model: openai/x, api_key: os.environ/NOT_SET_ANYWHERE}\ngeneral_settings:\n  master_key: os.environ/MASTER\n",
            "model_list[0].litellm_params.api_key: environment variable NOT_SET_ANYWHERE is not set",
        ),
        ("model_list: [\n", "invalid YAML"),
        (
            "model_list:\n  - model_name: replaced\n    litellm_params: {model: mock/x, mock_latency_ms: soon}\ngeneral_settings:\n  master_key: os.environ/MASTER\n",
            "model_list[0].litellm_params",
        ),
    ];
    for (text, expected) in broken {
        dir.write("config.yaml", text);
        let failed = send(
            "POST",
            &gateway.url("/config/reload"),
            &[("authorization", &auth)],
            "",
        )
        .await;
        let error = failed.assert_error(400, "invalid_config");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("unchanged"), "{message}");
        let served = post(
            &gateway.url("/v1/chat/completions"),
            &[("authorization", &auth)],
            &chat_body("still-here"),
        )
        .await;
        assert_eq!(
            served.status, 200,
            "old config keeps serving after {expected}"
        );
        assert_eq!(served.json()["choices"][0]["message"]["content"], "kept");
    }
    // The failed reloads are counted.
    let (_, samples) = metrics_samples(&gateway).await;
    assert!(
        metric_sum(
            &samples,
            "gateway_config_reloads_total",
            &[("result", "failure")]
        ) >= 3.0
    );
}

#[tokio::test]
async fn readiness_turns_degraded_when_the_store_stops_answering() {
    let gateway = TestGateway::start(
        "model_list:\n  - model_name: ready\n    litellm_params: {model: mock/r}\n",
        &[],
    )
    .await;
    let readiness = || async {
        let response = send("GET", &gateway.url("/health/readiness"), &[], "").await;
        assert_eq!(response.status, 200, "readiness serves while degraded");
        response.json()
    };
    let before = readiness().await;
    assert_eq!(before["status"], "healthy");
    assert_eq!(before["db"], "Not connected");
    assert_eq!(before["config_loaded"], true);

    let reachable = Arc::new(AtomicBool::new(true));
    let probe = Arc::clone(&reachable);
    gateway
        .gateway
        .set_store_health(StoreHealthProbe::new(move || {
            if probe.load(Ordering::SeqCst) {
                StoreHealth::Connected
            } else {
                StoreHealth::Disconnected
            }
        }));
    let connected = readiness().await;
    assert_eq!(
        (&connected["status"], &connected["db"]),
        (&json!("healthy"), &json!("connected"))
    );

    reachable.store(false, Ordering::SeqCst);
    let degraded = readiness().await;
    assert_eq!(
        (&degraded["status"], &degraded["db"]),
        (&json!("degraded"), &json!("disconnected"))
    );
    // Liveness does not care about the store.
    let alive = send("GET", &gateway.url("/health/liveliness"), &[], "").await;
    assert_eq!(alive.json(), json!("I'm alive!"));

    reachable.store(true, Ordering::SeqCst);
    assert_eq!(readiness().await["status"], "healthy");
}

#[tokio::test]
async fn request_ids_round_trip_and_are_made_when_missing() {
    let gateway = TestGateway::start(
        "model_list:\n  - model_name: ids\n    litellm_params: {model: mock/ids}\ngeneral_settings:\n  master_key: os.environ/MASTER\n",
        &[("MASTER", MASTER)],
    )
    .await;
    let auth = format!("Bearer {MASTER}");
    let given = post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &auth), ("x-request-id", "ids-given-1")],
        &chat_body("ids"),
    )
    .await;
    assert_eq!(given.status, 200);
    assert_eq!(given.header("x-request-id"), Some("ids-given-1"));
    assert_eq!(given.header("x-litellm-call-id"), Some("ids-given-1"));

    let denied = post(
        &gateway.url("/v1/chat/completions"),
        &[("x-request-id", "ids-given-2")],
        &chat_body("ids"),
    )
    .await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("x-request-id"), Some("ids-given-2"));

    let mut made = Vec::new();
    for _ in 0..2 {
        let response = post(
            &gateway.url("/v1/chat/completions"),
            &[("authorization", &auth)],
            &chat_body("ids"),
        )
        .await;
        let id = response.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'7', "a v7 uuid: {id}");
        assert_eq!(response.header("x-litellm-call-id"), Some(id.as_str()));
        made.push(id);
    }
    assert_ne!(made[0], made[1]);
    // Time-ordered: the later request's millisecond prefix is not smaller.
    assert!(made[0][..13] <= made[1][..13], "{made:?}");

    // The id the client sent is the id in the log line.
    let logs = CapturedLogs::install();
    post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &auth), ("x-request-id", "ids-logged-3")],
        &chat_body("ids"),
    )
    .await;
    let lines = logs.wait_for_request("ids-logged-3").await;
    assert_eq!(lines.len(), 1);
}

#[tokio::test]
async fn each_request_logs_one_line_and_streams_log_when_they_end() {
    let logs = CapturedLogs::install();
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("ok"))).await;
    let config = format!(
        "model_list:\n  - model_name: logged\n    litellm_params: {{model: openai/m, api_base: \"{}\", api_key: k}}\n    model_info: {{id: logged-deployment}}\n  - model_name: logged-stream\n    litellm_params: {{model: mock/s, mock_response: \"alpha beta gamma delta\"}}\n",
        upstream.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;

    post(
        &gateway.url("/v1/chat/completions"),
        &[("x-request-id", "log-json-1")],
        &chat_body("logged"),
    )
    .await;
    let lines = logs.wait_for_request("log-json-1").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["model"], "logged");
    assert_eq!(fields["deployment"], "logged-deployment");
    assert_eq!(fields["provider"], "openai");
    assert_eq!(fields["attempts"], 1);
    assert_eq!(fields["prompt_tokens"], 9);
    assert_eq!(fields["completion_tokens"], 3);
    assert_eq!(fields["key_alias"], "");
    assert_eq!(fields["team"], "");
    assert_eq!(fields["cost_usd"], 0.0);
    assert!(fields["latency_ms"].as_f64().is_some());
    assert!(
        fields.get("request_body").is_none(),
        "bodies are off by default"
    );

    // A stream logs once, when it ends, with its time to first token.
    let (mut socket, mut seen) = open_stream(&gateway, "logged-stream", "log-stream-2", None).await;
    read_until(&mut socket, &mut seen, "data: [DONE]").await;
    let lines = logs.wait_for_request("log-stream-2").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["stream"], "completed");
    assert!(fields["ttft_ms"].as_f64().is_some(), "{fields}");
    assert_eq!(fields["completion_tokens"], 4);

    // A client that goes away mid-stream still gets its line.
    let gone = Arc::new(tokio::sync::Notify::new());
    upstream.set_reply(Reply::EndlessSse {
        event: upstream_chunk(Some("tick "), None),
        gone: Arc::clone(&gone),
    });
    let (socket, _) = open_stream(&gateway, "logged", "log-gone-3", None).await;
    drop(socket);
    let lines = logs.wait_for_request("log-gone-3").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["fields"]["stream"], "client_disconnected");
    assert!(lines[0]["fields"]["ttft_ms"].as_f64().is_some());
}

#[tokio::test]
async fn no_configured_secret_is_ever_logged() {
    let logs = CapturedLogs::install();
    // The upstream echoes the key it was sent, as some providers do.
    let upstream = FakeUpstream::start(Reply::json(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {PROVIDER_KEY}")}}),
    ))
    .await;
    let config = format!(
        "model_list:\n  - model_name: secretive\n    litellm_params: {{model: openai/m, api_base: \"{}\", api_key: os.environ/PROVIDER_KEY}}\ngeneral_settings:\n  master_key: os.environ/MASTER\n",
        upstream.api_base()
    );
    let env = [("MASTER", MASTER), ("PROVIDER_KEY", PROVIDER_KEY)];
    let gateway = TestGateway::start(&config, &env).await;
    let auth = format!("Bearer {MASTER}");
    let url = gateway.url("/v1/chat/completions");

    post(
        &url,
        &[("x-request-id", "secret-1")],
        &chat_body("secretive"),
    )
    .await
    .assert_error(401, "auth_error");
    post(
        &url,
        &[
            ("authorization", "Bearer sk-ops-wrong-0000000000"),
            ("x-request-id", "secret-2"),
        ],
        &chat_body("secretive"),
    )
    .await
    .assert_error(401, "token_not_found_in_db");
    let rejected = post(
        &url,
        &[("authorization", &auth), ("x-request-id", "secret-3")],
        &chat_body("secretive"),
    )
    .await;
    let error = rejected.assert_error(502, "upstream_auth_error");
    assert!(!error.to_string().contains(PROVIDER_KEY), "{error}");
    post(
        &url,
        &[("authorization", &auth), ("x-request-id", "secret-4")],
        &json!({"model": "secretive", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .assert_error(502, "upstream_auth_error");
    send(
        "GET",
        &gateway.url("/health"),
        &[("authorization", &auth)],
        "",
    )
    .await;

    // With body logging on, bodies are logged but key fields are redacted.
    let verbose = TestGateway::start(
        &config.replace(
            "general_settings:\n",
            "general_settings:\n  log_request_bodies: true\n",
        ),
        &env,
    )
    .await;
    post(
        &verbose.url("/v1/chat/completions"),
        &[("authorization", &auth), ("x-request-id", "secret-5")],
        &json!({"model": "secretive", "api_key": PROVIDER_KEY, "metadata": {"note": MASTER}, "messages": [{"role": "user", "content": "visible words"}]}),
    )
    .await;

    for id in ["secret-1", "secret-2", "secret-3", "secret-4"] {
        assert_eq!(logs.wait_for_request(id).await.len(), 1, "{id}");
    }
    let verbose_line = logs.wait_for_request("secret-5").await;
    let body = verbose_line[0]["fields"]["request_body"].as_str().unwrap();
    assert!(body.contains("visible words"), "{body}");
    let error_line = &logs.request_lines("secret-3")[0]["fields"];
    assert_eq!(error_line["error_kind"], "auth");

    let text = logs.text();
    assert!(!text.is_empty());
    assert!(!text.contains(MASTER), "the master key was logged");
    assert!(!text.contains(PROVIDER_KEY), "the provider key was logged");
}

#[tokio::test]
async fn the_file_watch_reloads_when_the_config_changes() {
    let dir = TempDir::new("watch");
    let path = dir.write(
        "config.yaml",
        "model_list:\n  - model_name: watched-before\n    litellm_params: {model: mock/a}\n",
    );
    let gateway = TestGateway::start_file(&path, &[]).await;
    let mut reloads = gateway.gateway.subscribe_reloads();
    let watcher = tokio::spawn(reload::watch_config(
        Arc::clone(&gateway.gateway),
        Duration::from_millis(5),
    ));
    // A different length, so the change shows even where mtimes are coarse.
    dir.write(
        "config.yaml",
        "model_list:\n  - model_name: watched-after-the-change\n    litellm_params: {model: mock/b}\n",
    );
    tokio::time::timeout(PATIENCE, reloads.changed())
        .await
        .expect("the watcher reloads after the file changed")
        .unwrap();
    assert_eq!(
        gateway.gateway.config().model_names(),
        vec!["watched-after-the-change"]
    );
    watcher.abort();
}

#[tokio::test]
async fn metrics_can_require_the_master_key_and_reload_is_open_without_one() {
    let guarded = TestGateway::start(
        "model_list:\n  - model_name: guarded\n    litellm_params: {model: mock/g}\nlitellm_settings:\n  require_auth_for_metrics_endpoint: true\ngeneral_settings:\n  master_key: os.environ/MASTER\n",
        &[("MASTER", MASTER)],
    )
    .await;
    send("GET", &guarded.url("/metrics"), &[], "")
        .await
        .assert_error(401, "auth_error");
    let auth = format!("Bearer {MASTER}");
    let scraped = send(
        "GET",
        &guarded.url("/metrics"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(scraped.status, 200);
    assert!(!parse_exposition(&scraped.text()).is_empty());

    // With no master key, the admin endpoints are open, as in LiteLLM.
    let dir = TempDir::new("open");
    let path = dir.write(
        "config.yaml",
        "model_list:\n  - model_name: open-before\n    litellm_params: {model: mock/o}\n",
    );
    let open = TestGateway::start_file(&path, &[]).await;
    dir.write(
        "config.yaml",
        "model_list:\n  - model_name: open-after\n    litellm_params: {model: mock/o}\n",
    );
    let reloaded = send("POST", &open.url("/config/reload"), &[], "").await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());
    assert_eq!(reloaded.json()["models"], json!(["open-after"]));
    let (_, samples) = metrics_samples(&open).await;
    assert!(
        metric_sum(
            &samples,
            "gateway_config_reloads_total",
            &[("result", "success")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_still_gets_its_log_line() {
    let logs = CapturedLogs::install();
    let arrived = Arc::new(tokio::sync::Notify::new());
    let upstream = FakeUpstream::start(Reply::Hang {
        arrived: Arc::clone(&arrived),
    })
    .await;
    let gateway = TestGateway::start(
        &format!(
            "model_list:\n  - model_name: very-slow\n    litellm_params: {{model: openai/m, api_base: \"{}\", api_key: k}}\n",
            upstream.api_base()
        ),
        &[],
    )
    .await;
    let mut socket = TcpStream::connect(gateway.addr).await.unwrap();
    let body = chat_body("very-slow").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-request-id: leaves-early-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // The upstream has the request: the gateway is waiting for it. Leave.
    tokio::time::timeout(PATIENCE, arrived.notified())
        .await
        .expect("the request reaches the upstream");
    drop(socket);
    let lines = logs.wait_for_request("leaves-early-1").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["status"], 499);
    assert_eq!(fields["error_kind"], "client_disconnected");
    assert_eq!(fields["model"], "very-slow");
    let (_, samples) = metrics_samples(&gateway).await;
    assert_eq!(
        metric_sum(
            &samples,
            "gateway_requests_total",
            &[("model", "very-slow"), ("status", "499")]
        ),
        1.0
    );
}

#[tokio::test]
async fn each_serving_thread_keeps_its_connections_and_its_own_upstream_pool() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("hi"))).await;
    let text = format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/gpt-4o, api_base: \"{}\", api_key: k}}\n",
        upstream.api_base()
    );
    let gateway = TestGateway::start_on_threads(&text, &[], 3).await;
    // Three client connections, dealt to the three threads in turn; each
    // sends two requests, one after another.
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(KeepAlive::open(gateway.addr).await);
    }
    for _ in 0..2 {
        for client in &mut clients {
            let response = client.post("/v1/chat/completions", &chat_body("m")).await;
            assert_eq!(response.status, 200, "{}", response.text());
            assert_eq!(response.json()["choices"][0]["message"]["content"], "hi");
        }
    }
    // Which upstream connections served each client connection: requests
    // alternate between clients, so one shared pool would hand the same
    // idle upstream connection to all three.
    let received = upstream.received();
    assert_eq!(received.len(), 6);
    let used: Vec<std::collections::BTreeSet<u16>> = (0..3)
        .map(|client| {
            [client, client + 3]
                .iter()
                .map(|&i| received[i].peer.port())
                .collect()
        })
        .collect();
    for a in 0..3 {
        for b in a + 1..3 {
            assert!(
                used[a].is_disjoint(&used[b]),
                "client connections {a} and {b} shared an upstream connection: {used:?}"
            );
        }
    }
    gateway.stop().await;
}

const BUSY_CONFIG: &str =
    "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m, mock_response: hi}\n";

#[tokio::test]
async fn a_busy_accepting_thread_holds_up_no_request() {
    requests_are_answered_while_the_accepting_thread_is_held(
        TestGateway::start_on_threads(BUSY_CONFIG, &[], 2).await,
    )
    .await;
}

/// The binary's default: one serving thread of its own beside the main one.
#[tokio::test]
async fn one_serving_thread_of_its_own_is_not_held_up_by_the_accepting_thread() {
    requests_are_answered_while_the_accepting_thread_is_held(
        TestGateway::start_on_own_threads(BUSY_CONFIG, &[], 1).await,
    )
    .await;
}

async fn requests_are_answered_while_the_accepting_thread_is_held(gateway: TestGateway) {
    let addr = gateway.addr;
    // Awaited here without blocking this runtime, which must accept.
    let (opened, wait_opened) = tokio::sync::oneshot::channel::<()>();
    let (busy, wait_busy) = std::sync::mpsc::channel::<()>();
    // The client lives on a thread of its own, so it runs while this
    // thread (which accepts, and runs the gateway's background work) is held.
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut clients = Vec::new();
            for _ in 0..2 {
                let mut client = KeepAlive::open(addr).await;
                assert_eq!(
                    client
                        .post("/v1/chat/completions", &chat_body("m"))
                        .await
                        .status,
                    200
                );
                clients.push(client);
            }
            let _ = opened.send(());
            wait_busy.recv().unwrap();
            let mut answers = Vec::new();
            for client in &mut clients {
                let response = client.post("/v1/chat/completions", &chat_body("m")).await;
                answers.push((
                    response.status,
                    response.json()["choices"][0]["message"]["content"].clone(),
                ));
            }
            answers
        })
    });
    // Let this runtime accept both connections, then hold its thread, as a
    // long spend-log batch would.
    if wait_opened.await.is_err() {
        panic!("the client failed before its connections were open");
    }
    busy.send(()).unwrap();
    let answers = client.join().unwrap_or_else(|_| {
        panic!("a connection went unanswered while the accepting thread was busy")
    });
    assert_eq!(answers, vec![(200, json!("hi")), (200, json!("hi"))]);
    gateway.stop().await;
}

#[tokio::test]
async fn shutdown_drains_streams_on_every_serving_thread() {
    let text = "model_list:\n  - model_name: slow\n    litellm_params: {model: mock/slow, mock_chunk_delay_ms: 30, mock_response: \"one two three four five six seven eight nine ten\"}\n";
    let mut gateway = TestGateway::start_on_threads(text, &[], 2).await;
    // Two connections, one on each serving thread.
    let (mut first, mut first_seen) = open_stream(&gateway, "slow", "drain-1", None).await;
    let (mut second, mut second_seen) = open_stream(&gateway, "slow", "drain-2", None).await;
    gateway.begin_shutdown();
    read_until(&mut first, &mut first_seen, "data: [DONE]").await;
    read_until(&mut second, &mut second_seen, "data: [DONE]").await;
    for seen in [&first_seen, &second_seen] {
        let text = String::from_utf8_lossy(seen);
        for word in ["one", "five", "ten"] {
            assert!(text.contains(word), "{text}");
        }
    }
    drop((first, second));
    let stopped = gateway.stopped.take().unwrap();
    let served = tokio::time::timeout(PATIENCE, stopped)
        .await
        .expect("serve returns after every thread drained");
    assert!(served.unwrap().is_ok());
    // The listener is closed: new connections are refused.
    assert!(TcpStream::connect(gateway.addr).await.is_err());
}
