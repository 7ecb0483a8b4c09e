//! One fake upstream per adapter: the same answers, each in the upstream's
//! own protocol, and checks of what the upstream received.

use crate::support::{Recorded, Scripted};
use crate::{assert_header, spec, sse, TOOL_ARGUMENTS};
use gateway_providers::ProviderSpec;
use serde_json::{json, Value};

mod more;

/// An adapter under test and a fake of its upstream.
pub trait Case {
    /// The adapter's name in failure messages.
    fn name(&self) -> &'static str;
    /// The deployment pointing at the fake.
    fn spec(&self, base_url: &str) -> ProviderSpec;
    /// A non-stream answer "Hello world", finish stop, usage 5 + 2.
    fn text(&self) -> Scripted;
    /// The same answer streamed in pieces, with usage.
    fn text_stream(&self) -> Scripted;
    /// A streamed tool call `get_weather(TOOL_ARGUMENTS)`.
    fn tool_stream(&self) -> Scripted;
    /// An error answer in the upstream's format.
    fn error(&self, status: u16) -> Scripted;
    /// A stream with one good event, then one that cannot be read.
    fn malformed_stream(&self) -> Scripted;
    /// A stream with one good event, then a broken connection.
    fn cut_stream(&self) -> Scripted;
    /// Checks the path, headers and body the upstream received.
    fn check_request(&self, request: &Recorded, stream: bool);
    /// Checks that the tool-call history arrived in the upstream's format.
    fn check_tool_history(&self, request: &Recorded);
}

/// Every adapter.
pub fn all_cases() -> Vec<Box<dyn Case>> {
    let mut cases: Vec<Box<dyn Case>> =
        vec![Box::new(OpenAi), Box::new(Anthropic), Box::new(Ollama)];
    cases.extend(more::cases());
    cases
}

const SSE: &str = "text/event-stream";

/// OpenAI chat-completions chunks, shared with Azure.
pub fn openai_chunk(delta: Value, finish_reason: Value) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
    .to_string()
}

/// OpenAI's final usage chunk.
pub fn openai_usage_chunk() -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
           "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
    .to_string()
}

/// The OpenAI-format answers, shared with Azure.
pub struct OpenAiFormat;

impl OpenAiFormat {
    pub fn text() -> Scripted {
        Scripted::json(
            200,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world"}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
            .to_string(),
        )
    }

    pub fn text_stream() -> Scripted {
        Scripted::stream(
            SSE,
            sse(&[
                (
                    None,
                    openai_chunk(
                        json!({"role": "assistant", "content": "Hello"}),
                        Value::Null,
                    ),
                ),
                (
                    None,
                    openai_chunk(json!({"content": " world"}), Value::Null),
                ),
                (None, openai_chunk(json!({}), json!("stop"))),
                (None, openai_usage_chunk()),
                (None, "[DONE]".to_owned()),
            ]),
        )
    }

    pub fn tool_stream() -> Scripted {
        let call = |value: Value| openai_chunk(json!({"tool_calls": [value]}), Value::Null);
        Scripted::stream(
            SSE,
            sse(&[
                (
                    None,
                    openai_chunk(json!({"role": "assistant", "content": null}), Value::Null),
                ),
                (
                    None,
                    call(
                        json!({"index": 0, "id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": ""}}),
                    ),
                ),
                (
                    None,
                    call(json!({"index": 0, "function": {"arguments": "{\"city\":"}})),
                ),
                (
                    None,
                    call(json!({"index": 0, "function": {"arguments": "\"Paris\","}})),
                ),
                (
                    None,
                    call(json!({"index": 0, "function": {"arguments": "\"unit\":\"c\"}"}})),
                ),
                (None, openai_chunk(json!({}), json!("tool_calls"))),
                (None, openai_usage_chunk()),
                (None, "[DONE]".to_owned()),
            ]),
        )
    }

    pub fn error(status: u16) -> Scripted {
        Scripted::json(
            status,
            json!({"error": {"message": format!("failure {status}"), "type": "server_error", "code": null}}).to_string(),
        )
    }

    pub fn malformed_stream() -> Scripted {
        let mut pieces = sse(&[(
            None,
            openai_chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
        )]);
        pieces.push("data: {\"id\": \"chatcmpl-1\", \"choices\": [{\n\n".to_owned());
        Scripted::stream(SSE, pieces)
    }

    pub fn cut_stream() -> Scripted {
        Scripted::stream(
            SSE,
            sse(&[(
                None,
                openai_chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null),
            )]),
        )
        .then_abort()
    }

    pub fn check_tool_history(request: &Recorded, case: &str) {
        let messages = &request.body["messages"];
        assert_eq!(messages[1]["tool_calls"][0]["id"], "call_1", "{case}");
        assert_eq!(messages[2]["tool_call_id"], "call_1", "{case}");
        assert_eq!(
            request.body["tools"][0]["function"]["name"], "get_weather",
            "{case}"
        );
    }
}

