//! Request dispatch and the endpoints.

use crate::admin;
use crate::auth;
use crate::budget::{
    is_admin_key, model_visible, Admission, AdmitRequest, Finished, Identity,
    DEFAULT_OUTPUT_ALLOWANCE,
};
use crate::errors::ApiError;
use crate::gateway::{api_base_header, Gateway, Runtime};
use crate::http::{json_bytes_response, json_response, read_body, Body};
use crate::messages;
use crate::metrics::{DeploymentLabels, InFlight, TokenCounts};
use crate::observe::{redacted_body, token_counts, Observation};
use crate::ops;
use crate::request::{parse_chat_request, parse_json, take_options};
use crate::stream::{chat_pieces, observed_body, Pieces, StreamShape};
use bytes::Bytes;
use gateway_budget::TokenUsage;
use gateway_router::{RouteFailure, RouteReport, RouterError};
use gateway_types::Secret;
use gateway_types::{EmbeddingsRequest, ModelList, ModelObject, NanoUsd};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Header carrying the request id, in and out.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
// Response header names, made once (a name made at run time is checked
// byte by byte each time).
const X_GATEWAY_ATTEMPTS: HeaderName = HeaderName::from_static("x-gateway-attempts");
const X_GATEWAY_MODEL_ID: HeaderName = HeaderName::from_static("x-gateway-model-id");
const X_LITELLM_ATTEMPTED_FALLBACKS: HeaderName =
    HeaderName::from_static("x-litellm-attempted-fallbacks");
const X_LITELLM_ATTEMPTED_RETRIES: HeaderName =
    HeaderName::from_static("x-litellm-attempted-retries");
const X_LITELLM_KEY_MAX_BUDGET: HeaderName = HeaderName::from_static("x-litellm-key-max-budget");
const X_LITELLM_KEY_RPM_LIMIT: HeaderName = HeaderName::from_static("x-litellm-key-rpm-limit");
const X_LITELLM_KEY_SPEND: HeaderName = HeaderName::from_static("x-litellm-key-spend");
const X_LITELLM_KEY_TPM_LIMIT: HeaderName = HeaderName::from_static("x-litellm-key-tpm-limit");
const X_LITELLM_MODEL_API_BASE: HeaderName = HeaderName::from_static("x-litellm-model-api-base");
const X_LITELLM_MODEL_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");
const X_LITELLM_MODEL_ID: HeaderName = HeaderName::from_static("x-litellm-model-id");
const X_LITELLM_RESPONSE_COST: HeaderName = HeaderName::from_static("x-litellm-response-cost");
const X_RATELIMIT_API_KEY_LIMIT_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-api_key-limit-requests");
const X_RATELIMIT_API_KEY_LIMIT_TOKENS: HeaderName =
    HeaderName::from_static("x-ratelimit-api_key-limit-tokens");
const X_LITELLM_CALL_ID: HeaderName = HeaderName::from_static("x-litellm-call-id");
const X_LITELLM_OVERHEAD_DURATION_MS: HeaderName =
    HeaderName::from_static("x-litellm-overhead-duration-ms");

