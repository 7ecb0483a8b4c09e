//! Turning a provider's chunk stream into the client's SSE body, chunk by
//! chunk, never buffered whole.

use crate::errors::ApiError;
use crate::http::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_providers::{sse, ChunkStream};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;

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
pub(crate) fn sse_body(chunks: ChunkStream, shape: StreamShape) -> Body {
    enum State {
        Streaming(ChunkStream, StreamShape),
        Done,
    }
    let frames =
        futures_util::stream::unfold(State::Streaming(chunks, shape), |state| async move {
            let State::Streaming(mut chunks, shape) = state else {
                return None;
            };
            loop {
                match chunks.next().await {
                    None => return Some((Bytes::from_static(DONE), State::Done)),
                    Some(Err(error)) => {
                        let body = ApiError::from_provider(&error).body();
                        let json = serde_json::to_vec(&body).unwrap_or_default();
                        return Some((sse::encode_data(&json), State::Done));
                    }
                    Some(Ok(mut chunk)) => {
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
                                    State::Streaming(chunks, shape),
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
