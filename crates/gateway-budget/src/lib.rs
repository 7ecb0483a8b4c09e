//! Budgets and limits: organizations, teams, keys and users; their budgets,
//! rate limits and model access; pricing; and the `BudgetStore` port.
//!
//! This crate is pure domain logic with no IO: it never reads the clock
//! (time is an input), never opens a socket or file, and never spawns tasks.
//! The [`BudgetEngine`] is authoritative on the request path; the durable
//! record lives behind [`BudgetStore`], implemented in `gateway-store`
//! (PostgreSQL, SQLite) and here by [`InMemoryStore`] for tests. It does not
//! know HTTP: [`Denied`] carries facts the server maps to status codes.
//!
//! ```
//! use gateway_budget::*;
//! use gateway_types::NanoUsd;
//!
//! let now = Timestamp::from_secs(1_700_000_000);
//! let generated = generate_key().expect("the OS RNG works");
//! let mut key = KeyRecord::new(generated.hash.clone(), generated.key_name, now);
//! key.policy.max_budget = Some(NanoUsd::from_usd(1.0));
//! let engine = BudgetEngine::new(EngineConfig::default(), vec![key.into()], now);
//!
//! let request = ReserveRequest { key: &generated.hash, model: "gpt-4o", estimate: NanoUsd::from_usd(0.1), now };
//! let reservation = engine.reserve(&request).expect("within budget");
//! let usage = TokenUsage { prompt_tokens: 1_000, completion_tokens: 100, cached_tokens: 0 };
//! let prices = PriceBook::builtin().lookup("gpt-4o", None).expect("built in");
//! let alerts = engine.settle(reservation, Settlement { cost: cost(&prices, usage), tokens: usage.total() }, now);
//! assert!(alerts.is_empty());
//! ```

#![deny(missing_docs)]

pub mod alert;
pub mod engine;
pub mod entity;
pub mod error;
pub mod key;
pub mod memory;
pub mod pricing;
pub mod spend;
pub mod store;
pub mod time;

pub use alert::{AlertKind, BudgetAlert};
pub use engine::{
    model_allowed, AccessGroups, BudgetEngine, Denied, DenyReason, EngineConfig, KeyLabels,
    KeyScope, RateLimitKind, Reservation, ReserveRequest, Settlement,
};
pub use entity::{
    Entity, EntityColumns, EntityId, KeyRecord, Level, ListFilter, OrgRecord, Policy, SpendCounter,
    TeamRecord, UserRecord,
};
pub use error::BudgetError;
pub use key::{custom_key, generate_key, key_name, validate_key_format, GeneratedKey, KeyHash};
pub use memory::InMemoryStore;
pub use pricing::{builtin_prices, cost, ModelPrices, PriceBook, TokenUsage};
pub use spend::{
    aggregate_rows, group_report, DailyKey, DailyTotals, ReportDimension, SpendLogQuery,
    SpendLogRow, SpendReportQuery, SpendReportRow, SpendStatus,
};
pub use store::{BudgetStore, StoreError};
pub use time::{BudgetDuration, Day, Timestamp};