impl Gateway {
    /// Answers one HTTP request. Never panics on client input; every failure
    /// is an OpenAI-shaped JSON error. Emits exactly one log line per
    /// request (for a stream, when the stream ends).
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
        let model_route = is_model_route(&method, &path);
        // Until the response head is ready, the request's line says the
        // client went away: that is what it means if this future is dropped.
        let mut unfinished = Unfinished {
            observation: Some(Observation {
                runtime: Arc::clone(&runtime),
                access_log: self.access_log.clone(),
                request_id: request_id.clone(),
                method,
                path,
                started,
                model_route,
                labels: DeploymentLabels::unknown(),
                status: CLIENT_CLOSED_REQUEST,
                failure: Some("client_disconnected"),
                error: None,
                attempts: 0,
                retries: 0,
                fallbacks: 0,
                upstream: None,
                overhead: None,
                tokens: None,
                key_alias: None,
                team: None,
                cost: NanoUsd::ZERO,
                admission: None,
                request_body: None,
                in_flight: model_route.then(InFlight::start),
            }),
            outcome: Outcome {
                log_bodies: self.log_request_bodies(&runtime),
                ..Outcome::default()
            },
        };
        let result = dispatch(
            self,
            &runtime,
            request,
            &request_id,
            &mut unfinished.outcome,
        )
        .await;
        let observation = unfinished.observation.take();
        let mut outcome = std::mem::take(&mut unfinished.outcome);
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                if outcome.failure.is_none() {
                    outcome.failure = Some(client_failure_kind(&error));
                }
                match outcome.error_shape {
                    ErrorShape::OpenAi => error.into_response(),
                    ErrorShape::Anthropic => error.into_anthropic_response(),
                }
            }
        };
        if let Ok(value) = HeaderValue::try_from(request_id.as_str()) {
            response.headers_mut().insert(REQUEST_ID, value.clone());
            response.headers_mut().insert(X_LITELLM_CALL_ID, value);
        }
        if let Some(report) = &outcome.report {
            route_headers(response.headers_mut(), report, &runtime);
            if !report.errors.is_empty() {
                runtime.observe_cooldowns_of(
                    report
                        .errors
                        .iter()
                        .map(|failed| failed.deployment.as_str()),
                );
            }
        }
        let overhead = outcome
            .upstream_time
            .map(|upstream| started.elapsed().saturating_sub(upstream));
        if let Some(overhead) = overhead {
            // The digits' buffer becomes the value: one allocation.
            let text = bytes::Bytes::from(three_decimals(overhead));
            if let Ok(value) = HeaderValue::from_maybe_shared(text) {
                response
                    .headers_mut()
                    .insert(X_LITELLM_OVERHEAD_DURATION_MS, value);
            }
        }
        let Some(mut observation) = observation else {
            return response;
        };
        if let Some(mut admission) = outcome.admission.take() {
            if let Some(deployment) = outcome.report.as_ref().and_then(|r| r.deployment.as_ref()) {
                admission.deployment = Some(deployment.shared());
            }
            if let Some(labels) = admission.labels() {
                observation.key_alias.clone_from(&labels.key_alias);
                observation.team.clone_from(&labels.team_alias);
            }
            let headers = response.headers_mut();
            if let Some(key) = admission.key() {
                if let Some(max_budget) = key.policy.max_budget {
                    usd(headers, X_LITELLM_KEY_MAX_BUDGET, max_budget);
                }
                if let Some(rpm) = key.policy.rpm_limit {
                    let value = HeaderValue::from(rpm);
                    headers.insert(X_LITELLM_KEY_RPM_LIMIT, value.clone());
                    headers.insert(X_RATELIMIT_API_KEY_LIMIT_REQUESTS, value);
                }
                if let Some(tpm) = key.policy.tpm_limit {
                    let value = HeaderValue::from(tpm);
                    headers.insert(X_LITELLM_KEY_TPM_LIMIT, value.clone());
                    headers.insert(X_RATELIMIT_API_KEY_LIMIT_TOKENS, value);
                }
            }
            let key_spend = if outcome.stream.is_some() {
                // Settled when the stream ends (or the client goes away):
                // the header has the spend before this request.
                let key_spend = admission.key_spend();
                observation.admission = Some(admission);
                key_spend
            } else {
                let settled = admission.settle(Finished {
                    usage: outcome.usage,
                    failure: outcome.failure,
                    ..Finished::default()
                });
                observation.cost = settled.cost;
                usd(headers, X_LITELLM_RESPONSE_COST, settled.cost);
                settled.key_spend
            };
            if let Some(spend) = key_spend {
                usd(headers, X_LITELLM_KEY_SPEND, spend);
            }
        }
        let status = response.status();
        outcome.describe(&runtime, &mut observation);
        observation.status = status.as_u16();
        observation.failure = outcome.failure;
        observation.error = outcome
            .error
            .filter(|_| status.is_server_error())
            .map(|message| runtime.scrub(&message));
        observation.upstream = outcome.upstream_time;
        observation.overhead = overhead;
        observation.tokens = outcome.tokens;
        observation.request_body = outcome.request_body;
        match outcome.stream {
            Some(pieces) => *response.body_mut() = observed_body(pieces, observation),
            None => observation.finish(None),
        }
        response
    }
}

