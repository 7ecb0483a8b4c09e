//! The OpenAI-compatible adapter: OpenAI itself, vLLM, OpenRouter, and any
//! server that speaks `/chat/completions` (`openai/`, `hosted_vllm/`,
//! `openrouter/`, `custom_openai/`).
//!
//! Requests pass through with the upstream model substituted, the
//! deployment's defaults filled in, and `extra_body` merged over them.
//! Streams always ask the upstream for usage (`stream_options.include_usage`)
//! so the gateway can price them.

mod body;

use crate::error::{upstream_message, ErrorKind, ProviderError};
use crate::http::{HttpClient, JsonEndpoint};
use crate::provider::{CallContext, ChunkStream, Provider, ProviderKind, ReplyStream};
use crate::registry::{BuildContext, BuildError, ProviderFactory, ProviderSpec};
use crate::reply::{ChatReply, ChunkReply, RawChatChunk, RawChatResponse};
use crate::sse;
use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, JsonObject,
};
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::Arc;

/// The upstream's name in error messages.
const UPSTREAM: &str = "openai-compatible upstream";

/// Which member of the OpenAI-compatible family a deployment uses; they
/// differ only in defaults (endpoint and key environment variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `openai/`: api.openai.com unless `api_base` says otherwise.
    OpenAi,
    /// `hosted_vllm/`: a vLLM server; `api_base` is required.
    HostedVllm,
    /// `openrouter/`: openrouter.ai.
    OpenRouter,
    /// `custom_openai/`: any compatible server; `api_base` is required.
    CustomOpenAi,
}

impl Flavor {
    /// Every flavor, for registration.
    pub const ALL: [Flavor; 4] = [
        Flavor::OpenAi,
        Flavor::HostedVllm,
        Flavor::OpenRouter,
        Flavor::CustomOpenAi,
    ];

    /// The model prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Flavor::OpenAi => "openai",
            Flavor::HostedVllm => "hosted_vllm",
            Flavor::OpenRouter => "openrouter",
            Flavor::CustomOpenAi => "custom_openai",
        }
    }

    fn base_env(self) -> &'static [&'static str] {
        match self {
            Flavor::OpenAi => &["OPENAI_API_BASE", "OPENAI_BASE_URL"],
            Flavor::HostedVllm => &["HOSTED_VLLM_API_BASE"],
            Flavor::OpenRouter => &["OPENROUTER_API_BASE"],
            Flavor::CustomOpenAi => &[],
        }
    }

    fn default_base(self) -> Option<&'static str> {
        match self {
            Flavor::OpenAi => Some("https://api.openai.com/v1"),
            Flavor::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Flavor::HostedVllm | Flavor::CustomOpenAi => None,
        }
    }

    fn key_env(self) -> Option<&'static str> {
        match self {
            Flavor::OpenAi => Some("OPENAI_API_KEY"),
            Flavor::HostedVllm => Some("HOSTED_VLLM_API_KEY"),
            Flavor::OpenRouter => Some("OPENROUTER_API_KEY"),
            Flavor::CustomOpenAi => None,
        }
    }
}

/// Builds [`OpenAiProvider`]s for one flavor.
#[derive(Debug, Clone, Copy)]
pub struct OpenAiFactory {
    flavor: Flavor,
}

impl OpenAiFactory {
    /// A factory for `flavor`.
    pub fn new(flavor: Flavor) -> Self {
        Self { flavor }
    }
}

impl ProviderFactory for OpenAiFactory {
    fn build(
        &self,
        spec: &ProviderSpec,
        cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        Ok(Arc::new(OpenAiProvider::new(self.flavor, spec, cx)?))
    }
}

/// One OpenAI-compatible deployment.
#[derive(Debug)]
pub struct OpenAiProvider {
    http: HttpClient,
    api_base: String,
    chat: JsonEndpoint,
    embeddings: JsonEndpoint,
    template: BodyTemplate,
}

/// How an OpenAI-format request body is built for one deployment: the
/// upstream model substituted, the deployment's defaults filled in where the
/// request leaves them unset, and `extra_body` merged over everything. Shared
/// by the OpenAI-compatible and Azure adapters.
#[derive(Debug, Clone)]
pub struct BodyTemplate {
    upstream_model: Value,
    /// The configured model text, for wildcard substitution.
    upstream_model_text: String,
    defaults: JsonObject,
    extra_body: JsonObject,
}

impl BodyTemplate {
    /// The template of a deployment.
    pub fn new(spec: &ProviderSpec) -> Self {
        Self {
            upstream_model: Value::String(spec.upstream_model.clone()),
            upstream_model_text: spec.upstream_model.clone(),
            defaults: spec.defaults.clone(),
            extra_body: spec.extra_body.clone(),
        }
    }

