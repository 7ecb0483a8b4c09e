//! Every error the gateway answers, in OpenAI's shape, with its status.
//!
//! This is the one place that knows HTTP statuses for library errors: the
//! mapping from [`RouterError`] and [`ProviderError`] is one exhaustive match
//! each, so a new error kind must decide its status here.

use crate::http::{json_response, Body};
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
        self.insert_retry_after(&mut response);
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
        self.insert_retry_after(&mut response);
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

    fn insert_retry_after(&self, response: &mut Response<Body>) {
        if let Some(retry_after) = self.retry_after {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::try_from(seconds.max(1).to_string()) {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, value);
            }
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
