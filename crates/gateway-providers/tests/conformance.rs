//! The provider conformance suite: the same scenarios for every adapter,
//! each against a loopback fake of its upstream that speaks the upstream's
//! own protocol and records what it received.
//!
//! Scenarios: non-stream, stream (ends with a usage chunk), tool-call round
//! trip (history sent in the upstream's format, streamed arguments
//! reassembled byte-exact), 429 with retry-after, 5xx, a malformed event, and
//! a connection cut mid-stream (a terminal error, never a clean end).

mod support;

use futures_util::StreamExt;
use gateway_providers::{
    BuildContext, CallContext, Env, ErrorKind, HttpClient, HttpClientOptions, Provider,
    ProviderError, ProviderRegistry, ProviderSpec,
};
use gateway_types::{ChatChunk, ChatRequest, Secret};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::{FakeUpstream, Recorded};

mod cases;
use cases::{all_cases, Case};

const TOOL_ARGUMENTS: &str = r#"{"city":"Paris","unit":"c"}"#;

fn build(case: &dyn Case, fake: &FakeUpstream) -> Arc<dyn Provider> {
    let spec = case.spec(&fake.base_url);
    let cx = BuildContext {
        http: HttpClient::new(&HttpClientOptions::default()),
        env: Env::isolated(Default::default()),
    };
    match ProviderRegistry::builtin().build(&spec, &cx) {
        Ok(provider) => provider,
        Err(error) => panic!("{}: build failed: {error}", case.name()),
    }
}

fn text_request() -> ChatRequest {
    request(json!({
        "model": "alias",
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 50
    }))
}

fn tool_request() -> ChatRequest {
    request(json!({
        "model": "alias",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "user", "content": "Check again in celsius."}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}
        }}],
        "max_tokens": 50
    }))
}

fn request(value: Value) -> ChatRequest {
    match serde_json::from_value(value) {
        Ok(request) => request,
        Err(error) => panic!("bad test request: {error}"),
    }
}

/// Every item of a stream; the error, if any, must be the last item.
async fn collect(
    provider: &dyn Provider,
    request: &ChatRequest,
    name: &str,
) -> (Vec<ChatChunk>, Option<ProviderError>) {
    let mut stream = match provider.chat_stream(request, &CallContext::default()).await {
        Ok(stream) => stream,
        Err(error) => panic!("{name}: stream failed to start: {error}"),
    };
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(error) => {
                assert!(
                    stream.next().await.is_none(),
                    "{name}: an item followed the error"
                );
                return (chunks, Some(error));
            }
        }
    }
    (chunks, None)
}

fn text_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.delta.content.as_deref())
        .collect()
}

fn finish_reasons(chunks: &[ChatChunk]) -> Vec<String> {
    chunks
        .iter()
        .flat_map(|chunk| &chunk.choices)
        .filter_map(|choice| choice.finish_reason.clone())
        .collect()
}

#[tokio::test]
async fn non_stream_answer_text_finish_and_usage() {
    for case in all_cases() {
        let name = case.name();
        let fake = FakeUpstream::start(vec![case.text()]).await;
        let provider = build(case.as_ref(), &fake);
        let response = match provider
            .chat(&text_request(), &CallContext::default())
            .await
        {
            Ok(response) => response,
            Err(error) => panic!("{name}: chat failed: {error}"),
        };
        let choice = &response.choices[0];
        assert_eq!(
            choice.message.content.as_deref(),
            Some("Hello world"),
            "{name}"
        );
        assert_eq!(choice.finish_reason.as_deref(), Some("stop"), "{name}");
        let usage = response.usage.map(|usage| {
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens,
            )
        });
        assert_eq!(usage, Some((5, 2, 7)), "{name}");
        let received = fake.only_request();
        case.check_request(&received, false);
    }
}

