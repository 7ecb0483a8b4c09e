//! Fixture tests of Azure's readings (fixtures in `tests/fixtures/azure/`).

use super::convert::{self, StreamFilter};
use crate::error::ErrorKind;
use crate::http::BufferedResponse;
use crate::sse::SseDecoder;
use gateway_types::{ChatChunk, ChatResponse};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/azure/",
            $name
        ))
    };
}

fn response(status: u16, body: &'static str) -> BufferedResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert("retry-after", http::HeaderValue::from_static("7"));
    BufferedResponse {
        status,
        headers,
        body: bytes::Bytes::from_static(body.as_bytes()),
    }
}

fn run_stream(text: &str) -> (Vec<ChatChunk>, Option<crate::ProviderError>) {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    assert!(decoder.push(text.as_bytes(), &mut events).is_ok());
    let mut filter = StreamFilter::default();
    let mut chunks = Vec::new();
    for event in events {
        if event.data == "[DONE]" {
            break;
        }
        let Ok(chunk) = serde_json::from_str::<ChatChunk>(&event.data) else {
            panic!("fixture chunk does not parse: {}", event.data);
        };
        match filter.check(chunk) {
            Ok(Some(chunk)) => chunks.push(chunk),
            Ok(None) => {}
            Err(error) => return (chunks, Some(error)),
        }
    }
    (chunks, None)
}

#[test]
fn azure_content_filter_errors_are_content_filtered() {
    let error = convert::error_from_wire(&response(400, fixture!("error_content_filter.json")));
    assert_eq!(error.kind, ErrorKind::ContentFiltered);
    assert_eq!(error.status, Some(400));
    let error = convert::error_from_wire(&response(400, fixture!("error_inner_only.json")));
    assert_eq!(error.kind, ErrorKind::ContentFiltered);
}

#[test]
fn azure_rate_limit_keeps_retry_after() {
    let error = convert::error_from_wire(&response(429, fixture!("error_rate_limit.json")));
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(7)));
}

#[test]
fn azure_filtered_answer_is_an_error() {
    let Ok(filtered) = serde_json::from_str::<ChatResponse>(fixture!("response_filtered.json"))
    else {
        panic!("fixture does not parse");
    };
    let kind = convert::check_response(filtered)
        .map(|_| ())
        .map_err(|error| error.kind);
    assert_eq!(kind, Err(ErrorKind::ContentFiltered));
}

#[test]
fn azure_stream_skips_prompt_filter_chunks_and_keeps_usage() {
    let (chunks, error) = run_stream(fixture!("stream.sse"));
    assert_eq!(error, None);
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hi"));
    assert_eq!(
        chunks[3].usage.as_ref().map(|usage| usage.prompt_tokens),
        Some(9)
    );
}

#[test]
fn azure_stream_filtered_before_content_is_an_error() {
    let (_, error) = run_stream(fixture!("stream_filtered.sse"));
    assert_eq!(
        error.map(|error| error.kind),
        Some(ErrorKind::ContentFiltered)
    );
}
