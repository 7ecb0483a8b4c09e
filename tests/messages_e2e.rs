//! The Anthropic-format ingress end to end: an Anthropic client talks to
//! `POST /v1/messages` on the real server, in front of fake OpenAI, Ollama
//! and Anthropic upstreams. Non-Anthropic upstreams are translated (and the
//! answer comes back as Anthropic's message or event sequence); an Anthropic
//! upstream gets the client's own body (passthrough).

#![allow(clippy::unwrap_used)]

use gateway_tests::protocols::{self, TOOL_ARGUMENTS};
use gateway_tests::*;
use serde_json::{json, Value};

const MASTER: &str = "sk-master-messages-0123456789abcdef";
const UPSTREAM_KEY: &str = "sk-upstream-secret-9876543210";

/// One fake per protocol, and the gateway in front of them.
struct Setup {
    openai: FakeUpstream,
    ollama: FakeUpstream,
    anthropic: FakeUpstream,
    gateway: TestGateway,
}

async fn setup(openai: Reply, ollama: Reply, anthropic: Reply) -> Setup {
    let openai = FakeUpstream::start(openai).await;
    let ollama = FakeUpstream::start(ollama).await;
    let anthropic = FakeUpstream::start(anthropic).await;
    let config = format!(
        r#"
model_list:
  - model_name: chat
    litellm_params: {{model: openai/upstream-model, api_base: "{openai}", api_key: os.environ/UPSTREAM_KEY}}
    model_info: {{id: chat-deployment}}
  - model_name: local
    litellm_params: {{model: ollama_chat/llama3.2, api_base: "{ollama}"}}
    model_info: {{id: local-deployment}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-5-haiku-20241022, api_base: "{anthropic}", api_key: os.environ/UPSTREAM_KEY}}
    model_info: {{id: claude-deployment}}
  - model_name: claude-backed
    litellm_params: {{model: anthropic/claude-3-5-haiku-20241022, api_base: "{anthropic}", api_key: os.environ/UPSTREAM_KEY}}
    model_info: {{id: claude-backed-deployment}}
router_settings:
  num_retries: 0
  fallbacks: [{{"claude-backed": ["chat"]}}]
general_settings:
  master_key: os.environ/MASTER
"#,
        openai = openai.api_base(),
        ollama = ollama.root(),
        anthropic = anthropic.root(),
    );
    let gateway = TestGateway::start(
        &config,
        &[("UPSTREAM_KEY", UPSTREAM_KEY), ("MASTER", MASTER)],
    )
    .await;
    Setup {
        openai,
        ollama,
        anthropic,
        gateway,
    }
}

fn unused() -> Reply {
    Reply::json(500, json!({"error": "this fake should not be called"}))
}

/// The headers the Anthropic SDK sends.
fn anthropic_headers() -> Vec<(&'static str, &'static str)> {
    vec![("x-api-key", MASTER), ("anthropic-version", "2023-06-01")]
}

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}})
}

fn messages_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    })
}

/// Asserts the Anthropic stream framing: every event is named, its name is
/// its data's `type`, and there is no `[DONE]`. Answers the names.
fn event_names(response: &TestResponse) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert!(!response.text().contains("[DONE]"), "{}", response.text());
    response
        .sse_events()
        .into_iter()
        .map(|(name, data)| {
            let name = name.expect("every Anthropic event is named");
            assert_eq!(data["type"], name.as_str(), "{data}");
            name
        })
        .collect()
}

/// The concatenated `text_delta`s and `input_json_delta`s of a stream.
fn deltas(response: &TestResponse) -> (String, String) {
    let (mut text, mut json) = (String::new(), String::new());
    for (_, data) in response.sse_events() {
        if data["type"] == "content_block_delta" {
            if let Some(piece) = data["delta"]["text"].as_str() {
                text.push_str(piece);
            }
            if let Some(piece) = data["delta"]["partial_json"].as_str() {
                json.push_str(piece);
            }
        }
    }
    (text, json)
}

