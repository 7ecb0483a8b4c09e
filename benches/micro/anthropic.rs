//! Anthropic translation at the gateway's edge (`/v1/messages`): an
//! Anthropic Messages request into the gateway's `ChatRequest`, a
//! `ChatResponse` back into an Anthropic message, and a streamed answer into
//! Anthropic's event sequence. The adapter direction (`anthropic/` upstreams)
//! runs the same shapes through crate-private converters and is covered by
//! the providers' tests.

use criterion::{criterion_group, criterion_main, Criterion};
use gateway_providers::anthropic::ingress::{
    chat_response_to_messages, messages_to_chat_request, MessagesStreamEncoder,
};
use gateway_types::{ChatChunk, ChatResponse};
use std::hint::black_box;

/// A Claude-Code-shaped request: system blocks, a tool, a tool round trip.
const MESSAGES_REQUEST: &str = r#"{"model":"claude-sonnet","max_tokens":1024,"system":[{"type":"text","text":"You are a coding assistant."}],"tools":[{"name":"read_file","description":"Read a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}],"messages":[{"role":"user","content":"What does main.rs do?"},{"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"toolu_01","name":"read_file","input":{"path":"src/main.rs"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"fn main() { println!(\"hi\"); }"}]}],"temperature":0.2,"stream":true}"#;

const CHAT_RESPONSE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"It prints a greeting.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"README.md\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150}}"#;

fn chunks() -> Vec<ChatChunk> {
    let mut chunks = Vec::new();
    let text = |content: &str| {
        format!(
            r#"{{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"{content}"}}}}]}}"#
        )
    };
    chunks.push(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#.to_owned());
    for word in ["It ", "prints ", "a ", "greeting ", "and ", "exits."] {
        chunks.push(text(word));
    }
    chunks.push(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"read_file","arguments":""}}]}}]}"#.to_owned());
    for part in [r#"{\"pa"#, r#"th\": \"RE"#, r#"ADME.md\"}"#] {
        chunks.push(format!(r#"{{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"{part}"}}}}]}}}}]}}"#));
    }
    chunks.push(r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150}}"#.to_owned());
    chunks
        .iter()
        .map(|chunk| match serde_json::from_str(chunk) {
            Ok(chunk) => chunk,
            Err(error) => panic!("sample chunk does not parse: {error}: {chunk}"),
        })
        .collect()
}

fn anthropic(c: &mut Criterion) {
    let mut group = c.benchmark_group("anthropic_ingress");
    let Ok(request) = serde_json::from_str::<serde_json::Value>(MESSAGES_REQUEST) else {
        panic!("the sample request does not parse");
    };
    group.bench_function("request_to_chat", |b| {
        b.iter(|| messages_to_chat_request(black_box(&request)).ok())
    });
    let Ok(response) = serde_json::from_str::<ChatResponse>(CHAT_RESPONSE) else {
        panic!("the sample response does not parse");
    };
    group.bench_function("response_to_messages", |b| {
        b.iter(|| chat_response_to_messages(black_box(&response), "claude-sonnet"))
    });
    let chunks = chunks();
    group.bench_function("stream_12_chunks_to_events", |b| {
        b.iter(|| {
            let mut encoder = MessagesStreamEncoder::new("claude-sonnet");
            let mut bytes = 0;
            for chunk in black_box(&chunks) {
                for event in encoder.push(chunk) {
                    bytes += event.to_sse().len();
                }
            }
            for event in encoder.finish() {
                bytes += event.to_sse().len();
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, anthropic);
criterion_main!(benches);
