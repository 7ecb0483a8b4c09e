//! The gateway server: the composition root.
//!
//! It reads the LiteLLM-format config ([`config`]), builds one provider per
//! deployment and a [`Router`](gateway_router::Router) over them, and serves
//! the OpenAI-compatible HTTP API with hyper ([`server`]): chat completions
//! (JSON and SSE), embeddings, the models list and health checks, behind the
//! gateway's own key.
//!
//! It also makes the gateway operable: Prometheus metrics on `/metrics`
//! ([`metrics`]), exactly one log line per request (streams log when they
//! end), liveness and readiness probes with a hook for the store's health
//! ([`Gateway::set_store_health`]), and hot reload of the config
//! ([`Gateway::reload`], triggered by `POST /config/reload`, `SIGHUP` or a
//! file watch from [`reload`]) that lets requests in flight finish on the
//! config they started with.
//!
//! Virtual keys, budgets and spend logs ([`Gateway::start_store`]): keys
//! are authenticated and budgets enforced from memory (`gateway-budget`'s
//! engine), the store (`gateway-store`, PostgreSQL or SQLite) is written in
//! the background, and the LiteLLM-compatible admin API (`/key/*`,
//! `/team/*`, `/organization/*`, `/user/*`, `/spend/*`) manages them.
//!
//! This crate is the only one that knows HTTP statuses for library errors
//! ([`errors`]) and the config file format. The libraries take plain
//! validated structs built here.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use gateway_server::{config::GatewayConfig, server, Gateway};
//! use std::sync::Arc;
//!
//! let config = GatewayConfig::embedded_default()?;
//! let gateway = Arc::new(Gateway::from_config(config)?);
//! gateway.start_store().await; // keys, budgets, spend logs
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! server::serve(listener, Arc::clone(&gateway), std::future::pending()).await?;
//! gateway.shutdown().await; // writes queued spend
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod access_log;
mod admin;
mod auth;
mod budget;
pub mod config;
pub mod errors;
mod gateway;
mod handlers;
pub mod http;
pub mod log_writer;
mod messages;
pub mod metrics;
mod observe;
mod ops;
pub mod reload;
mod request;
pub mod server;
mod stream;

/// A map keyed by names from the config (model aliases, deployment ids),
/// looked up on every request. foldhash rather than std's SipHash, which
/// cost ~200 instructions a lookup; the keys come from the config, not from
/// callers, so nobody can flood it with colliding keys.
pub(crate) type NameMap<V> = std::collections::HashMap<String, V, foldhash::fast::RandomState>;

pub use gateway::{Gateway, ReloadReport, StoreHealth, StoreHealthProbe};
