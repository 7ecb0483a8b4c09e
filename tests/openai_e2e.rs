//! The gateway end to end: the real server on 127.0.0.1 in front of a fake
//! OpenAI upstream written here, asserting what the client got and what the
//! upstream received.

#![allow(clippy::unwrap_used)]

use gateway_tests::*;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MASTER: &str = "sk-master-test-key-0123456789abcdef";
const UPSTREAM_KEY: &str = "sk-upstream-secret-9876543210";

fn config(api_base: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: chat
    litellm_params:
      model: openai/upstream-model
      api_base: {api_base}
      api_key: os.environ/UPSTREAM_KEY
      max_tokens: 77
      headers: {{X-Team: blue}}
      extra_headers: {{X-Trace: on}}
      extra_body: {{custom_flag: true, provider: {{sort: price}}}}
    model_info:
      id: chat-deployment-1
  - model_name: prompted
    litellm_params:
      model: openai/upstream-model
      api_base: {api_base}
      api_key: os.environ/UPSTREAM_KEY
    model_info:
      system_prompt: "Always answer in French."
  - model_name: embed
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: {api_base}
      api_key: os.environ/UPSTREAM_KEY
general_settings:
  master_key: os.environ/MASTER
  max_request_size_mb: 0.01
"#
    )
}

async fn start(upstream: &FakeUpstream) -> TestGateway {
    TestGateway::start(
        &config(&upstream.api_base()),
        &[("UPSTREAM_KEY", UPSTREAM_KEY), ("MASTER", MASTER)],
    )
    .await
}

fn bearer() -> String {
    format!("Bearer {MASTER}")
}

/// A streamed chat request for the `chat` alias, without `stream_options`.
async fn post_stream(gateway: &TestGateway) -> TestResponse {
    post_chat(
        gateway,
        &json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await
}

/// A chat completion request with the master key.
async fn post_chat(gateway: &TestGateway, body: &Value) -> TestResponse {
    post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &bearer())],
        body,
    )
    .await
}

