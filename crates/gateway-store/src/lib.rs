//! Durable stores: PostgreSQL (deadpool-postgres) and the embedded SQLite
//! default, with versioned migrations, the background spend writer, the
//! retention pruner and budget-alert webhook delivery.
//!
//! This crate implements the `BudgetStore` port of `gateway-budget`. It does
//! not decide budgets (the engine in `gateway-budget` does), does not know
//! HTTP status codes, and spawns no per-request work: the server owns the
//! background tasks started here and shuts them down.

#![deny(missing_docs)]

mod alerts;
mod error;
mod maintenance;
pub mod migrations;
mod postgres;
mod report;
mod sqlite;
mod tables;
mod writer;

pub use alerts::{AlertError, AlertHandle, AlertSender, AlertSenderConfig, AlertStats};
pub use maintenance::{open_store, prune_spend_logs};
pub use postgres::{PostgresConfig, PostgresStore};
pub use sqlite::SqliteStore;
pub use writer::{SpendWriter, SpendWriterConfig, SpendWriterHandle, SpendWriterStats};
