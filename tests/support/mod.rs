//! Test support: the real gateway on 127.0.0.1:0, fake upstreams that record
//! what they received, and a small HTTP client.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../crates/gateway-store/tests/support/relay.rs"]
pub mod relay;

use bytes::Bytes;
use gateway_server::config::GatewayConfig;
use gateway_server::Gateway;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};

pub mod protocols;

/// Every test's upper bound on waiting for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running gateway.
#[derive(Debug)]
pub struct TestGateway {
    pub addr: SocketAddr,
    /// The gateway itself, for reloads and hooks.
    pub gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    pub stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestGateway {
    /// Starts the gateway on a config text; `os.environ/` reads only `env`.
    pub async fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_config(parse_config(config, env)).await
    }

    /// Starts the gateway on a config file, as `--config` does; reloads read
    /// the file again. `os.environ/` reads only `env`.
    pub async fn start_file(path: &Path, env: &[(&str, &str)]) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let config = GatewayConfig::parse(&text, Some(path), isolated_env(env))
            .unwrap_or_else(|error| panic!("test config invalid: {error}"));
        Self::start_config(config).await
    }

    /// Starts the gateway on a loaded config.
    pub async fn start_config(config: GatewayConfig) -> Self {
        let gateway = Gateway::from_config(config)
            .unwrap_or_else(|error| panic!("gateway build failed: {error}"));
        Self::serve(gateway, NonZeroUsize::MIN, false).await
    }

    /// Starts the gateway as the binary runs it: `threads` serving threads
    /// of their own (this test's runtime only accepts), each with its
    /// own pool of upstream connections.
    pub async fn start_on_threads(config: &str, env: &[(&str, &str)], threads: usize) -> Self {
        Self::start_threaded(config, env, threads, false).await
    }

    /// Like [`Self::start_on_threads`], through `serve_on_own_threads`:
    /// even one serving thread is not the test's runtime, which only accepts.
    pub async fn start_on_own_threads(config: &str, env: &[(&str, &str)], threads: usize) -> Self {
        Self::start_threaded(config, env, threads, true).await
    }

    async fn start_threaded(
        config: &str,
        env: &[(&str, &str)],
        threads: usize,
        own_threads: bool,
    ) -> Self {
        let config = parse_config(config, env);
        let http = gateway_providers::HttpClient::new(&gateway_providers::HttpClientOptions {
            pool_per_thread: true,
            ..Default::default()
        });
        let gateway = Gateway::build(
            config,
            &gateway_providers::ProviderRegistry::builtin(),
            http,
        )
        .unwrap_or_else(|error| panic!("gateway build failed: {error}"));
        Self::serve(gateway, NonZeroUsize::new(threads).unwrap(), own_threads).await
    }

    async fn serve(gateway: Gateway, threads: NonZeroUsize, own_threads: bool) -> Self {
        let gateway = Arc::new(gateway);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let signal = async move {
            let _ = signal.await;
        };
        let stopped = if own_threads {
            tokio::spawn(gateway_server::server::serve_on_own_threads(
                listener,
                Arc::clone(&gateway),
                threads,
                signal,
            ))
        } else {
            tokio::spawn(gateway_server::server::serve_on_threads(
                listener,
                Arc::clone(&gateway),
                threads,
                signal,
            ))
        };
        Self {
            addr,
            gateway,
            shutdown: Some(shutdown),
            stopped: Some(stopped),
        }
    }

    /// Starts the gateway with its store (`general_settings.database_path`
    /// or `database_url` in the config): keys, budgets and spend logs on.
    pub async fn start_with_store(config: &str, env: &[(&str, &str)]) -> Self {
        let started = Self::start(config, env).await;
        started.gateway.start_store().await;
        started
    }

    /// Stops serving, waits for connections to drain, then drains the
    /// gateway's background work (spend writer, alerts), as the binary does.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(stopped) = self.stopped.take() {
            let _ = tokio::time::timeout(PATIENCE, stopped).await;
        }
        tokio::time::timeout(PATIENCE, self.gateway.shutdown())
            .await
            .expect("gateway shutdown within PATIENCE");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Signals shutdown; `stopped` resolves once connections drained.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// What a fake upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The gateway's end of the connection the request came on.
    pub peer: SocketAddr,
    pub method: String,
    pub path_and_query: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    /// The body's bytes, as they came.
    pub raw_body: Bytes,
}

/// How a fake upstream answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole body.
    Json {
        status: u16,
        body: String,
        headers: Vec<(&'static str, String)>,
    },
    /// SSE events (each a `data:` payload), then the body ends.
    Sse { events: Vec<String> },
    /// A whole body of any type (NDJSON, Anthropic's named events, ...).
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Never answers; notifies `arrived` when the request is in.
    Hang { arrived: Arc<Notify> },
    /// The same SSE event, again and again, as fast as the client reads,
    /// until the client goes away; the fake then notifies `gone`.
    EndlessSse { event: String, gone: Arc<Notify> },
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply::Json {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }
}