    /// Encodes a request (chat or embeddings). `Some(true)` asks for a stream
    /// with a final usage chunk; `Some(false)` removes the stream fields;
    /// `None` leaves them alone (embeddings).
    pub fn encode<T: serde::Serialize>(
        &self,
        request: &T,
        stream: Option<bool>,
        cx: &CallContext,
    ) -> Result<Vec<u8>, ProviderError> {
        let substituted;
        let model = match cx.upstream_model(&self.upstream_model_text) {
            std::borrow::Cow::Borrowed(_) => &self.upstream_model,
            std::borrow::Cow::Owned(model) => {
                substituted = Value::String(model);
                &substituted
            }
        };
        body::encode(
            request,
            &body::Patch {
                model,
                defaults: &self.defaults,
                extra_body: &self.extra_body,
                stream,
            },
        )
        .map_err(invalid_request)
    }
}

impl OpenAiProvider {
    /// Builds the provider: resolves the endpoint and key (from the spec, else
    /// the flavor's environment variables) and validates the headers.
    pub fn new(flavor: Flavor, spec: &ProviderSpec, cx: &BuildContext) -> Result<Self, BuildError> {
        let api_base = spec
            .api_base
            .clone()
            .or_else(|| flavor.base_env().iter().find_map(|name| cx.env.get(name)))
            .or_else(|| flavor.default_base().map(str::to_owned))
            .ok_or_else(|| {
                BuildError::Missing(format!(
                    "`{}/` needs `api_base` (the server's URL, e.g. http://localhost:8000/v1)",
                    flavor.prefix()
                ))
            })?;
        let api_base = api_base.trim_end_matches('/').to_owned();
        if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
            return Err(BuildError::Invalid(format!(
                "api_base `{api_base}` must start with http:// or https://"
            )));
        }
        let api_key = spec
            .api_key
            .as_ref()
            .map(|key| key.expose().to_owned())
            .or_else(|| flavor.key_env().and_then(|name| cx.env.get(name)));
        let mut headers = Vec::new();
        if let Some(key) = api_key {
            let mut value = HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                BuildError::Invalid(
                    "api_key contains characters not allowed in a header".to_owned(),
                )
            })?;
            value.set_sensitive(true);
            headers.push((http::header::AUTHORIZATION, value));
        }
        headers.extend(parse_headers(&spec.headers)?);
        Ok(Self {
            http: cx.http.clone(),
            chat: JsonEndpoint::new(&format!("{api_base}/chat/completions"), &headers)?,
            embeddings: JsonEndpoint::new(&format!("{api_base}/embeddings"), &headers)?,
            api_base,
            template: BodyTemplate::new(spec),
        })
    }

    /// Sends a non-stream chat request; the 2xx body, or the upstream's
    /// error.
    async fn post_chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<bytes::Bytes, ProviderError> {
        self.post(&self.chat, self.body(request, Some(false), cx)?)
            .await
    }

    /// Posts an encoded body to `url`; the 2xx body, or the upstream's error.
    async fn post(
        &self,
        endpoint: &JsonEndpoint,
        body: Vec<u8>,
    ) -> Result<bytes::Bytes, ProviderError> {
        let response = self.http.send_buffered(endpoint.post(body)).await?;
        if !(200..300).contains(&response.status) {
            return Err(ProviderError::from_upstream(
                UPSTREAM,
                response.status,
                crate::error::retry_after(&response.headers),
                &response.body,
            ));
        }
        Ok(response.body)
    }

    /// Sends a stream request; the 2xx body, or the upstream's error.
    async fn open_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<hyper::body::Incoming, ProviderError> {
        let body = self.body(request, Some(true), cx)?;
        let response = self.http.send(self.chat.post(body)).await?;
        if !response.status().is_success() {
            return Err(self.http.error_from_response(UPSTREAM, response).await);
        }
        Ok(response.into_body())
    }

    fn body<T: serde::Serialize>(
        &self,
        request: &T,
        stream: Option<bool>,
        cx: &CallContext,
    ) -> Result<Vec<u8>, ProviderError> {
        self.template.encode(request, stream, cx)
    }
}

/// Validates configured headers once, at build time.
pub fn parse_headers(
    headers: &[(String, String)],
) -> Result<Vec<(HeaderName, HeaderValue)>, BuildError> {
    headers
        .iter()
        .map(|(name, value)| {
            let header_name = HeaderName::try_from(name.as_str())
                .map_err(|_| BuildError::Invalid(format!("`{name}` is not a valid header name")))?;
            let header_value = HeaderValue::try_from(value.as_str()).map_err(|_| {
                BuildError::Invalid(format!(
                    "the value of header `{name}` is not valid in a header"
                ))
            })?;
            Ok((header_name, header_value))
        })
        .collect()
}

fn invalid_request(error: serde_json::Error) -> ProviderError {
    ProviderError::new(
        ErrorKind::BadRequest,
        format!("cannot encode the upstream request: {error}"),
    )
}

/// Parses a 2xx JSON body, turning an `{"error": ...}` body (some servers
/// answer errors with 200) into an error.
pub fn parse_success<T: serde::de::DeserializeOwned>(
    provider: &str,
    body: &[u8],
) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|error| not_a_response(provider, body, &error))
}

