//! The router's policy on upstream errors: which retry, which cool a
//! deployment down, which fallback list applies. Each is an exhaustive match
//! on [`ErrorKind`], so a new kind makes the compiler ask about it here.

use crate::types::{RetryPolicy, RouterError};
use gateway_providers::ErrorKind;

/// Whether a failed call may be tried again within its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Transient: retry.
    Yes,
    /// Retry only when the group has another deployment (a credential or
    /// endpoint problem of one deployment) or the retry policy names the class.
    IfOtherDeploymentOrPolicy,
    /// Retry only when the retry policy names the class.
    IfPolicy,
    /// Never retry within the group.
    No,
}

/// Whether a failure retries.
pub(crate) fn retry(kind: ErrorKind) -> Retry {
    match kind {
        ErrorKind::Connect
        | ErrorKind::Timeout
        | ErrorKind::RateLimited
        | ErrorKind::Overloaded
        | ErrorKind::Upstream
        | ErrorKind::InvalidResponse => Retry::Yes,
        ErrorKind::Auth => Retry::IfOtherDeploymentOrPolicy,
        ErrorKind::ContentFiltered => Retry::IfPolicy,
        ErrorKind::BadRequest
        | ErrorKind::ContextWindowExceeded
        | ErrorKind::NotFound
        | ErrorKind::Unsupported => Retry::No,
    }
}

/// The retry policy's count for the class of `kind`, if it sets one.
pub(crate) fn policy_retries(policy: &RetryPolicy, kind: ErrorKind) -> Option<u32> {
    match kind {
        ErrorKind::BadRequest | ErrorKind::ContextWindowExceeded | ErrorKind::Unsupported => {
            policy.bad_request
        }
        ErrorKind::Auth => policy.authentication,
        ErrorKind::Timeout => policy.timeout,
        ErrorKind::RateLimited => policy.rate_limit,
        ErrorKind::ContentFiltered => policy.content_policy_violation,
        ErrorKind::Connect
        | ErrorKind::Overloaded
        | ErrorKind::Upstream
        | ErrorKind::InvalidResponse => policy.internal_server_error,
        ErrorKind::NotFound => None,
    }
}

/// How a failure affects the deployment's cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cooldown {
    /// Cool down at once (429, bad credential, unknown model).
    Now,
    /// Count toward `allowed_fails`.
    Count,
    /// The request's fault, not the deployment's: no effect.
    None,
}

/// How a failure affects cooldowns.
pub(crate) fn cooldown(kind: ErrorKind) -> Cooldown {
    match kind {
        ErrorKind::RateLimited | ErrorKind::Auth | ErrorKind::NotFound => Cooldown::Now,
        ErrorKind::Connect
        | ErrorKind::Timeout
        | ErrorKind::Overloaded
        | ErrorKind::Upstream
        | ErrorKind::InvalidResponse => Cooldown::Count,
        ErrorKind::BadRequest
        | ErrorKind::ContextWindowExceeded
        | ErrorKind::ContentFiltered
        | ErrorKind::Unsupported => Cooldown::None,
    }
}

/// Which fallback list a group's failure uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FallbackKind {
    /// `context_window_fallbacks`, then `fallbacks`.
    ContextWindow,
    /// `content_policy_fallbacks`, then `fallbacks`.
    ContentPolicy,
    /// `fallbacks`.
    General,
}

/// The fallback list a failure uses.
pub(crate) fn fallback_kind(error: &RouterError) -> FallbackKind {
    match error {
        RouterError::ContextWindowExceeded { .. } => FallbackKind::ContextWindow,
        RouterError::Provider(error) => match error.kind {
            ErrorKind::ContextWindowExceeded => FallbackKind::ContextWindow,
            ErrorKind::ContentFiltered => FallbackKind::ContentPolicy,
            ErrorKind::Connect
            | ErrorKind::Timeout
            | ErrorKind::RateLimited
            | ErrorKind::Overloaded
            | ErrorKind::Upstream
            | ErrorKind::Auth
            | ErrorKind::BadRequest
            | ErrorKind::NotFound
            | ErrorKind::InvalidResponse
            | ErrorKind::Unsupported => FallbackKind::General,
        },
        _ => FallbackKind::General,
    }
}