/// A fake OpenAI-compatible upstream on 127.0.0.1:0 that answers every
/// request with `reply` and records what it received.
#[derive(Debug)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    reply: Arc<Mutex<Reply>>,
}

impl FakeUpstream {
    pub async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(Mutex::new(reply));
        let (record, reply_for_task) = (Arc::clone(&received), Arc::clone(&reply));
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let record = Arc::clone(&record);
                let reply = Arc::clone(&reply_for_task);
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let record = Arc::clone(&record);
                        let reply = reply.lock().unwrap().clone();
                        async move { Ok::<_, Infallible>(answer(request, peer, record, reply).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            reply,
        }
    }

    /// The base URL without a path, for upstreams whose adapters add their
    /// own (`/v1/messages`, `/api/chat`, `/openai/deployments/...`).
    pub fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL as a deployment's `api_base`.
    pub fn api_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn set_reply(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }
}

type FakeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    record: Arc<Mutex<Vec<Received>>>,
    reply: Reply,
) -> hyper::Response<FakeBody> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    record.lock().unwrap().push(Received {
        peer,
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        raw_body: bytes.clone(),
    });
    match reply {
        Reply::Json {
            status,
            body,
            headers,
        } => {
            let mut builder = hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json");
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            builder.body(Full::new(Bytes::from(body)).boxed()).unwrap()
        }
        Reply::Sse { events } => {
            let mut text = String::new();
            for event in events {
                text.push_str("data: ");
                text.push_str(&event);
                text.push_str("\n\n");
            }
            hyper::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Full::new(Bytes::from(text)).boxed())
                .unwrap()
        }
        Reply::Raw {
            status,
            content_type,
            body,
        } => hyper::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)).boxed())
            .unwrap(),
        Reply::Hang { arrived } => {
            arrived.notify_one();
            std::future::pending().await
        }
        Reply::EndlessSse { event, gone } => {
            let (sender, receiver) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
            tokio::spawn(async move {
                loop {
                    let frame = Frame::data(Bytes::from(format!("data: {event}\n\n")));
                    // send fails once hyper dropped the body: the connection is gone.
                    // The channel holds one frame, so the client's reading
                    // paces the stream.
                    if sender.send(Ok(frame)).await.is_err() {
                        gone.notify_one();
                        return;
                    }
                }
            });
            let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|item| (item, receiver))
            });
            hyper::Response::builder()
                .header("content-type", "text/event-stream")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
    }
}

/// A client response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The events of an SSE body: `(event name, data as JSON)`, in order.
    pub fn sse_events(&self) -> Vec<(Option<String>, Value)> {
        self.text()
            .split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                let data = serde_json::from_str(&data)
                    .unwrap_or_else(|_| panic!("event data is not JSON: {block:?}"));
                (name, data)
            })
            .collect()
    }

    /// Asserts an Anthropic-shaped error with this status and type.
    pub fn assert_anthropic_error(&self, status: u16, kind: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        let body = self.json();
        assert_eq!(body["type"], "error", "body: {body}");
        assert_eq!(body["error"]["type"], kind, "body: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "body: {body}"
        );
        body
    }

    /// The `data:` payloads of an SSE body.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    /// Asserts an OpenAI-shaped error with this status and type.
    pub fn assert_error(&self, status: u16, kind: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        let body = self.json();
        assert_eq!(body["error"]["type"], kind, "body: {body}");
        assert_eq!(body["error"]["code"], status.to_string(), "body: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "body: {body}"
        );
        body
    }
}

/// Sends a request and reads the whole response (bounded by [`PATIENCE`]).
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> TestResponse {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body.into())).unwrap();
    let response = tokio::time::timeout(PATIENCE, async {
        let response = client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    })
    .await;
    response.unwrap_or_else(|_| panic!("no answer from {url} within {PATIENCE:?}"))
}

/// One keep-alive HTTP/1.1 connection to the gateway, for tests that care
/// which connection their requests ride on.
#[derive(Debug)]
pub struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl KeepAlive {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self { sender }
    }

    /// POSTs JSON to `path` and reads the whole response.
    pub async fn post(&mut self, path: &str, body: &Value) -> TestResponse {
        let request = hyper::Request::post(path)
            .header("host", "gateway")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let answered = tokio::time::timeout(PATIENCE, async {
            self.sender.ready().await.unwrap();
            let response = self.sender.send_request(request).await.unwrap();
            let (parts, body) = response.into_parts();
            TestResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes(),
            }
        })
        .await;
        answered.unwrap_or_else(|_| panic!("no answer on {path} within {PATIENCE:?}"))
    }
}

