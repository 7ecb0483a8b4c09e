//! The fake upstream: an OpenAI-compatible chat endpoint that answers from
//! precomputed bytes, as fast as hyper allows, on its own runtime and threads
//! so its cost can be measured apart from the load generator's.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The name of the fake upstream's threads, used to find them in
/// `/proc/self/task` and measure their CPU time.
pub const THREAD_NAME: &str = "bench-upstream";

/// The model id the fake upstream reports.
pub const UPSTREAM_MODEL: &str = "bench-upstream";

/// How one listener of the fake upstream answers `POST .../chat/completions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A whole JSON chat completion with usage.
    Json,
    /// An SSE stream of this many content chunks, then a usage chunk and
    /// `[DONE]`.
    Sse {
        /// Content chunks before the usage chunk.
        chunks: usize,
    },
    /// A 500 with an OpenAI-shaped error body (a broken primary deployment).
    ServerError,
}

/// The running fake upstream. Dropping it stops its runtime and closes every
/// listener.
#[derive(Debug)]
pub struct FakeUpstream {
    runtime: Option<tokio::runtime::Runtime>,
}

/// The body type the fake upstream answers with.
type FakeBody = BoxBody<Bytes, Infallible>;

/// Precomputed answers for one listener.
#[derive(Debug)]
struct Answers {
    mode: Mode,
    json: Bytes,
    sse: Vec<Bytes>,
    error: Bytes,
}

impl FakeUpstream {
    /// Starts a runtime of `threads` worker threads named [`THREAD_NAME`].
    pub fn start(threads: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .context("cannot start the fake upstream's runtime")?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Opens a listener on 127.0.0.1:0 answering in `mode`; returns its
    /// address.
    pub fn listen(&self, mode: Mode) -> anyhow::Result<SocketAddr> {
        let runtime = self
            .runtime
            .as_ref()
            .context("the fake upstream is stopped")?;
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .context("cannot bind the fake upstream")?;
        let addr = listener.local_addr()?;
        let answers = Arc::new(Answers::new(mode));
        runtime.spawn(accept_loop(listener, answers));
        Ok(addr)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, answers: Arc<Answers>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let answers = Arc::clone(&answers);
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<Incoming>| {
                let answers = Arc::clone(&answers);
                async move { Ok::<_, Infallible>(answer(request, &answers).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(request: hyper::Request<Incoming>, answers: &Answers) -> hyper::Response<FakeBody> {
    let is_chat = request.method() == hyper::Method::POST
        && request.uri().path().ends_with("/chat/completions");
    // Drain the request body so the connection can be reused.
    let _ = request.into_body().collect().await;
    if !is_chat {
        return respond(404, "application/json", full(answers.error.clone()));
    }
    match answers.mode {
        Mode::Json => respond(200, "application/json", full(answers.json.clone())),
        Mode::Sse { .. } => {
            let frames = answers
                .sse
                .clone()
                .into_iter()
                .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
            let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
            respond(200, "text/event-stream", body)
        }
        Mode::ServerError => respond(500, "application/json", full(answers.error.clone())),
    }
}

fn full(bytes: Bytes) -> FakeBody {
    Full::new(bytes).boxed()
}

fn respond(status: u16, content_type: &'static str, body: FakeBody) -> hyper::Response<FakeBody> {
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

impl Answers {
    fn new(mode: Mode) -> Self {
        let chunks = match mode {
            Mode::Sse { chunks } => chunks,
            Mode::Json | Mode::ServerError => 0,
        };
        Self {
            mode,
            json: Bytes::from(chat_completion_json()),
            sse: sse_events(chunks),
            error: Bytes::from_static(
                br#"{"error":{"message":"the fake upstream is configured to fail","type":"server_error","param":null,"code":"500"}}"#,
            ),
        }
    }
}

/// The words of the canned answer, one per stream chunk (cycled).
const WORDS: &[&str] = &[
    "Benchmarks ",
    "that ",
    "interleave ",
    "direct ",
    "and ",
    "proxied ",
    "rounds ",
    "cancel ",
    "most ",
    "machine ",
    "drift, ",
    "so ",
    "the ",
    "difference ",
    "is ",
    "the ",
    "gateway's ",
    "own ",
    "overhead",
    ".",
];

/// A typical non-stream chat completion, about 500 bytes.
pub fn chat_completion_json() -> Vec<u8> {
    let content: String = WORDS.concat();
    let body = serde_json::json!({
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": UPSTREAM_MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 31,
            "completion_tokens": 20,
            "total_tokens": 51,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
        },
        "system_fingerprint": "fp_bench"
    });
    body.to_string().into_bytes()
}

/// A typical stream: a role chunk, `chunks` content chunks (the last with
/// `finish_reason`), a usage chunk with no choices, and `[DONE]`; each event
/// its own frame.
pub fn sse_events(chunks: usize) -> Vec<Bytes> {
    let event = |value: serde_json::Value| Bytes::from(format!("data: {value}\n\n"));
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": UPSTREAM_MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        })
    };
    let mut events = Vec::with_capacity(chunks + 3);
    events.push(event(chunk(
        serde_json::json!({"role": "assistant", "content": ""}),
        None,
    )));
    for index in 0..chunks {
        let finish = (index + 1 == chunks).then_some("stop");
        let word = WORDS[index % WORDS.len()];
        events.push(event(chunk(serde_json::json!({"content": word}), finish)));
    }
    events.push(event(serde_json::json!({
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": UPSTREAM_MODEL,
        "choices": [],
        "usage": {"prompt_tokens": 31, "completion_tokens": chunks, "total_tokens": 31 + chunks}
    })));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{run_round, RoundSpec, Target, TargetSpec};
    use std::time::Duration;

    fn round(mode: Mode, stream: bool) -> anyhow::Result<crate::load::RoundResult> {
        let upstream = FakeUpstream::start(1)?;
        let addr = upstream.listen(mode)?;
        let client = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        client.block_on(async {
            let target = Target::new(TargetSpec {
                name: "direct",
                url: format!("http://{addr}/v1/chat/completions"),
                bearer: "test".to_owned(),
                body: bytes::Bytes::from_static(b"{}"),
                stream,
            })?;
            let spec = RoundSpec {
                concurrency: 2,
                duration: Duration::from_secs(10),
                requests: Some(6),
                request_timeout: Duration::from_secs(10),
                rate: None,
            };
            run_round(&target, spec).await
        })
    }

    #[test]
    fn json_answers_are_counted_as_successes() -> anyhow::Result<()> {
        let result = round(Mode::Json, false)?;
        assert_eq!((result.ok, result.errors), (6, 0));
        Ok(())
    }

    #[test]
    fn streams_end_with_done_and_are_counted_as_successes() -> anyhow::Result<()> {
        let result = round(Mode::Sse { chunks: 5 }, true)?;
        assert_eq!((result.ok, result.errors), (6, 0));
        Ok(())
    }

    #[test]
    fn server_errors_are_counted_as_errors() -> anyhow::Result<()> {
        let result = round(Mode::ServerError, false)?;
        assert_eq!((result.ok, result.errors), (0, 6));
        assert!(result
            .first_error
            .is_some_and(|error| error.starts_with("HTTP 500")));
        Ok(())
    }

    #[test]
    fn the_stream_has_a_role_chunk_content_chunks_usage_and_done() {
        let events = sse_events(3);
        assert_eq!(events.len(), 6);
        assert!(events[4].starts_with(b"data: {") && events[4].ends_with(b"\n\n"));
        assert_eq!(&events[5][..], b"data: [DONE]\n\n");
    }
}
