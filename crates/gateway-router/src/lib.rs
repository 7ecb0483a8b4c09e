//! Routing: which deployment of a model alias serves a request, and what to
//! do when it fails.
//!
//! A [`Router`] holds the deployments of every model group (deployments that
//! share a `model_name`) and serves chat, stream and embeddings calls by
//! picking a deployment, calling its [`Provider`](gateway_providers::Provider),
//! and reporting what it did in a [`RouteReport`].
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

pub use engine::{Engine, GroupId, Outcome, Pick, PickRequest, Step};
pub use fallback::ANY_GROUP;
pub use router::{Router, RouterBuilder};
pub use state::{DeploymentStats, FastRng, MemoryState, Rng, RouterState, StatsTable};
pub use types::{
    AttemptError, Deployment, DeploymentSettings, FallbackMap, RequestOptions, RetryPolicy,
    RouteFailure, RouteReport, Routed, RouterError, RouterSettings, RoutingStrategy, Tokenizer,
};