/// The conversation goes upstream as the client wrote it: key order,
/// spacing and escapes kept, not parsed and encoded again. The rest of the
/// body is still patched (model replaced, control fields dropped).
#[tokio::test]
async fn messages_go_upstream_byte_for_byte() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("Hi!"))).await;
    let gateway = start(&upstream).await;
    let messages =
        r#"[ {"content": "caf\u00e9 \"quoted\"", "role":"user", "x_vendor": {"k": 1.50}} ]"#;
    let body =
        format!(r#"{{"model": "chat", "metadata": {{"tags": ["t"]}}, "messages": {messages}}}"#);
    let response = send(
        "POST",
        &gateway.url("/v1/chat/completions"),
        &[
            ("authorization", &bearer()),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let received = upstream.received();
    let raw = String::from_utf8_lossy(&received[0].raw_body).into_owned();
    assert!(
        raw.contains(&format!(r#""messages":{messages}"#)),
        "the upstream got {raw}"
    );
    assert_eq!(received[0].body["model"], "upstream-model");
    assert!(received[0].body.get("metadata").is_none());
    assert_eq!(
        received[0].body["messages"][0]["content"],
        "café \"quoted\""
    );
}

#[tokio::test]
async fn non_stream_answer_is_the_upstream_answer_under_the_alias() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("Hi!"))).await;
    let gateway = start(&upstream).await;
    let response = post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &bearer()), ("x-request-id", "req-abc-1")],
        &json!({"model": "chat", "messages": [{"role": "user", "content": "Hello"}], "temperature": 0.5, "metadata": {"tags": ["t"]}, "user": "end-user-7"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let mut expected = upstream_completion("Hi!");
    expected["model"] = json!("chat");
    assert_eq!(response.json(), expected);
    assert_eq!(response.header("x-request-id"), Some("req-abc-1"));
    assert_eq!(
        response.header("x-litellm-model-id"),
        Some("chat-deployment-1")
    );
    assert_eq!(
        response.header("x-gateway-model-id"),
        Some("chat-deployment-1")
    );
    assert_eq!(response.header("x-litellm-model-group"), Some("chat"));
    assert_eq!(response.header("x-gateway-attempts"), Some("1"));
    assert_eq!(response.header("x-litellm-attempted-fallbacks"), Some("0"));
    assert_eq!(
        response.header("x-litellm-model-api-base"),
        Some(upstream.api_base().as_str())
    );
    assert!(response.header("x-litellm-overhead-duration-ms").is_some());

    let received = upstream.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.path_and_query, "/v1/chat/completions");
    assert_eq!(
        got.headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(got.headers.get("x-team").map(String::as_str), Some("blue"));
    assert_eq!(got.headers.get("x-trace").map(String::as_str), Some("on"));
    assert_eq!(got.body["model"], "upstream-model");
    assert_eq!(got.body["custom_flag"], true);
    assert_eq!(got.body["provider"], json!({"sort": "price"}));
    assert_eq!(got.body["max_tokens"], 77, "deployment default filled in");
    assert_eq!(got.body["temperature"], 0.5);
    assert_eq!(got.body["user"], "end-user-7");
    assert!(
        got.body.get("metadata").is_none(),
        "gateway control fields are not forwarded"
    );
    assert!(got.body.get("stream").is_none());
    let everything = format!("{:?}", got.headers);
    assert!(
        !everything.contains(MASTER),
        "the client's key must never reach the upstream"
    );
}

#[tokio::test]
async fn non_stream_bodies_pass_through_byte_for_byte_but_for_the_model() {
    // An upstream's own layout, field order, number spellings and fields the
    // gateway does not know: a re-encoding would change each of them.
    let upstream_body = r#"{
  "id": "chatcmpl-Bx9",
  "object": "chat.completion",
  "created": 1731000000,
  "model": "upstream-model-2024-08-06",
  "choices": [ { "index": 0, "message": { "role": "assistant", "content": "caf\u00e9 \"ok\"", "refusal": null, "annotations": [] }, "logprobs": null, "finish_reason": "stop" } ],
  "usage": { "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 } },
  "service_tier": "default",
  "system_fingerprint": "fp_1.0e2"
}"#;
    let upstream = FakeUpstream::start(Reply::Raw {
        status: 200,
        content_type: "application/json",
        body: upstream_body.to_owned(),
    })
    .await;
    let gateway = start(&upstream).await;
    let request = json!({"model": "chat", "messages": [{"role": "user", "content": "Hello"}]});
    let response = post_chat(&gateway, &request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.text(),
        upstream_body.replace(r#""upstream-model-2024-08-06""#, r#""chat""#)
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.json()["choices"][0]["message"]["content"],
        "café \"ok\""
    );

    // A model written with escapes cannot be patched in place: the answer is
    // parsed and re-encoded instead, still under the alias.
    let escaped = upstream_body.replace("upstream-model-2024-08-06", "upstream\\/model");
    upstream.set_reply(Reply::Raw {
        status: 200,
        content_type: "application/json",
        body: escaped,
    });
    let response = post_chat(&gateway, &request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["model"], "chat");
    assert_eq!(body["service_tier"], "default");
    assert_eq!(body["usage"]["total_tokens"], 15);

    // A 200 whose body is cut off is an upstream failure, not a pass-through.
    upstream.set_reply(Reply::Raw {
        status: 200,
        content_type: "application/json",
        body: upstream_body[..upstream_body.len() / 2].to_owned(),
    });
    let response = post_chat(&gateway, &request).await;
    let error = response.assert_error(502, "upstream_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("not a valid response"), "{message}");
}

#[tokio::test]
async fn client_values_override_deployment_defaults_and_extra_body_overrides_both() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("ok"))).await;
    let gateway = start(&upstream).await;
    let response = post(
        &gateway.url("/chat/completions"),
        &[("x-api-key", MASTER)],
        &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "custom_flag": false}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = &upstream.received()[0].body;
    assert_eq!(body["max_tokens"], 5);
    assert_eq!(body["custom_flag"], true);
}

