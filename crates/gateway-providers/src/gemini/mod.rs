//! The Gemini adapter (`gemini/`, Google AI Studio):
//! `POST {api_base}/v1beta/models/{model}:generateContent`, and
//! `:streamGenerateContent?alt=sse` for streams, with the key in the
//! `x-goog-api-key` header.
//!
//! Assistant turns become `model` turns, tool results `functionResponse`
//! parts, system messages the `systemInstruction`, sampling parameters the
//! `generationConfig` (`response_format` becomes `responseMimeType` and
//! `responseSchema`), tools `functionDeclarations`, and `data:` images
//! `inlineData`. Gemini's function calls arrive whole and usually without
//! ids: the adapter gives them `call_<n>` ids. A blocked prompt
//! (`promptFeedback.blockReason`) or an answer stopped by a safety filter
//! before any content is [`crate::ErrorKind::ContentFiltered`].

mod convert;
mod wire;

#[cfg(test)]
mod tests;

use crate::error::ProviderError;
use crate::http::{json_post, HttpClient};
use crate::openai::{parse_headers, parse_success};
use crate::provider::{CallContext, ChunkStream, Provider, ProviderKind};
use crate::registry::{BuildContext, BuildError, ProviderFactory, ProviderSpec};
use crate::sse;
use crate::translate::{
    apply_defaults, encode_error, merge_extra_body, normalize_base, secret_header, CallIds,
    ResponseMeta,
};
use async_trait::async_trait;
use gateway_types::{ChatRequest, ChatResponse, JsonObject};
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

/// The public endpoint.
pub const DEFAULT_API_BASE: &str = "https://generativelanguage.googleapis.com";

/// Builds [`GeminiProvider`]s (`gemini/<model>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiFactory;

impl ProviderFactory for GeminiFactory {
    fn build(
        &self,
        spec: &ProviderSpec,
        cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        Ok(Arc::new(GeminiProvider::new(spec, cx)?))
    }
}

/// One Gemini deployment.
#[derive(Debug)]
pub struct GeminiProvider {
    http: HttpClient,
    api_base: String,
    /// The API root, for URLs built per call (wildcard models).
    root: String,
    generate_url: String,
    stream_url: String,
    upstream_model: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    defaults: JsonObject,
    extra_body: JsonObject,
    drop_params: bool,
}

impl GeminiProvider {
    /// Builds the provider: endpoint from the spec, `GEMINI_API_BASE` or the
    /// public API; key from the spec, `GEMINI_API_KEY` or `GOOGLE_API_KEY`.
    pub fn new(spec: &ProviderSpec, cx: &BuildContext) -> Result<Self, BuildError> {
        let api_base = spec
            .api_base
            .clone()
            .or_else(|| cx.env.get("GEMINI_API_BASE"))
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        let api_base = normalize_base(&api_base)?;
        let root = api_base.strip_suffix("/v1beta").unwrap_or(&api_base);
        let model = spec
            .upstream_model
            .strip_prefix("models/")
            .unwrap_or(&spec.upstream_model);
        let api_key = spec
            .api_key
            .as_ref()
            .map(|key| key.expose().to_owned())
            .or_else(|| cx.env.get("GEMINI_API_KEY"))
            .or_else(|| cx.env.get("GOOGLE_API_KEY"));
        let mut headers = Vec::new();
        if let Some(key) = api_key {
            headers.push(secret_header("x-goog-api-key", &key)?);
        }
        headers.extend(parse_headers(&spec.headers)?);
        Ok(Self {
            http: cx.http.clone(),
            generate_url: format!("{root}/v1beta/models/{model}:generateContent"),
            stream_url: format!("{root}/v1beta/models/{model}:streamGenerateContent?alt=sse"),
            root: root.to_owned(),
            api_base,
            upstream_model: model.to_owned(),
            headers,
            defaults: spec.defaults.clone(),
            extra_body: spec.extra_body.clone(),
            drop_params: spec.drop_params,
        })
    }

    fn body(&self, request: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        let request = apply_defaults(request, &self.defaults)?;
        let wire = convert::request_to_wire(&request, self.drop_params)?;
        let mut value = serde_json::to_value(wire).map_err(encode_error)?;
        merge_extra_body(&mut value, &self.extra_body);
        serde_json::to_vec(&value).map_err(encode_error)
    }
}

impl GeminiProvider {
    /// The `generateContent` (or streaming) URL: built once, except for a
    /// wildcard model, whose name comes with the call.
    fn url<'a>(&'a self, cx: &CallContext, stream: bool) -> std::borrow::Cow<'a, str> {
        match cx.upstream_model(&self.upstream_model) {
            std::borrow::Cow::Borrowed(_) if stream => std::borrow::Cow::Borrowed(&self.stream_url),
            std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(&self.generate_url),
            std::borrow::Cow::Owned(model) if stream => std::borrow::Cow::Owned(format!(
                "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
                self.root
            )),
            std::borrow::Cow::Owned(model) => std::borrow::Cow::Owned(format!(
                "{}/v1beta/models/{model}:generateContent",
                self.root
            )),
        }
    }

    fn meta(&self, cx: &CallContext) -> ResponseMeta {
        ResponseMeta::for_call(cx, &self.upstream_model)
    }
}

#[async_trait]
impl Provider for GeminiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind("gemini")
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.body(request)?;
        let response = self
            .http
            .send_buffered(json_post(&self.url(cx, false), &self.headers, body)?)
            .await?;
        if !(200..300).contains(&response.status) {
            return Err(convert::error_from_wire(&response));
        }
        let wire = parse_success(convert::PROVIDER, &response.body)?;
        convert::response_from_wire(wire, &mut CallIds::random(), self.meta(cx))
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let body = self.body(request)?;
        let response = self
            .http
            .send(json_post(&self.url(cx, true), &self.headers, body)?)
            .await?;
        if !response.status().is_success() {
            return Err(convert::error_from_wire(
                &self.http.buffer_error(response).await,
            ));
        }
        let translator = convert::StreamTranslator::new(self.meta(cx), CallIds::random());
        Ok(crate::translate::translate_stream(
            sse::events(response.into_body()),
            translator,
        ))
    }
}