/// `chat_reply` and `chat_stream_reply` (which the server calls, and which
/// the OpenAI-compatible adapter answers with the upstream's own bytes) tell
/// the same story as `chat` and `chat_stream`, for every adapter.
#[tokio::test]
async fn reply_forms_agree_with_the_parsed_calls() {
    for case in all_cases() {
        let name = case.name();
        let fake = FakeUpstream::start(vec![
            case.text(),
            case.text(),
            case.text_stream(),
            case.text_stream(),
        ])
        .await;
        let provider = build(case.as_ref(), &fake);
        let cx = CallContext::default();
        let parsed = match provider.chat(&text_request(), &cx).await {
            Ok(response) => response,
            Err(error) => panic!("{name}: chat failed: {error}"),
        };
        let reply = match provider.chat_reply(&text_request(), &cx).await {
            Ok(reply) => reply,
            Err(error) => panic!("{name}: chat_reply failed: {error}"),
        };
        assert_eq!(
            reply.usage().map(|usage| usage.total_tokens),
            parsed.usage.as_ref().map(|usage| usage.total_tokens),
            "{name}"
        );
        let sent: Value = match reply.clone().to_json(Some("alias".to_owned())) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(error) => panic!("{name}: to_json failed: {error}"),
        };
        assert_eq!(sent["model"], "alias", "{name}");
        match reply.into_response() {
            Ok(mut response) => {
                // Ids and timestamps are the adapter's own per call.
                response.id.clone_from(&parsed.id);
                response.created = parsed.created;
                assert_eq!(response, parsed, "{name}");
            }
            Err(error) => panic!("{name}: into_response failed: {error}"),
        }

        let (chunks, error) = collect(provider.as_ref(), &text_request(), name).await;
        assert_eq!(error, None, "{name}");
        let mut replies = match provider.chat_stream_reply(&text_request(), &cx).await {
            Ok(stream) => stream,
            Err(error) => panic!("{name}: chat_stream_reply failed: {error}"),
        };
        let mut reply_chunks = Vec::new();
        let mut text_len = 0;
        while let Some(item) = replies.next().await {
            let reply = match item {
                Ok(reply) => reply,
                Err(error) => panic!("{name}: reply stream failed: {error}"),
            };
            text_len += reply.content_len();
            match reply.into_chunk() {
                Ok(chunk) => reply_chunks.push(chunk),
                Err(error) => panic!("{name}: into_chunk failed: {error}"),
            }
        }
        assert_eq!(text_of(&reply_chunks), text_of(&chunks), "{name}");
        assert_eq!(text_len, "Hello world".len(), "{name}");
        assert_eq!(
            finish_reasons(&reply_chunks),
            finish_reasons(&chunks),
            "{name}"
        );
        assert_eq!(
            reply_chunks.last().and_then(|chunk| chunk.usage.clone()),
            chunks.last().and_then(|chunk| chunk.usage.clone()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn stream_reassembles_the_text_and_ends_with_a_usage_chunk() {
    for case in all_cases() {
        let name = case.name();
        let fake = FakeUpstream::start(vec![case.text_stream()]).await;
        let provider = build(case.as_ref(), &fake);
        let (chunks, error) = collect(provider.as_ref(), &text_request(), name).await;
        assert_eq!(error, None, "{name}");
        assert_eq!(text_of(&chunks), "Hello world", "{name}");
        assert_eq!(finish_reasons(&chunks), vec!["stop"], "{name}");
        let Some(last) = chunks.last() else {
            panic!("{name}: no chunks")
        };
        assert!(
            last.choices.is_empty(),
            "{name}: the usage chunk has no choices"
        );
        let usage = last
            .usage
            .as_ref()
            .map(|usage| (usage.prompt_tokens, usage.completion_tokens));
        assert_eq!(usage, Some((5, 2)), "{name}");
        case.check_request(&fake.only_request(), true);
    }
}

#[tokio::test]
async fn tool_call_round_trip_reassembles_arguments_byte_exact() {
    for case in all_cases() {
        let name = case.name();
        let fake = FakeUpstream::start(vec![case.tool_stream()]).await;
        let provider = build(case.as_ref(), &fake);
        let (chunks, error) = collect(provider.as_ref(), &tool_request(), name).await;
        assert_eq!(error, None, "{name}");
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
                    "{name}: tool calls are numbered in order"
                );
                let function_name = delta
                    .function
                    .as_ref()
                    .and_then(|f| f.name.clone())
                    .unwrap_or_default();
                calls.push((id.clone(), function_name, String::new()));
            }
            let Some(call) = calls.get_mut(index) else {
                panic!("{name}: arguments for a call that never started")
            };
            if let Some(arguments) = delta.function.as_ref().and_then(|f| f.arguments.as_deref()) {
                call.2.push_str(arguments);
            }
        }
        let [(id, function_name, arguments)] = calls.as_slice() else {
            panic!("{name}: expected one tool call, got {calls:?}");
        };
        assert!(!id.is_empty(), "{name}: the call has an id");
        assert_eq!(function_name, "get_weather", "{name}");
        assert_eq!(arguments, TOOL_ARGUMENTS, "{name}");
        assert_eq!(finish_reasons(&chunks), vec!["tool_calls"], "{name}");
        case.check_tool_history(&fake.only_request());
    }
}

#[tokio::test]
async fn rate_limit_is_retryable_with_retry_after() {
    for case in all_cases() {
        let name = case.name();
        let limited = case.error(429).header("retry-after", "7");
        let fake = FakeUpstream::start(vec![limited.clone(), limited]).await;
        let provider = build(case.as_ref(), &fake);
        let Err(error) = provider
            .chat(&text_request(), &CallContext::default())
            .await
        else {
            panic!("{name}: expected an error");
        };
        assert_eq!(error.kind, ErrorKind::RateLimited, "{name}: {error}");
        assert_eq!(error.status, Some(429), "{name}");
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)), "{name}");
        let Err(error) = provider
            .chat_stream(&text_request(), &CallContext::default())
            .await
        else {
            panic!("{name}: expected the stream to fail before it starts");
        };
        assert_eq!(error.kind, ErrorKind::RateLimited, "{name}: {error}");
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)), "{name}");
    }
}