/// nginx's "client closed request": the status logged and counted for a
/// request whose client went away before the response head.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request whose response head is not ready yet. Dropped before that
/// (the client disconnected and hyper dropped the handler), it still emits
/// the request's one log line and metrics.
struct Unfinished {
    observation: Option<Observation>,
    outcome: Outcome,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(mut observation) = self.observation.take() {
            let runtime = Arc::clone(&observation.runtime);
            self.outcome.describe(&runtime, &mut observation);
            observation.finish(None);
        }
    }
}

/// What the handler learned, for headers, metrics and the request log line.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) report: Option<RouteReport>,
    pub(crate) upstream_time: Option<Duration>,
    /// The failure kind label, when the request failed.
    pub(crate) failure: Option<&'static str>,
    /// The failure's message (logged for server-side failures only).
    pub(crate) error: Option<String>,
    pub(crate) tokens: Option<TokenCounts>,
    /// A stream to send as the body once the observation is ready.
    pub(crate) stream: Option<Pieces>,
    pub(crate) log_bodies: bool,
    pub(crate) request_body: Option<String>,
    /// The labels of the requested alias, once the body is parsed and the
    /// alias is configured (before routing has a report).
    pub(crate) requested: Option<DeploymentLabels>,
    /// The budget admission, settled when the request is over.
    pub(crate) admission: Option<Admission>,
    /// Usage of a whole (non-stream) response.
    pub(crate) usage: Option<TokenUsage>,
    /// The shape errors are answered in.
    pub(crate) error_shape: ErrorShape,
}

