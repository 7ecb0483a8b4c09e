//! A scripted provider for driver tests: answers from a queue of scripted
//! results and records every call with the (paused) time it was made.

use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_providers::{
    CallContext, ChunkStream, ErrorKind, Provider, ProviderError, ProviderKind,
};
use gateway_router::{Deployment, DeploymentSettings, Rng};
use gateway_types::{
    ChatChunk, ChatRequest, ChatResponse, DeploymentId, EmbeddingsRequest, EmbeddingsResponse,
    ModelName, Usage,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One scripted reaction to a call.
#[derive(Debug, Clone)]
pub enum Script {
    /// Answer after a delay (a stream: one chunk after the delay).
    Answer(Duration),
    /// Fail at once (a stream: at open).
    Fail(ProviderError),
    /// Never answer.
    Hang,
    /// Open a stream whose items come after the given delays.
    Stream(Vec<(Duration, Item)>),
}

/// One stream item.
#[derive(Debug, Clone)]
pub enum Item {
    /// A content chunk.
    Chunk,
    /// A final chunk with usage.
    Usage(u64),
    /// A terminal error.
    Error(ProviderError),
}

/// The shared call log: (provider name, seconds since the log was made).
#[derive(Debug, Clone)]
pub struct Log {
    start: Instant,
    calls: Arc<Mutex<Vec<(&'static str, f64)>>>,
}

impl Log {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            calls: Arc::default(),
        }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<(&'static str, f64)> {
        self.calls.lock().unwrap().clone()
    }

    /// The names called so far, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.calls().into_iter().map(|(name, _)| name).collect()
    }

    /// Seconds since the log was made.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

#[derive(Debug)]
pub struct Scripted {
    name: &'static str,
    script: Mutex<VecDeque<Script>>,
    log: Log,
}

impl Scripted {
    fn next(&self) -> Script {
        let mut calls = self.log.calls.lock().unwrap();
        calls.push((self.name, self.log.start.elapsed().as_secs_f64()));
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Script::Answer(Duration::ZERO))
    }
}

pub fn response(name: &str) -> ChatResponse {
    ChatResponse {
        id: name.to_owned(),
        object: "chat.completion".to_owned(),
        created: 0,
        model: name.to_owned(),
        choices: Vec::new(),
        usage: Some(Usage::new(10, 5)),
        system_fingerprint: None,
        extra: Default::default(),
    }
}

#[async_trait]
impl Provider for Scripted {
    fn kind(&self) -> ProviderKind {
        ProviderKind("scripted")
    }

    async fn chat(
        &self,
        _request: &ChatRequest,
        _cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        match self.next() {
            Script::Answer(delay) => {
                tokio::time::sleep(delay).await;
                Ok(response(self.name))
            }
            Script::Fail(error) => Err(error),
            Script::Hang => std::future::pending().await,
            Script::Stream(_) => Err(ProviderError::new(
                ErrorKind::BadRequest,
                "scripted a stream for chat",
            )),
        }
    }

    async fn chat_stream(
        &self,
        _request: &ChatRequest,
        _cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let items = match self.next() {
            Script::Answer(delay) => vec![(delay, Item::Chunk)],
            Script::Fail(error) => return Err(error),
            Script::Hang => std::future::pending().await,
            Script::Stream(items) => items,
        };
        let name = self.name;
        let stream = futures_util::stream::iter(items).then(move |(delay, item)| async move {
            tokio::time::sleep(delay).await;
            match item {
                Item::Chunk => Ok(ChatChunk::new(name, name, 0)),
                Item::Usage(tokens) => {
                    let mut chunk = ChatChunk::new(name, name, 0);
                    chunk.usage = Some(Usage::new(tokens, 0));
                    Ok(chunk)
                }
                Item::Error(error) => Err(error),
            }
        });
        Ok(Box::pin(stream))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        _cx: &CallContext,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        match self.next() {
            Script::Fail(error) => Err(error),
            _ => Ok(EmbeddingsResponse {
                object: "list".to_owned(),
                data: Vec::new(),
                model: request.model.clone(),
                usage: None,
                extra: Default::default(),
            }),
        }
    }
}

/// A deployment `name` of `group` that follows `script`.
pub fn scripted(
    log: &Log,
    name: &'static str,
    group: &str,
    settings: DeploymentSettings,
    script: Vec<Script>,
) -> Deployment {
    Deployment {
        id: DeploymentId::from(name),
        model_name: ModelName::from(group),
        provider: Arc::new(Scripted {
            name,
            script: Mutex::new(script.into()),
            log: log.clone(),
        }),
        settings,
    }
}

/// Always draws the same number.
#[derive(Debug)]
pub struct Fixed(pub f64);

impl Rng for Fixed {
    fn next_f64(&mut self) -> f64 {
        self.0
    }
}

pub fn error(kind: ErrorKind) -> ProviderError {
    ProviderError::new(kind, format!("scripted {kind}"))
}
