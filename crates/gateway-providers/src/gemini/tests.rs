//! Fixture tests of the pure conversions (fixtures in `tests/fixtures/gemini/`).

use super::convert::{self, StreamTranslator};
use crate::error::ErrorKind;
use crate::http::BufferedResponse;
use crate::sse::SseDecoder;
use crate::translate::{CallIds, ResponseMeta, StreamTranslate};
use gateway_types::{ChatChunk, ChatRequest, ChatResponse};
use serde_json::{json, Value};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gemini/",
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

fn chat_request(value: Value) -> ChatRequest {
    match serde_json::from_value(value) {
        Ok(request) => request,
        Err(error) => panic!("not a chat request: {error}"),
    }
}

fn respond(text: &str) -> Result<ChatResponse, crate::ProviderError> {
    let Ok(wire) = serde_json::from_str(text) else {
        panic!("fixture does not parse");
    };
    convert::response_from_wire(
        wire,
        &mut CallIds::starting_at(0),
        meta("chatcmpl-x", "gemini-2.0-flash"),
    )
}

fn meta(id: &str, model: &str) -> ResponseMeta {
    ResponseMeta {
        id: id.to_owned(),
        model: model.to_owned(),
        created: 7,
    }
}

fn run_stream(text: &str) -> (Vec<ChatChunk>, Option<crate::ProviderError>) {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    assert!(decoder.push(text.as_bytes(), &mut events).is_ok());
    assert!(decoder.finish(&mut events).is_ok());
    let mut translator = StreamTranslator::new(meta("chatcmpl-1", "m"), CallIds::starting_at(0));
    let mut chunks = Vec::new();
    for event in events {
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
fn gemini_request_translates_roles_config_tools_and_images() {
    let request = chat_request(json(fixture!("chat_request.json")));
    let Ok(wire) = convert::request_to_wire(&request, false) else {
        panic!("translation failed");
    };
    assert_eq!(
        serde_json::to_value(wire).unwrap_or_default(),
        json(fixture!("generate_content_request.json"))
    );
}

#[test]
fn gemini_unknown_or_unsupported_parameters_fail_or_are_dropped() {
    let request = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 1}, "mystery": 1
    }));
    let Err(error) = convert::request_to_wire(&request, false) else {
        panic!("expected an error");
    };
    assert!(
        error
            .message
            .contains("gemini does not support parameter `logit_bias`"),
        "{}",
        error.message
    );
    let Ok(wire) = convert::request_to_wire(&request, true) else {
        panic!("drop_params should drop");
    };
    assert_eq!(
        serde_json::to_value(wire).unwrap_or_default(),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    );
}

#[test]
fn gemini_response_with_function_call_gets_an_id_usage_and_reasoning() {
    let Ok(response) = respond(fixture!("response_function_call.json")) else {
        panic!("translation failed");
    };
    let value = serde_json::to_value(&response).unwrap_or_default();
    assert_eq!(value["id"], "chatcmpl-abc123");
    assert_eq!(value["model"], "gemini-2.0-flash");
    let choice = &value["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Checking.");
    assert_eq!(choice["message"]["reasoning_content"], "Let me look.");
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_0");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris","unit":"c"}"#
    );
    let usage = &value["usage"];
    assert_eq!(usage["prompt_tokens"], 120);
    assert_eq!(usage["completion_tokens"], 30);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 100);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 10);
}

#[test]
fn gemini_finish_reasons_map() {
    let response = respond(fixture!("response_max_tokens.json"));
    assert_eq!(
        response.map(|r| r.choices[0].finish_reason.clone()),
        Ok(Some("length".to_owned()))
    );
    for (reason, expected) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
    ] {
        assert_eq!(convert::finish_reason(reason), expected);
    }
}

#[test]
fn gemini_safety_blocks_are_content_filtered() {
    let blocked = respond(fixture!("response_prompt_blocked.json")).map_err(|error| error.kind);
    assert_eq!(blocked.map(|_| ()), Err(ErrorKind::ContentFiltered));
    let stopped = respond(fixture!("response_safety_finish.json")).map_err(|error| error.kind);
    assert_eq!(stopped.map(|_| ()), Err(ErrorKind::ContentFiltered));
    let (_, error) = run_stream(fixture!("stream_safety.sse"));
    assert_eq!(
        error.map(|error| error.kind),
        Some(ErrorKind::ContentFiltered)
    );
}

#[test]
fn gemini_stream_translates_text_function_call_and_final_usage() {
    let (chunks, error) = run_stream(fixture!("stream.sse"));
    assert_eq!(error, None);
    assert_eq!(
        chunks[0].choices[0].delta.role,
        Some(gateway_types::Role::Assistant)
    );
    let text: String = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.delta.content.as_deref())
        .collect();
    assert_eq!(text, "The sky is blue.");
    let calls: Vec<_> = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .flat_map(|choice| choice.delta.tool_calls.iter().flatten())
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id.as_deref(), Some("call_0"));
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
    assert_eq!(
        last.usage
            .as_ref()
            .map(|usage| (usage.prompt_tokens, usage.completion_tokens)),
        Some((6, 9))
    );
}

#[test]
fn gemini_stream_error_event_and_cut_stream_are_terminal_errors() {
    let (chunks, error) = run_stream(fixture!("stream_error.sse"));
    assert_eq!(chunks.len(), 1);
    assert_eq!(error.map(|error| error.kind), Some(ErrorKind::Overloaded));
    let text = fixture!("stream.sse");
    let cut = text.rfind("data:").unwrap_or(0);
    let (_, error) = run_stream(&text[..cut]);
    assert_eq!(error.map(|error| error.kind), Some(ErrorKind::Connect));
}

fn error_response(status: u16, body: &'static str) -> BufferedResponse {
    BufferedResponse {
        status,
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::from_static(body.as_bytes()),
    }
}

#[test]
fn gemini_errors_map_to_kinds() {
    let auth = convert::error_from_wire(&error_response(400, fixture!("error_invalid_key.json")));
    assert_eq!(auth.kind, ErrorKind::Auth);
    let quota = convert::error_from_wire(&error_response(429, fixture!("error_quota.json")));
    assert_eq!(quota.kind, ErrorKind::RateLimited);
    let too_long = convert::error_from_wire(&error_response(400, fixture!("error_too_long.json")));
    assert_eq!(too_long.kind, ErrorKind::ContextWindowExceeded);
}
