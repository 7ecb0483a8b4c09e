//! Serde mirrors of Azure OpenAI's error body. Requests, responses and
//! chunks are OpenAI's and use the gateway types directly.

use serde::Deserialize;

/// `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// Azure's error object; content-filter errors carry `code: content_filter`
/// and an `innererror` with `code: ResponsibleAIPolicyViolation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub innererror: Option<InnerError>,
}

/// `error.innererror`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct InnerError {
    #[serde(default)]
    pub code: Option<String>,
}