#[tokio::test]
async fn stream_passes_chunks_through_and_drops_usage_unless_asked() {
    let usage_chunk = json!({"id": "chatcmpl-upstream-2", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "upstream-model-0613", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}).to_string();
    let events = vec![
        upstream_chunk(Some("Hel"), None),
        upstream_chunk(Some("lo"), None),
        upstream_chunk(None, Some("stop")),
        usage_chunk,
        "[DONE]".to_owned(),
    ];
    let upstream = FakeUpstream::start(Reply::Sse { events }).await;
    let gateway = start(&upstream).await;

    let plain = post_stream(&gateway).await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.header("content-type"), Some("text/event-stream"));
    let data = plain.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks.len(), 3, "usage chunk dropped: {data:?}");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello");
    assert!(chunks
        .iter()
        .all(|c| c["model"] == "chat" && c.get("usage").is_none()));
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        upstream.received()[0].body["stream_options"]["include_usage"],
        true,
        "the gateway always asks for usage"
    );

    let with_usage = post_chat(&gateway, &json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x"}]})).await;
    let data = with_usage.sse_data();
    assert_eq!(data.len(), 5, "{data:?}");
    let usage: Value = serde_json::from_str(&data[3]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 11);
    assert_eq!(usage["choices"], json!([]));
}

