//! The OpenAI side of the gateway against every translating provider: an
//! OpenAI client talks to the real server, which talks to a fake Anthropic,
//! Ollama, Gemini or Azure upstream in that upstream's own protocol. Each
//! test asserts what the client got and what the upstream received.

#![allow(clippy::unwrap_used)]

use gateway_tests::protocols::{self, TOOL_ARGUMENTS};
use gateway_tests::*;
use serde_json::{json, Value};

const UPSTREAM_KEY: &str = "sk-upstream-secret-9876543210";

/// One kind of upstream: how to configure it and what it must receive.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    /// `litellm_params` besides `api_base` and `api_key`.
    params: &'static str,
    /// Whether the deployment has a key.
    keyed: bool,
    /// The header carrying the key upstream, with its value's prefix.
    auth: Option<(&'static str, &'static str)>,
    path: &'static str,
    stream_path: &'static str,
}

const ANTHROPIC: Kind = Kind {
    name: "anthropic",
    params: "model: anthropic/claude-3-5-haiku-20241022",
    keyed: true,
    auth: Some(("x-api-key", "")),
    path: "/v1/messages",
    stream_path: "/v1/messages",
};

const OLLAMA: Kind = Kind {
    name: "ollama",
    params: "model: ollama_chat/llama3.2",
    keyed: false,
    auth: None,
    path: "/api/chat",
    stream_path: "/api/chat",
};

const GEMINI: Kind = Kind {
    name: "gemini",
    params: "model: gemini/gemini-2.0-flash",
    keyed: true,
    auth: Some(("x-goog-api-key", "")),
    path: "/v1beta/models/gemini-2.0-flash:generateContent",
    stream_path: "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
};

const AZURE: Kind = Kind {
    name: "azure",
    params: "model: azure/my-gpt4o\n      api_version: \"2024-06-01\"",
    keyed: true,
    auth: Some(("api-key", "")),
    path: "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-06-01",
    stream_path: "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-06-01",
};

const KINDS: [Kind; 4] = [ANTHROPIC, OLLAMA, GEMINI, AZURE];

async fn start(kind: Kind, upstream: &FakeUpstream) -> TestGateway {
    let key = if kind.keyed {
        "\n      api_key: os.environ/UPSTREAM_KEY"
    } else {
        ""
    };
    let config = format!(
        "model_list:\n  - model_name: {name}-alias\n    litellm_params:\n      {params}\n      api_base: {base}{key}\n",
        name = kind.name,
        params = kind.params,
        base = upstream.root(),
    );
    TestGateway::start(&config, &[("UPSTREAM_KEY", UPSTREAM_KEY)]).await
}

fn text_reply(kind: Kind, stream: bool) -> Reply {
    let pieces = ["Hello", " world"];
    match (kind.name, stream) {
        ("anthropic", false) => protocols::anthropic::message("Hello world"),
        ("anthropic", true) => protocols::anthropic::text_stream(&pieces),
        ("ollama", false) => protocols::ollama::message("Hello world"),
        ("ollama", true) => protocols::ollama::text_stream(&pieces),
        ("gemini", false) => protocols::gemini::message("Hello world"),
        ("gemini", true) => protocols::gemini::text_stream(&pieces),
        (_, false) => Reply::json(200, upstream_completion("Hello world")),
        (_, true) => protocols::openai::text_stream(&pieces),
    }
}

fn tool_reply(kind: Kind) -> Reply {
    match kind.name {
        "anthropic" => protocols::anthropic::tool_stream(),
        "ollama" => protocols::ollama::tool_stream(),
        "gemini" => protocols::gemini::tool_stream(),
        _ => protocols::openai::tool_stream(),
    }
}

fn chat_body(kind: Kind, stream: bool) -> Value {
    json!({
        "model": format!("{}-alias", kind.name),
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
        "max_tokens": 50,
        "stream": stream,
    })
}

/// Checks the upstream call: path, credential header, and the body fields
/// each protocol spells its own way.
fn check_received(kind: Kind, upstream: &FakeUpstream, stream: bool) -> Value {
    let received = upstream.received();
    assert_eq!(received.len(), 1, "{}", kind.name);
    let got = &received[0];
    let expected_path = if stream { kind.stream_path } else { kind.path };
    assert_eq!(got.path_and_query, expected_path, "{}", kind.name);
    match kind.auth {
        Some((header, prefix)) => assert_eq!(
            got.headers.get(header).map(String::as_str),
            Some(format!("{prefix}{UPSTREAM_KEY}").as_str()),
            "{}",
            kind.name
        ),
        None => {
            for header in ["authorization", "x-api-key", "api-key", "x-goog-api-key"] {
                assert!(!got.headers.contains_key(header), "{}: {header}", kind.name);
            }
        }
    }
    if kind.name != "azure" {
        assert!(
            !got.headers.contains_key("authorization"),
            "{}: no bearer token besides its own header",
            kind.name
        );
    }
    let body = &got.body;
    match kind.name {
        "anthropic" => {
            assert_eq!(body["model"], "claude-3-5-haiku-20241022");
            assert_eq!(
                body["system"],
                json!([{"type": "text", "text": "Be brief."}])
            );
            assert_eq!(
                body["messages"],
                json!([{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}])
            );
            assert_eq!(body["max_tokens"], 50);
            assert_eq!(body.get("stream").cloned(), stream.then_some(json!(true)));
        }
        "ollama" => {
            assert_eq!(body["model"], "llama3.2");
            assert_eq!(body["stream"], stream);
            assert_eq!(body["options"]["num_predict"], 50);
            assert_eq!(
                body["messages"][1],
                json!({"role": "user", "content": "Say hello"})
            );
        }
        "gemini" => {
            assert_eq!(
                body["contents"],
                json!([{"role": "user", "parts": [{"text": "Say hello"}]}])
            );
            assert_eq!(
                body["systemInstruction"]["parts"][0]["text"], "Be brief.",
                "{body}"
            );
            assert_eq!(body["generationConfig"]["maxOutputTokens"], 50);
        }
        _ => {
            assert_eq!(body["messages"][1]["content"], "Say hello");
            assert_eq!(body["max_tokens"], 50);
            if stream {
                assert_eq!(body["stream_options"]["include_usage"], true);
            }
        }
    }
    body.clone()
}

