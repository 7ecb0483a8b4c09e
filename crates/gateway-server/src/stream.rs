//! Client streams: any protocol's frames become the SSE body chunk by chunk,
//! never buffered whole, with the request's observation riding along so its
//! log line and metrics are emitted when the stream really ends.

use crate::errors::ApiError;
use crate::http::Body;
use crate::metrics::TokenCounts;
use crate::observe::{token_counts, Observation, StreamEnd, StreamStats};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use gateway_providers::{sse, ReplyStream};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Instant;

/// One piece of a client stream, and what it tells the request's
/// observation.
#[derive(Debug)]
pub(crate) struct Piece {
    /// The bytes to send (one or more whole SSE events).
    pub(crate) bytes: Bytes,
    /// The usage known so far, when this piece carried some.
    pub(crate) tokens: Option<TokenCounts>,
    /// Characters of generated text in this piece: what a stream that ends
    /// without usage (a client that left) is billed from.
    pub(crate) chars: usize,
    /// Set on the last piece: how the stream ended.
    pub(crate) end: Option<StreamEnd>,
}

/// A client stream in the making: the pieces a protocol encoder produces.
/// The last piece has `end` set; pieces after it are not sent.
pub(crate) type Pieces = Pin<Box<dyn Stream<Item = Piece> + Send>>;

/// How the client's chat stream is shaped.
#[derive(Debug, Clone)]
pub(crate) struct StreamShape {
    /// The alias to stamp on every chunk (`None` keeps the upstream's name,
    /// as after a fallback).
    pub(crate) model: Option<String>,
    /// The client asked for `stream_options.include_usage`.
    pub(crate) include_usage: bool,
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// The body of a stream: every piece as it comes. Dropping the body (the
/// client went away) drops the upstream stream.
///
/// The request's log line and metrics are emitted when the body is dropped:
/// after its last frame, or when the client goes away.
pub(crate) fn observed_body(pieces: Pieces, observation: Observation) -> Body {
    enum State {
        Streaming(Pieces, Tracker),
        Done(Tracker),
    }
    let tracker = Tracker {
        observation: Some(observation),
        stats: StreamStats::default(),
    };
    let frames = futures_util::stream::unfold(State::Streaming(pieces, tracker), |state| async {
        let (mut pieces, mut tracker) = match state {
            State::Streaming(pieces, tracker) => (pieces, tracker),
            State::Done(tracker) => {
                // The last frame went out: the request is over.
                drop(tracker);
                return None;
            }
        };
        loop {
            let Some(piece) = pieces.next().await else {
                tracker.stats.end = StreamEnd::Completed;
                drop(tracker);
                return None;
            };
            if let Some(tokens) = piece.tokens {
                tracker.stats.tokens = Some(tokens);
            }
            tracker.stats.streamed_chars += piece.chars;
            if let Some(end) = piece.end {
                tracker.stats.end = end;
                if piece.bytes.is_empty() {
                    drop(tracker);
                    return None;
                }
                return Some((piece.bytes, State::Done(tracker)));
            }
            tracker.stats.first_chunk.get_or_insert_with(Instant::now);
            // Pieces that only carry a count send nothing.
            if !piece.bytes.is_empty() {
                return Some((piece.bytes, State::Streaming(pieces, tracker)));
            }
        }
    });
    StreamBody::new(frames.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)))).boxed_unsync()
}

/// The OpenAI chat stream: every chunk as `data: <json>\n\n`, then
/// `data: [DONE]`. A failure after the first byte becomes
/// `data: {"error": ...}` and the stream ends without `[DONE]`, so clients
/// never mistake a truncation for an end.
pub(crate) fn chat_pieces(chunks: ReplyStream, shape: StreamShape) -> Pieces {
    // The shape travels in the state: nothing is cloned per chunk.
    let pieces = futures_util::stream::unfold(Some((chunks, shape)), |state| async move {
        let (mut chunks, shape) = state?;
        let chunk = match chunks.next().await {
            None => {
                let piece = Piece {
                    bytes: Bytes::from_static(DONE),
                    tokens: None,
                    chars: 0,
                    end: Some(StreamEnd::Completed),
                };
                return Some((piece, None));
            }
            Some(Err(error)) => {
                let body = ApiError::from_provider(&error).body();
                let json = serde_json::to_vec(&body).unwrap_or_default();
                let piece = Piece {
                    bytes: sse::encode_data(&json),
                    tokens: None,
                    chars: 0,
                    end: Some(StreamEnd::Failed {
                        kind: error.kind.as_str(),
                        message: error.message,
                    }),
                };
                return Some((piece, None));
            }
            Some(Ok(chunk)) => chunk,
        };
        let tokens = chunk.usage().map(token_counts);
        let piece = if !shape.include_usage && !chunk.has_choices() && tokens.is_some() {
            // A usage-only chunk the client did not ask for: nothing to
            // send, but the count matters.
            Piece {
                bytes: Bytes::new(),
                tokens,
                chars: 0,
                end: None,
            }
        } else {
            // An OpenAI-format chunk goes out as the upstream wrote it, with
            // only `model` replaced.
            Piece {
                chars: chunk.content_len(),
                bytes: chunk.to_sse(shape.model.as_deref(), shape.include_usage),
                tokens,
                end: None,
            }
        };
        Some((piece, Some((chunks, shape))))
    });
    Box::pin(pieces)
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
