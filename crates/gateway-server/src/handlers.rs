//! Request dispatch and the endpoints.

use crate::auth;
use crate::errors::ApiError;
use crate::gateway::{Gateway, Runtime};
use crate::http::{json_bytes_response, json_response, read_body, Body};
use crate::request::{parse_json, take_options};
use crate::stream::{sse_body, StreamShape};
use bytes::Bytes;
use gateway_providers::CallContext;
use gateway_router::{RouteFailure, RouteReport};
use gateway_types::{ChatRequest, EmbeddingsRequest, Message, ModelObject, Role};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Header carrying the request id, in and out.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Gateway {
    /// Answers one HTTP request. Never panics on client input; every failure
    /// is an OpenAI-shaped JSON error.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let runtime = self.runtime();
        let request_id = request_id(request.headers());
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let mut outcome = Outcome::default();
        let mut response = match dispatch(&runtime, request, &request_id, &mut outcome).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        if let Ok(value) = HeaderValue::try_from(request_id.as_str()) {
            response.headers_mut().insert(REQUEST_ID, value.clone());
            response
                .headers_mut()
                .insert(HeaderName::from_static("x-litellm-call-id"), value);
        }
        if let Some(report) = &outcome.report {
            route_headers(response.headers_mut(), report);
        }
        if let Some(upstream) = outcome.upstream_time {
            let overhead = started.elapsed().saturating_sub(upstream);
            insert(
                response.headers_mut(),
                "x-litellm-overhead-duration-ms",
                format!("{:.3}", overhead.as_secs_f64() * 1000.0),
            );
        }
        if outcome.report.is_some()
            || response.status().is_client_error()
            || response.status().is_server_error()
        {
            let report = outcome.report.as_ref();
            tracing::info!(
                request_id = %request_id,
                method = %method,
                path = %path,
                status = response.status().as_u16(),
                model = report.and_then(|r| r.requested_group.as_ref()).map(|m| m.as_str()).unwrap_or(""),
                deployment = report.and_then(|r| r.deployment.as_ref()).map(|d| d.as_str()).unwrap_or(""),
                attempts = report.map_or(0, |r| r.attempts),
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request"
            );
        }
        response
    }
}

/// What the handler learned, for headers and the request log line.
#[derive(Default)]
struct Outcome {
    report: Option<RouteReport>,
    upstream_time: Option<Duration>,
}

async fn dispatch<B>(
    runtime: &Arc<Runtime>,
    request: Request<B>,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = request.uri().path();
    let path = path
        .strip_prefix("/v1")
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    let master_key = runtime.config.general.master_key.as_ref();
    match (request.method(), path) {
        (&Method::GET, "/health/liveliness" | "/health/liveness") => {
            Ok(json_response(StatusCode::OK, &"I'm alive!"))
        }
        (&Method::GET, "/health/readiness") => Ok(readiness()),
        (&Method::GET, "/health") => {
            auth::authorize(request.headers(), master_key)?;
            Ok(health(runtime, request_id).await)
        }
        (&Method::GET, "/models") => {
            auth::authorize(request.headers(), master_key)?;
            Ok(json_bytes_response(
                StatusCode::OK,
                runtime.models_json.clone(),
            ))
        }
        (&Method::GET, model) if model.starts_with("/models/") => {
            auth::authorize(request.headers(), master_key)?;
            let id = &model["/models/".len()..];
            if runtime.router.has_model(id) {
                Ok(json_response(StatusCode::OK, &ModelObject::alias(id)))
            } else {
                Err(ApiError::from_router(
                    &gateway_router::RouterError::UnknownModel(id.to_owned()),
                ))
            }
        }
        (&Method::POST, "/chat/completions") => {
            auth::authorize(request.headers(), master_key)?;
            chat(runtime, request, request_id, outcome).await
        }
        (&Method::POST, "/embeddings") => {
            auth::authorize(request.headers(), master_key)?;
            embeddings(runtime, request, request_id, outcome).await
        }
        (
            _,
            "/health/liveliness" | "/health/liveness" | "/health/readiness" | "/health" | "/models"
            | "/chat/completions" | "/embeddings",
        ) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!(
                "{} is not allowed on {}",
                request.method(),
                request.uri().path()
            ),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("no route for {} {}", request.method(), request.uri().path()),
        )),
    }
}

async fn read_request<B>(
    runtime: &Runtime,
    request: Request<B>,
) -> Result<(HeaderMap, Bytes), ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok());
    let bytes = read_body(
        body,
        content_length,
        runtime.config.general.max_request_bytes,
    )
    .await?;
    Ok((parts.headers, bytes))
}

async fn chat<B>(
    runtime: &Arc<Runtime>,
    request: Request<B>,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (headers, bytes) = read_request(runtime, request).await?;
    let mut chat: ChatRequest = parse_json(&bytes)?;
    if chat.model.trim().is_empty() {
        return Err(ApiError::invalid_request("`model` must not be empty").with_param("model"));
    }
    if chat.messages.is_empty() {
        return Err(
            ApiError::invalid_request("`messages` must contain at least one message")
                .with_param("messages"),
        );
    }
    let options = take_options(&mut chat.extra, &headers, request_id)?;
    let requested = chat.model.clone();
    let upstream_started = Instant::now();
    if chat.is_stream() {
        let shape_usage = chat.wants_stream_usage();
        let result = runtime.router.chat_stream(&chat, &options).await;
        outcome.upstream_time = Some(upstream_started.elapsed());
        let routed = route_result(result, outcome)?;
        let shape = StreamShape {
            model: (routed.report.fallbacks == 0).then_some(requested),
            include_usage: shape_usage,
        };
        outcome.report = Some(routed.report);
        let mut response = Response::new(sse_body(routed.value, shape));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        Ok(response)
    } else {
        let result = runtime.router.chat(&chat, &options).await;
        outcome.upstream_time = Some(upstream_started.elapsed());
        let mut routed = route_result(result, outcome)?;
        if routed.report.fallbacks == 0 {
            routed.value.model = requested;
        }
        outcome.report = Some(routed.report);
        Ok(json_response(StatusCode::OK, &routed.value))
    }
}

