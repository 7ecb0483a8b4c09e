//! Routing: which deployment of a model alias serves a request, and what to
//! do when it fails.
//!
//! A [`Router`] holds the deployments of every model group (deployments that
//! share a `model_name`) and serves chat, stream and embeddings calls by
//! picking a deployment, calling its [`Provider`](gateway_providers::Provider),
//! and reporting what it did in a [`RouteReport`]. Calls the typed entry
//! points cannot express (a native passthrough, say) go through
//! [`Router::route`] / [`Router::route_stream`] with the caller's own
//! closure, and get the same retries, fallbacks and cooldowns.
//!
//! Two layers:
//! - the [`Engine`] is sync and pure: it sorts each group into priority tiers
//!   at build time, picks with a [`RoutingStrategy`], skips deployments that
//!   are cooling down, at their rpm/tpm limit, tagged otherwise or too small
//!   for the input, and records outcomes. Time comes in as an `Instant` and
//!   randomness through the [`Rng`] trait, so it is tested without a runtime;
//! - the [`Router`] drives it: deadlines (request, deployment, first chunk),
//!   retries with backoff, waiting for capacity, and fallbacks.
//!
//! Statistics (cooldowns, windows, latencies) live behind [`RouterState`]
//! ([`MemoryState`] by default), keyed by deployment id, so a router rebuilt
//! on reload with [`Router::new_with_state`] keeps them.
//!
//! # Semantics in brief
//! - **Tiers**: the lowest `order` is used while any of its deployments is
//!   available; after a group fails, its next tier is tried before the
//!   configured fallbacks (counted as a fallback).
//! - **Retries** happen within a group, re-picking (untried deployments
//!   first): `num_retries` from the deployment, else the [`RetryPolicy`] for
//!   the error class, else the request, else the router. Transient errors
//!   retry; authentication errors retry only on another deployment; bad
//!   requests, context-window errors and 404s never do. Backoff is zero when
//!   another deployment is available, else the upstream's retry-after (up to
//!   60 s), else 0.5 s doubling to 8 s with up to 25% jitter; never less than
//!   `retry_after`.
//! - **Fallbacks** run depth first, each group with its own retries, at most
//!   `max_fallbacks` groups, never the same group twice.
//! - **Cooldowns**: 429, 401/403 and 404 cool a deployment at once (a 429 on
//!   the only deployment of a group counts as a failure instead, so that its
//!   retry waits out the retry-after rather than failing); timeouts,
//!   connection errors and 5xx cool it after more than `allowed_fails` within
//!   a minute; request errors never do. The length is the deployment's
//!   `cooldown_time`, else the upstream's retry-after, else the router's.
//! - **Waiting**: when every deployment of a group is cooling or at its
//!   rpm/tpm limit and no fallback is left, the request waits for the first
//!   to free up if that happens before its timeout; otherwise (or without a
//!   timeout) it fails at once with [`RouterError::NoHealthyDeployment`] or
//!   [`RouterError::RateLimited`], whose `retry_after` says when to come back.
//! - **Timeouts**: the request's (or router's) `timeout` bounds everything;
//!   a deployment's `timeout` bounds each call to it; `stream_timeout` bounds
//!   a stream's open and first chunk. A committed stream has no deadline.
//!
//! The router depends only on `gateway-types` and `gateway-providers`: a Rust
//! program can embed providers and a router without budgets, stores or a
//! server. It deliberately knows nothing of HTTP status codes, keys or budgets.
//!
//! ```
#![doc = include_str!("../examples/embed.rs")]
//! ```

#![deny(missing_docs)]

mod attempt;
pub mod engine;
mod fallback;
mod policy;
mod router;
pub mod state;
mod strategy;
pub mod tokens;
mod types;

pub use attempt::CallGuard;
pub use engine::{Engine, GroupId, Outcome, Pick, PickRequest, Step};
pub use fallback::ANY_GROUP;
pub use router::{with_system_prompt, Router, RouterBuilder};
pub use state::{DeploymentStats, FastRng, MemoryState, Rng, RouterState, StatsTable};
pub use types::{
    AttemptError, Deployment, DeploymentSettings, FallbackMap, RequestOptions, RetryPolicy,
    RouteFailure, RouteReport, Routed, RouterError, RouterSettings, RoutingStrategy, Tokenizer,
};
