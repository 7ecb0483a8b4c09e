//! JSON cost of one non-stream request through the gateway: parsing the
//! client's `ChatRequest` (plain; as the server does, keeping the messages'
//! text; and with the field-path tracking the server uses for error
//! messages), encoding it (messages encoded, or written as kept; and the
//! old way through a `serde_json::Value`), parsing the upstream's
//! `ChatResponse` and encoding it for the client.

use criterion::{criterion_group, criterion_main, Criterion};
use gateway_types::{ChatRequest, ChatResponse};
use std::hint::black_box;

/// A typical client request: system and user message, a few parameters, a
/// tool, and a field the types do not know (kept in `extra`).
const REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant. Answer in one sentence."},{"role":"user","content":"Why do benchmarks interleave their measurements?"},{"role":"assistant","content":"To cancel drift."},{"role":"user","content":"Explain that in more detail, with an example from load testing an HTTP proxy."}],"max_tokens":256,"temperature":0.2,"user":"bench-user-0001","tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"auto","metadata":{"team":"bench"}}"#;

/// A typical upstream answer with usage details.
const RESPONSE: &str = r#"{"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Benchmarks that interleave direct and proxied rounds cancel most machine drift, so the difference is the gateway's own overhead.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":20,"total_tokens":51,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},"system_fingerprint":"fp_bench"}"#;

fn chat_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("chat_request");
    group.bench_function("parse", |b| {
        b.iter(|| serde_json::from_str::<ChatRequest>(black_box(REQUEST)).ok())
    });
    // What the server does: the same, keeping the messages' JSON text.
    group.bench_function("from_json", |b| {
        b.iter(|| ChatRequest::from_json(black_box(REQUEST.as_bytes())).ok())
    });
    // The server's second parse after an error: tracking the field path
    // for the error message.
    group.bench_function("parse_with_path", |b| {
        b.iter(|| {
            let mut deserializer = serde_json::Deserializer::from_str(black_box(REQUEST));
            serde_path_to_error::deserialize::<_, ChatRequest>(&mut deserializer).ok()
        })
    });
    let Ok(request) = serde_json::from_str::<ChatRequest>(REQUEST) else {
        panic!("the sample request does not parse");
    };
    group.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&request)).ok())
    });
    // Parsed by from_json: the messages are written back as their text.
    let Ok(kept) = ChatRequest::from_json(REQUEST.as_bytes()) else {
        panic!("the sample request does not parse");
    };
    group.bench_function("serialize_kept_messages", |b| {
        b.iter(|| serde_json::to_vec(black_box(&kept)).ok())
    });
    // What OpenAiProvider::body does: to a Value, patch, then to bytes.
    group.bench_function("serialize_via_value", |b| {
        b.iter(|| {
            let mut value = serde_json::to_value(black_box(&request)).ok()?;
            let object = value.as_object_mut()?;
            object.insert(
                "model".to_owned(),
                serde_json::Value::String("upstream-model".to_owned()),
            );
            object.remove("stream");
            object.remove("stream_options");
            serde_json::to_vec(&value).ok()
        })
    });
    group.finish();
}

/// A long conversation (~16 KB: twenty turns of ~800 characters each), as
/// agents and chat apps send, parsed as the server does and encoded for the
/// upstream, the messages encoded again or written as kept.
fn long_chat_request(c: &mut Criterion) {
    let turn = "The gateway forwards this paragraph unchanged; it is long because \
                real prompts carry context, code and earlier answers. "
        .repeat(6);
    let messages: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            serde_json::json!({"role": role, "content": format!("{i}: {turn}")})
        })
        .collect();
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": messages, "max_tokens": 256})
        .to_string();
    let mut group = c.benchmark_group("long_chat_request");
    group.bench_function("parse", |b| {
        b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(body.as_bytes())).ok())
    });
    group.bench_function("from_json", |b| {
        b.iter(|| ChatRequest::from_json(black_box(body.as_bytes())).ok())
    });
    let Ok(request) = serde_json::from_slice::<ChatRequest>(body.as_bytes()) else {
        panic!("the long request does not parse");
    };
    let Ok(kept) = ChatRequest::from_json(body.as_bytes()) else {
        panic!("the long request does not parse");
    };
    group.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&request)).ok())
    });
    group.bench_function("serialize_kept_messages", |b| {
        b.iter(|| serde_json::to_vec(black_box(&kept)).ok())
    });
    group.finish();
}

fn chat_response(c: &mut Criterion) {
    let mut group = c.benchmark_group("chat_response");
    group.bench_function("parse", |b| {
        b.iter(|| serde_json::from_str::<ChatResponse>(black_box(RESPONSE)).ok())
    });
    let Ok(response) = serde_json::from_str::<ChatResponse>(RESPONSE) else {
        panic!("the sample response does not parse");
    };
    group.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&response)).ok())
    });
    group.finish();
}

criterion_group!(benches, chat_request, long_chat_request, chat_response);
criterion_main!(benches);
