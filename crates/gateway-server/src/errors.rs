//! Every error the gateway answers, in OpenAI's shape, with its status.
//!
//! This is the one place that knows HTTP statuses for library errors: the
//! mapping from [`RouterError`] and [`ProviderError`] is one exhaustive match
//! each, so a new error kind must decide its status here.

use crate::http::{json_response, Body};
use gateway_budget::{Denied, DenyReason, Level, RateLimitKind, StoreError};
use gateway_providers::{ErrorKind, ProviderError};
use gateway_router::RouterError;
use gateway_types::ErrorBody;
use http::{HeaderValue, Response, StatusCode};
use std::time::Duration;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The OpenAI `type` (e.g. `invalid_request_error`).
    pub kind: &'static str,
    /// What went wrong and how to fix it; never a secret.
    pub message: String,
    /// The request field at fault.
    pub param: Option<String>,
    /// Sent as `retry-after` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
    /// Extra response headers (rate-limit figures).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with no param and no retry-after.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Adds a retry-after.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// The OpenAI error body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(
            self.status.as_u16(),
            self.kind,
            self.message.clone(),
            self.param.clone(),
        )
    }

    /// The whole response.
    pub fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status, &self.body());
        self.insert_headers(&mut response);
        response
    }

    /// The whole response in Anthropic's error shape, for the Anthropic-format
    /// endpoints (`/v1/messages`): `{"type": "error", "error": {"type",
    /// "message"}}` with the same status (and `retry-after`) as
    /// [`ApiError::into_response`]. The Anthropic SDKs read this shape; the
    /// error `type` is Anthropic's name for the status
    /// ([`ApiError::anthropic_type`]).
    pub fn into_anthropic_response(self) -> Response<Body> {
        let body = serde_json::json!({
            "type": "error",
            "error": {"type": self.anthropic_type(), "message": self.message},
        });
        let mut response = json_response(self.status, &body);
        self.insert_headers(&mut response);
        response
    }

    /// Anthropic's error type for this error's status: `invalid_request_error`
    /// (400 and other 4xx), `authentication_error` (401),
    /// `permission_error` (403), `not_found_error` (404),
    /// `request_too_large` (413), `rate_limit_error` (429),
    /// `overloaded_error` (503), `timeout_error` (504), else `api_error`.
    pub fn anthropic_type(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
            StatusCode::GATEWAY_TIMEOUT => "timeout_error",
            status if status.is_client_error() => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// `retry-after` and the error's own headers (rate-limit descriptors).
    fn insert_headers(&self, response: &mut Response<Body>) {
        if let Some(retry_after) = self.retry_after {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::try_from(seconds.max(1).to_string()) {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, value);
            }
        }
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::try_from(value.as_str()) {
                response
                    .headers_mut()
                    .insert(http::HeaderName::from_static(name), value);
            }
        }
    }

    /// 500 `internal_server_error` for a store failure on an admin call: a
    /// generic message, never the database's words.
    pub fn from_store(error: &StoreError) -> Self {
        match error {
            StoreError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "not_found_error", "not found")
            }
            StoreError::Conflict(what) => Self::new(
                StatusCode::BAD_REQUEST,
                "bad_request_error",
                format!("already exists: {what}"),
            ),
            _ => {
                tracing::error!(%error, "store call failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_server_error",
                    "the gateway's database could not complete the request; try again later",
                )
            }
        }
    }

    /// Maps a budget refusal: the one place that gives [`DenyReason`]s
    /// their status and type. `key_name` is the caller's `sk-...abcd`.
    pub fn from_denied(denied: &Denied, key_name: &str) -> Self {
        let level = denied.level;
        let level_name = match level {
            Level::Key => "Key",
            Level::Team => "Team",
            Level::User => "User",
            Level::Organization => "Organization",
        };
        let (descriptor, prefix) = match level {
            Level::Key => ("api_key", "key"),
            Level::Team => ("team", "team"),
            Level::User => ("user", "user"),
            Level::Organization => ("organization", "org"),
        };
        match &denied.reason {
            DenyReason::UnknownKey => Self::new(
                StatusCode::UNAUTHORIZED,
                "token_not_found_in_db",
                format!("Authentication Error, Invalid proxy server token passed. Received API Key = {key_name}. Unable to find token in the gateway's keys."),
            ),
            DenyReason::Blocked => Self::new(
                StatusCode::UNAUTHORIZED,
                match level {
                    Level::Key => "key_blocked",
                    Level::Team => "team_blocked",
                    Level::User => "user_blocked",
                    Level::Organization => "org_blocked",
                },
                format!("Authentication Error, {level_name} is blocked. Ask an admin to unblock it (/{}/unblock).", level.as_str()),
            ),
            DenyReason::Expired { expires } => Self::new(
                StatusCode::UNAUTHORIZED,
                "expired_key",
                format!("Authentication Error - Expired Key. Key expired at {expires}; generate a new key."),
            ),
            DenyReason::ModelNotAllowed { model, allowed } => Self::new(
                StatusCode::FORBIDDEN,
                match level {
                    Level::Key => "key_model_access_denied",
                    Level::Team => "team_model_access_denied",
                    Level::User => "user_model_access_denied",
                    Level::Organization => "org_model_access_denied",
                },
                format!("{prefix} not allowed to access model. This {prefix} can only access models={allowed:?}. Tried to access {model}"),
            )
            .with_param("model"),
            DenyReason::BudgetExceeded { spend, reserved, estimate, max_budget } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exceeded",
                format!(
                    "Budget has been exceeded! {level_name} budget: current cost ${:.6} (plus ${:.6} held by requests in flight and ${:.6} estimated for this one), max budget ${:.6}.",
                    spend.as_usd(), reserved.as_usd(), estimate.as_usd(), max_budget.as_usd()
                ),
            ),
            DenyReason::RateLimited { kind, limit, current, retry_after, reset_at } => {
                let (limit_type, unit) = match kind {
                    RateLimitKind::Requests => ("requests", "requests"),
                    RateLimitKind::Tokens => ("tokens", "tokens"),
                    RateLimitKind::ParallelRequests => ("max_parallel_requests", "requests"),
                };
                let mut error = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    format!(
                        "Rate limit exceeded for {descriptor}. Limit type: {limit_type}. Current limit: {limit}, current usage: {current}, remaining: 0.{}",
                        reset_at.map(|at| format!(" Limit resets at: {at}")).unwrap_or_default()
                    ),
                )
                .with_retry_after(Some(retry_after.unwrap_or(Duration::from_secs(1))));
                error.headers.push(("rate_limit_type", limit_type.to_owned()));
                if let Some(reset_at) = reset_at {
                    error.headers.push(("reset_at", reset_at.to_string()));
                }
                if !matches!(kind, RateLimitKind::ParallelRequests) {
                    error.headers.push((ratelimit_header(descriptor, "remaining", unit), "0".to_owned()));
                    error.headers.push((ratelimit_header(descriptor, "limit", unit), limit.to_string()));
                }
                error
            }
            // DenyReason is non-exhaustive; a new reason refuses safely.
            _ => Self::new(StatusCode::FORBIDDEN, "auth_error", denied.reason.to_string()),
        }
    }

    /// Maps a routing failure.
    pub fn from_router(error: &RouterError) -> Self {
        match error {
            RouterError::UnknownModel(model) => Self::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("model `{model}` is not configured on this gateway; call /v1/models to list the models your key can use"),
            )
            .with_param("model"),
            RouterError::NoDeployment { .. } => Self::invalid_request(error.to_string()),
            RouterError::NoHealthyDeployment { retry_after, .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "no_healthy_deployment", error.to_string())
                    .with_retry_after(Some(*retry_after))
            }
            RouterError::RateLimited { retry_after, .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", error.to_string())
                    .with_retry_after(Some(*retry_after))
            }
            RouterError::Timeout(_) => Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", error.to_string()),
            RouterError::ContextWindowExceeded { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "context_length_exceeded", error.to_string()).with_param("messages")
            }
            RouterError::InvalidConfig(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error", error.to_string())
            }
            RouterError::Provider(provider) => Self::from_provider(provider),
        }
    }

    /// Maps an upstream failure that survived retries and fallbacks.
    pub fn from_provider(error: &ProviderError) -> Self {
        let message = error.message.clone();
        match error.kind {
            ErrorKind::Connect
            | ErrorKind::Upstream
            | ErrorKind::Overloaded
            | ErrorKind::InvalidResponse
            | ErrorKind::NotFound => Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message),
            ErrorKind::Timeout => Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message),
            ErrorKind::RateLimited => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
                    .with_retry_after(error.retry_after)
            }
            ErrorKind::Auth => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_auth_error",
                format!(
                    "the upstream rejected the gateway's credential for this deployment: {message}"
                ),
            ),
            ErrorKind::BadRequest | ErrorKind::Unsupported => Self::invalid_request(message),
            ErrorKind::ContextWindowExceeded => {
                Self::new(StatusCode::BAD_REQUEST, "context_length_exceeded", message)
            }
            ErrorKind::ContentFiltered => {
                Self::new(StatusCode::BAD_REQUEST, "content_policy_violation", message)
            }
        }
    }
}

