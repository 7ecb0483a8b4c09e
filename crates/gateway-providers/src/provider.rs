//! The `Provider` trait.

use crate::error::{ErrorKind, ProviderError};
use crate::reply::{ChatReply, ChunkReply};
use crate::sse::SseEvent;
use async_trait::async_trait;
use futures_core::Stream;
use gateway_types::{ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use std::fmt::Debug;
use std::pin::Pin;

/// A stream of chat chunks. An `Err` item is terminal: nothing follows it.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// A stream of chat chunks in whichever form the provider produced them
/// ([`Provider::chat_stream_reply`]). An `Err` item is terminal.
pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<ChunkReply, ProviderError>> + Send>>;

/// The events of a native (untranslated) upstream stream, as the upstream
/// sent them. An `Err` item is terminal.
pub type NativeStream = Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>;

/// The answer of a passthrough call ([`Provider::anthropic_messages`]): the
/// upstream's own JSON body, or its own server-sent events.
pub enum NativeResponse {
    /// A non-stream answer: the upstream's JSON body, with `model` as the
    /// upstream wrote it.
    Json(serde_json::Value),
    /// A stream: the upstream's events, to be written to the client as
    /// `event: <name>\ndata: <data>\n\n`.
    Stream(NativeStream),
}

impl std::fmt::Debug for NativeResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativeResponse::Json(value) => f.debug_tuple("Json").field(value).finish(),
            NativeResponse::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

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
    /// Client headers a passthrough call may forward upstream: for
    /// `/v1/messages` the server puts the client's `anthropic-version` and
    /// `anthropic-beta` here, and [`Provider::anthropic_messages`] of the
    /// Anthropic adapter sends them (betas joined with the deployment's).
    /// Translated calls ignore them.
    pub forward_headers: Vec<(String, String)>,
    /// For a wildcard model group (`model_name: "*"` or `"openai/*"`): the
    /// part of the requested name that the `*` matched. A deployment whose
    /// configured model has a `*` (`openai/*`) sends that text in its place;
    /// see [`CallContext::upstream_model`].
    pub wildcard: Option<String>,
}

impl CallContext {
    /// The model to send upstream: `configured`, with its `*` replaced by
    /// the wildcard match when there is one.
    pub fn upstream_model<'a>(&'a self, configured: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.wildcard {
            Some(matched) if configured.contains('*') => {
                std::borrow::Cow::Owned(configured.replacen('*', matched, 1))
            }
            _ => std::borrow::Cow::Borrowed(configured),
        }
    }
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

    /// [`Provider::chat`], answered in whichever form is cheapest for the
    /// caller that sends the answer on as JSON: an OpenAI-format upstream may
    /// answer its own checked body ([`ChatReply::Raw`]) so it is not parsed
    /// and encoded again. The default calls [`Provider::chat`].
    async fn chat_reply(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatReply, ProviderError> {
        self.chat(request, cx).await.map(ChatReply::Parsed)
    }

    /// A streamed chat completion. Resolves once the upstream answered 2xx;
    /// failures after that arrive as the stream's last item. The stream
    /// always ends with a chunk that carries `usage` when the upstream
    /// reports it (the caller drops it if the client did not ask for it).
    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError>;

    /// [`Provider::chat_stream`], with chunks in whichever form is cheapest
    /// for a caller that sends them on as SSE: an OpenAI-format upstream may
    /// answer its events' own JSON ([`ChunkReply::Raw`]). The default wraps
    /// [`Provider::chat_stream`]'s chunks.
    async fn chat_stream_reply(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ReplyStream, ProviderError> {
        use futures_util::StreamExt;
        let chunks = self.chat_stream(request, cx).await?;
        Ok(Box::pin(chunks.map(|item| item.map(ChunkReply::Parsed))))
    }

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

    /// Passthrough for the gateway's Anthropic-format endpoint
    /// (`POST /v1/messages`): when this deployment itself speaks the Anthropic
    /// Messages API, it forwards `body` (an Anthropic Messages request) with
    /// only `model` replaced by its upstream model, and answers the upstream's
    /// own JSON or events, so nothing is lost in a round trip through the
    /// OpenAI shape. `body["stream"] == true` asks for a stream.
    ///
    /// The default answers `Ok(None)`: "I cannot pass this through"; the
    /// caller then translates the body with
    /// [`crate::anthropic::ingress::messages_to_chat_request`] and calls
    /// [`Provider::chat`] or [`Provider::chat_stream`].
    async fn anthropic_messages(
        &self,
        body: &serde_json::Value,
        cx: &CallContext,
    ) -> Result<Option<NativeResponse>, ProviderError> {
        let _ = (body, cx);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_replace_the_star_of_the_configured_model() {
        let plain = CallContext::default();
        assert_eq!(plain.upstream_model("gpt-4o"), "gpt-4o");
        assert_eq!(plain.upstream_model("*"), "*");
        let wildcard = CallContext {
            wildcard: Some("gpt-4o-mini".to_owned()),
            ..CallContext::default()
        };
        assert_eq!(wildcard.upstream_model("*"), "gpt-4o-mini");
        assert_eq!(
            wildcard.upstream_model("azure-*-eu"),
            "azure-gpt-4o-mini-eu"
        );
        assert_eq!(wildcard.upstream_model("fixed-model"), "fixed-model");
    }
}
