//! Errors for validating budget-domain input.

use thiserror::Error;

/// Input the budget domain refuses. Management endpoints map it to 400.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetError {
    /// A `duration` or `budget_duration` that is not `(\d+)(mo|[smhdw])`.
    #[error("invalid duration {0:?}: expected a number followed by s, m, h, d, w or mo")]
    InvalidDuration(String),
    /// A date that is not `YYYY-MM-DD`.
    #[error("invalid date {0:?}: expected YYYY-MM-DD")]
    InvalidDate(String),
    /// A custom key that does not start with `sk-` or has invalid characters.
    #[error("Invalid key format. LiteLLM Virtual Key must start with 'sk-' and contain only [A-Za-z0-9_-]")]
    InvalidKeyFormat,
    /// A string that is neither a key nor a 64-hex key hash.
    #[error("Invalid key format.")]
    InvalidKeyReference,
    /// A negative money amount.
    #[error("{field} must not be negative")]
    NegativeAmount {
        /// The field name.
        field: &'static str,
    },
    /// The operating system random number generator failed.
    #[error("the operating system random number generator failed")]
    Random,
    /// A prices file that is not valid JSON of the expected shape.
    #[error("invalid prices file: {0}")]
    InvalidPrices(String),
}