#[tokio::test]
async fn server_error_is_an_upstream_failure() {
    for case in all_cases() {
        let name = case.name();
        let fake = FakeUpstream::start(vec![case.error(500), case.error(500)]).await;
        let provider = build(case.as_ref(), &fake);
        let Err(error) = provider
            .chat(&text_request(), &CallContext::default())
            .await
        else {
            panic!("{name}: expected an error");
        };
        assert_eq!(error.kind, ErrorKind::Upstream, "{name}: {error}");
        assert_eq!(error.status, Some(500), "{name}");
        assert!(
            !error.message.contains("test-key"),
            "{name}: no credential in messages"
        );
        let Err(error) = provider
            .chat_stream(&text_request(), &CallContext::default())
            .await
        else {
            panic!("{name}: expected the stream to fail before it starts");
        };
        assert_eq!(error.kind, ErrorKind::Upstream, "{name}: {error}");
    }
}

#[tokio::test]
async fn malformed_event_is_a_terminal_invalid_response() {
    for case in all_cases() {
        let name = case.name();
        let fake = FakeUpstream::start(vec![case.malformed_stream()]).await;
        let provider = build(case.as_ref(), &fake);
        let (_, error) = collect(provider.as_ref(), &text_request(), name).await;
        let Some(error) = error else {
            panic!("{name}: expected an error item")
        };
        assert_eq!(error.kind, ErrorKind::InvalidResponse, "{name}: {error}");
    }
}

#[tokio::test]
async fn connection_cut_mid_stream_is_a_terminal_error() {
    for case in all_cases() {
        let name = case.name();
        let fake = FakeUpstream::start(vec![case.cut_stream()]).await;
        let provider = build(case.as_ref(), &fake);
        let mut stream = match provider
            .chat_stream(&text_request(), &CallContext::default())
            .await
        {
            Ok(stream) => stream,
            Err(error) => panic!("{name}: stream failed to start: {error}"),
        };
        let first = stream.next().await;
        assert!(
            matches!(first, Some(Ok(_))),
            "{name}: the chunk before the cut arrives: {first:?}"
        );
        fake.release_cut();
        let mut error = None;
        while let Some(item) = stream.next().await {
            if let Err(failure) = item {
                error = Some(failure);
                assert!(
                    stream.next().await.is_none(),
                    "{name}: an item followed the error"
                );
                break;
            }
        }
        let Some(error) = error else {
            panic!("{name}: a cut stream must end with an error, not cleanly")
        };
        assert_eq!(error.kind, ErrorKind::Connect, "{name}: {error}");
    }
}

#[tokio::test]
async fn clean_end_before_the_final_event_is_a_terminal_error() {
    for case in all_cases() {
        let name = case.name();
        let mut scripted = case.cut_stream();
        scripted.abort = false;
        let fake = FakeUpstream::start(vec![scripted]).await;
        let provider = build(case.as_ref(), &fake);
        let (_, error) = collect(provider.as_ref(), &text_request(), name).await;
        assert_eq!(
            error.map(|error| error.kind),
            Some(ErrorKind::Connect),
            "{name}"
        );
    }
}

/// Helpers the cases share.
pub(crate) fn spec(prefix: &str, upstream_model: &str, api_base: String) -> ProviderSpec {
    ProviderSpec {
        prefix: prefix.to_owned(),
        upstream_model: upstream_model.to_owned(),
        api_base: Some(api_base),
        api_key: Some(Secret::new("test-key")),
        ..ProviderSpec::default()
    }
}

/// Server-sent events from `(event name, data)` pairs, one piece each.
pub(crate) fn sse(events: &[(Option<&str>, String)]) -> Vec<String> {
    events
        .iter()
        .map(|(event, data)| match event {
            Some(event) => format!("event: {event}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        })
        .collect()
}

pub(crate) fn assert_header(request: &Recorded, name: &str, expected: &str, case: &str) {
    assert_eq!(
        request.header(name),
        Some(expected),
        "{case}: header {name}"
    );
}

#[test]
fn every_translating_adapter_has_a_case() {
    let names: Vec<&str> = all_cases().iter().map(|case| case.name()).collect();
    assert_eq!(
        names,
        vec!["openai", "anthropic", "ollama", "azure", "gemini"]
    );
    let registry = ProviderRegistry::builtin();
    for prefix in [
        "openai",
        "anthropic",
        "ollama",
        "ollama_chat",
        "azure",
        "gemini",
    ] {
        assert!(registry.knows(prefix), "{prefix} is registered");
    }
}
