//! Turning a provider's chunk stream into the client's SSE body, chunk by
//! chunk, never buffered whole.

use crate::errors::ApiError;
use crate::http::Body;
use crate::observe::{token_counts, Observation, StreamEnd, StreamStats};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_providers::{sse, ChunkStream};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::time::Instant;

/// How the client's stream is shaped.
#[derive(Debug, Clone)]
pub(crate) struct StreamShape {
    /// The alias to stamp on every chunk (`None` keeps the upstream's name,
    /// as after a fallback).
    pub(crate) model: Option<String>,
    /// The client asked for `stream_options.include_usage`.
    pub(crate) include_usage: bool,
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// The SSE body: every chunk as `data: <json>\n\n`, then `data: [DONE]`. A
/// failure after the first byte becomes `data: {"error": ...}` and the stream
/// ends without `[DONE]`, so clients never mistake a truncation for an end.
/// Dropping the body (the client went away) drops the upstream stream.
///
/// The request's log line and metrics are emitted when the body is dropped:
/// after its last frame, or when the client goes away.
pub(crate) fn sse_body(chunks: ChunkStream, shape: StreamShape, observation: Observation) -> Body {
    enum State {
        Streaming(ChunkStream, StreamShape, Tracker),
        Done(Tracker),
    }
    let tracker = Tracker {
        observation: Some(observation),
        stats: StreamStats::default(),
    };
    let start = State::Streaming(chunks, shape, tracker);
    let frames = futures_util::stream::unfold(start, |state| async move {
        let (mut chunks, shape, mut tracker) = match state {
            State::Streaming(chunks, shape, tracker) => (chunks, shape, tracker),
            State::Done(tracker) => {
                // The last frame went out: the request is over.
                drop(tracker);
                return None;
            }
        };
        loop {
            match chunks.next().await {
                None => {
                    tracker.stats.end = StreamEnd::Completed;
                    return Some((Bytes::from_static(DONE), State::Done(tracker)));
                }
                Some(Err(error)) => {
                    tracker.stats.end = StreamEnd::Failed {
                        kind: error.kind.as_str(),
                        message: error.message.clone(),
                    };
                    let body = ApiError::from_provider(&error).body();
                    let json = serde_json::to_vec(&body).unwrap_or_default();
                    return Some((sse::encode_data(&json), State::Done(tracker)));
                }
                Some(Ok(mut chunk)) => {
                    tracker.stats.first_chunk.get_or_insert_with(Instant::now);
                    if let Some(usage) = &chunk.usage {
                        tracker.stats.tokens = Some(token_counts(usage));
                    }
                    for choice in &chunk.choices {
                        if let Some(content) = &choice.delta.content {
                            tracker.stats.streamed_chars += content.len();
                        }
                    }
                    let usage_only = chunk.choices.is_empty() && chunk.usage.is_some();
                    if !shape.include_usage {
                        if usage_only {
                            continue;
                        }
                        chunk.usage = None;
                    }
                    if let Some(model) = &shape.model {
                        chunk.model.clone_from(model);
                    }
                    match serde_json::to_vec(&chunk) {
                        Ok(json) => {
                            return Some((
                                sse::encode_data(&json),
                                State::Streaming(chunks, shape, tracker),
                            ))
                        }
                        Err(_) => continue,
                    }
                }
            }
        }
    });
    StreamBody::new(frames.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)))).boxed_unsync()
}

/// Finishes the request's observation when the stream's state is dropped.
struct Tracker {
    observation: Option<Observation>,
    stats: StreamStats,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if let Some(observation) = self.observation.take() {
            observation.finish(Some(std::mem::take(&mut self.stats)));
        }
    }
}