#[tokio::test]
async fn stream_chunks_pass_through_byte_for_byte_but_for_the_model() {
    // Fields the gateway does not know, escapes and `"usage": null` on every
    // chunk (as OpenAI writes when usage is asked for): a re-encoding would
    // change each of them.
    let chunk = |content: &str, finish: &str| {
        format!(
            r#"{{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1731000000,"model":"upstream-model-0613","service_tier":"default","system_fingerprint":null,"choices":[{{"index":0,"delta":{{"content":"{content}"}},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        )
    };
    let events = vec![
        chunk("caf\\u00e9 ", "null"),
        chunk("\\\"ok\\\"", "null"),
        chunk("", "\"stop\""),
        r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1731000000,"model":"upstream-model-0613","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"completion_tokens_details":{"reasoning_tokens":0}}}"#.to_owned(),
        "[DONE]".to_owned(),
    ];
    let upstream = FakeUpstream::start(Reply::Sse {
        events: events.clone(),
    })
    .await;
    let gateway = start(&upstream).await;
    let response = post_chat(&gateway, &json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let expected: String = events
        .iter()
        .map(|data| {
            format!(
                "data: {}\n\n",
                data.replace(r#""upstream-model-0613""#, r#""chat""#)
            )
        })
        .collect();
    assert_eq!(response.text(), expected);

    // Without include_usage the usage chunk is dropped; the others still
    // pass through untouched.
    let response = post_stream(&gateway).await;
    let data = response.sse_data();
    assert_eq!(data.len(), 4, "{data:?}");
    assert_eq!(
        data[0],
        events[0].replace(r#""upstream-model-0613""#, r#""chat""#)
    );
    let text: String = data[..3]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "café \"ok\"");
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_the_stream_with_an_error() {
    let events = vec![
        upstream_chunk(Some("Hel"), None),
        json!({"error": {"message": "the model fell over", "type": "server_error"}}).to_string(),
    ];
    let upstream = FakeUpstream::start(Reply::Sse { events }).await;
    let gateway = start(&upstream).await;
    let response = post_stream(&gateway).await;
    assert_eq!(response.status, 200);
    let data = response.sse_data();
    assert_eq!(data.len(), 2, "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let error: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(error["error"]["type"], "upstream_error", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("the model fell over"), "{message}");
}

#[tokio::test]
async fn system_prompt_is_prepended_for_the_alias() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("Bonjour"))).await;
    let gateway = start(&upstream).await;
    let response = post_chat(
        &gateway,
        &json!({"model": "prompted", "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(response.status, 200);
    let messages = &upstream.received()[0].body["messages"];
    assert_eq!(
        messages,
        &json!([{"role": "system", "content": "Always answer in French."}, {"role": "user", "content": "Hello"}])
    );
}

#[tokio::test]
async fn missing_or_wrong_keys_are_401_and_never_reach_the_upstream() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("x"))).await;
    let gateway = start(&upstream).await;
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]});
    post(&gateway.url("/v1/chat/completions"), &[], &body)
        .await
        .assert_error(401, "auth_error");
    let wrong = post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", "Bearer sk-wrong-key-abcdefgh1234")],
        &body,
    )
    .await;
    let error = wrong.assert_error(401, "token_not_found_in_db");
    assert!(
        !error.to_string().contains("sk-wrong-key-abcdefgh1234"),
        "the full key is never echoed"
    );
    post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", "Basic Zm9vOmJhcg==")],
        &body,
    )
    .await
    .assert_error(401, "auth_error");
    send("GET", &gateway.url("/v1/models"), &[], "")
        .await
        .assert_error(401, "auth_error");
    send("GET", &gateway.url("/health"), &[], "")
        .await
        .assert_error(401, "auth_error");
    assert!(upstream.received().is_empty());
    // Liveness and readiness stay open for probes.
    assert_eq!(
        send("GET", &gateway.url("/health/liveliness"), &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        send("GET", &gateway.url("/health/readiness"), &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn bad_requests_get_400s_naming_the_field_and_the_server_keeps_serving() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("fine"))).await;
    let gateway = start(&upstream).await;
    let auth = bearer();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let cases: Vec<(&str, Option<&str>)> = vec![
        (
            r#"{"model": "chat", "messages": [{"role": "user", "content": "x"}"#,
            None,
        ),
        ("not json at all", None),
        ("", None),
        (
            r#"{"messages": [{"role": "user", "content": "x"}]}"#,
            Some("model"),
        ),
        (r#"{"model": "chat"}"#, Some("messages")),
        (r#"{"model": "chat", "messages": []}"#, Some("messages")),
        (
            r#"{"model": 42, "messages": [{"role": "user", "content": "x"}]}"#,
            Some("model"),
        ),
        (
            r#"{"model": "chat", "messages": [{"role": "wizard", "content": "x"}]}"#,
            Some("messages[0].role"),
        ),
        (
            r#"{"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": "warm"}"#,
            Some("temperature"),
        ),
        (
            r#"{"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}"#,
            Some("stream"),
        ),
        (
            r#"{"model": "chat", "messages": [{"role": "user", "content": "x"}], "fallbacks": 3}"#,
            Some("fallbacks"),
        ),
        (r#"["model", "chat"]"#, None),
    ];
    for (body, param) in cases {
        let response = send(
            "POST",
            &gateway.url("/v1/chat/completions"),
            &headers,
            body.to_owned(),
        )
        .await;
        let error = response.assert_error(400, "invalid_request_error");
        assert_eq!(
            error["error"]["param"].as_str(),
            param,
            "body {body}: {error}"
        );
        let good = post(
            &gateway.url("/v1/chat/completions"),
            &[("authorization", &auth)],
            &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
        assert_eq!(good.status, 200, "still serving after {body}");
    }
    let unknown = post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &auth)],
        &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let error = unknown.assert_error(404, "model_not_found");
    assert_eq!(error["error"]["param"], "model");
    send(
        "GET",
        &gateway.url("/v1/nothing-here"),
        &[("authorization", &auth)],
        "",
    )
    .await
    .assert_error(404, "not_found_error");
    send(
        "GET",
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &auth)],
        "",
    )
    .await
    .assert_error(405, "invalid_request_error");
    let too_big =
        json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(20_000)}]});
    post(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", &auth)],
        &too_big,
    )
    .await
    .assert_error(413, "invalid_request_error");
    assert_eq!(
        upstream.received().len(),
        12,
        "only the good requests went upstream"
    );
}

