//! The Azure OpenAI adapter (`azure/<deployment>`):
//! `POST {api_base}/openai/deployments/{deployment}/chat/completions?api-version=...`
//! (and `/embeddings`), authenticated with the `api-key` header.
//!
//! The body, the response and the stream are OpenAI's, built and read by the
//! same code as the OpenAI-compatible adapter ([`crate::openai::BodyTemplate`],
//! [`crate::openai::chunks_from_events`]). What is Azure's own: the URL, the
//! key header, content-filter errors (400 `content_filter` /
//! `ResponsibleAIPolicyViolation`, and answers that finish with
//! `content_filter` before saying anything) reported as
//! [`crate::ErrorKind::ContentFiltered`], and the prompt-filter chunks Azure
//! puts at the start of streams, which are skipped.

mod convert;
mod wire;

#[cfg(test)]
mod tests;

use crate::error::ProviderError;
use crate::http::{HttpClient, JsonEndpoint};
use crate::openai::{chunks_from_events, parse_headers, parse_success, BodyTemplate};
use crate::provider::{CallContext, ChunkStream, Provider, ProviderKind};
use crate::registry::{BuildContext, BuildError, ProviderFactory, ProviderSpec};
use crate::sse;
use crate::translate::{normalize_base, secret_header};
use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_types::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use std::sync::Arc;

/// The `api-version` when neither the spec nor `AZURE_API_VERSION` sets one
/// (the current GA version).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Builds [`AzureProvider`]s (`azure/<deployment>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureFactory;

impl ProviderFactory for AzureFactory {
    fn build(
        &self,
        spec: &ProviderSpec,
        cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        Ok(Arc::new(AzureProvider::new(spec, cx)?))
    }
}

/// One Azure OpenAI deployment.
#[derive(Debug)]
pub struct AzureProvider {
    http: HttpClient,
    api_base: String,
    chat: JsonEndpoint,
    embeddings: JsonEndpoint,
    template: BodyTemplate,
}

impl AzureProvider {
    /// Builds the provider: endpoint from the spec or `AZURE_API_BASE`
    /// (required), key from the spec or `AZURE_API_KEY`, version from the
    /// spec, `AZURE_API_VERSION` or [`DEFAULT_API_VERSION`].
    pub fn new(spec: &ProviderSpec, cx: &BuildContext) -> Result<Self, BuildError> {
        let api_base = spec.api_base.clone().or_else(|| cx.env.get("AZURE_API_BASE")).ok_or_else(|| {
            BuildError::Missing(
                "`azure/` needs `api_base` (https://<resource>.openai.azure.com) or AZURE_API_BASE".to_owned(),
            )
        })?;
        let api_base = normalize_base(&api_base)?;
        let api_version = spec
            .api_version
            .clone()
            .or_else(|| cx.env.get("AZURE_API_VERSION"))
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        if spec.upstream_model.is_empty() {
            return Err(BuildError::Missing(
                "`azure/` needs a deployment name: azure/<deployment>".to_owned(),
            ));
        }
        let api_key = spec
            .api_key
            .as_ref()
            .map(|key| key.expose().to_owned())
            .or_else(|| cx.env.get("AZURE_API_KEY"));
        let mut headers = Vec::new();
        if let Some(key) = api_key {
            headers.push(secret_header("api-key", &key)?);
        }
        headers.extend(parse_headers(&spec.headers)?);
        let deployment_url = format!("{api_base}/openai/deployments/{}", spec.upstream_model);
        Ok(Self {
            http: cx.http.clone(),
            chat: JsonEndpoint::new(
                &format!("{deployment_url}/chat/completions?api-version={api_version}"),
                &headers,
            )?,
            embeddings: JsonEndpoint::new(
                &format!("{deployment_url}/embeddings?api-version={api_version}"),
                &headers,
            )?,
            api_base,
            template: BodyTemplate::new(spec),
        })
    }
}

#[async_trait]
impl Provider for AzureProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind("azure")
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        let body = self.template.encode(request, Some(false), cx)?;
        let response = self.http.send_buffered(self.chat.post(body)).await?;
        if !(200..300).contains(&response.status) {
            return Err(convert::error_from_wire(&response));
        }
        convert::check_response(parse_success(convert::PROVIDER, &response.body)?)
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let body = self.template.encode(request, Some(true), cx)?;
        let response = self.http.send(self.chat.post(body)).await?;
        if !response.status().is_success() {
            return Err(convert::error_from_wire(
                &self.http.buffer_error(response).await,
            ));
        }
        let chunks = chunks_from_events(convert::PROVIDER, sse::events(response.into_body()));
        let state = (chunks, convert::StreamFilter::default());
        Ok(Box::pin(futures_util::stream::unfold(
            Some(state),
            |state| async move {
                let (mut chunks, mut filter) = state?;
                loop {
                    match chunks.next().await? {
                        Ok(chunk) => match filter.check(chunk) {
                            Ok(Some(chunk)) => return Some((Ok(chunk), Some((chunks, filter)))),
                            Ok(None) => continue,
                            Err(error) => return Some((Err(error), None)),
                        },
                        Err(error) => return Some((Err(error), None)),
                    }
                }
            },
        )))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let body = self.template.encode(request, None, cx)?;
        let response = self.http.send_buffered(self.embeddings.post(body)).await?;
        if !(200..300).contains(&response.status) {
            return Err(convert::error_from_wire(&response));
        }
        parse_success(convert::PROVIDER, &response.body)
    }
}