/// The text of a chat SSE body, and its finish reason; asserts it ends with `[DONE]`.
fn streamed_text(response: &TestResponse) -> (String, Option<String>, Value) {
    let data = response.sse_data();
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        response.text()
    );
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|chunk| serde_json::from_str(chunk).unwrap())
        .collect();
    let mut text = String::new();
    let mut finish = None;
    let mut arguments = json!(null);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        for choice in chunk["choices"].as_array().unwrap() {
            if let Some(piece) = choice["delta"]["content"].as_str() {
                text.push_str(piece);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = Some(reason.to_owned());
            }
            if let Some(calls) = choice["delta"]["tool_calls"].as_array() {
                for call in calls {
                    if call["function"]["name"].is_string() {
                        arguments = json!({"id": call["id"], "name": call["function"]["name"], "arguments": ""});
                    }
                    if let Some(piece) = call["function"]["arguments"].as_str() {
                        let so_far = arguments["arguments"].as_str().unwrap_or("").to_owned();
                        arguments["arguments"] = json!(so_far + piece);
                    }
                }
            }
        }
    }
    (text, finish, arguments)
}

#[tokio::test]
async fn openai_clients_get_translated_answers_from_every_provider() {
    for kind in KINDS {
        let upstream = FakeUpstream::start(text_reply(kind, false)).await;
        let gateway = start(kind, &upstream).await;
        let response = post(
            &gateway.url("/v1/chat/completions"),
            &[],
            &chat_body(kind, false),
        )
        .await;
        assert_eq!(response.status, 200, "{}: {}", kind.name, response.text());
        let body = response.json();
        assert_eq!(body["object"], "chat.completion", "{}", kind.name);
        assert_eq!(body["model"], format!("{}-alias", kind.name));
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello world");
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{}", kind.name);
        assert!(
            body["usage"]["total_tokens"].as_u64().unwrap() > 0,
            "{body}"
        );
        assert_eq!(
            response.header("x-litellm-model-api-base"),
            Some(upstream.root().as_str()),
            "{}",
            kind.name
        );
        check_received(kind, &upstream, false);
    }
}

#[tokio::test]
async fn openai_clients_stream_text_from_every_provider() {
    for kind in KINDS {
        let upstream = FakeUpstream::start(text_reply(kind, true)).await;
        let gateway = start(kind, &upstream).await;
        let mut body = chat_body(kind, true);
        body["stream_options"] = json!({"include_usage": true});
        let response = post(&gateway.url("/v1/chat/completions"), &[], &body).await;
        assert_eq!(response.status, 200, "{}: {}", kind.name, response.text());
        assert_eq!(response.header("content-type"), Some("text/event-stream"));
        let (text, finish, _) = streamed_text(&response);
        assert_eq!(text, "Hello world", "{}", kind.name);
        assert_eq!(finish.as_deref(), Some("stop"), "{}", kind.name);
        let data = response.sse_data();
        let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
        assert!(
            usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{}: the usage chunk comes last: {usage}",
            kind.name
        );
        check_received(kind, &upstream, true);
    }
}

#[tokio::test]
async fn openai_clients_get_streamed_tool_call_arguments_byte_exact_from_every_provider() {
    for kind in KINDS {
        let upstream = FakeUpstream::start(tool_reply(kind)).await;
        let gateway = start(kind, &upstream).await;
        let mut body = chat_body(kind, true);
        body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}}]);
        let response = post(&gateway.url("/v1/chat/completions"), &[], &body).await;
        assert_eq!(response.status, 200, "{}: {}", kind.name, response.text());
        let (text, finish, call) = streamed_text(&response);
        assert_eq!(text, "", "{}", kind.name);
        assert_eq!(finish.as_deref(), Some("tool_calls"), "{}", kind.name);
        assert_eq!(call["name"], "get_weather", "{}", kind.name);
        assert!(
            call["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{call}"
        );
        assert_eq!(call["arguments"], TOOL_ARGUMENTS, "{}", kind.name);

        let received = check_received(kind, &upstream, true);
        let tool_name = match kind.name {
            "anthropic" => {
                assert_eq!(
                    received["tools"][0]["input_schema"]["required"],
                    json!(["city"])
                );
                &received["tools"][0]["name"]
            }
            "gemini" => &received["tools"][0]["functionDeclarations"][0]["name"],
            _ => &received["tools"][0]["function"]["name"],
        };
        assert_eq!(tool_name, "get_weather", "{}: {received}", kind.name);
    }
}
