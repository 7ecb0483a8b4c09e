//! Serde mirrors of Ollama's native API (`POST /api/chat`, `POST /api/embed`),
//! as documented in ollama/docs/api.md.

use gateway_types::{JsonObject, Tool};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `/api/chat` request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ChatRequestWire {
    pub model: String,
    pub messages: Vec<WireMessage>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    #[serde(skip_serializing_if = "JsonObject::is_empty")]
    pub options: JsonObject,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// `think`, `keep_alive` and other fields the client sent.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// One message, in a request or a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireMessage {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
}

/// A whole tool call: Ollama never streams arguments piecewise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireToolCall {
    pub function: WireFunction,
}

/// The function of a tool call; `arguments` is a JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// A non-stream response, and each line of a stream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ChatResponseWire {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub message: Option<WireMessage>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
}

/// The `/api/embed` request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct EmbedRequest {
    pub model: String,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The `/api/embed` response.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct EmbedResponse {
    #[serde(default)]
    pub model: String,
    pub embeddings: Vec<Value>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
}
