//! Routing: which deployment of a model alias serves a request, and what to
//! do when it fails.
//!
//! A [`Router`] holds the deployments of every model group (deployments that
//! share a `model_name`) and serves chat, stream and embeddings calls by
//! picking a deployment, calling its [`Provider`](gateway_providers::Provider),
//! and reporting what it did in a [`RouteReport`].
//!
//! The router depends only on `gateway-types` and `gateway-providers`: a Rust
//! program can embed providers and a router without budgets, stores or a
//! server. It deliberately knows nothing of HTTP status codes, keys or budgets.

#![deny(missing_docs)]

mod router;
mod types;

pub use router::Router;
pub use types::{
    AttemptError, Deployment, DeploymentSettings, RequestOptions, RouteFailure, RouteReport,
    Routed, RouterError, RouterSettings, RoutingStrategy,
};
