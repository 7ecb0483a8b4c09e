//! Durable stores: PostgreSQL (deadpool-postgres) and the embedded SQLite
//! default, with versioned migrations and the background spend writer.
//!
//! This crate implements the `BudgetStore` port of `gateway-budget`. It is
//! filled in by the virtual-keys issue; today it holds only its place in the
//! workspace.

#![deny(missing_docs)]
