//! Operating endpoints: liveness, readiness, deployment health, `/metrics`
//! and `POST /config/reload`.

use crate::errors::ApiError;
use crate::gateway::{Gateway, Runtime, StoreHealth};
use crate::http::{json_response, Body};
use bytes::Bytes;
use gateway_providers::CallContext;
use gateway_types::{ChatRequest, EmbeddingsRequest, Message, Role};
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `GET /health/liveliness`: the process is up.
pub(crate) fn liveliness() -> Response<Body> {
    json_response(StatusCode::OK, &"I'm alive!")
}

/// `GET /health/readiness`: ready to serve. A gateway always has a loaded
/// config (it is built from one), so this is 200; a store that does not
/// answer makes it `degraded`, still 200, because requests are served from
/// memory.
pub(crate) fn readiness(gateway: &Gateway, runtime: &Runtime) -> Response<Body> {
    let store = gateway.store_health();
    let status = match store {
        StoreHealth::Disconnected => "degraded",
        StoreHealth::NotConfigured | StoreHealth::Connected => "healthy",
    };
    json_response(
        StatusCode::OK,
        &json!({
            "status": status,
            "db": store.as_str(),
            "cache": null,
            "config_loaded": true,
            "models": runtime.router.model_names().len(),
            "deployments": runtime.config.deployments.len(),
            "gateway_version": env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// `GET /metrics`: the Prometheus text exposition.
pub(crate) fn metrics(gateway: &Gateway) -> Result<Response<Body>, ApiError> {
    let Some(handle) = &gateway.metrics else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "another metrics recorder was installed in this process; /metrics is not served",
        ));
    };
    gateway.runtime().observe_cooldowns();
    gateway.budgets.export_budget_gauges();
    handle.run_upkeep();
    let mut response = Response::new(crate::http::full(Bytes::from(handle.render())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// `POST /config/reload`: reads the config file again and swaps it in; an
/// invalid file keeps the config in force and answers 400 with the error.
pub(crate) fn reload(gateway: &Gateway) -> Result<Response<Body>, ApiError> {
    match crate::reload::reload_and_log(gateway, "api") {
        Ok(report) => {
            let mut body = serde_json::to_value(&report).unwrap_or_default();
            body["status"] = json!("reloaded");
            Ok(json_response(StatusCode::OK, &body))
        }
        Err(error) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            format!("config reload failed, the config in force is unchanged: {error}"),
        )),
    }
}

/// Probes every deployment with a tiny request, concurrently.
pub(crate) async fn health(runtime: &Arc<Runtime>, request_id: &str) -> Response<Body> {
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
                    messages: vec![Message::text(Role::User, "ping")].into(),
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
                Ok(Err(error)) => Some(runtime.scrub(&error.to_string())),
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
