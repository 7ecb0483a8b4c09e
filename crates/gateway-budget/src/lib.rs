//! Budgets and limits: organizations, teams, keys and users; their budgets,
//! rate limits and model access; and pricing.
//!
//! This crate is pure domain logic with no IO: time is an input, and the
//! durable record lives behind the `BudgetStore` port implemented in
//! `gateway-store`. It is filled in by the virtual-keys issue; today it holds
//! only its place in the workspace.

#![deny(missing_docs)]
