//! The `Provider` trait.

use crate::error::{ErrorKind, ProviderError};
use async_trait::async_trait;
use futures_core::Stream;
use gateway_types::{ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use std::fmt::Debug;
use std::pin::Pin;

/// A stream of chat chunks. An `Err` item is terminal: nothing follows it.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// A low-cardinality name of a provider implementation (`"openai"`,
/// `"anthropic"`, `"mock"`), for logs and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProviderKind(pub &'static str);

impl ProviderKind {
    /// The name.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// Per-call facts a provider may use. Built by the caller for each call.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The gateway's request id, for upstream tracing headers and logs.
    pub request_id: String,
    /// LiteLLM's `mock_response`: the mock provider answers with this text.
    pub mock_response: Option<String>,
}

/// One configured deployment: an upstream model at an endpoint with a
/// credential. Takes OpenAI-shaped requests and answers OpenAI-shaped
/// responses, whatever the upstream speaks.
///
/// The request's `model` is the client's alias; the provider sends its own
/// configured upstream model instead. Cancellation is drop: dropping a future
/// or a [`ChunkStream`] drops the upstream connection.
#[async_trait]
pub trait Provider: Send + Sync + Debug + 'static {
    /// Which implementation this is.
    fn kind(&self) -> ProviderKind;

    /// The upstream endpoint without credentials or query, for the
    /// `x-litellm-model-api-base` header. `None` for in-process providers.
    fn api_base(&self) -> Option<&str> {
        None
    }

    /// A non-stream chat completion.
    async fn chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError>;

    /// A streamed chat completion. Resolves once the upstream answered 2xx;
    /// failures after that arrive as the stream's last item. The stream
    /// always ends with a chunk that carries `usage` when the upstream
    /// reports it (the caller drops it if the client did not ask for it).
    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError>;

    /// Embeddings. The default answers [`ErrorKind::Unsupported`].
    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let _ = (request, cx);
        Err(ProviderError::new(
            ErrorKind::Unsupported,
            format!(
                "the {} provider does not support embeddings",
                self.kind().as_str()
            ),
        ))
    }
}
