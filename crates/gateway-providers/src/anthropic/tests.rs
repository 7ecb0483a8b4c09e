//! Fixture tests of the pure conversions (fixtures in `tests/fixtures/anthropic/`).

use super::convert::{self, OutputMode, RequestOptions, StreamTranslator};
use super::wire::MessagesResponse;
use crate::error::ErrorKind;
use crate::http::BufferedResponse;
use crate::sse::{SseDecoder, SseEvent};
use crate::translate::StreamTranslate;
use gateway_types::{ChatChunk, ChatRequest};
use serde_json::{json, Value};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/anthropic/",
            $name
        ))
    };
}

fn json(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => panic!("fixture is not JSON: {error}"),
    }
}

fn options(drop_params: bool) -> RequestOptions<'static> {
    RequestOptions {
        model: "claude-3-5-sonnet-20241022",
        default_max_tokens: 8192,
        drop_params,
        stream: false,
    }
}

fn chat_request(value: Value) -> ChatRequest {
    match serde_json::from_value(value) {
        Ok(request) => request,
        Err(error) => panic!("not a chat request: {error}"),
    }
}

fn events(text: &str) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    assert!(decoder.push(text.as_bytes(), &mut out).is_ok());
    assert!(decoder.finish(&mut out).is_ok());
    out
}

fn run_stream(text: &str) -> (Vec<ChatChunk>, Option<crate::ProviderError>) {
    let mut translator = StreamTranslator::new("fallback-model", 7, OutputMode::Plain);
    let mut chunks = Vec::new();
    for event in events(text) {
        match translator.on_event(event) {
            Ok(more) => chunks.extend(more),
            Err(error) => return (chunks, Some(error)),
        }
    }
    match translator.on_end() {
        Ok(more) => chunks.extend(more),
        Err(error) => return (chunks, Some(error)),
    }
    (chunks, None)
}

#[test]
fn anthropic_request_translates_system_tools_images_and_tool_results() {
    let request = chat_request(json(fixture!("chat_request.json")));
    let Ok(wire) = convert::request_to_wire(&request, &options(false)) else {
        panic!("translation failed");
    };
    let actual = serde_json::to_value(wire).unwrap_or_default();
    assert_eq!(actual, json(fixture!("messages_request.json")));
}

#[test]
fn anthropic_request_gets_max_tokens_from_the_model_default() {
    let request =
        chat_request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    let wire = convert::request_to_wire(&request, &options(false)).map(|wire| wire.max_tokens);
    assert_eq!(wire, Ok(8192));
    assert_eq!(convert::default_max_tokens("claude-3-opus-20240229"), 4096);
    assert_eq!(
        convert::default_max_tokens("claude-sonnet-4-20250514"),
        8192
    );
}

#[test]
fn anthropic_unsupported_parameter_fails_or_is_dropped() {
    let request = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 1}, "frequency_penalty": 0.5
    }));
    let error = convert::request_to_wire(&request, &options(false)).map(|_| ());
    let Err(error) = error else {
        panic!("expected an error")
    };
    assert_eq!(error.kind, ErrorKind::BadRequest);
    assert!(
        error.message.contains("`frequency_penalty`") || error.message.contains("`logit_bias`")
    );
    assert!(error.message.contains("anthropic"));
    let Ok(wire) = convert::request_to_wire(&request, &options(true)) else {
        panic!("drop_params should drop")
    };
    let value = serde_json::to_value(wire).unwrap_or_default();
    assert!(value.get("logit_bias").is_none() && value.get("frequency_penalty").is_none());
}

#[test]
fn anthropic_invalid_tool_arguments_are_a_bad_request() {
    let request = chat_request(json!({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
    ]}));
    let kind = convert::request_to_wire(&request, &options(false)).map_err(|error| error.kind);
    assert_eq!(kind.map(|_| ()), Err(ErrorKind::BadRequest));
}

