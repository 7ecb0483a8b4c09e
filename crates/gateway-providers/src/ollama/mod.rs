//! The Ollama adapter (`ollama/` and `ollama_chat/`): Ollama's native
//! `POST {api_base}/api/chat` with NDJSON streaming, and `POST /api/embed`.
//!
//! Both prefixes use the chat endpoint (LiteLLM's `ollama/` uses the
//! prompt-style `/api/generate`; chat is what every current model serves).
//! Sampling parameters go into `options` (`max_tokens` is `num_predict`),
//! `response_format` becomes `format`, images become the message's base64
//! `images`, and `think`, `keep_alive` and `extra_body` pass through. Ollama
//! sends tool calls whole and without ids: the adapter gives them `call_<n>`
//! ids and serializes their arguments to JSON strings.

mod convert;
mod wire;

#[cfg(test)]
mod tests;

use crate::error::ProviderError;
use crate::http::{HttpClient, JsonEndpoint};
use crate::openai::{parse_headers, parse_success};
use crate::provider::{CallContext, ChunkStream, Provider, ProviderKind};
use crate::registry::{BuildContext, BuildError, ProviderFactory, ProviderSpec};
use crate::translate::{
    apply_defaults, encode_error, merge_extra_body, normalize_base, secret_header, CallIds,
    ResponseMeta,
};
use async_trait::async_trait;
use gateway_types::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, JsonObject};
use std::sync::Arc;

/// The endpoint when neither the spec nor `OLLAMA_API_BASE` sets one.
pub const DEFAULT_API_BASE: &str = "http://localhost:11434";

/// Builds [`OllamaProvider`]s (`ollama/<model>`, `ollama_chat/<model>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OllamaFactory;

impl ProviderFactory for OllamaFactory {
    fn build(
        &self,
        spec: &ProviderSpec,
        cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        Ok(Arc::new(OllamaProvider::new(spec, cx)?))
    }
}

/// One Ollama deployment.
#[derive(Debug)]
pub struct OllamaProvider {
    http: HttpClient,
    api_base: String,
    chat: JsonEndpoint,
    embed: JsonEndpoint,
    upstream_model: String,
    defaults: JsonObject,
    extra_body: JsonObject,
    drop_params: bool,
}

impl OllamaProvider {
    /// Builds the provider: endpoint from the spec, `OLLAMA_API_BASE` or
    /// `http://localhost:11434`; a key (for Ollama behind a proxy) is sent as
    /// a bearer token when configured.
    pub fn new(spec: &ProviderSpec, cx: &BuildContext) -> Result<Self, BuildError> {
        let api_base = spec
            .api_base
            .clone()
            .or_else(|| cx.env.get("OLLAMA_API_BASE"))
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        let api_base = normalize_base(&api_base)?;
        let mut headers = Vec::new();
        if let Some(key) = &spec.api_key {
            headers.push(secret_header(
                "authorization",
                &format!("Bearer {}", key.expose()),
            )?);
        }
        headers.extend(parse_headers(&spec.headers)?);
        Ok(Self {
            http: cx.http.clone(),
            chat: JsonEndpoint::new(&format!("{api_base}/api/chat"), &headers)?,
            embed: JsonEndpoint::new(&format!("{api_base}/api/embed"), &headers)?,
            api_base,
            upstream_model: spec.upstream_model.clone(),
            defaults: spec.defaults.clone(),
            extra_body: spec.extra_body.clone(),
            drop_params: spec.drop_params,
        })
    }

    fn body(
        &self,
        request: &ChatRequest,
        stream: bool,
        cx: &CallContext,
    ) -> Result<Vec<u8>, ProviderError> {
        let request = apply_defaults(request, &self.defaults)?;
        let wire = convert::request_to_wire(
            &request,
            &convert::RequestOptions {
                model: &cx.upstream_model(&self.upstream_model),
                drop_params: self.drop_params,
                stream,
            },
        )?;
        let mut value = serde_json::to_value(wire).map_err(encode_error)?;
        merge_extra_body(&mut value, &self.extra_body);
        serde_json::to_vec(&value).map_err(encode_error)
    }
}

impl OllamaProvider {
    fn meta(&self, cx: &CallContext) -> ResponseMeta {
        ResponseMeta::for_call(cx, &self.upstream_model)
    }
}

#[async_trait]
impl Provider for OllamaProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind("ollama")
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.body(request, false, cx)?;
        let response = self.http.send_buffered(self.chat.post(body)).await?;
        if !(200..300).contains(&response.status) {
            return Err(convert::error_from_wire(&response));
        }
        let wire = parse_success(convert::PROVIDER, &response.body)?;
        Ok(convert::response_from_wire(
            wire,
            &mut CallIds::random(),
            self.meta(cx),
        ))
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let body = self.body(request, true, cx)?;
        let response = self.http.send(self.chat.post(body)).await?;
        if !response.status().is_success() {
            return Err(convert::error_from_wire(
                &self.http.buffer_error(response).await,
            ));
        }
        let translator = convert::StreamTranslator::new(self.meta(cx), CallIds::random());
        Ok(crate::translate::translate_stream(
            crate::ndjson::lines(response.into_body()),
            translator,
        ))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let wire =
            convert::embed_request_to_wire(request, &cx.upstream_model(&self.upstream_model));
        let mut value = serde_json::to_value(wire).map_err(encode_error)?;
        merge_extra_body(&mut value, &self.extra_body);
        let body = serde_json::to_vec(&value).map_err(encode_error)?;
        let response = self.http.send_buffered(self.embed.post(body)).await?;
        if !(200..300).contains(&response.status) {
            return Err(convert::error_from_wire(&response));
        }
        let wire = parse_success(convert::PROVIDER, &response.body)?;
        Ok(convert::embed_response_from_wire(wire))
    }
}
