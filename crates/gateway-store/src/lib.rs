//! Durable stores: PostgreSQL (deadpool-postgres) and the embedded SQLite
//! default, with versioned migrations, the background spend writer, the
//! retention pruner and budget-alert webhook delivery.
//!
//! This crate implements the `BudgetStore` port of `gateway-budget`. It does
//! not decide budgets (the engine in `gateway-budget` does), does not know
//! HTTP status codes, and spawns no per-request work: the server owns the
//! background tasks started here and shuts them down.

//! Wiring, as the server does it (start, request path, shutdown):
//!
//! ```
//! use std::sync::Arc;
//! use gateway_budget::*;
//! use gateway_store::{open_store, SpendWriter, SpendWriterConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), StoreError> {
//! let path = std::env::temp_dir().join(format!("gateway-doc-{}.db", std::process::id()));
//! let store = open_store(None, &path).await?; // no database URL: SQLite
//! let now = Timestamp::from_secs(1_700_000_000);
//! let engine = BudgetEngine::new(EngineConfig::default(), store.load_all().await?, now);
//! let writer = SpendWriter::start(Arc::clone(&store), Some(engine.clone()), SpendWriterConfig::default());
//!
//! // Admin API: create a key in the store, then in the engine.
//! let generated = generate_key().map_err(|e| StoreError::Database(e.to_string()))?;
//! let key = KeyRecord::new(generated.hash.clone(), generated.key_name.clone(), now);
//! store.create(&key.clone().into()).await?;
//! engine.upsert(key.into(), now);
//!
//! // Request path: authenticate, reserve, settle, log.
//! let record = engine.authenticate(&generated.hash, now).expect("valid key");
//! let request = ReserveRequest { key: &record.token, model: "gpt-4o", estimate: gateway_types::NanoUsd(1_000), now };
//! let reservation = engine.reserve(&request).expect("allowed");
//! let _alerts = engine.settle(reservation, Settlement { cost: gateway_types::NanoUsd(900), tokens: 42 }, now);
//!
//! assert_eq!(writer.shutdown().await, 0);
//! # for suffix in ["", "-wal", "-shm"] { let _ = std::fs::remove_file(format!("{}{suffix}", path.display())); }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod alerts;
mod copy;
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
