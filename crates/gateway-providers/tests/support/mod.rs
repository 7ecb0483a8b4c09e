//! A loopback fake upstream for the conformance suite: a hyper server on
//! 127.0.0.1:0 that answers scripted responses in order and records what it
//! received (method, path and query, headers, body).

// Each test binary uses a different part of this shared module.
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// The HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body pieces, each sent as its own frame.
    pub pieces: Vec<String>,
    /// After the pieces, break the connection instead of ending the body,
    /// once the test calls [`FakeUpstream::release_cut`].
    pub abort: bool,
}

impl Scripted {
    /// A whole body with a content type.
    pub fn body(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            pieces: vec![body.into()],
            abort: false,
        }
    }

    /// A JSON body.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::body(status, "application/json", body)
    }

    /// A streamed body sent in pieces.
    pub fn stream(content_type: &str, pieces: Vec<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", content_type.to_owned())],
            pieces,
            abort: false,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Breaks the connection after the pieces.
    pub fn then_abort(mut self) -> Self {
        self.abort = true;
        self
    }
}

/// What the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, ...
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Request headers.
    pub headers: http::HeaderMap,
    /// The body, parsed as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
}

impl Recorded {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The running fake; it stops when dropped.
#[derive(Debug)]
pub struct FakeUpstream {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    cut_gate: Arc<tokio::sync::Semaphore>,
    task: JoinHandle<()>,
}

type Body = BoxBody<Bytes, std::io::Error>;

impl FakeUpstream {
    /// Starts a fake that answers `script` in order (then 500s).
    pub async fn start(script: Vec<Scripted>) -> Self {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
            panic!("cannot bind a loopback port");
        };
        let Ok(address) = listener.local_addr() else {
            panic!("no local address");
        };
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let cut_gate = Arc::new(tokio::sync::Semaphore::new(0));
        let task = {
            let recorded = recorded.clone();
            let cut_gate = cut_gate.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let script = script.clone();
                    let recorded = recorded.clone();
                    let cut_gate = cut_gate.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: http::Request<Incoming>| {
                            let script = script.clone();
                            let recorded = recorded.clone();
                            let cut_gate = cut_gate.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    answer(request, &script, &recorded, cut_gate).await,
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            base_url: format!("http://{address}"),
            recorded,
            cut_gate,
            task,
        }
    }

    /// Lets scripted connection cuts happen: call it once the chunks sent
    /// before the cut have arrived, so the cut is not raced with them.
    pub fn release_cut(&self) {
        self.cut_gate.add_permits(1_000);
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded
            .lock()
            .map(|recorded| recorded.clone())
            .unwrap_or_default()
    }

    /// The one request received; fails the test otherwise.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        let [request] = requests.as_slice() else {
            panic!("expected one upstream request, got {}", requests.len());
        };
        request.clone()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    request: http::Request<Incoming>,
    script: &Mutex<VecDeque<Scripted>>,
    recorded: &Mutex<Vec<Recorded>>,
    cut_gate: Arc<tokio::sync::Semaphore>,
) -> http::Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    if let Ok(mut recorded) = recorded.lock() {
        recorded.push(Recorded {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        });
    }
    let next = script.lock().ok().and_then(|mut script| script.pop_front());
    let scripted =
        next.unwrap_or_else(|| Scripted::json(500, r#"{"error":{"message":"script exhausted"}}"#));
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = scripted
        .pieces
        .into_iter()
        .map(|piece| Ok(Frame::data(Bytes::from(piece))))
        .collect();
    let abort = scripted.abort;
    let cut = futures_util::stream::once(async move {
        if abort {
            let _permit = cut_gate.acquire().await;
            Some(Err(std::io::Error::other("scripted connection drop")))
        } else {
            None
        }
    })
    .filter_map(|item| async move { item });
    let body = BodyExt::boxed(StreamBody::new(
        futures_util::stream::iter(frames).chain(cut),
    ));
    let mut builder = http::Response::builder().status(scripted.status);
    for (name, value) in scripted.headers {
        builder = builder.header(name, value);
    }
    match builder.body(body) {
        Ok(response) => response,
        Err(error) => panic!("bad scripted response: {error}"),
    }
}