async fn embeddings<B>(
    runtime: &Arc<Runtime>,
    request: Request<B>,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (headers, bytes) = read_request(runtime, request).await?;
    let mut embeddings: EmbeddingsRequest = parse_json(&bytes)?;
    let valid_input = match &embeddings.input {
        serde_json::Value::String(text) => !text.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        _ => false,
    };
    if !valid_input {
        return Err(
            ApiError::invalid_request("`input` must be a non-empty string or array")
                .with_param("input"),
        );
    }
    let options = take_options(&mut embeddings.extra, &headers, request_id)?;
    let requested = embeddings.model.clone();
    let upstream_started = Instant::now();
    let result = runtime.router.embeddings(&embeddings, &options).await;
    outcome.upstream_time = Some(upstream_started.elapsed());
    let mut routed = route_result(result, outcome)?;
    if routed.report.fallbacks == 0 {
        routed.value.model = requested;
    }
    outcome.report = Some(routed.report);
    Ok(json_response(StatusCode::OK, &routed.value))
}

fn route_result<T>(
    result: Result<gateway_router::Routed<T>, RouteFailure>,
    outcome: &mut Outcome,
) -> Result<gateway_router::Routed<T>, ApiError> {
    result.map_err(|failure| {
        let error = ApiError::from_router(&failure.error);
        if failure.report.requested_group.is_some() {
            outcome.report = Some(failure.report);
        }
        error
    })
}

fn route_headers(headers: &mut HeaderMap, report: &RouteReport) {
    if let Some(deployment) = &report.deployment {
        insert(headers, "x-gateway-model-id", deployment.as_str());
        insert(headers, "x-litellm-model-id", deployment.as_str());
    }
    if let Some(group) = &report.model_group {
        insert(headers, "x-litellm-model-group", group.as_str());
    }
    if let Some(api_base) = &report.api_base {
        insert(
            headers,
            "x-litellm-model-api-base",
            api_base.split('?').next().unwrap_or(""),
        );
    }
    insert(headers, "x-gateway-attempts", report.attempts.to_string());
    insert(
        headers,
        "x-litellm-attempted-retries",
        report.retries.to_string(),
    );
    insert(
        headers,
        "x-litellm-attempted-fallbacks",
        report.fallbacks.to_string(),
    );
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: impl AsRef<str>) {
    if let Ok(value) = HeaderValue::try_from(value.as_ref()) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// The client's `x-request-id` when it is a sane token, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned)
}

fn new_request_id() -> String {
    let high = fastrand::u64(..);
    let low = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        ((low >> 48) & 0x3fff) | 0x8000,
        low & 0xffff_ffff_ffff
    )
}

fn readiness() -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "status": "healthy",
            "db": "Not connected",
            "cache": null,
            "gateway_version": env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// Probes every deployment with a tiny request, concurrently.
async fn health(runtime: &Arc<Runtime>, request_id: &str) -> Response<Body> {
    let call = CallContext {
        request_id: request_id.to_owned(),
        ..CallContext::default()
    };
    let probes = runtime.config.deployments.iter().filter_map(|deployment| {
        let provider = runtime
            .router
            .deployments(&deployment.model_name)?
            .iter()
            .find(|candidate| candidate.id.as_str() == deployment.id)?
            .provider
            .clone();
        let call = call.clone();
        let timeout = deployment
            .timeout
            .unwrap_or(Duration::from_secs(10))
            .min(Duration::from_secs(30));
        let is_embedding = deployment.mode.as_deref() == Some("embedding");
        let model_name = deployment.model_name.clone();
        let id = deployment.id.clone();
        Some(async move {
            let started = Instant::now();
            let result = if is_embedding {
                let request = EmbeddingsRequest {
                    model: model_name.clone(),
                    input: json!("ping"),
                    encoding_format: None,
                    dimensions: None,
                    user: None,
                    extra: Default::default(),
                };
                tokio::time::timeout(timeout, provider.embeddings(&request, &call))
                    .await
                    .map(|r| r.map(|_| ()))
            } else {
                let request = ChatRequest {
                    model: model_name.clone(),
                    messages: vec![Message::text(Role::User, "ping")],
                    max_tokens: Some(1),
                    ..ChatRequest::default()
                };
                tokio::time::timeout(timeout, provider.chat(&request, &call))
                    .await
                    .map(|r| r.map(|_| ()))
            };
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            let error = match result {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.to_string()),
                Err(_) => Some(format!("no answer within {timeout:?}")),
            };
            (
                json!({"model": model_name, "model_id": id, "api_base": provider.api_base(), "latency_ms": latency_ms}),
                error,
            )
        })
    });
    let results = futures_util::future::join_all(probes).await;
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    for (mut entry, error) in results {
        match error {
            None => healthy.push(entry),
            Some(error) => {
                entry["error"] = json!(error);
                unhealthy.push(entry);
            }
        }
    }
    json_response(
        StatusCode::OK,
        &json!({
            "healthy_count": healthy.len(),
            "unhealthy_count": unhealthy.len(),
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_when_sane_and_made_otherwise() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        let made = request_id(&headers);
        assert_eq!(made.len(), 36);
        assert_ne!(made, request_id(&headers));
    }
}