#[tokio::test]
async fn upstream_failures_become_openai_shaped_errors() {
    let upstream = FakeUpstream::start(Reply::json(
        500,
        json!({"error": {"message": "the model melted", "type": "server_error"}}),
    ))
    .await;
    // This test is about the error mapping, so no retries and no cooldowns.
    let no_retries = |base: &str| {
        format!(
            "{}router_settings: {{num_retries: 0, disable_cooldowns: true}}\n",
            config(base)
        )
    };
    let gateway = TestGateway::start(
        &no_retries(&upstream.api_base()),
        &[("UPSTREAM_KEY", UPSTREAM_KEY), ("MASTER", MASTER)],
    )
    .await;
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]});
    let failed = post_chat(&gateway, &body).await;
    let error = failed.assert_error(502, "upstream_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the model melted"),
        "{error}"
    );

    upstream.set_reply(Reply::Json {
        status: 429,
        body: json!({"error": {"message": "slow down"}}).to_string(),
        headers: vec![("retry-after", "7".to_owned())],
    });
    let limited = post_chat(&gateway, &body).await;
    limited.assert_error(429, "rate_limit_error");

    upstream.set_reply(Reply::json(401, json!({"error": {"message": "bad key"}})));
    let rejected = post_chat(&gateway, &body).await;
    let error = rejected.assert_error(502, "upstream_auth_error");
    assert!(!error.to_string().contains(UPSTREAM_KEY));

    upstream.set_reply(Reply::json(200, json!({"unexpected": true})));
    post_chat(&gateway, &body)
        .await
        .assert_error(502, "upstream_error");

    // A port nothing listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_base = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let dead = TestGateway::start(
        &no_retries(&dead_base),
        &[("UPSTREAM_KEY", UPSTREAM_KEY), ("MASTER", MASTER)],
    )
    .await;
    post(
        &dead.url("/v1/chat/completions"),
        &[("authorization", &bearer())],
        &body,
    )
    .await
    .assert_error(502, "upstream_error");
    let stream_body =
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    post(
        &dead.url("/v1/chat/completions"),
        &[("authorization", &bearer())],
        &stream_body,
    )
    .await
    .assert_error(502, "upstream_error");
}

