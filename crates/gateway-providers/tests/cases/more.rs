//! Cases for the adapters added after the first three (Azure, Gemini).

use super::Case;

/// The remaining cases.
pub fn cases() -> Vec<Box<dyn Case>> {
    Vec::new()
}
