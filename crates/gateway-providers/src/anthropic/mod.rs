//! The Anthropic Messages API adapter (`anthropic/`): `POST {api_base}/v1/messages`.
//!
//! System messages become the top-level `system`, tool calls and results
//! become `tool_use` and `tool_result` blocks, images become image blocks,
//! and `max_tokens` is always sent (the request's, the deployment's, or the
//! model's default). Streams translate Anthropic's event sequence into
//! OpenAI chunks and end with a usage chunk.
//!
//! [`ingress`] holds the opposite direction, for the gateway's own
//! `/v1/messages` endpoint; [`AnthropicProvider`] also implements
//! [`Provider::anthropic_messages`] to pass such requests through untouched.

mod convert;
pub mod ingress;
mod wire;

#[cfg(test)]
mod tests;

use crate::error::{ErrorKind, ProviderError};
use crate::http::{json_post, HttpClient};
use crate::openai::{parse_headers, parse_success};
use crate::provider::{CallContext, ChunkStream, NativeResponse, Provider, ProviderKind};
use crate::registry::{BuildContext, BuildError, ProviderFactory, ProviderSpec};
use crate::sse;
use crate::translate::{
    apply_defaults, encode_error, merge_extra_body, normalize_base, secret_header, unix_now,
};
use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_types::{ChatRequest, ChatResponse, JsonObject};
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::Arc;

/// The API version sent unless the deployment's headers set another.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The public endpoint.
pub const DEFAULT_API_BASE: &str = "https://api.anthropic.com";

/// Builds [`AnthropicProvider`]s (`anthropic/<model>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicFactory;

impl ProviderFactory for AnthropicFactory {
    fn build(
        &self,
        spec: &ProviderSpec,
        cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        Ok(Arc::new(AnthropicProvider::new(spec, cx)?))
    }
}

/// One Anthropic deployment.
#[derive(Debug)]
pub struct AnthropicProvider {
    http: HttpClient,
    api_base: String,
    url: String,
    upstream_model: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    defaults: JsonObject,
    extra_body: JsonObject,
    drop_params: bool,
}

impl AnthropicProvider {
    /// Builds the provider: endpoint from the spec, `ANTHROPIC_API_BASE`,
    /// `ANTHROPIC_BASE_URL` or the public API; key from the spec or
    /// `ANTHROPIC_API_KEY`. The deployment's headers (`anthropic-beta`, ...)
    /// are sent as configured.
    pub fn new(spec: &ProviderSpec, cx: &BuildContext) -> Result<Self, BuildError> {
        let api_base = spec
            .api_base
            .clone()
            .or_else(|| cx.env.get("ANTHROPIC_API_BASE"))
            .or_else(|| cx.env.get("ANTHROPIC_BASE_URL"))
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        let api_base = normalize_base(&api_base)?;
        // Some configs write the base with `/v1`; the path is added here.
        let root = api_base.strip_suffix("/v1").unwrap_or(&api_base);
        let api_key = spec
            .api_key
            .as_ref()
            .map(|key| key.expose().to_owned())
            .or_else(|| cx.env.get("ANTHROPIC_API_KEY"));
        let mut headers = Vec::new();
        if let Some(key) = api_key {
            headers.push(secret_header("x-api-key", &key)?);
        }
        let configured = parse_headers(&spec.headers)?;
        if !configured
            .iter()
            .any(|(name, _)| name == "anthropic-version")
        {
            headers.push((
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            ));
        }
        headers.extend(configured);
        Ok(Self {
            http: cx.http.clone(),
            url: format!("{root}/v1/messages"),
            api_base,
            upstream_model: spec.upstream_model.clone(),
            headers,
            defaults: spec.defaults.clone(),
            extra_body: spec.extra_body.clone(),
            drop_params: spec.drop_params,
        })
    }

    /// The upstream body, and how its answer's content will arrive.
    fn body(
        &self,
        request: &ChatRequest,
        stream: bool,
        model: &str,
    ) -> Result<(Vec<u8>, convert::OutputMode), ProviderError> {
        let request = apply_defaults(request, &self.defaults)?;
        let mode = if convert::json_mode_schema(&request).is_some() {
            convert::OutputMode::JsonTool
        } else {
            convert::OutputMode::Plain
        };
        let wire = convert::request_to_wire(
            &request,
            &convert::RequestOptions {
                model,
                default_max_tokens: convert::default_max_tokens(model),
                drop_params: self.drop_params,
                stream,
            },
        )?;
        let mut value = serde_json::to_value(wire).map_err(encode_error)?;
        merge_extra_body(&mut value, &self.extra_body);
        Ok((serde_json::to_vec(&value).map_err(encode_error)?, mode))
    }