#[tokio::test]
async fn a_stream_that_breaks_mid_way_ends_with_an_error_event_not_done() {
    let events = vec![
        upstream_chunk(Some("partial"), None),
        "{this is not json".to_owned(),
    ];
    let upstream = FakeUpstream::start(Reply::Sse { events }).await;
    let gateway = start(&upstream).await;
    let response = post_stream(&gateway).await;
    assert_eq!(response.status, 200);
    let data = response.sse_data();
    assert_eq!(data.len(), 2, "{data:?}");
    let error: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(error["error"]["type"], "upstream_error");
    assert!(!response.text().contains("[DONE]"));
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_makes_the_gateway_drop_the_upstream() {
    let gone = Arc::new(tokio::sync::Notify::new());
    let reply = Reply::EndlessSse {
        event: upstream_chunk(Some("tick "), None),
        gone: Arc::clone(&gone),
    };
    let upstream = FakeUpstream::start(reply).await;
    let gateway = start(&upstream).await;

    let mut socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let body =
        json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "x"}]})
            .to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {MASTER}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("tick") {
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

#[tokio::test]
async fn embeddings_pass_through() {
    let upstream_body = json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}});
    let upstream = FakeUpstream::start(Reply::json(200, upstream_body.clone())).await;
    let gateway = start(&upstream).await;
    let response = post(
        &gateway.url("/v1/embeddings"),
        &[("authorization", &bearer())],
        &json!({"model": "embed", "input": ["hello world"], "dimensions": 2}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let mut expected = upstream_body;
    expected["model"] = json!("embed");
    assert_eq!(response.json(), expected);
    let got = &upstream.received()[0];
    assert_eq!(got.path_and_query, "/v1/embeddings");
    assert_eq!(
        got.body,
        json!({"model": "text-embedding-3-small", "input": ["hello world"], "dimensions": 2})
    );
    post(
        &gateway.url("/v1/embeddings"),
        &[("authorization", &bearer())],
        &json!({"model": "embed", "input": []}),
    )
    .await
    .assert_error(400, "invalid_request_error");
}

#[tokio::test]
async fn models_lists_every_alias_once() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("x"))).await;
    let gateway = start(&upstream).await;
    let models = send(
        "GET",
        &gateway.url("/v1/models"),
        &[("authorization", &bearer())],
        "",
    )
    .await;
    let ids: Vec<String> = models.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["chat", "prompted", "embed"]);
    let one = send(
        "GET",
        &gateway.url("/v1/models/chat"),
        &[("authorization", &bearer())],
        "",
    )
    .await;
    assert_eq!(one.json()["id"], "chat");
    send(
        "GET",
        &gateway.url("/v1/models/nope"),
        &[("authorization", &bearer())],
        "",
    )
    .await
    .assert_error(404, "model_not_found");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let upstream = FakeUpstream::start(Reply::json(200, upstream_completion("x"))).await;
    let text = config(&upstream.api_base()).replace(
        "max_request_size_mb: 0.01",
        "max_request_size_mb: 0.01\n  header_read_timeout: 0.5",
    );
    let gateway =
        TestGateway::start(&text, &[("UPSTREAM_KEY", UPSTREAM_KEY), ("MASTER", MASTER)]).await;
    let mut socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut buffer)).await;
    assert!(
        read.is_ok(),
        "the gateway must close a connection whose headers never finish"
    );
}

#[tokio::test]
async fn shutdown_lets_a_stream_in_flight_finish() {
    let text = "model_list:\n  - model_name: slow\n    litellm_params: {model: mock/slow, mock_chunk_delay_ms: 30, mock_response: \"one two three four five six seven eight nine ten\"}\n";
    let mut gateway = TestGateway::start(text, &[]).await;
    let mut socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let body =
        json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "x"}]})
            .to_string();
    let request = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    socket.write_all(request.as_bytes()).await.unwrap();
    // The first chunk proves the request is in flight; then ask the server to stop.
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: ") {
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "stream ended early");
        seen.extend_from_slice(&buffer[..read]);
    }
    gateway.begin_shutdown();
    while !String::from_utf8_lossy(&seen).contains("data: [DONE]") {
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "the stream was cut by shutdown: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&seen);
    for word in ["one", "five", "ten"] {
        assert!(text.contains(word), "{text}");
    }
    drop(socket);
    let stopped = gateway.stopped.take().unwrap();
    assert!(
        tokio::time::timeout(PATIENCE, stopped).await.is_ok(),
        "serve returns after draining"
    );
}

#[tokio::test]
async fn a_litellm_provider_this_gateway_lacks_is_skipped_and_the_rest_serves() {
    let text = "model_list:\n  - model_name: claude-bedrock\n    litellm_params: {model: bedrock/anthropic.claude-3-sonnet, aws_region_name: us-east-1}\n  - model_name: local\n    litellm_params: {model: mock/local}\n";
    let gateway = TestGateway::start(text, &[]).await;
    let served = post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &json!({"model": "local", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.text());
    post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &json!({"model": "claude-bedrock", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .assert_error(404, "model_not_found");
    let models = send("GET", &gateway.url("/v1/models"), &[], "")
        .await
        .json();
    assert_eq!(models["data"].as_array().map(Vec::len), Some(1));
}