fn event(response: &TestResponse, name: &str) -> Vec<Value> {
    response
        .sse_events()
        .into_iter()
        .filter(|(event, _)| event.as_deref() == Some(name))
        .map(|(_, data)| data)
        .collect()
}

const TEXT_SEQUENCE: [&str; 7] = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
];

#[tokio::test]
async fn messages_to_an_openai_backend_answer_an_anthropic_message() {
    let setup = setup(
        Reply::json(200, upstream_completion("Hi!")),
        unused(),
        unused(),
    )
    .await;
    let mut body = messages_body("chat", false);
    body["metadata"] = json!({"user_id": "user-42"});
    body["stop_sequences"] = json!(["END"]);
    body["temperature"] = json!(0.2);
    let mut headers = anthropic_headers();
    headers.push(("anthropic-beta", "prompt-caching-2024-07-31"));
    headers.push(("x-request-id", "messages-openai-1"));
    let response = post(&setup.gateway.url("/v1/messages"), &headers, &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json(),
        json!({"id": "msg_upstream-1", "type": "message", "role": "assistant", "model": "chat",
               "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "end_turn", "stop_sequence": null,
               "usage": {"input_tokens": 9, "output_tokens": 3}})
    );
    // The same response headers as chat completions.
    assert_eq!(response.header("x-request-id"), Some("messages-openai-1"));
    assert_eq!(
        response.header("x-litellm-model-id"),
        Some("chat-deployment")
    );
    assert_eq!(response.header("x-litellm-model-group"), Some("chat"));
    assert_eq!(response.header("x-litellm-attempted-fallbacks"), Some("0"));
    assert!(response.header("x-litellm-overhead-duration-ms").is_some());

    let received = setup.openai.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.path_and_query, "/v1/chat/completions");
    assert_eq!(
        got.headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert!(!got.headers.contains_key("anthropic-version"));
    assert!(!got.headers.contains_key("anthropic-beta"));
    assert!(!format!("{:?}", got.headers).contains(MASTER));
    assert_eq!(
        got.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    assert_eq!(got.body["model"], "upstream-model");
    assert_eq!(got.body["max_tokens"], 64);
    assert_eq!(got.body["temperature"], 0.2);
    assert_eq!(got.body["stop"], json!(["END"]));
    assert_eq!(got.body["user"], "user-42");
    assert!(got.body.get("metadata").is_none());
}

#[tokio::test]
async fn messages_stream_a_tool_call_from_an_openai_backend_as_anthropic_events() {
    let setup = setup(protocols::openai::tool_stream(), unused(), unused()).await;
    let mut body = messages_body("chat", true);
    body["tools"] = json!([weather_tool()]);
    body["tool_choice"] = json!({"type": "any"});
    let response = post(
        &setup.gateway.url("/v1/messages"),
        &anthropic_headers(),
        &body,
    )
    .await;
    let names = event_names(&response);
    // One (empty) first argument piece is skipped; the others are deltas.
    let mut expected = vec!["message_start", "content_block_start"];
    expected.extend(["content_block_delta"; 3]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected, "{}", response.text());

    let start = &event(&response, "message_start")[0];
    assert_eq!(start["message"]["model"], "chat");
    assert_eq!(start["message"]["role"], "assistant");
    assert_eq!(
        event(&response, "content_block_start")[0]["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
    );
    let (text, arguments) = deltas(&response);
    assert_eq!(text, "");
    assert_eq!(arguments, TOOL_ARGUMENTS, "byte-exact arguments");
    let delta = &event(&response, "message_delta")[0];
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 3);

    let got = &setup.openai.received()[0];
    assert_eq!(got.body["stream"], true);
    assert_eq!(got.body["stream_options"]["include_usage"], true);
    assert_eq!(got.body["tool_choice"], "required");
    assert_eq!(
        got.body["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                "parameters": weather_tool()["input_schema"]}}])
    );
}

#[tokio::test]
async fn messages_to_an_ollama_backend_answer_and_stream_in_anthropic_format() {
    let setup = setup(
        unused(),
        protocols::ollama::message("Hello world"),
        unused(),
    )
    .await;
    let url = setup.gateway.url("/v1/messages");
    // Bearer works as well as x-api-key.
    let bearer = format!("Bearer {MASTER}");
    let response = post(
        &url,
        &[("authorization", bearer.as_str())],
        &messages_body("local", false),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["model"], "local");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "Hello world"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 5, "output_tokens": 2})
    );
    let got = &setup.ollama.received()[0];
    assert_eq!(got.path_and_query, "/api/chat");
    assert_eq!(got.body["model"], "llama3.2");
    assert_eq!(got.body["stream"], false);
    assert_eq!(got.body["options"]["num_predict"], 64);
    assert_eq!(
        got.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    for header in ["authorization", "x-api-key"] {
        assert!(!got.headers.contains_key(header), "{header}");
    }

    setup
        .ollama
        .set_reply(protocols::ollama::text_stream(&["Hello", " world"]));
    let response = post(&url, &anthropic_headers(), &messages_body("local", true)).await;
    assert_eq!(event_names(&response), TEXT_SEQUENCE);
    assert_eq!(deltas(&response).0, "Hello world");
    assert_eq!(
        event(&response, "content_block_start")[0]["content_block"],
        json!({"type": "text", "text": ""})
    );
    let delta = &event(&response, "message_delta")[0];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 2);

    setup.ollama.set_reply(protocols::ollama::tool_stream());
    let mut body = messages_body("local", true);
    body["tools"] = json!([weather_tool()]);
    let response = post(&url, &anthropic_headers(), &body).await;
    let names = event_names(&response);
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let block = &event(&response, "content_block_start")[0]["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "get_weather");
    assert_eq!(deltas(&response).1, TOOL_ARGUMENTS);
    assert_eq!(
        event(&response, "message_delta")[0]["delta"]["stop_reason"],
        "tool_use"
    );
    let got = &setup.ollama.received()[2];
    assert_eq!(got.body["stream"], true);
    assert_eq!(got.body["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn messages_to_an_anthropic_backend_pass_the_clients_body_through() {
    let mut upstream_answer = protocols::anthropic::message_body("Hi");
    // Blocks the OpenAI shape has no room for survive the passthrough.
    upstream_answer["content"] = json!([{"type": "thinking", "thinking": "hm", "signature": "sig"}, {"type": "text", "text": "Hi"}]);
    let setup = setup(
        unused(),
        unused(),
        Reply::json(200, upstream_answer.clone()),
    )
    .await;
    let body = json!({
        "model": "claude",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "metadata": {"user_id": "user-7"},
        "top_k": 5,
    });
    let headers = [
        ("x-api-key", MASTER),
        ("anthropic-version", "2023-01-01"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ];
    let response = post(&setup.gateway.url("/v1/messages"), &headers, &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let mut expected = upstream_answer;
    expected["model"] = json!("claude");
    assert_eq!(response.json(), expected);
    assert_eq!(
        response.header("x-litellm-model-id"),
        Some("claude-deployment")
    );

    let received = setup.anthropic.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.path_and_query, "/v1/messages");
    let mut forwarded = body.clone();
    forwarded["model"] = json!("claude-3-5-haiku-20241022");
    assert_eq!(got.body, forwarded, "only the model is substituted");
    let header = |name: &str| got.headers.get(name).map(String::as_str);
    assert_eq!(header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(header("anthropic-version"), Some("2023-01-01"));
    assert_eq!(
        header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(header("authorization"), None);
}

#[tokio::test]
async fn streamed_messages_to_an_anthropic_backend_pass_the_events_through() {
    let upstream_events = protocols::anthropic::text_stream_events(&["Hello", " world"]);
    let setup = setup(
        unused(),
        unused(),
        protocols::anthropic::events(&upstream_events),
    )
    .await;
    let mut body = messages_body("claude", true);
    // Gateway control fields are taken out; Anthropic's own metadata stays.
    body["metadata"] = json!({"user_id": "user-7", "tags": ["team-a"]});
    body["num_retries"] = json!(0);
    let mut headers = anthropic_headers();
    headers.push(("anthropic-beta", "prompt-caching-2024-07-31"));
    let response = post(&setup.gateway.url("/v1/messages"), &headers, &body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(!response.text().contains("[DONE]"));
    let mut expected: Vec<(Option<String>, Value)> = upstream_events
        .into_iter()
        .map(|(name, data)| (Some(name.to_owned()), data))
        .collect();
    expected[0].1["message"]["model"] = json!("claude");
    assert_eq!(
        response.sse_events(),
        expected,
        "the upstream's own events, ping included"
    );

    let got = &setup.anthropic.received()[0];
    assert_eq!(got.body["stream"], true);
    assert_eq!(got.body["metadata"], json!({"user_id": "user-7"}));
    assert!(got.body.get("num_retries").is_none());
    assert_eq!(
        got.headers.get("anthropic-beta").map(String::as_str),
        Some("prompt-caching-2024-07-31")
    );
}

#[tokio::test]
async fn a_failing_anthropic_deployment_falls_back_to_a_translated_one() {
    let setup = setup(
        protocols::openai::text_stream(&["Hello", " world"]),
        unused(),
        protocols::anthropic::error(500, "api_error"),
    )
    .await;
    let url = setup.gateway.url("/v1/messages");
    let response = post(
        &url,
        &anthropic_headers(),
        &messages_body("claude-backed", true),
    )
    .await;
    assert_eq!(event_names(&response), TEXT_SEQUENCE);
    assert_eq!(deltas(&response).0, "Hello world");
    assert_eq!(response.header("x-litellm-attempted-fallbacks"), Some("1"));
    assert_eq!(
        response.header("x-litellm-model-id"),
        Some("chat-deployment")
    );
    assert_eq!(setup.anthropic.received().len(), 1);
    assert_eq!(setup.openai.received().len(), 1);

    setup
        .openai
        .set_reply(Reply::json(200, upstream_completion("Hi!")));
    let response = post(
        &url,
        &anthropic_headers(),
        &messages_body("claude-backed", false),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["content"], json!([{"type": "text", "text": "Hi!"}]));
    assert_eq!(body["type"], "message");
}

#[tokio::test]
async fn messages_errors_are_anthropic_shaped_with_the_gateways_statuses() {
    let setup = setup(
        Reply::Json {
            status: 429,
            body: json!({"error": {"message": "slow down", "type": "rate_limit_error"}}).to_string(),
            headers: vec![("retry-after", "7".to_owned())],
        },
        unused(),
        Reply::Json {
            status: 429,
            body: json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
                .to_string(),
            headers: vec![("retry-after", "7".to_owned())],
        },
    )
    .await;
    let url = setup.gateway.url("/v1/messages");

    let response = post(
        &url,
        &anthropic_headers(),
        &messages_body("no-such-model", false),
    )
    .await;
    let body = response.assert_anthropic_error(404, "not_found_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-model"));

    let response = send(
        "POST",
        &url,
        &[("x-api-key", MASTER), ("content-type", "application/json")],
        r#"{"model": "chat", "messages": ["#,
    )
    .await;
    response.assert_anthropic_error(400, "invalid_request_error");

    let mut wrong_role = messages_body("chat", false);
    wrong_role["messages"] = json!([{"role": "robot", "content": "x"}]);
    let response = post(&url, &anthropic_headers(), &wrong_role).await;
    let body = response.assert_anthropic_error(400, "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages[0].role"));

    let mut no_messages = messages_body("chat", false);
    no_messages["messages"] = json!([]);
    post(&url, &anthropic_headers(), &no_messages)
        .await
        .assert_anthropic_error(400, "invalid_request_error");

    post(&url, &[], &messages_body("chat", false))
        .await
        .assert_anthropic_error(401, "authentication_error");
    post(
        &url,
        &[("x-api-key", "sk-wrong-key-0000000000")],
        &messages_body("chat", false),
    )
    .await
    .assert_anthropic_error(401, "authentication_error");

    // An upstream 429, translated and passed through alike, streams included.
    for (model, stream) in [
        ("chat", false),
        ("claude", false),
        ("chat", true),
        ("claude", true),
    ] {
        let response = post(&url, &anthropic_headers(), &messages_body(model, stream)).await;
        response.assert_anthropic_error(429, "rate_limit_error");
        assert_eq!(response.header("retry-after"), Some("7"), "{model}");
        assert!(response.header("x-litellm-model-id").is_some(), "{model}");
    }
    assert!(setup.ollama.received().is_empty());

    // Other methods on the route are refused in the same shape.
    send("GET", &url, &[("x-api-key", MASTER)], "")
        .await
        .assert_anthropic_error(405, "invalid_request_error");
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_event_ends_with_an_error_event() {
    // No finish reason and no [DONE]: the upstream connection just ends.
    let chunk = |text: &str| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        .to_string()
    };
    let setup = setup(
        Reply::Sse {
            events: vec![chunk("Hel"), chunk("lo")],
        },
        unused(),
        unused(),
    )
    .await;
    let response = post(
        &setup.gateway.url("/v1/messages"),
        &anthropic_headers(),
        &messages_body("chat", true),
    )
    .await;
    let names = event_names(&response);
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    let error = &event(&response, "error")[0];
    assert_eq!(error["error"]["type"], "api_error");
    assert!(error["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn count_tokens_answers_an_estimate_without_calling_upstream() {
    let setup = setup(unused(), unused(), unused()).await;
    let url = setup.gateway.url("/v1/messages/count_tokens");
    let short =
        json!({"model": "claude", "messages": [{"role": "user", "content": "hello world"}]});
    let response = post(&url, &anthropic_headers(), &short).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let short_count = response.json()["input_tokens"].as_u64().unwrap();
    assert!(short_count > 0);
    assert_eq!(response.json().as_object().unwrap().len(), 1);

    let long = json!({"model": "claude", "system": "You are a careful assistant who explains things.",
                      "tools": [weather_tool()],
                      "messages": [{"role": "user", "content": "hello world, what is the weather in Paris today?"}]});
    let long_count = post(&url, &anthropic_headers(), &long).await.json()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        long_count > short_count + 10,
        "{long_count} vs {short_count}"
    );

    post(&url, &[], &short)
        .await
        .assert_anthropic_error(401, "authentication_error");
    send("POST", &url, &[("x-api-key", MASTER)], "not json")
        .await
        .assert_anthropic_error(400, "invalid_request_error");
    for fake in [&setup.openai, &setup.ollama, &setup.anthropic] {
        assert!(fake.received().is_empty());
    }
}

#[tokio::test]
async fn messages_requests_are_logged_and_counted_like_chat() {
    let logs = CapturedLogs::install();
    let setup = setup(
        Reply::json(200, upstream_completion("Hi!")),
        unused(),
        protocols::anthropic::text_stream(&["a", "b"]),
    )
    .await;
    let url = setup.gateway.url("/v1/messages");
    let mut headers = anthropic_headers();
    headers.push(("x-request-id", "messages-log-1"));
    post(&url, &headers, &messages_body("chat", false)).await;
    let lines = logs.wait_for_request("messages-log-1").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["path"], "/v1/messages");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["model"], "chat");
    assert_eq!(fields["deployment"], "chat-deployment");
    assert_eq!(fields["provider"], "openai");
    assert_eq!(fields["prompt_tokens"], 9);
    assert_eq!(fields["completion_tokens"], 3);

    let mut headers = anthropic_headers();
    headers.push(("x-request-id", "messages-log-2"));
    let response = post(&url, &headers, &messages_body("claude", true)).await;
    assert_eq!(response.status, 200);
    let lines = logs.wait_for_request("messages-log-2").await;
    let fields = &lines[0]["fields"];
    assert_eq!(fields["provider"], "anthropic");
    assert_eq!(fields["stream"], "completed");
    assert_eq!(fields["prompt_tokens"], 5);
    assert_eq!(fields["completion_tokens"], 2);
    assert!(fields["ttft_ms"].as_f64().is_some());

    let metrics = send(
        "GET",
        &setup.gateway.url("/metrics"),
        &[("authorization", &format!("Bearer {MASTER}"))],
        "",
    )
    .await;
    let samples = parse_exposition(&metrics.text());
    for model in ["chat", "claude"] {
        assert!(
            metric_sum(
                &samples,
                "gateway_requests_total",
                &[("model", model), ("status", "200")]
            ) >= 1.0,
            "{model}: {}",
            metrics.text()
        );
    }
}

/// What Claude Code sends: system and tool blocks with `cache_control`,
/// `metadata.user_id`, betas, a `?beta=true` query, and a stream.
fn claude_code_body(model: &str) -> Value {
    let mut tool = weather_tool();
    tool["cache_control"] = json!({"type": "ephemeral"});
    json!({
        "model": model,
        "max_tokens": 32000,
        "stream": true,
        "temperature": 1,
        "metadata": {"user_id": "user_abc_account__session_123"},
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Work carefully.", "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [tool],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is the weather?", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "18C"}]}
        ]
    })
}

#[tokio::test]
async fn claude_code_shaped_requests_work_against_openai_and_ollama_backends() {
    let setup = setup(
        protocols::openai::text_stream(&["Hello", " world"]),
        protocols::ollama::text_stream(&["Hello", " world"]),
        unused(),
    )
    .await;
    let url = setup.gateway.url("/v1/messages?beta=true");
    let headers = [
        ("x-api-key", MASTER),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
        ),
    ];
    for model in ["chat", "local"] {
        let response = post(&url, &headers, &claude_code_body(model)).await;
        assert_eq!(event_names(&response), TEXT_SEQUENCE, "{model}");
        assert_eq!(deltas(&response).0, "Hello world", "{model}");
    }
    let openai = &setup.openai.received()[0].body;
    assert_eq!(openai["messages"][4]["role"], "tool", "{openai}");
    assert_eq!(openai["messages"][4]["tool_call_id"], "toolu_9");
    let ollama = &setup.ollama.received()[0].body;
    assert_eq!(ollama["messages"][4]["role"], "tool", "{ollama}");
}

#[tokio::test]
async fn thinking_is_passed_to_anthropic_and_left_out_of_translated_calls() {
    let setup = setup(
        protocols::openai::text_stream(&["Hello"]),
        protocols::ollama::text_stream(&["Hello"]),
        protocols::anthropic::text_stream(&["Hello"]),
    )
    .await;
    let thinking = json!({"type": "enabled", "budget_tokens": 1024});
    for model in ["chat", "local", "claude"] {
        let mut body = claude_code_body(model);
        body["thinking"] = thinking.clone();
        let response = post(
            &setup.gateway.url("/v1/messages"),
            &anthropic_headers(),
            &body,
        )
        .await;
        assert_eq!(response.status, 200, "{model}: {}", response.text());
    }
    assert!(setup.openai.received()[0].body.get("thinking").is_none());
    assert!(setup.ollama.received()[0].body.get("thinking").is_none());
    assert_eq!(setup.anthropic.received()[0].body["thinking"], thinking);
}

#[tokio::test]
async fn a_messages_client_that_disconnects_mid_stream_makes_the_gateway_drop_the_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gone = std::sync::Arc::new(tokio::sync::Notify::new());
    let setup = setup(
        Reply::EndlessSse {
            event: upstream_chunk(Some("tick "), None),
            gone: std::sync::Arc::clone(&gone),
        },
        unused(),
        unused(),
    )
    .await;
    let mut socket = tokio::net::TcpStream::connect(setup.gateway.addr)
        .await
        .unwrap();
    let body = messages_body("chat", true).to_string();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: gw\r\nx-api-key: {MASTER}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("text_delta") {
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "stream ended early");
        seen.extend_from_slice(&buffer[..read]);
    }
    drop(socket);
    tokio::time::timeout(PATIENCE, gone.notified())
        .await
        .expect("the upstream connection must be dropped after the client left");
}
