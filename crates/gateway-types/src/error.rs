//! The OpenAI error body.

use serde::{Deserialize, Serialize};

/// `{"error": {"message", "type", "param", "code"}}`: the body of every error
/// the gateway returns, and the shape most OpenAI-compatible upstreams use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// The fields of an OpenAI error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What went wrong and how to fix it. Never contains a secret.
    pub message: String,
    /// A machine-readable class, such as `invalid_request_error`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The request field at fault, when there is one.
    #[serde(default)]
    pub param: Option<String>,
    /// The HTTP status as a string (LiteLLM's convention), or an upstream code.
    #[serde(default, deserialize_with = "code_as_string")]
    pub code: Option<String>,
}

impl ErrorBody {
    /// Builds an error body whose `code` is the HTTP status as a string.
    pub fn new(status: u16, kind: &str, message: impl Into<String>, param: Option<String>) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: Some(kind.to_owned()),
                param,
                code: Some(status.to_string()),
            },
        }
    }
}

/// Upstreams send `code` as a string, a number or null; keep it as text.
fn code_as_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_serializes_null_param_and_string_code() {
        let body = ErrorBody::new(404, "model_not_found", "no such model", None);
        let json = serde_json::to_value(&body).ok();
        assert_eq!(
            json,
            Some(
                serde_json::json!({"error": {"message": "no such model", "type": "model_not_found", "param": null, "code": "404"}})
            )
        );
    }

    #[test]
    fn numeric_upstream_code_is_kept_as_text() {
        let body: Result<ErrorBody, _> =
            serde_json::from_str(r#"{"error":{"message":"x","type":null,"code":429}}"#);
        assert_eq!(body.ok().and_then(|b| b.error.code).as_deref(), Some("429"));
    }
}
