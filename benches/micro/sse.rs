//! The per-chunk cost of streaming: decoding an upstream SSE stream with
//! `SseDecoder`, encoding events with `sse::encode_data`, and the whole
//! per-chunk path of the gateway (decode, parse `ChatChunk`, serialize,
//! encode).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gateway_providers::sse::{encode_data, SseDecoder, SseEvent};
use gateway_types::ChatChunk;
use std::hint::black_box;

const CHUNKS: usize = 20;

/// One content chunk as OpenAI sends it.
fn chunk_json(word: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or_else(|| "null".to_owned(), |reason| format!("\"{reason}\""));
    format!(
        r#"{{"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{{"index":0,"delta":{{"content":"{word}"}},"logprobs":null,"finish_reason":{finish}}}]}}"#
    )
}

/// A typical stream: role chunk, 20 content chunks, usage chunk, `[DONE]`.
fn stream_bytes() -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&format!("data: {}\n\n", chunk_json("", None)));
    for index in 0..CHUNKS {
        let finish = (index + 1 == CHUNKS).then_some("stop");
        out.push_str(&format!("data: {}\n\n", chunk_json("token ", finish)));
    }
    out.push_str(r#"data: {"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":31,"completion_tokens":20,"total_tokens":51}}"#);
    out.push_str("\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

fn decode(c: &mut Criterion) {
    let stream = stream_bytes();
    let mut group = c.benchmark_group("sse_decode");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("whole_stream", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::new();
            let mut out: Vec<SseEvent> = Vec::with_capacity(CHUNKS + 3);
            let _ = decoder.push(black_box(&stream), &mut out);
            let _ = decoder.finish(&mut out);
            out
        })
    });
    // Frames as they arrive from a socket: one event each.
    let frames: Vec<&[u8]> = stream
        .split_inclusive(|&byte| byte == b'\n')
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|pair| {
            let start = pair[0].as_ptr() as usize - stream.as_ptr() as usize;
            let len: usize = pair.iter().map(|line| line.len()).sum();
            &stream[start..start + len]
        })
        .collect();
    group.bench_function("event_per_frame", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::new();
            let mut out: Vec<SseEvent> = Vec::with_capacity(CHUNKS + 3);
            for frame in &frames {
                let _ = decoder.push(black_box(frame), &mut out);
            }
            let _ = decoder.finish(&mut out);
            out
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let json = chunk_json("token ", None);
    let mut group = c.benchmark_group("sse_encode");
    group.bench_function("encode_data", |b| {
        b.iter(|| encode_data(black_box(json.as_bytes())))
    });
    group.finish();
}

/// What the gateway does per upstream chunk today: parse the event's data
/// into a `ChatChunk`, stamp the alias, serialize, frame.
fn per_chunk_path(c: &mut Criterion) {
    let data = chunk_json("token ", None);
    let mut group = c.benchmark_group("sse_chunk_path");
    group.bench_function("parse_restamp_serialize_encode", |b| {
        b.iter(|| -> Option<Bytes> {
            let mut chunk: ChatChunk = serde_json::from_str(black_box(&data)).ok()?;
            chunk.model.clear();
            chunk.model.push_str("gpt-4o-mini");
            let json = serde_json::to_vec(&chunk).ok()?;
            Some(encode_data(&json))
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode, per_chunk_path);
criterion_main!(benches);