struct OpenAi;

impl Case for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }
    fn spec(&self, base_url: &str) -> ProviderSpec {
        spec("openai", "gpt-4o-mini", format!("{base_url}/v1"))
    }
    fn text(&self) -> Scripted {
        OpenAiFormat::text()
    }
    fn text_stream(&self) -> Scripted {
        OpenAiFormat::text_stream()
    }
    fn tool_stream(&self) -> Scripted {
        OpenAiFormat::tool_stream()
    }
    fn error(&self, status: u16) -> Scripted {
        OpenAiFormat::error(status)
    }
    fn malformed_stream(&self) -> Scripted {
        OpenAiFormat::malformed_stream()
    }
    fn cut_stream(&self) -> Scripted {
        OpenAiFormat::cut_stream()
    }
    fn check_request(&self, request: &Recorded, stream: bool) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.uri, "/v1/chat/completions");
        assert_header(request, "authorization", "Bearer test-key", self.name());
        assert_eq!(request.body["model"], "gpt-4o-mini");
        if stream {
            assert_eq!(request.body["stream"], true);
            assert_eq!(request.body["stream_options"]["include_usage"], true);
        }
    }
    fn check_tool_history(&self, request: &Recorded) {
        OpenAiFormat::check_tool_history(request, self.name());
    }
}

struct Anthropic;

fn anthropic_start() -> (Option<&'static str>, String) {
    (
        Some("message_start"),
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
               "model": "claude-3-5-haiku-20241022", "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": 5, "output_tokens": 1}}})
        .to_string(),
    )
}

fn anthropic_event(name: &'static str, data: Value) -> (Option<&'static str>, String) {
    (Some(name), data.to_string())
}

fn anthropic_text_delta(text: &str) -> (Option<&'static str>, String) {
    anthropic_event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
    )
}

fn anthropic_end(stop_reason: &str) -> Vec<(Option<&'static str>, String)> {
    vec![
        anthropic_event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 2}}),
        ),
        anthropic_event("message_stop", json!({"type": "message_stop"})),
    ]
}

impl Case for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }
    fn spec(&self, base_url: &str) -> ProviderSpec {
        let mut spec = spec(
            "anthropic",
            "claude-3-5-haiku-20241022",
            base_url.to_owned(),
        );
        spec.headers = vec![(
            "anthropic-beta".to_owned(),
            "prompt-caching-2024-07-31".to_owned(),
        )];
        spec
    }
    fn text(&self) -> Scripted {
        Scripted::json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
                   "content": [{"type": "text", "text": "Hello world"}], "stop_reason": "end_turn", "stop_sequence": null,
                   "usage": {"input_tokens": 5, "output_tokens": 2}})
            .to_string(),
        )
    }
    fn text_stream(&self) -> Scripted {
        let mut events = vec![
            anthropic_start(),
            anthropic_event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            anthropic_event("ping", json!({"type": "ping"})),
            anthropic_text_delta("Hello"),
            anthropic_text_delta(" world"),
            anthropic_event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
        ];
        events.extend(anthropic_end("end_turn"));
        Scripted::stream(SSE, sse(&events))
    }
    fn tool_stream(&self) -> Scripted {
        let json_delta = |partial: &str| {
            anthropic_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": partial}}),
            )
        };
        let mut events = vec![
            anthropic_start(),
            anthropic_event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            ),
            json_delta(""),
            json_delta("{\"city\":"),
            json_delta("\"Paris\","),
            json_delta("\"unit\":\"c\"}"),
            anthropic_event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
        ];
        events.extend(anthropic_end("tool_use"));
        Scripted::stream(SSE, sse(&events))
    }
    fn error(&self, status: u16) -> Scripted {
        let kind = match status {
            429 => "rate_limit_error",
            529 => "overloaded_error",
            400 => "invalid_request_error",
            _ => "api_error",
        };
        Scripted::json(
            status,
            json!({"type": "error", "error": {"type": kind, "message": format!("failure {status}")}}).to_string(),
        )
    }
    fn malformed_stream(&self) -> Scripted {
        let mut pieces = sse(&[anthropic_start()]);
        pieces.push(
            "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\"\n\n"
                .to_owned(),
        );
        Scripted::stream(SSE, pieces)
    }
    fn cut_stream(&self) -> Scripted {
        Scripted::stream(SSE, sse(&[anthropic_start()])).then_abort()
    }
    fn check_request(&self, request: &Recorded, stream: bool) {
        let name = self.name();
        assert_eq!(request.uri, "/v1/messages");
        assert_header(request, "x-api-key", "test-key", name);
        assert_header(request, "anthropic-version", "2023-06-01", name);
        assert_header(request, "anthropic-beta", "prompt-caching-2024-07-31", name);
        assert_eq!(request.header("authorization"), None, "{name}");
        assert_eq!(request.body["model"], "claude-3-5-haiku-20241022");
        assert_eq!(request.body["max_tokens"], 50);
        assert_eq!(
            request.body["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}])
        );
        assert_eq!(
            request.body.get("stream").cloned(),
            stream.then_some(Value::Bool(true))
        );
    }
    fn check_tool_history(&self, request: &Recorded) {
        let messages = &request.body["messages"];
        assert_eq!(
            messages[1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
        );
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(
            messages[2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                   {"type": "text", "text": "Check again in celsius."}])
        );
        assert_eq!(request.body["tools"][0]["name"], "get_weather");
        assert!(request.body["tools"][0]["input_schema"].is_object());
    }
}

