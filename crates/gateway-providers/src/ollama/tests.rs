//! Fixture tests of the pure conversions (fixtures in `tests/fixtures/ollama/`).

use super::convert::{self, RequestOptions, StreamTranslator};
use crate::error::ErrorKind;
use crate::http::BufferedResponse;
use crate::ndjson::NdjsonDecoder;
use crate::translate::{CallIds, ResponseMeta, StreamTranslate};
use gateway_types::{ChatChunk, ChatRequest, EmbeddingsRequest};
use serde_json::{json, Value};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ollama/",
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

fn options(drop_params: bool) -> RequestOptions<'static> {
    RequestOptions {
        model: "llama3.1:8b",
        drop_params,
        stream: false,
    }
}

fn meta(id: &str) -> ResponseMeta {
    ResponseMeta {
        id: id.to_owned(),
        model: "m".to_owned(),
        created: 7,
    }
}

fn run_stream(text: &str) -> (Vec<ChatChunk>, Option<crate::ProviderError>) {
    let mut decoder = NdjsonDecoder::new();
    let mut lines = Vec::new();
    assert!(decoder.push(text.as_bytes(), &mut lines).is_ok());
    assert!(decoder.finish(&mut lines).is_ok());
    let mut translator = StreamTranslator::new(meta("chatcmpl-1"), CallIds::starting_at(0));
    let mut chunks = Vec::new();
    for line in lines {
        match translator.on_event(line) {
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
fn ollama_request_translates_options_format_images_and_tool_messages() {
    let request = chat_request(json(fixture!("chat_request.json")));
    let Ok(wire) = convert::request_to_wire(&request, &options(false)) else {
        panic!("translation failed");
    };
    assert_eq!(
        serde_json::to_value(wire).unwrap_or_default(),
        json(fixture!("api_chat_request.json"))
    );
}

#[test]
fn ollama_json_object_format_is_json() {
    let request = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}
    }));
    let format = convert::request_to_wire(&request, &options(false)).map(|wire| wire.format);
    assert_eq!(format, Ok(Some(json!("json"))));
}

#[test]
fn ollama_unsupported_parameters_fail_or_are_dropped() {
    let request = chat_request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 1}, "tool_choice": "required"
    }));
    let error = convert::request_to_wire(&request, &options(false)).map(|_| ());
    assert!(
        matches!(error, Err(error) if error.message.contains("`logit_bias`") && error.kind == ErrorKind::BadRequest)
    );
    let Ok(wire) = convert::request_to_wire(&request, &options(true)) else {
        panic!("drop_params should drop")
    };
    let value = serde_json::to_value(wire).unwrap_or_default();
    assert!(value.get("logit_bias").is_none() && value.get("tool_choice").is_none());
}

#[test]
fn ollama_http_image_urls_are_a_bad_request() {
    let request = chat_request(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
        ]}]}),
    );
    let kind = convert::request_to_wire(&request, &options(false))
        .map(|_| ())
        .map_err(|error| error.kind);
    assert_eq!(kind, Err(ErrorKind::BadRequest));
}

#[test]
fn ollama_response_tool_calls_get_ids_and_string_arguments() {
    let Ok(wire) = serde_json::from_str(fixture!("response_tool_calls.json")) else {
        panic!("fixture does not parse");
    };
    let response =
        convert::response_from_wire(wire, &mut CallIds::starting_at(0), meta("chatcmpl-x"));
    let value = serde_json::to_value(&response).unwrap_or_default();
    let choice = &value["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_0");
    assert_eq!(choice["message"]["tool_calls"][1]["id"], "call_1");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris","unit":"c"}"#
    );
    assert_eq!(
        value["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 14, "total_tokens": 40})
    );
}

#[test]
fn ollama_stream_text_ends_with_finish_and_usage() {
    let (chunks, error) = run_stream(fixture!("stream_text.ndjson"));
    assert_eq!(error, None);
    assert_eq!(
        chunks[0].choices[0].delta.role,
        Some(gateway_types::Role::Assistant)
    );
    assert_eq!(
        chunks[0].choices[0].delta.reasoning_content.as_deref(),
        Some("Hmm.")
    );
    let text: String = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.delta.content.as_deref())
        .collect();
    assert_eq!(text, "The sky is blue.");
    let finish: Vec<&str> = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, vec!["length"]);
    let Some(last) = chunks.last() else {
        panic!("no chunks")
    };
    assert!(last.choices.is_empty());
    assert_eq!(
        last.usage
            .as_ref()
            .map(|usage| (usage.prompt_tokens, usage.completion_tokens)),
        Some((26, 282))
    );
}

#[test]
fn ollama_stream_tool_call_arrives_whole_with_an_id() {
    let (chunks, error) = run_stream(fixture!("stream_tool_call.ndjson"));
    assert_eq!(error, None);
    let calls: Vec<_> = chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .flat_map(|choice| choice.delta.tool_calls.iter().flatten())
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id.as_deref(), Some("call_0"));
    assert_eq!(
        calls[0]
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_deref()),
        Some(r#"{"city":"Paris","unit":"c"}"#)
    );
    assert!(chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .any(|choice| choice.finish_reason.as_deref() == Some("tool_calls")));
}

#[test]
fn ollama_stream_error_line_is_terminal_and_a_cut_stream_fails() {
    let (chunks, error) = run_stream(fixture!("stream_error.ndjson"));
    assert_eq!(chunks.len(), 1);
    assert_eq!(error.map(|error| error.kind), Some(ErrorKind::Upstream));
    let text = fixture!("stream_text.ndjson");
    let cut = text.rfind("{\"model\"").unwrap_or(0);
    let (_, error) = run_stream(&text[..cut]);
    assert_eq!(error.map(|error| error.kind), Some(ErrorKind::Connect));
    let (_, error) = run_stream("{\"model\": \n");
    assert_eq!(
        error.map(|error| error.kind),
        Some(ErrorKind::InvalidResponse)
    );
}

#[test]
fn ollama_not_found_error_is_not_found() {
    let response = BufferedResponse {
        status: 404,
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::from_static(fixture!("error_not_found.json").as_bytes()),
    };
    let error = convert::error_from_wire(&response);
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(error.message.contains("not found, try pulling it first"));
}

#[test]
fn ollama_embeddings_translate_both_ways() {
    let Ok(request) =
        serde_json::from_value::<EmbeddingsRequest>(json!({"model": "e", "input": ["a", "b"]}))
    else {
        panic!("bad request");
    };
    let wire = convert::embed_request_to_wire(&request, "all-minilm");
    assert_eq!(
        serde_json::to_value(wire).unwrap_or_default(),
        json!({"model": "all-minilm", "input": ["a", "b"]})
    );
    let Ok(wire) = serde_json::from_str(fixture!("embed_response.json")) else {
        panic!("fixture does not parse");
    };
    let response = convert::embed_response_from_wire(wire);
    assert_eq!(response.data.len(), 2);
    assert_eq!(response.data[1].index, 1);
    assert_eq!(response.usage.map(|usage| usage.prompt_tokens), Some(8));
}