/// The shape of an error body: the protocol of the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ErrorShape {
    /// `{"error": {"message", "type", "param", "code"}}`.
    #[default]
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}` (`/v1/messages`).
    Anthropic,
}

impl Outcome {
    /// Copies what routing learned (labels, attempts) into the observation.
    fn describe(&self, runtime: &Runtime, observation: &mut Observation) {
        let Some(report) = &self.report else {
            if let Some(requested) = &self.requested {
                observation.labels = requested.clone();
            }
            return;
        };
        observation.labels = runtime.labels(
            report.requested_group.as_ref().map(|group| group.as_str()),
            report
                .deployment
                .as_ref()
                .map(|deployment| deployment.as_str()),
        );
        observation.attempts = report.attempts;
        observation.retries = report.retries;
        observation.fallbacks = report.fallbacks;
    }
}

/// Chat, embeddings and messages: the routes counted in the request metrics.
fn is_model_route(method: &Method, path: &str) -> bool {
    let path = path
        .strip_prefix("/v1")
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    method == Method::POST && matches!(path, "/chat/completions" | "/embeddings" | "/messages")
}

/// The failure kind of an error answered before routing.
fn client_failure_kind(error: &ApiError) -> &'static str {
    match error.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "client_auth",
        status if status.is_client_error() => "invalid_request",
        _ => "internal",
    }
}

/// The failure kind of a routing failure.
fn route_failure_kind(error: &RouterError) -> &'static str {
    match error {
        RouterError::UnknownModel(_) => "unknown_model",
        RouterError::NoDeployment { .. } => "no_deployment",
        RouterError::NoHealthyDeployment { .. } => "no_healthy_deployment",
        RouterError::RateLimited { .. } => "rate_limited",
        RouterError::Timeout(_) => "timeout",
        RouterError::Provider(provider) => provider.kind.as_str(),
        // RouterError is non-exhaustive.
        _ => "internal",
    }
}

async fn dispatch<B>(
    gateway: &Gateway,
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
    if matches!(path, "/messages" | "/messages/count_tokens") {
        // Anthropic's clients read Anthropic's error shape, auth errors included.
        outcome.error_shape = ErrorShape::Anthropic;
    }
    let budgets = &gateway.budgets;
    if path == "/key/info" {
        // Any key may read its own record (LiteLLM's default for /key/info).
        if let Identity::Key(key) = auth::identify(request.headers(), master_key, budgets)? {
            if !is_admin_key(budgets, &key) {
                return admin::own_key_info(gateway, &key);
            }
        }
    }
    if admin::is_admin_route(path) {
        if let Identity::Open = auth::identify_admin(request.headers(), master_key, budgets)? {
            // Without a master key nobody could manage the keys made here.
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth_error",
                "the admin API needs general_settings.master_key (or LITELLM_MASTER_KEY) to be set",
            ));
        }
        let path = path.to_owned();
        return admin::route(gateway, request, path).await;
    }
    match (request.method(), path) {
        (&Method::GET, "/health/liveliness" | "/health/liveness") => Ok(ops::liveliness()),
        (&Method::GET, "/health/readiness") => Ok(ops::readiness(gateway, runtime)),
        (&Method::GET, "/health") => {
            auth::identify_admin(request.headers(), master_key, budgets)?;
            Ok(ops::health(runtime, request_id).await)
        }
        (&Method::GET, "/metrics") => {
            if runtime.config.litellm.require_auth_for_metrics_endpoint {
                auth::identify_admin(request.headers(), master_key, budgets)?;
            }
            ops::metrics(gateway)
        }
        (&Method::POST, "/config/reload") => {
            auth::identify_admin(request.headers(), master_key, budgets)?;
            ops::reload(gateway)
        }
        (&Method::GET, "/models") => {
            let identity = auth::identify(request.headers(), master_key, budgets)?;
            if !matches!(identity, Identity::Key(_)) {
                return Ok(json_bytes_response(
                    StatusCode::OK,
                    runtime.models_json.clone(),
                ));
            }
            let models = runtime
                .router
                .model_names()
                .iter()
                .filter(|name| model_visible(budgets, &identity, &runtime.pricing, name.as_str()))
                .map(|name| ModelObject::alias(name.as_str()))
                .collect();
            Ok(json_response(StatusCode::OK, &ModelList::new(models)))
        }
        (&Method::GET, model) if model.starts_with("/models/") => {
            let identity = auth::identify(request.headers(), master_key, budgets)?;
            let id = &model["/models/".len()..];
            if runtime.router.has_model(id)
                && model_visible(budgets, &identity, &runtime.pricing, id)
            {
                Ok(json_response(StatusCode::OK, &ModelObject::alias(id)))
            } else {
                Err(ApiError::from_router(
                    &gateway_router::RouterError::UnknownModel(id.to_owned()),
                ))
            }
        }
        (&Method::POST, "/chat/completions") => {
            let caller = Caller::identify(gateway, request.headers(), master_key, request_id)?;
            chat(runtime, request, caller, outcome).await
        }
        (&Method::POST, "/embeddings") => {
            let caller = Caller::identify(gateway, request.headers(), master_key, request_id)?;
            embeddings(runtime, request, caller, outcome).await
        }
        (&Method::POST, "/messages") => {
            let caller = Caller::identify(gateway, request.headers(), master_key, request_id)?;
            messages::messages(runtime, request, caller, outcome).await
        }
        (&Method::POST, "/messages/count_tokens") => {
            auth::identify(request.headers(), master_key, budgets)?;
            messages::count_tokens(runtime, request, outcome).await
        }
        (
            _,
            "/health/liveliness"
            | "/health/liveness"
            | "/health/readiness"
            | "/health"
            | "/models"
            | "/chat/completions"
            | "/embeddings"
            | "/metrics"
            | "/config/reload"
            | "/messages"
            | "/messages/count_tokens",
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

/// Reads a request's headers and body (bounded by the configured limit),
/// keeping the redacted body in `outcome` when bodies are logged.
pub(crate) async fn read_request<B>(
    runtime: &Runtime,
    request: Request<B>,
    outcome: &mut Outcome,
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
    if outcome.log_bodies {
        outcome.request_body = Some(redacted_body(runtime, &bytes));
    }
    Ok((parts.headers, bytes))
}

/// Who is calling a model endpoint, for budget admission.
pub(crate) struct Caller<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) identity: Identity,
    pub(crate) request_id: &'a str,
}

impl<'a> Caller<'a> {
    /// Who sent `headers`: the master key, a virtual key, or anyone when
    /// the gateway is open.
    pub(crate) fn identify(
        gateway: &'a Gateway,
        headers: &HeaderMap,
        master_key: Option<&Secret>,
        request_id: &'a str,
    ) -> Result<Self, ApiError> {
        let identity = auth::identify(headers, master_key, &gateway.budgets)?;
        Ok(Caller {
            gateway,
            identity,
            request_id,
        })
    }

    /// Checks the caller's key and budgets and reserves the estimate.
    pub(crate) fn admit(
        self,
        runtime: &Runtime,
        request: AdmitRequest<'_>,
        outcome: &mut Outcome,
    ) -> Result<(), ApiError> {
        let admission = self.gateway.budgets.admit(
            self.identity,
            &runtime.pricing,
            request,
            runtime.master_key_hash.as_ref(),
        )?;
        outcome.admission = Some(admission);
        Ok(())
    }
}

async fn chat<B>(
    runtime: &Arc<Runtime>,
    request: Request<B>,
    caller: Caller<'_>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (headers, bytes) = read_request(runtime, request, outcome).await?;
    let mut chat = parse_chat_request(&bytes)?;
    if chat.model.trim().is_empty() {
        return Err(ApiError::invalid_request("`model` must not be empty").with_param("model"));
    }
    if chat.messages.is_empty() {
        return Err(
            ApiError::invalid_request("`messages` must contain at least one message")
                .with_param("messages"),
        );
    }
    outcome.requested = runtime.model_labels.get(chat.model.as_str()).cloned();
    let request_id = caller.request_id;
    let mut options = take_options(&mut chat.extra, &headers, request_id)?;
    caller.admit(
        runtime,
        AdmitRequest {
            model: &chat.model,
            call_type: "chat_completion",
            body_bytes: bytes.len(),
            max_output_tokens: chat
                .max_completion_tokens
                .or(chat.max_tokens)
                .map_or(DEFAULT_OUTPUT_ALLOWANCE, u64::from),
            request_id,
            end_user: chat.user.clone(),
        },
        outcome,
    )?;
    let requested = chat.model.clone();
    if let Some((group, matched)) = runtime.wildcard_match(&requested) {
        // Routed to the wildcard group; the answer keeps the name asked for.
        chat.model = group.to_owned();
        options.call.wildcard = Some(matched);
        outcome.requested = runtime.model_labels.get(group).cloned();
    }
    let upstream_started = Instant::now();
    if chat.is_stream() {
        let shape_usage = chat.wants_stream_usage();
        let result = runtime.router.chat_stream_reply(&chat, &options).await;
        outcome.upstream_time = Some(upstream_started.elapsed());
        let routed = route_result(runtime, result, outcome)?;
        let shape = StreamShape {
            model: (routed.report.fallbacks == 0).then_some(requested),
            include_usage: shape_usage,
        };
        outcome.report = Some(routed.report);
        // The body is made in `handle`, once the request's observation is
        // ready to travel with it.
        outcome.stream = Some(chat_pieces(routed.value, shape));
        Ok(event_stream_head())
    } else {
        // `chat_reply`: an OpenAI-format upstream's body passes through with
        // only `model` re-stamped, instead of being parsed and re-encoded.
        let result = runtime.router.chat_reply(&chat, &options).await;
        outcome.upstream_time = Some(upstream_started.elapsed());
        let routed = route_result(runtime, result, outcome)?;
        let model = (routed.report.fallbacks == 0).then_some(requested);
        outcome.report = Some(routed.report);
        outcome.tokens = routed.value.usage().map(token_counts);
        outcome.usage = routed.value.usage().map(TokenUsage::from);
        match routed.value.to_json(model) {
            Ok(bytes) => Ok(json_bytes_response(StatusCode::OK, bytes)),
            Err(error) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                format!("the gateway could not encode its response: {error}"),
            )),
        }
    }
}

async fn embeddings<B>(
    runtime: &Arc<Runtime>,
    request: Request<B>,
    caller: Caller<'_>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (headers, bytes) = read_request(runtime, request, outcome).await?;
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
    outcome.requested = runtime.model_labels.get(embeddings.model.as_str()).cloned();
    let request_id = caller.request_id;
    let mut options = take_options(&mut embeddings.extra, &headers, request_id)?;
    caller.admit(
        runtime,
        AdmitRequest {
            model: &embeddings.model,
            call_type: "embeddings",
            body_bytes: bytes.len(),
            max_output_tokens: 0,
            request_id,
            end_user: embeddings.user.clone(),
        },
        outcome,
    )?;
    let requested = embeddings.model.clone();
    if let Some((group, matched)) = runtime.wildcard_match(&requested) {
        embeddings.model = group.to_owned();
        options.call.wildcard = Some(matched);
        outcome.requested = runtime.model_labels.get(group).cloned();
    }
    let upstream_started = Instant::now();
    let result = runtime.router.embeddings(&embeddings, &options).await;
    outcome.upstream_time = Some(upstream_started.elapsed());
    let mut routed = route_result(runtime, result, outcome)?;
    if routed.report.fallbacks == 0 {
        routed.value.model = requested;
    }
    outcome.report = Some(routed.report);
    outcome.tokens = routed.value.usage.as_ref().map(|usage| TokenCounts {
        input: usage.prompt_tokens,
        output: 0,
        cached: 0,
    });
    outcome.usage = routed.value.usage.as_ref().map(|usage| TokenUsage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: 0,
        cached_tokens: 0,
    });
    Ok(json_response(StatusCode::OK, &routed.value))
}

/// The head of a stream response; `handle` puts the body in.
pub(crate) fn event_stream_head() -> Response<Body> {
    let mut response = Response::new(crate::http::full(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

/// A routing result, with a failure recorded in `outcome` and mapped to the
/// client's error.
pub(crate) fn route_result<T>(
    runtime: &Runtime,
    result: Result<gateway_router::Routed<T>, RouteFailure>,
    outcome: &mut Outcome,
) -> Result<gateway_router::Routed<T>, ApiError> {
    result.map_err(|failure| {
        let mut error = ApiError::from_router(&failure.error);
        // Some upstreams echo the credential they were sent.
        error.message = runtime.scrub(&error.message);
        outcome.failure = Some(route_failure_kind(&failure.error));
        outcome.error = Some(failure.error.to_string());
        if failure.report.deployment.is_none() {
            // No upstream was called (unknown model, nothing routable).
            outcome.upstream_time = None;
        }
        if failure.report.requested_group.is_some() {
            outcome.report = Some(failure.report);
        }
        error
    })
}

fn route_headers(headers: &mut HeaderMap, report: &RouteReport, runtime: &Runtime) {
    let cached = report
        .deployment
        .as_ref()
        .and_then(|id| runtime.deployment_headers.get(id.as_str()));
    if let Some(deployment) = &report.deployment {
        let id = match cached {
            Some(cached) => Some(cached.id.clone()),
            None => HeaderValue::try_from(deployment.as_str()).ok(),
        };
        if let Some(id) = id {
            headers.insert(X_GATEWAY_MODEL_ID, id.clone());
            headers.insert(X_LITELLM_MODEL_ID, id);
        }
    }
    if let Some(group) = &report.model_group {
        match cached.filter(|cached| cached.group.0 == group.as_str()) {
            Some(cached) => {
                headers.insert(X_LITELLM_MODEL_GROUP, cached.group.1.clone());
            }
            None => insert(headers, X_LITELLM_MODEL_GROUP, group.as_str()),
        }
    }
    if let Some(api_base) = &report.api_base {
        let cached = cached
            .and_then(|cached| cached.api_base.as_ref())
            .filter(|(source, _)| source.as_str() == &**api_base);
        match cached {
            Some((_, value)) => {
                headers.insert(X_LITELLM_MODEL_API_BASE, value.clone());
            }
            None => insert(headers, X_LITELLM_MODEL_API_BASE, api_base_header(api_base)),
        }
    }
    headers.insert(X_GATEWAY_ATTEMPTS, count_value(report.attempts));
    headers.insert(X_LITELLM_ATTEMPTED_RETRIES, count_value(report.retries));
    headers.insert(X_LITELLM_ATTEMPTED_FALLBACKS, count_value(report.fallbacks));
}

/// A small count as a header value, without allocating for 0 to 9.
fn count_value(count: u32) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match DIGITS.get(count as usize) {
        Some(digit) => HeaderValue::from_static(digit),
        None => HeaderValue::from(count),
    }
}

/// USD as LiteLLM's headers print it: digits written on the stack, copied
/// once into the header value; no float formatted.
fn usd(headers: &mut HeaderMap, name: HeaderName, amount: NanoUsd) {
    if let Ok(value) = HeaderValue::from_bytes(amount.usd_text().as_bytes()) {
        headers.insert(name, value);
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: impl AsRef<str>) {
    if let Ok(value) = HeaderValue::try_from(value.as_ref()) {
        headers.insert(name, value);
    }
}

/// Milliseconds with three decimals (`{:.3}`), rounded to the microsecond,
/// without formatting a float.
fn three_decimals(duration: std::time::Duration) -> Vec<u8> {
    let micros = (duration.as_nanos() + 500) / 1000;
    let mut digits = itoa::Buffer::new();
    let mut text = Vec::with_capacity(24);
    text.extend_from_slice(digits.format(micros / 1000).as_bytes());
    text.push(b'.');
    let fraction = digits.format(micros % 1000);
    text.extend(std::iter::repeat_n(b'0', 3 - fraction.len()));
    text.extend_from_slice(fraction.as_bytes());
    text
}

/// The client's `x-request-id` when it is a sane token, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned)
}

/// A version 7, variant 1 UUID (RFC 9562): 48 bits of Unix milliseconds,
/// then 74 random bits, hex-encoded by hand (a `format!` of five fields was
/// 4% of the gateway's own instructions per request). Time-ordered ids put
/// each spend-log row at the right edge of the primary-key index instead of
/// on a random page: PostgreSQL inserted 200,000 rows 30% faster in a copy
/// of `gateway_spend_logs` with its indexes (docs/benchmarks.md).
fn new_request_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let random = fastrand::u64(..);
    let high = (millis << 16) | 0x7000 | (random & 0x0fff);
    let low = (fastrand::u64(..) & !(0xc000 << 48)) | (0x8000 << 48);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_milliseconds_with_three_decimals() {
        for nanos in [
            0u64,
            499,
            500,
            1_000,
            41_999_499,
            999_999_999,
            3_000_000_000,
            12_345_678,
        ] {
            let duration = Duration::from_nanos(nanos);
            let expected = format!("{:.3}", (nanos as f64 / 1000.0).round() / 1000.0);
            assert_eq!(
                String::from_utf8(three_decimals(duration)).expect("UTF-8"),
                expected,
                "{nanos} ns"
            );
        }
    }

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

    #[test]
    fn new_request_ids_are_version_7_variant_1_uuids_in_time_order() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let mut previous = new_request_id();
        for _ in 0..1000 {
            let id = new_request_id();
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(
                id.bytes()
                    .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
            assert!(groups[2].starts_with('7'), "{id}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
            // The first 48 bits are the time in milliseconds.
            let millis = u128::from_str_radix(&format!("{}{}", groups[0], groups[1]), 16);
            assert!(millis.is_ok_and(|millis| millis >= before), "{id}");
            // Ordered by time: equal milliseconds may come in any order.
            assert!(id[..13] >= previous[..13], "{previous} then {id}");
            previous = id;
        }
    }
}