struct Ollama;

const NDJSON: &str = "application/x-ndjson";

fn ollama_line(value: Value) -> String {
    format!("{value}\n")
}

fn ollama_content(text: &str) -> String {
    ollama_line(
        json!({"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z",
                       "message": {"role": "assistant", "content": text}, "done": false}),
    )
}

fn ollama_done() -> String {
    ollama_line(
        json!({"model": "llama3.2", "created_at": "2024-01-01T00:00:01Z",
                       "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
                       "prompt_eval_count": 5, "eval_count": 2}),
    )
}

impl Case for Ollama {
    fn name(&self) -> &'static str {
        "ollama"
    }
    fn spec(&self, base_url: &str) -> ProviderSpec {
        let mut spec = spec("ollama_chat", "llama3.2", base_url.to_owned());
        spec.api_key = None;
        spec
    }
    fn text(&self) -> Scripted {
        Scripted::json(
            200,
            json!({"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z",
                   "message": {"role": "assistant", "content": "Hello world"}, "done": true, "done_reason": "stop",
                   "prompt_eval_count": 5, "eval_count": 2})
            .to_string(),
        )
    }
    fn text_stream(&self) -> Scripted {
        Scripted::stream(
            NDJSON,
            vec![
                ollama_content("Hello"),
                ollama_content(" world"),
                ollama_done(),
            ],
        )
    }
    fn tool_stream(&self) -> Scripted {
        let arguments: Value = serde_json::from_str(TOOL_ARGUMENTS).unwrap_or_default();
        let call = ollama_line(
            json!({"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "",
                        "tool_calls": [{"function": {"name": "get_weather", "arguments": arguments}}]},
            "done": false}),
        );
        Scripted::stream(NDJSON, vec![call, ollama_done()])
    }
    fn error(&self, status: u16) -> Scripted {
        Scripted::json(
            status,
            json!({"error": format!("failure {status}")}).to_string(),
        )
    }
    fn malformed_stream(&self) -> Scripted {
        Scripted::stream(
            NDJSON,
            vec![
                ollama_content("Hel"),
                "{\"model\": \"llama3.2\", \"mess\n".to_owned(),
            ],
        )
    }
    fn cut_stream(&self) -> Scripted {
        Scripted::stream(NDJSON, vec![ollama_content("Hel")]).then_abort()
    }
    fn check_request(&self, request: &Recorded, stream: bool) {
        assert_eq!(request.uri, "/api/chat");
        assert_eq!(request.body["model"], "llama3.2");
        assert_eq!(request.body["stream"], stream);
        assert_eq!(request.body["options"]["num_predict"], 50);
        assert_eq!(
            request.body["messages"],
            json!([{"role": "user", "content": "Say hello"}])
        );
    }
    fn check_tool_history(&self, request: &Recorded) {
        let messages = &request.body["messages"];
        assert_eq!(
            messages[1]["tool_calls"],
            json!([{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
        );
        assert_eq!(
            messages[2],
            json!({"role": "tool", "content": "18C", "tool_name": "get_weather"})
        );
        assert_eq!(request.body["tools"][0]["function"]["name"], "get_weather");
    }
}