/// POSTs JSON.
pub async fn post(url: &str, headers: &[(&str, &str)], body: &Value) -> TestResponse {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send("POST", url, &all, body.to_string()).await
}

/// A chat-completion response reporting this usage.
pub fn upstream_completion_with_usage(text: &str, prompt: u64, completion: u64) -> Value {
    let mut body = upstream_completion(text);
    body["usage"] = serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    body
}

/// The `Authorization` header for a key.
pub fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

/// Today's UTC date as `YYYY-MM-DD`.
pub fn today() -> String {
    gateway_budget::Timestamp::from_system_time(std::time::SystemTime::now())
        .day()
        .to_string()
}

/// A chat-completion response as an OpenAI upstream sends it.
pub fn upstream_completion(text: &str) -> Value {
    serde_json::json!({
        "id": "chatcmpl-upstream-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "upstream-model-0613",
        "system_fingerprint": "fp_abc",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": null, "function_call": null}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
}

/// A stream chunk as an OpenAI upstream sends it.
pub fn upstream_chunk(content: Option<&str>, finish: Option<&str>) -> String {
    let mut delta = serde_json::Map::new();
    if let Some(content) = content {
        delta.insert("content".to_owned(), Value::String(content.to_owned()));
    }
    serde_json::json!({
        "id": "chatcmpl-upstream-2", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "upstream-model-0613",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
    .to_string()
}

/// An environment holding only these variables.
/// A config text parsed as the tests' gateways read it: `os.environ/`
/// reads only `env`.
fn parse_config(config: &str, env: &[(&str, &str)]) -> GatewayConfig {
    GatewayConfig::parse(config, None, isolated_env(env))
        .unwrap_or_else(|error| panic!("test config invalid: {error}"))
}

pub fn isolated_env(env: &[(&str, &str)]) -> gateway_providers::Env {
    gateway_providers::Env::isolated(
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

/// A directory of its own under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "gateway-test-{}-{name}-{unique}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    /// Writes (or replaces) a file and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One sample of the Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (0.0.4): comments skipped, label
/// values unescaped.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name_end, mut labels) = match line.find('{') {
            Some(open) if open < line.find(' ').unwrap_or(usize::MAX) => (open, BTreeMap::new()),
            _ => (line.find(' ').unwrap_or(line.len()), BTreeMap::new()),
        };
        let name = line[..name_end].to_owned();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let end;
            loop {
                // label name
                let mut key = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c == '=' || c == '}' {
                        break;
                    }
                    if c != ',' && c != ' ' {
                        key.push(c);
                    }
                    chars.next();
                }
                match chars.next() {
                    Some((index, '}')) => {
                        end = index;
                        break;
                    }
                    Some((_, '=')) => {}
                    other => panic!("bad exposition line {line:?} at {other:?}"),
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "line {line:?}");
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("bad escape in {line:?}"),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value in {line:?}"),
                    }
                }
                labels.insert(key, value);
            }
            rest = &inner[end + 1..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The sum of every sample named `name` whose labels include `labels`.
pub fn metric_sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
        })
        .map(|sample| sample.value)
        .sum()
}

/// Log lines written by every gateway in this test process, as JSON, at
/// debug level. The subscriber is global, so it is installed once.
#[derive(Clone, Debug)]
pub struct CapturedLogs {
    buffer: Arc<Mutex<Vec<u8>>>,
    written: Arc<Notify>,
}

impl CapturedLogs {
    /// Installs the capturing subscriber on first call.
    pub fn install() -> Self {
        static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = CapturedLogs {
                buffer: Arc::new(Mutex::new(Vec::new())),
                written: Arc::new(Notify::new()),
            };
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .with_writer(move || writer.clone())
                .init();
            logs
        })
        .clone()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    /// The JSON lines whose fields match `filter`.
    pub fn lines(&self, filter: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| filter(line))
            .collect()
    }

    /// The `request` lines of one request id.
    pub fn request_lines(&self, request_id: &str) -> Vec<Value> {
        self.lines(|line| {
            line["fields"]["message"] == "request" && line["fields"]["request_id"] == request_id
        })
    }

    /// Waits (at most [`PATIENCE`]) until a request line for `request_id` is
    /// written, and returns the lines for it.
    pub async fn wait_for_request(&self, request_id: &str) -> Vec<Value> {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let written = self.written.notified();
                let lines = self.request_lines(request_id);
                if !lines.is_empty() {
                    return lines;
                }
                written.await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("no request line for {request_id} within {PATIENCE:?}"))
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(bytes);
        self.written.notify_waiters();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