/// The error for a 2xx body that did not parse as the expected response:
/// `Upstream` when it is an `{"error": ...}` object, `InvalidResponse`
/// (with the parse error) otherwise.
pub(crate) fn not_a_response(
    provider: &str,
    body: &[u8],
    error: &dyn std::fmt::Display,
) -> ProviderError {
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) {
        if object.contains_key("error") {
            return ProviderError::new(
                ErrorKind::Upstream,
                format!("{provider} returned an error: {}", upstream_message(body)),
            );
        }
    }
    ProviderError::new(
        ErrorKind::InvalidResponse,
        format!("{provider} returned a body that is not a valid response: {error}"),
    )
}

/// Turns an OpenAI-format event stream into chunks: `[DONE]` ends it, an
/// `{"error": ...}` event is a terminal error.
pub fn chunks_from_events(
    provider: &'static str,
    events: impl futures_core::Stream<Item = Result<sse::SseEvent, ProviderError>> + Send + 'static,
) -> ChunkStream {
    Box::pin(from_events(
        provider,
        events,
        |provider, data| parse_chunk(provider, data.trim()),
        crate::reply::chunk_is_final,
    ))
}

/// [`chunks_from_events`], keeping each chunk's own JSON
/// ([`ChunkReply::Raw`]) where it can be passed through with only `model`
/// replaced.
pub fn replies_from_events(
    provider: &'static str,
    events: impl futures_core::Stream<Item = Result<sse::SseEvent, ProviderError>> + Send + 'static,
) -> ReplyStream {
    Box::pin(from_events(
        provider,
        events,
        |provider, data| {
            let data = bytes::Bytes::from(data);
            match RawChatChunk::parse(provider, data.clone())? {
                Some(raw) => Ok(ChunkReply::Raw(raw)),
                // The check already found the data UTF-8.
                None => parse_chunk(
                    provider,
                    std::str::from_utf8(&data).unwrap_or_default().trim(),
                )
                .map(ChunkReply::Parsed),
            }
        },
        ChunkReply::is_final,
    ))
}

fn parse_chunk(provider: &str, data: &str) -> Result<ChatChunk, ProviderError> {
    match serde_json::from_str::<ChatChunk>(data) {
        // Every field of a chunk is optional, so an error event parses as
        // one; its `error` field says what it is.
        Ok(chunk) if chunk.extra.contains_key("error") => {
            Err(crate::reply::stream_error_event(provider, data))
        }
        Ok(chunk) => Ok(chunk),
        Err(error) => Err(stream_error(provider, data, error)),
    }
}

/// The event loop shared by both forms: `[DONE]` ends the stream, empty
/// events are skipped, and a body that ends before `[DONE]` and before any
/// final chunk (a finish_reason or usage) is a truncation error.
fn from_events<T: Send + 'static>(
    provider: &'static str,
    events: impl futures_core::Stream<Item = Result<sse::SseEvent, ProviderError>> + Send + 'static,
    decode: fn(&'static str, String) -> Result<T, ProviderError>,
    is_final: fn(&T) -> bool,
) -> impl futures_core::Stream<Item = Result<T, ProviderError>> + Send {
    let events = Box::pin(events);
    futures_util::stream::unfold(Some((events, false)), move |state| async move {
        let (mut events, mut finished) = state?;
        loop {
            match events.next().await {
                None if finished => return None,
                None => return Some((Err(crate::translate::truncated_stream(provider)), None)),
                Some(Err(error)) => return Some((Err(error), None)),
                Some(Ok(event)) => {
                    let data = event.data.trim();
                    if data == "[DONE]" {
                        return None;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    return match decode(provider, event.data) {
                        Ok(reply) => {
                            finished |= is_final(&reply);
                            Some((Ok(reply), Some((events, finished))))
                        }
                        Err(error) => Some((Err(error), None)),
                    };
                }
            }
        }
    })
}

fn stream_error(provider: &str, data: &str, error: serde_json::Error) -> ProviderError {
    let is_error_event = serde_json::from_str::<Value>(data)
        .ok()
        .is_some_and(|value| value.get("error").is_some());
    if is_error_event {
        crate::reply::stream_error_event(provider, data)
    } else {
        ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("{provider} sent a stream event that is not a chunk: {error}"),
        )
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind("openai")
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.post_chat(request, cx).await?;
        parse_success(UPSTREAM, &body)
    }

    async fn chat_reply(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatReply, ProviderError> {
        let body = self.post_chat(request, cx).await?;
        match RawChatResponse::parse(UPSTREAM, body.clone())? {
            Some(raw) => Ok(ChatReply::Raw(raw)),
            None => parse_success(UPSTREAM, &body).map(ChatReply::Parsed),
        }
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let body = self.open_stream(request, cx).await?;
        Ok(chunks_from_events(UPSTREAM, sse::events(body)))
    }

    async fn chat_stream_reply(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ReplyStream, ProviderError> {
        let body = self.open_stream(request, cx).await?;
        Ok(replies_from_events(UPSTREAM, sse::events(body)))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let body = self
            .post(&self.embeddings, self.body(request, None, cx)?)
            .await?;
        parse_success(UPSTREAM, &body)
    }
}
