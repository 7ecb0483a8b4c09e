//! Provider adapters: how the gateway talks to each model provider.
//!
//! A [`Provider`] is one configured deployment (an upstream model at an
//! endpoint with a credential). It takes OpenAI-shaped requests and returns
//! OpenAI-shaped responses and stream chunks, translating to and from the
//! upstream's own protocol. Failures are [`ProviderError`]s that carry facts
//! (what kind, which status, when to retry) and no policy: the router decides
//! what to do with them.
//!
//! Providers are built from a [`ProviderSpec`] by a [`ProviderFactory`] found
//! in a [`ProviderRegistry`] by the model's prefix (`openai/`, `mock/`, ...).
//! A provider living in another crate plugs in by registering its factory.
//!
//! Built in: the OpenAI-compatible adapter ([`openai`]: `openai/`,
//! `hosted_vllm/`, `openrouter/`, `custom_openai/`), [`azure`] OpenAI,
//! [`anthropic`] (with the pure conversions of the gateway's own Anthropic
//! `/v1/messages` ingress in [`anthropic::ingress`]), [`ollama`] (`ollama/`,
//! `ollama_chat/`), [`gemini`], and an in-process [`mock`] provider for demos
//! and tests. `docs/providers.md` explains how to add one.
//!
//! This crate deliberately knows nothing of routing, budgets, HTTP status codes
//! for gateway clients, or the config file format.

#![deny(missing_docs)]

pub mod anthropic;
pub mod azure;
pub mod error;
pub mod framing;
pub mod gemini;
pub mod http;
pub mod mock;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod provider;
pub mod registry;
pub mod reply;
pub mod sse;
pub mod translate;

pub use error::{ErrorKind, ProviderError};
pub use http::{HttpClient, HttpClientOptions};
pub use provider::{
    CallContext, ChunkStream, NativeResponse, NativeStream, Provider, ProviderKind, ReplyStream,
};
pub use registry::{
    BuildContext, BuildError, Env, ProviderFactory, ProviderRegistry, ProviderSpec,
};
pub use reply::{ChatReply, ChunkReply, RawChatChunk, RawChatResponse};