    /// The deployment's headers with the client's `anthropic-version`
    /// (replacing the default) and `anthropic-beta` (joined with the
    /// deployment's) for a passthrough call. Invalid values are ignored.
    fn passthrough_headers(&self, forward: &[(String, String)]) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = self.headers.clone();
        for (name, value) in forward {
            let name = name.to_ascii_lowercase();
            if name != "anthropic-version" && name != "anthropic-beta" {
                continue;
            }
            let existing = headers
                .iter()
                .position(|(header, _)| header.as_str() == name);
            let combined = match (name.as_str(), existing) {
                ("anthropic-beta", Some(index)) => {
                    let current = headers[index].1.to_str().unwrap_or_default().to_owned();
                    let mut betas: Vec<&str> = current
                        .split(',')
                        .map(str::trim)
                        .filter(|b| !b.is_empty())
                        .collect();
                    for beta in value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                        if !betas.contains(&beta) {
                            betas.push(beta);
                        }
                    }
                    betas.join(",")
                }
                _ => value.clone(),
            };
            let (Ok(header_name), Ok(header_value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(combined.as_str()),
            ) else {
                continue;
            };
            match existing {
                Some(index) => headers[index] = (header_name, header_value),
                None => headers.push((header_name, header_value)),
            }
        }
        headers
    }

    async fn post(
        &self,
        body: Vec<u8>,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<http::Response<hyper::body::Incoming>, ProviderError> {
        let response = self.http.send(json_post(&self.url, headers, body)?).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(convert::error_from_wire(
                &self.http.buffer_error(response).await,
            ))
        }
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind("anthropic")
    }

    fn api_base(&self) -> Option<&str> {
        Some(&self.api_base)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        let model = cx.upstream_model(&self.upstream_model);
        let (body, mode) = self.body(request, false, &model)?;
        let response = self
            .http
            .send_buffered(json_post(&self.url, &self.headers, body)?)
            .await?;
        if !(200..300).contains(&response.status) {
            return Err(convert::error_from_wire(&response));
        }
        let wire = parse_success(convert::PROVIDER, &response.body)?;
        Ok(convert::response_from_wire(wire, unix_now(), mode))
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let model = cx.upstream_model(&self.upstream_model);
        let (body, mode) = self.body(request, true, &model)?;
        let response = self.post(body, &self.headers).await?;
        let translator = convert::StreamTranslator::new(&model, unix_now(), mode);
        Ok(crate::translate::translate_stream(
            sse::events(response.into_body()),
            translator,
        ))
    }

    async fn anthropic_messages(
        &self,
        body: &Value,
        cx: &CallContext,
    ) -> Result<Option<NativeResponse>, ProviderError> {
        let headers = self.passthrough_headers(&cx.forward_headers);
        let mut body = body.clone();
        let Some(object) = body.as_object_mut() else {
            return Err(ProviderError::new(
                ErrorKind::BadRequest,
                "the request body is not a JSON object",
            ));
        };
        let model = cx.upstream_model(&self.upstream_model).into_owned();
        let default_max_tokens = convert::default_max_tokens(&model);
        object.insert("model".to_owned(), Value::String(model));
        for (key, default) in &self.defaults {
            // Only defaults the Messages API knows by the same name.
            if ["max_tokens", "temperature", "top_p", "top_k"].contains(&key.as_str()) {
                object.entry(key.clone()).or_insert_with(|| default.clone());
            }
        }
        object
            .entry("max_tokens".to_owned())
            .or_insert_with(|| Value::from(default_max_tokens));
        let stream = object
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        merge_extra_body(&mut body, &self.extra_body);
        let bytes = serde_json::to_vec(&body).map_err(encode_error)?;
        if !stream {
            let response = self
                .http
                .send_buffered(json_post(&self.url, &headers, bytes)?)
                .await?;
            if !(200..300).contains(&response.status) {
                return Err(convert::error_from_wire(&response));
            }
            return Ok(Some(NativeResponse::Json(parse_success(
                convert::PROVIDER,
                &response.body,
            )?)));
        }
        let response = self.post(bytes, &headers).await?;
        Ok(Some(NativeResponse::Stream(native_events(sse::events(
            response.into_body(),
        )))))
    }
}

/// Passes events through, turns an upstream `error` event into the stream's
/// terminal `Err` item (so a caller can retry one that comes first, and
/// counts it as a failure), and fails the stream when it ends before
/// `message_stop` (a cut connection must not look like a complete answer).
fn native_events(
    events: impl futures_core::Stream<Item = Result<sse::SseEvent, ProviderError>> + Send + 'static,
) -> crate::provider::NativeStream {
    let events = Box::pin(events);
    Box::pin(futures_util::stream::unfold(
        Some((events, false)),
        |state| async move {
            let (mut events, stopped) = state?;
            match events.next().await {
                Some(Ok(event)) if event.event.as_deref() == Some("error") => {
                    let error = match serde_json::from_str::<wire::ErrorEnvelope>(&event.data) {
                        Ok(envelope) => convert::error_from_event(&envelope.error),
                        Err(_) => ProviderError::new(
                            ErrorKind::Upstream,
                            format!("{} sent an unreadable error event", convert::PROVIDER),
                        ),
                    };
                    Some((Err(error), None))
                }
                Some(Ok(event)) => {
                    let stopped = stopped
                        || event.event.as_deref() == Some("message_stop")
                        || event.data.contains("\"message_stop\"");
                    Some((Ok(event), Some((events, stopped))))
                }
                Some(Err(error)) => Some((Err(error), None)),
                None if stopped => None,
                None => Some((
                    Err(crate::translate::truncated_stream(convert::PROVIDER)),
                    None,
                )),
            }
        },
    ))
}
