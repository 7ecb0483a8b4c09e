//! Tests of the Anthropic ingress conversions (fixtures in `tests/fixtures/anthropic/ingress_*`).

use super::*;
use crate::anthropic::convert::{self, RequestOptions};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/anthropic/",
            $name
        ))
    };
}

fn json_of(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => panic!("fixture is not JSON: {error}"),
    }
}

fn chunk(value: Value) -> ChatChunk {
    match serde_json::from_value(value) {
        Ok(chunk) => chunk,
        Err(error) => panic!("not a chunk: {error}"),
    }
}

#[test]
fn anthropic_ingress_request_becomes_a_chat_request() {
    let Ok(request) = messages_to_chat_request(&json_of(fixture!("ingress_request.json"))) else {
        panic!("conversion failed");
    };
    let actual = serde_json::to_value(&request).unwrap_or_default();
    assert_eq!(actual, json_of(fixture!("ingress_chat_request.json")));
}

#[test]
fn anthropic_ingress_round_trips_through_the_egress_adapter() {
    let mut body = json_of(fixture!("ingress_request.json"));
    let Ok(request) = messages_to_chat_request(&body) else {
        panic!("conversion failed");
    };
    let options = RequestOptions {
        model: "claude-sonnet",
        default_max_tokens: 8192,
        drop_params: false,
        stream: true,
    };
    let Ok(wire) = convert::request_to_wire(&request, &options) else {
        panic!("egress failed");
    };
    let egress = serde_json::to_value(wire).unwrap_or_default();
    // Thinking blocks are dropped, and plain user text becomes a text block.
    body["messages"][1]["content"]
        .as_array_mut()
        .map(|blocks| blocks.remove(0));
    for key in [
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "metadata",
        "top_k",
        "max_tokens",
        "stream",
    ] {
        assert_eq!(egress[key], body[key], "{key}");
    }
    assert_eq!(egress["messages"][0], body["messages"][0]);
    assert_eq!(egress["messages"][1], body["messages"][1]);
    assert_eq!(
        egress["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"})
    );
}

#[test]
fn anthropic_ingress_rejects_what_it_cannot_translate() {
    let server_tool = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                             "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    assert!(messages_to_chat_request(&server_tool).is_err());
    let no_messages = json!({"model": "m", "max_tokens": 5});
    assert!(messages_to_chat_request(&no_messages).is_err());
    let bad_role = json!({"model": "m", "messages": [{"role": "system", "content": "x"}]});
    assert!(messages_to_chat_request(&bad_role).is_err());
}

#[test]
fn anthropic_ingress_response_has_blocks_stop_reason_and_cache_usage() {
    let response: ChatResponse = match serde_json::from_value(json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "On it.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37, "prompt_tokens_details": {"cached_tokens": 10}}
    })) {
        Ok(response) => response,
        Err(error) => panic!("bad response: {error}"),
    };
    assert_eq!(
        chat_response_to_messages(&response, "claude-sonnet"),
        json!({
            "id": "msg_9", "type": "message", "role": "assistant", "model": "claude-sonnet",
            "content": [
                {"type": "text", "text": "On it."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 10}
        })
    );
}

#[test]
fn anthropic_ingress_stream_emits_the_event_sequence_with_tool_blocks() {
    let tool = |value: Value| {
        chunk(
            json!({"id": "chatcmpl-abc", "choices": [{"index": 0, "delta": {"tool_calls": [value]}}]}),
        )
    };
    let chunks = vec![
        chunk(
            json!({"id": "chatcmpl-abc", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-abc", "choices": [{"index": 0, "delta": {"content": "Let me"}}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-abc", "choices": [{"index": 0, "delta": {"content": " check."}}]}),
        ),
        tool(
            json!({"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}),
        ),
        tool(json!({"index": 0, "function": {"arguments": "{\"city\":"}})),
        tool(json!({"index": 0, "function": {"arguments": "\"Paris\"}"}})),
        tool(
            json!({"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}),
        ),
        chunk(
            json!({"id": "chatcmpl-abc", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-abc", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 15,
                     "total_tokens": 45, "prompt_tokens_details": {"cached_tokens": 10}}}),
        ),
    ];
    let mut encoder = MessagesStreamEncoder::new("claude-sonnet");
    let mut events: Vec<MessagesEvent> = chunks
        .iter()
        .flat_map(|chunk| encoder.push(chunk))
        .collect();
    events.extend(encoder.finish());
    let actual: Vec<Value> = events
        .iter()
        .map(|event| json!([event.event, event.data]))
        .collect();
    assert_eq!(
        Value::Array(actual),
        json_of(fixture!("ingress_events.json"))
    );
    assert!(events[0]
        .to_sse()
        .starts_with("event: message_start\ndata: {"));
    assert!(encoder.finish().is_empty(), "finish is idempotent");
}

#[test]
fn anthropic_ingress_error_event_names_the_error_type() {
    let error = ProviderError::new(ErrorKind::Overloaded, "busy");
    assert_eq!(
        error_event(&error).data,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    );
}

#[test]
fn anthropic_ingress_token_estimate_grows_with_the_input() {
    let small = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let large = json!({"model": "m", "system": "x".repeat(400), "messages": [{"role": "user", "content": "hi"}]});
    let small_count = estimate_input_tokens(&small);
    assert!((1..10).contains(&small_count), "{small_count}");
    assert!(estimate_input_tokens(&large) >= small_count + 100);
}