/// `x-ratelimit-{descriptor}-{remaining|limit}-{requests|tokens}` as a
/// static name (header names must be static for `from_static`).
fn ratelimit_header(descriptor: &str, what: &str, unit: &str) -> &'static str {
    match (descriptor, what, unit) {
        ("api_key", "remaining", "requests") => "x-ratelimit-api_key-remaining-requests",
        ("api_key", "limit", "requests") => "x-ratelimit-api_key-limit-requests",
        ("api_key", "remaining", _) => "x-ratelimit-api_key-remaining-tokens",
        ("api_key", _, _) => "x-ratelimit-api_key-limit-tokens",
        ("team", "remaining", "requests") => "x-ratelimit-team-remaining-requests",
        ("team", "limit", "requests") => "x-ratelimit-team-limit-requests",
        ("team", "remaining", _) => "x-ratelimit-team-remaining-tokens",
        ("team", _, _) => "x-ratelimit-team-limit-tokens",
        ("user", "remaining", "requests") => "x-ratelimit-user-remaining-requests",
        ("user", "limit", "requests") => "x-ratelimit-user-limit-requests",
        ("user", "remaining", _) => "x-ratelimit-user-remaining-tokens",
        ("user", _, _) => "x-ratelimit-user-limit-tokens",
        (_, "remaining", "requests") => "x-ratelimit-organization-remaining-requests",
        (_, "limit", "requests") => "x-ratelimit-organization-limit-requests",
        (_, "remaining", _) => "x-ratelimit-organization-remaining-tokens",
        _ => "x-ratelimit-organization-limit-tokens",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_map_to_the_spec_statuses() {
        let cases = [
            (ErrorKind::Connect, 502, "upstream_error"),
            (ErrorKind::Upstream, 502, "upstream_error"),
            (ErrorKind::Timeout, 504, "timeout"),
            (ErrorKind::RateLimited, 429, "rate_limit_error"),
            (ErrorKind::Auth, 502, "upstream_auth_error"),
            (ErrorKind::BadRequest, 400, "invalid_request_error"),
            (
                ErrorKind::ContextWindowExceeded,
                400,
                "context_length_exceeded",
            ),
            (ErrorKind::ContentFiltered, 400, "content_policy_violation"),
        ];
        for (kind, status, type_name) in cases {
            let error = ApiError::from_provider(&ProviderError::new(kind, "x"));
            assert_eq!(
                (error.status.as_u16(), error.kind),
                (status, type_name),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn anthropic_errors_keep_the_status_and_name_anthropic_types() {
        let cases = [
            (
                ApiError::invalid_request("bad"),
                400,
                "invalid_request_error",
            ),
            (
                ApiError::new(StatusCode::UNAUTHORIZED, "auth_error", "x"),
                401,
                "authentication_error",
            ),
            (
                ApiError::from_router(&RouterError::UnknownModel("m".to_owned())),
                404,
                "not_found_error",
            ),
            (
                ApiError::from_provider(&ProviderError::new(ErrorKind::RateLimited, "x")),
                429,
                "rate_limit_error",
            ),
            (
                ApiError::from_provider(&ProviderError::new(ErrorKind::Upstream, "x")),
                502,
                "api_error",
            ),
            (
                ApiError::from_provider(&ProviderError::new(ErrorKind::Timeout, "x")),
                504,
                "timeout_error",
            ),
        ];
        for (error, status, kind) in cases {
            assert_eq!(
                (error.status.as_u16(), error.anthropic_type()),
                (status, kind)
            );
        }
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "x")
            .with_retry_after(Some(Duration::from_millis(1500)))
            .into_response();
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("2")
        );
    }
}
