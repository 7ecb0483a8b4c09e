//! Wire types shared by every gateway crate.
//!
//! This crate holds the OpenAI-compatible request and response shapes (chat
//! completions, stream chunks, embeddings, the models list), the OpenAI error
//! body, and small value types that encode preconditions: [`ModelName`],
//! [`DeploymentId`], [`NanoUsd`] and [`Secret`].
//!
//! Wire types are liberal: every struct that mirrors an OpenAI object keeps
//! the fields it does not know in an `extra` map (`#[serde(flatten)]`), so new
//! provider parameters pass through the gateway untouched.
//!
//! It deliberately does no IO, knows no HTTP status codes, and has no opinion
//! about routing or budgets.

#![deny(missing_docs)]

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod ids;
pub mod models;
pub mod money;
pub mod secret;

pub use chat::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, ContentPart, Delta,
    FunctionCall, FunctionCallDelta, ImageUrl, Message, MessageContent, Messages, ResponseMessage,
    Role, Stop, StreamOptions, Tool, ToolCall, ToolCallDelta, ToolChoice, Usage,
};
pub use embeddings::{Embedding, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage};
pub use error::{ErrorBody, ErrorDetail};
pub use ids::{DeploymentId, ModelName};
pub use models::{ModelList, ModelObject};
pub use money::{NanoUsd, UsdText};
pub use secret::Secret;

/// A JSON object: the type of every `extra` map that keeps unknown fields.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;
