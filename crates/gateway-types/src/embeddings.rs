//! Embeddings request and response (`POST /v1/embeddings`).

use crate::JsonObject;
use serde::{Deserialize, Serialize};

/// The OpenAI embeddings request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// The model alias (or, upstream, the provider's model id).
    pub model: String,
    /// A string, an array of strings, an array of tokens or an array of token
    /// arrays; kept as JSON so every form passes through.
    pub input: serde_json::Value,
    /// `float` or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Output dimensions, for models that support it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// The end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl EmbeddingsRequest {
    /// The inputs as strings, when they are strings (not token arrays).
    pub fn input_texts(&self) -> Option<Vec<&str>> {
        match &self.input {
            serde_json::Value::String(text) => Some(vec![text.as_str()]),
            serde_json::Value::Array(items) => items.iter().map(|item| item.as_str()).collect(),
            _ => None,
        }
    }
}

/// The OpenAI embeddings response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// Always `"list"`.
    #[serde(default = "list")]
    pub object: String,
    /// One vector per input, in input order.
    pub data: Vec<Embedding>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingsUsage>,
    /// Fields this type does not know, passed through.
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn list() -> String {
    "list".to_owned()
}

/// One embedding vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `"embedding"`.
    #[serde(default = "embedding")]
    pub object: String,
    /// Position of the input this vector belongs to.
    pub index: u32,
    /// An array of floats, or a base64 string with `encoding_format: base64`.
    pub embedding: serde_json::Value,
}

fn embedding() -> String {
    "embedding".to_owned()
}

/// Token usage of an embeddings call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmbeddingsUsage {
    /// Tokens in the input.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Same as `prompt_tokens`.
    #[serde(default)]
    pub total_tokens: u64,
}