#[test]
fn anthropic_response_with_tool_use_translates_content_tool_calls_and_cache_usage() {
    let Ok(wire) = serde_json::from_str::<MessagesResponse>(fixture!("response_tool_use.json"))
    else {
        panic!("fixture does not parse");
    };
    let response = convert::response_from_wire(wire, 1, OutputMode::Plain);
    let value = serde_json::to_value(&response).unwrap_or_default();
    assert_eq!(value["id"], "msg_01Aq9w938a90dw8q");
    assert_eq!(
        value["choices"][0]["message"]["content"],
        "I'll check the weather."
    );
    assert_eq!(value["choices"][0]["finish_reason"], "tool_calls");
    let call = &value["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        call["function"]["arguments"],
        r#"{"city":"Paris","unit":"c"}"#
    );
    let usage = &value["usage"];
    assert_eq!(usage["prompt_tokens"], 150);
    assert_eq!(usage["completion_tokens"], 40);
    assert_eq!(usage["total_tokens"], 190);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 30);
    assert_eq!(usage["cache_creation_input_tokens"], 20);
}

#[test]
fn anthropic_text_response_finishes_with_stop() {
    let Ok(wire) = serde_json::from_str::<MessagesResponse>(fixture!("response_text.json")) else {
        panic!("fixture does not parse");
    };
    let response = convert::response_from_wire(wire, 1, OutputMode::Plain);
    assert_eq!(
        response.choices[0].message.content.as_deref(),
        Some("Hi! My name is Claude.")
    );
    assert_eq!(response.choices[0].message.tool_calls, None);
    assert_eq!(response.choices[0].finish_reason.as_deref(), Some("stop"));
    for (stop_reason, expected) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ] {
        assert_eq!(convert::finish_reason(stop_reason), expected);
    }
}

#[test]
fn anthropic_stream_tool_call_arguments_arrive_in_order() {
    let (chunks, error) = run_stream(fixture!("stream_tool_use.sse"));
    assert_eq!(error, None);
    let first = &chunks[0];
    assert_eq!(first.id, "msg_014p7gG3wDgGV9EUtLvnow3U");
    assert_eq!(
        first.choices[0].delta.role,
        Some(gateway_types::Role::Assistant)
    );
    let text: String = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.delta.content.as_deref())
        .collect();
    assert_eq!(text, "Okay, let's check.");
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for delta in chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .flat_map(|choice| choice.delta.tool_calls.iter().flatten())
    {
        let index = delta.index as usize;
        if let Some(id) = &delta.id {
            assert_eq!(
                index,
                calls.len(),
                "tool index counts tool calls, not blocks"
            );
            let name = delta
                .function
                .as_ref()
                .and_then(|f| f.name.clone())
                .unwrap_or_default();
            calls.push((id.clone(), name, String::new()));
        }
        if let Some(arguments) = delta.function.as_ref().and_then(|f| f.arguments.as_deref()) {
            calls[index].2.push_str(arguments);
        }
    }
    assert_eq!(
        calls,
        vec![
            (
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
                "get_weather".to_owned(),
                r#"{"city": "San Francisco, CA", "unit": "fahrenheit"}"#.to_owned()
            ),
            (
                "toolu_02".to_owned(),
                "get_time".to_owned(),
                r#"{"tz":"PST"}"#.to_owned()
            ),
        ]
    );
    let finish: Vec<&str> = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, vec!["tool_calls"]);
    let Some(last) = chunks.last() else {
        panic!("no chunks")
    };
    assert!(last.choices.is_empty());
    let Some(usage) = &last.usage else {
        panic!("no usage chunk")
    };
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (572, 89));
    assert_eq!(usage.cached_tokens(), 100);
}

#[test]
fn anthropic_stream_error_event_is_a_terminal_error_of_its_kind() {
    let (chunks, error) = run_stream(fixture!("stream_error.sse"));
    assert_eq!(chunks.len(), 2);
    let Some(error) = error else {
        panic!("expected an error")
    };
    assert_eq!(error.kind, ErrorKind::Overloaded);
}

#[test]
fn anthropic_stream_without_message_stop_is_an_error() {
    let text = fixture!("stream_tool_use.sse");
    let cut = text.find("event: message_delta").unwrap_or(text.len());
    let (_, error) = run_stream(&text[..cut]);
    assert_eq!(error.map(|error| error.kind), Some(ErrorKind::Connect));
}

#[test]
fn anthropic_malformed_event_is_an_invalid_response() {
    let (_, error) = run_stream(
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":\n\n",
    );
    assert_eq!(
        error.map(|error| error.kind),
        Some(ErrorKind::InvalidResponse)
    );
}

