//! Streamed upstream bodies cut into items (SSE events, NDJSON lines) by an
//! incremental decoder: one read loop for every framing.

use crate::error::{ErrorKind, ProviderError};
use futures_core::Stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::VecDeque;

/// An incremental decoder: bytes in, in pieces of any size; whole items out.
pub trait FrameDecoder: Send + 'static {
    /// What the decoder produces.
    type Item: Send + 'static;
    /// Feeds bytes, appending every item they complete to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<Self::Item>) -> Result<(), ProviderError>;
    /// Ends the input, appending a last unterminated item if there is one.
    fn finish(&mut self, out: &mut Vec<Self::Item>) -> Result<(), ProviderError>;
}

/// Reads a response body through `decoder` as a stream of items. Transport
/// errors become [`ErrorKind::Connect`] errors; a decoding error or a broken
/// body is the last item; the stream ends when the body ends.
pub fn decode_body<D: FrameDecoder>(
    body: Incoming,
    decoder: D,
) -> impl Stream<Item = Result<D::Item, ProviderError>> + Send {
    struct State<D: FrameDecoder> {
        body: Incoming,
        decoder: D,
        ready: VecDeque<D::Item>,
        done: bool,
    }
    let state = State {
        body,
        decoder,
        ready: VecDeque::new(),
        done: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some((Ok(item), state));
            }
            if state.done {
                return None;
            }
            let mut out = Vec::new();
            let step = match state.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => state.decoder.push(&data, &mut out),
                    Err(_) => Ok(()),
                },
                Some(Err(error)) => {
                    state.done = true;
                    Err(ProviderError::new(
                        ErrorKind::Connect,
                        format!("upstream stream broke: {error}"),
                    ))
                }
                None => {
                    state.done = true;
                    state.decoder.finish(&mut out)
                }
            };
            state.ready.extend(out);
            if let Err(error) = step {
                state.done = true;
                state.ready.clear();
                return Some((Err(error), state));
            }
        }
    })
}
