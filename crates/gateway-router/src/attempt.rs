//! One attempt's bookkeeping: the in-flight guard that records the outcome
//! into the engine (and ends the call when dropped), and the committed stream
//! that carries the guard until the stream ends.

use crate::engine::{Engine, Outcome};
use crate::state::{with_table, RouterState};
use futures_core::Stream;
use gateway_providers::{ChatReply, ChunkReply, ProviderError};
use gateway_types::{ChatChunk, ChatResponse, Usage};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The engine and its state, shared by a router and its live attempts.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) state: Arc<dyn RouterState>,
}

/// The driver's clock: tokio's, so that paused-time tests control it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A call in flight on one deployment. Dropping it unfinished (the request
/// was cancelled) ends the call without blaming the deployment.
#[derive(Debug)]
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    deployment: usize,
    started: Instant,
    ended: bool,
}

impl InFlight {
    /// Tracks a call the engine already counted as started.
    pub(crate) fn new(shared: Arc<Shared>, deployment: usize, started: Instant) -> Self {
        Self {
            shared,
            deployment,
            started,
            ended: false,
        }
    }

    fn elapsed(&self) -> Duration {
        now().saturating_duration_since(self.started)
    }

    fn finish(&mut self, outcome: Option<&Outcome>, tokens: u64) {
        if self.ended {
            return;
        }
        self.ended = true;
        let now = now();
        let (engine, deployment) = (&self.shared.engine, self.deployment);
        with_table(&*self.shared.state, |table| {
            if let Some(outcome) = outcome {
                engine.record(table, deployment, outcome, now);
            }
            engine.end(table, deployment, tokens, now);
        });
    }

    /// The call answered with `tokens` of usage.
    pub(crate) fn succeed(mut self, tokens: u64) {
        let outcome = Outcome::Success {
            latency: self.elapsed(),
            stream: false,
        };
        self.finish(Some(&outcome), tokens);
    }

    /// The call failed.
    pub(crate) fn fail(&mut self, error: &ProviderError, tokens: u64) {
        let outcome = Outcome::failure(error, self.elapsed());
        self.finish(Some(&outcome), tokens);
    }

    /// A stream sent its first chunk: records the time to first token and
    /// keeps the call in flight.
    fn first_chunk(&self) {
        self.answered(true);
    }

    /// The call answered (a stream: sent its first chunk): records its
    /// latency and keeps the call in flight.
    pub(crate) fn answered(&self, stream: bool) {
        let outcome = Outcome::Success {
            latency: self.elapsed(),
            stream,
        };
        let now = now();
        let (engine, deployment) = (&self.shared.engine, self.deployment);
        with_table(&*self.shared.state, |table| {
            engine.record(table, deployment, &outcome, now)
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.finish(None, 0);
    }
}

/// A call routed with [`Router::route`](crate::Router::route) or
/// [`Router::route_stream`](crate::Router::route_stream) that answered. It
/// keeps the call counted in flight on its deployment (least-busy routing,
/// tpm windows) until [`CallGuard::finish`] or [`CallGuard::fail`]; dropping
/// it ends the call without blaming the deployment, as a cancelled call.
#[derive(Debug)]
pub struct CallGuard(InFlight);

impl CallGuard {
    pub(crate) fn new(inner: InFlight) -> Self {
        Self(inner)
    }

    /// The call is over (a stream ended cleanly); `tokens` of usage count
    /// toward the deployment's tpm window.
    pub fn finish(mut self, tokens: u64) {
        self.0.finish(None, tokens);
    }

    /// The call failed after it answered (a committed stream broke): the
    /// failure counts toward the deployment's cooldown like a failed attempt.
    pub fn fail(mut self, error: &ProviderError, tokens: u64) {
        self.0.fail(error, tokens);
    }
}

/// An answer (or a stream's chunk) in either of its forms: what the router
/// reads of it is the usage it reports.
pub(crate) trait Reported: Send + Unpin + 'static {
    fn usage(&self) -> Option<&Usage>;
}

impl Reported for ChatChunk {
    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

impl Reported for ChunkReply {
    fn usage(&self) -> Option<&Usage> {
        ChunkReply::usage(self)
    }
}

impl Reported for ChatResponse {
    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

impl Reported for ChatReply {
    fn usage(&self) -> Option<&Usage> {
        ChatReply::usage(self)
    }
}

/// A boxed stream of `T`s; an `Err` item is terminal.
pub(crate) type ItemStream<T> = Pin<Box<dyn Stream<Item = Result<T, ProviderError>> + Send>>;

/// A stream whose first chunk arrived, before the router commits to it.
pub(crate) struct Peeked<T> {
    pub(crate) first: T,
    pub(crate) rest: ItemStream<T>,
}

/// Commits to a peeked stream: records its time to first token and returns
/// the stream with the first chunk put back in front.
pub(crate) fn commit<T: Reported>(peeked: Peeked<T>, guard: InFlight) -> ItemStream<T> {
    guard.first_chunk();
    Box::pin(CommittedStream {
        tokens: peeked.first.usage().map_or(0, |usage| usage.total_tokens),
        first: Some(peeked.first),
        rest: peeked.rest,
        guard,
        done: false,
    })
}

/// A committed stream: yields the first chunk again, watches for usage, and
/// records the end (or a mid-stream failure) of the call.
struct CommittedStream<T> {
    first: Option<T>,
    rest: ItemStream<T>,
    guard: InFlight,
    tokens: u64,
    done: bool,
}

impl<T: Reported> Stream for CommittedStream<T> {
    type Item = Result<T, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match this.rest.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(usage) = chunk.usage() {
                    this.tokens = usage.total_tokens;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.done = true;
                this.guard.fail(&error, this.tokens);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.done = true;
                this.guard.finish(None, this.tokens);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