fn error_response(status: u16, body: &str, retry_after: Option<&'static str>) -> BufferedResponse {
    let mut headers = http::HeaderMap::new();
    if let Some(value) = retry_after {
        headers.insert("retry-after", http::HeaderValue::from_static(value));
    }
    BufferedResponse {
        status,
        headers,
        body: bytes::Bytes::copy_from_slice(body.as_bytes()),
    }
}

#[test]
fn anthropic_errors_map_to_kinds_with_retry_after() {
    let overloaded = convert::error_from_wire(&error_response(
        529,
        fixture!("error_overloaded.json"),
        Some("2"),
    ));
    assert_eq!(overloaded.kind, ErrorKind::Overloaded);
    assert_eq!(
        overloaded.retry_after,
        Some(std::time::Duration::from_secs(2))
    );
    let limited = convert::error_from_wire(&error_response(
        429,
        fixture!("error_rate_limit.json"),
        Some("7"),
    ));
    assert_eq!(limited.kind, ErrorKind::RateLimited);
    assert_eq!(limited.retry_after, Some(std::time::Duration::from_secs(7)));
    let too_long = convert::error_from_wire(&error_response(
        400,
        fixture!("error_prompt_too_long.json"),
        None,
    ));
    assert_eq!(too_long.kind, ErrorKind::ContextWindowExceeded);
    let auth = convert::error_from_wire(&error_response(401, fixture!("error_auth.json"), None));
    assert_eq!(auth.kind, ErrorKind::Auth);
    let overloaded_500 = convert::error_from_wire(&error_response(
        500,
        fixture!("error_overloaded.json"),
        None,
    ));
    assert_eq!(overloaded_500.kind, ErrorKind::Overloaded);
}

#[test]
fn anthropic_json_mode_forces_a_tool_and_reads_its_input_as_text() {
    let request = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "Give me a city."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}
    }));
    assert!(convert::json_mode_schema(&request).is_some());
    let Ok(wire) = convert::request_to_wire(&request, &options(false)) else {
        panic!("translation failed");
    };
    let value = serde_json::to_value(wire).unwrap_or_default();
    assert_eq!(value["tools"][0]["name"], convert::JSON_TOOL);
    assert_eq!(
        value["tools"][0]["input_schema"]["properties"]["name"]["type"],
        "string"
    );
    assert_eq!(
        value["tool_choice"],
        json!({"type": "tool", "name": convert::JSON_TOOL})
    );
    assert!(value.get("response_format").is_none());

    let answer = json!({"id": "msg_1", "model": "m", "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1},
                        "content": [{"type": "tool_use", "id": "t", "name": convert::JSON_TOOL, "input": {"name": "Paris"}}]});
    let Ok(wire) = serde_json::from_value::<MessagesResponse>(answer) else {
        panic!("bad answer")
    };
    let response = convert::response_from_wire(wire, 1, OutputMode::JsonTool);
    assert_eq!(
        response.choices[0].message.content.as_deref(),
        Some(r#"{"name":"Paris"}"#)
    );
    assert_eq!(response.choices[0].message.tool_calls, None);
    assert_eq!(response.choices[0].finish_reason.as_deref(), Some("stop"));

    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"json_tool_call\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"name\\\": \"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let mut translator = StreamTranslator::new("m", 1, OutputMode::JsonTool);
    let mut chunks = Vec::new();
    for event in events(stream) {
        let Ok(more) = translator.on_event(event) else {
            panic!("translation failed")
        };
        chunks.extend(more);
    }
    let text: String = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.delta.content.as_deref())
        .collect();
    assert_eq!(text, r#"{"name": "Paris"}"#);
    assert!(chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .all(|choice| choice.delta.tool_calls.is_none()));
    let finish: Vec<&str> = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, vec!["stop"]);
}

#[test]
fn anthropic_json_mode_with_client_tools_is_unsupported_unless_dropped() {
    let request = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}]
    }));
    let error = convert::request_to_wire(&request, &options(false)).map(|_| ());
    assert!(matches!(error, Err(error) if error.message.contains("`response_format`")));
    let Ok(wire) = convert::request_to_wire(&request, &options(true)) else {
        panic!("drop failed")
    };
    assert_eq!(wire.tools.len(), 1);
    assert_eq!(wire.tools[0].name, "f");
}
