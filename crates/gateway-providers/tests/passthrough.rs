//! The Anthropic passthrough hook: an Anthropic deployment forwards a native
//! Messages body untouched (but for the model) and answers natively; other
//! adapters decline.

mod support;

use futures_util::StreamExt;
use gateway_providers::{
    BuildContext, CallContext, Env, ErrorKind, HttpClient, HttpClientOptions, NativeResponse,
    Provider, ProviderRegistry, ProviderSpec,
};
use gateway_types::Secret;
use serde_json::json;
use std::sync::Arc;
use support::{FakeUpstream, Scripted};

fn build(prefix: &str, model: &str, api_base: String) -> Arc<dyn Provider> {
    let spec = ProviderSpec {
        prefix: prefix.to_owned(),
        upstream_model: model.to_owned(),
        api_base: Some(api_base),
        api_key: Some(Secret::new("test-key")),
        headers: vec![("anthropic-beta".to_owned(), "tools-2024-04-04".to_owned())],
        ..ProviderSpec::default()
    };
    let cx = BuildContext {
        http: HttpClient::new(&HttpClientOptions::default()),
        env: Env::isolated(Default::default()),
    };
    match ProviderRegistry::builtin().build(&spec, &cx) {
        Ok(provider) => provider,
        Err(error) => panic!("build failed: {error}"),
    }
}

fn body(stream: bool) -> serde_json::Value {
    json!({
        "model": "client-alias",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": stream
    })
}

#[tokio::test]
async fn anthropic_passthrough_forwards_the_native_body_with_the_upstream_model() {
    let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-7-sonnet-20250219",
                        "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "Hi"}],
                        "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 1}});
    let fake = FakeUpstream::start(vec![Scripted::json(200, answer.to_string())]).await;
    let provider = build(
        "anthropic",
        "claude-3-7-sonnet-20250219",
        fake.base_url.clone(),
    );
    let cx = CallContext {
        forward_headers: vec![
            (
                "Anthropic-Beta".to_owned(),
                "files-api-2025-04-14, tools-2024-04-04".to_owned(),
            ),
            ("anthropic-version".to_owned(), "2023-06-01".to_owned()),
            (
                "x-api-key".to_owned(),
                "client-key-must-not-be-forwarded".to_owned(),
            ),
        ],
        ..CallContext::default()
    };
    let result = provider.anthropic_messages(&body(false), &cx).await;
    let Ok(Some(NativeResponse::Json(native))) = result else {
        panic!("expected a native JSON answer, got {result:?}");
    };
    assert_eq!(native, answer, "the answer is not translated");
    let received = fake.only_request();
    let mut expected = body(false);
    expected["model"] = json!("claude-3-7-sonnet-20250219");
    assert_eq!(
        received.body, expected,
        "the body is forwarded as is, model substituted"
    );
    assert_eq!(received.uri, "/v1/messages");
    assert_eq!(received.header("x-api-key"), Some("test-key"));
    assert_eq!(
        received.header("anthropic-beta"),
        Some("tools-2024-04-04,files-api-2025-04-14")
    );
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(received.headers.get_all("x-api-key").iter().count(), 1);
}

#[tokio::test]
async fn anthropic_passthrough_stream_passes_events_and_fails_when_cut() {
    let events = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];
    let whole = Scripted::stream(
        "text/event-stream",
        events.iter().map(|e| (*e).to_owned()).collect(),
    );
    let cut = Scripted::stream("text/event-stream", vec![events[0].to_owned()]).then_abort();
    let fake = FakeUpstream::start(vec![whole, cut]).await;
    let provider = build(
        "anthropic",
        "claude-3-5-haiku-20241022",
        fake.base_url.clone(),
    );

    let Ok(Some(NativeResponse::Stream(mut stream))) = provider
        .anthropic_messages(&body(true), &CallContext::default())
        .await
    else {
        panic!("expected a native stream");
    };
    let mut names = Vec::new();
    while let Some(item) = stream.next().await {
        let Ok(event) = item else {
            panic!("unexpected error {item:?}")
        };
        names.push(event.event.unwrap_or_default());
    }
    assert_eq!(
        names,
        vec!["message_start", "content_block_start", "message_stop"]
    );
    assert_eq!(fake.requests()[0].body["stream"], true);

    let Ok(Some(NativeResponse::Stream(mut stream))) = provider
        .anthropic_messages(&body(true), &CallContext::default())
        .await
    else {
        panic!("expected a native stream");
    };
    assert!(matches!(stream.next().await, Some(Ok(_))));
    fake.release_cut();
    let last = stream.next().await;
    assert_eq!(
        last.and_then(Result::err).map(|error| error.kind),
        Some(ErrorKind::Connect)
    );
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn anthropic_passthrough_maps_upstream_errors() {
    let overloaded = Scripted::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    )
    .header("retry-after", "3");
    let fake = FakeUpstream::start(vec![overloaded]).await;
    let provider = build(
        "anthropic",
        "claude-3-5-haiku-20241022",
        fake.base_url.clone(),
    );
    let result = provider
        .anthropic_messages(&body(false), &CallContext::default())
        .await;
    let Err(error) = result else {
        panic!("expected an error")
    };
    assert_eq!(error.kind, ErrorKind::Overloaded);
    assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(3)));
}

#[tokio::test]
async fn other_adapters_decline_the_passthrough() {
    let fake = FakeUpstream::start(Vec::new()).await;
    for prefix in ["openai", "ollama", "azure", "gemini"] {
        let provider = build(prefix, "m", fake.base_url.clone());
        let result = provider
            .anthropic_messages(&body(false), &CallContext::default())
            .await;
        assert!(matches!(result, Ok(None)), "{prefix}");
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn anthropic_passthrough_stream_error_event_is_the_terminal_err_item() {
    let events = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    ];
    let fake = FakeUpstream::start(vec![Scripted::stream(
        "text/event-stream",
        events.iter().map(|e| (*e).to_owned()).collect(),
    )])
    .await;
    let provider = build(
        "anthropic",
        "claude-3-5-haiku-20241022",
        fake.base_url.clone(),
    );
    let Ok(Some(NativeResponse::Stream(mut stream))) = provider
        .anthropic_messages(&body(true), &CallContext::default())
        .await
    else {
        panic!("expected a native stream");
    };
    assert!(matches!(stream.next().await, Some(Ok(_))));
    let error = stream.next().await.and_then(Result::err);
    assert_eq!(error.map(|error| error.kind), Some(ErrorKind::Overloaded));
    assert!(stream.next().await.is_none());
}
