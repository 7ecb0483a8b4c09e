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
use std::task::{Context, Poll};
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
    StreamBody::new(
        Gather::new(Box::pin(frames)).map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))),
    )
    .boxed_unsync()
}

/// The most bytes [`Gather`] holds back before sending.
const GATHER_LIMIT: usize = 64 * 1024;

/// Sends the pieces of a stream that are ready together as one frame.
///
/// hyper writes to the socket whenever the body is not ready. An upstream
/// stream's chunks reach us one at a time from the task that drives the
/// upstream connection (hyper hands a body over one chunk per wake-up), so
/// without this every SSE event was its own `writev`, TCP segment and
/// wake-up of the client, even when the upstream had sent twenty events in
/// one packet.
///
/// So after each piece this lets the producer run before sending: it wakes
/// its own task and answers "not ready" until the stream has been found not
/// ready on [`GATHER_TURNS`] polls in a row (hyper polls a body a second
/// time within the same task poll, before any other task has run; the
/// self-wake puts the task behind the producer in the run queue). What has
/// gathered then goes out as one frame. A piece that arrives alone is sent
/// as it is (no copy), a scheduler turn later. At most [`GATHER_LIMIT`]
/// bytes are held back.
struct Gather<S> {
    /// `None` once the stream ended.
    inner: Option<S>,
    parts: Vec<Bytes>,
    len: usize,
    /// Polls left that may find the stream not ready before sending.
    turns: u8,
}

/// How many polls in a row must find the stream not ready before
/// [`Gather`] sends what it holds.
const GATHER_TURNS: u8 = 2;

impl<S> Gather<S> {
    fn new(inner: S) -> Self {
        Self {
            inner: Some(inner),
            parts: Vec::new(),
            len: 0,
            turns: 0,
        }
    }

    fn take(&mut self) -> Bytes {
        self.len = 0;
        if self.parts.len() == 1 {
            return self.parts.pop().unwrap_or_default();
        }
        let mut joined = Vec::with_capacity(self.parts.iter().map(Bytes::len).sum());
        for part in self.parts.drain(..) {
            joined.extend_from_slice(&part);
        }
        Bytes::from(joined)
    }
}

impl<S: Stream<Item = Bytes> + Unpin> Stream for Gather<S> {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        if let Some(inner) = this.inner.as_mut() {
            match inner.poll_next_unpin(cx) {
                Poll::Ready(Some(bytes)) => {
                    this.len += bytes.len();
                    this.parts.push(bytes);
                    this.turns = GATHER_TURNS;
                }
                Poll::Ready(None) => this.inner = None,
                Poll::Pending => {}
            }
            if this.inner.is_some() && this.len < GATHER_LIMIT && this.turns > 0 {
                this.turns -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        this.turns = 0;
        if !this.parts.is_empty() {
            Poll::Ready(Some(this.take()))
        } else if this.inner.is_none() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;

    fn bytes(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    async fn frames(stream: impl Stream<Item = Bytes> + Unpin) -> Vec<Bytes> {
        Gather::new(stream).collect().await
    }

    #[tokio::test]
    async fn pieces_ready_together_leave_as_one_frame() {
        let ready = futures_util::stream::iter(
            ["data: a\n\n", "data: b\n\n", "data: [DONE]\n\n"].map(bytes),
        );
        assert_eq!(
            frames(ready).await,
            [bytes("data: a\n\ndata: b\n\ndata: [DONE]\n\n")]
        );
        let empty = futures_util::stream::iter(Vec::<Bytes>::new());
        assert!(frames(empty).await.is_empty());
    }

    #[tokio::test]
    async fn a_piece_that_waits_is_not_held_back_for_the_next() {
        let (send, receive) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let mut gather = Gather::new(Box::pin(futures_util::stream::unfold(
            receive,
            |mut receive| async move { receive.recv().await.map(|piece| (piece, receive)) },
        )));
        send.send(bytes("one ")).unwrap();
        send.send(bytes("two ")).unwrap();
        // Both were queued before the first poll: one frame. Nothing more
        // is queued, so that frame must not wait for the sender.
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), gather.next()).await;
        assert_eq!(first.unwrap().unwrap(), bytes("one two "));
        send.send(bytes("three")).unwrap();
        drop(send);
        assert_eq!(gather.next().await.unwrap(), bytes("three"));
        assert_eq!(gather.next().await, None);
    }

    #[tokio::test]
    async fn pieces_handed_over_one_per_wake_up_are_gathered_despite_a_second_poll() {
        // Like hyper's upstream body: the producer task hands over one
        // piece, then waits until it is taken.
        let (send, receive) = tokio::sync::mpsc::channel::<Bytes>(1);
        let producer = tokio::spawn(async move {
            for index in 0..20 {
                send.send(bytes(&format!("data: {index}\n\n")))
                    .await
                    .unwrap();
            }
        });
        let mut gather = Gather::new(Box::pin(futures_util::stream::unfold(
            receive,
            |mut receive| async move { receive.recv().await.map(|piece| (piece, receive)) },
        )));
        // Like hyper's server: a body found not ready is polled once more
        // in the same task poll.
        let mut sent = Vec::new();
        std::future::poll_fn(|cx| loop {
            let mut poll = Pin::new(&mut gather).poll_next(cx);
            if poll.is_pending() {
                poll = Pin::new(&mut gather).poll_next(cx);
            }
            match poll {
                Poll::Ready(Some(frame)) => sent.push(frame),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await;
        producer.await.unwrap();
        let all: String = (0..20).map(|index| format!("data: {index}\n\n")).collect();
        assert_eq!(sent, [bytes(&all)]);
    }

    #[tokio::test]
    async fn a_lone_piece_is_passed_on_without_a_copy() {
        let piece = bytes("data: {}\n\n");
        let sent = frames(futures_util::stream::iter([piece.clone()])).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].as_ptr(), piece.as_ptr());
    }

    #[tokio::test]
    async fn a_fast_producer_is_sent_in_frames_of_at_most_the_limit() {
        let piece = Bytes::from(vec![b'x'; 1000]);
        let total = 200;
        let sent = frames(futures_util::stream::iter(vec![piece; total])).await;
        assert!(sent.len() > 1, "{} frames", sent.len());
        assert!(sent.iter().all(|frame| frame.len() < GATHER_LIMIT + 1000));
        assert_eq!(sent.iter().map(Bytes::len).sum::<usize>(), total * 1000);
    }
}
