//! An in-process provider for demos and tests: no network, no keys.
//!
//! It answers deterministically: `mock_response` from the request (as in
//! LiteLLM) or from the deployment's `litellm_params`, else a fixed sentence
//! that quotes the last user message. Streams split the answer into chunks of
//! a few words. `mock_latency_ms` in `litellm_params` waits before answering;
//! `mock_chunk_delay_ms` waits between stream chunks.

use crate::error::ProviderError;
use crate::provider::{CallContext, ChunkStream, Provider, ProviderKind};
use crate::registry::{BuildContext, BuildError, ProviderFactory, ProviderSpec};
use async_trait::async_trait;
use gateway_types::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Delta, Embedding,
    EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, JsonObject, ResponseMessage, Role,
    Usage,
};
use std::sync::Arc;
use std::time::Duration;

/// Builds [`MockProvider`]s (`mock/<any name>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MockFactory;

impl ProviderFactory for MockFactory {
    fn build(
        &self,
        spec: &ProviderSpec,
        _cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        let millis = |key: &str| -> Result<Duration, BuildError> {
            match spec.settings.get(key) {
                None => Ok(Duration::ZERO),
                Some(value) => value.as_u64().map(Duration::from_millis).ok_or_else(|| {
                    BuildError::Invalid(format!("`{key}` must be a whole number of milliseconds"))
                }),
            }
        };
        let response = match spec.settings.get("mock_response") {
            None => None,
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(_) => {
                return Err(BuildError::Invalid(
                    "`mock_response` must be a string".to_owned(),
                ))
            }
        };
        Ok(Arc::new(MockProvider {
            model: spec.upstream_model.clone(),
            response,
            latency: millis("mock_latency_ms")?,
            chunk_delay: millis("mock_chunk_delay_ms")?,
        }))
    }
}

/// A deterministic in-process model.
#[derive(Debug, Clone)]
pub struct MockProvider {
    model: String,
    response: Option<String>,
    latency: Duration,
    chunk_delay: Duration,
}

/// Words per stream chunk.
const WORDS_PER_CHUNK: usize = 3;

impl MockProvider {
    /// A mock that answers at once with its default text.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            response: None,
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
        }
    }

    /// The text this mock answers `request` with.
    pub fn reply_text(&self, request: &ChatRequest, cx: &CallContext) -> String {
        if let Some(text) = cx.mock_response.as_ref().or(self.response.as_ref()) {
            return text.clone();
        }
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .and_then(|message| message.content.as_ref())
            .map(|content| content.joined_text())
            .unwrap_or_default();
        let quoted: String = last_user.chars().take(200).collect();
        format!("Hello from the mock provider! You said: \"{quoted}\"")
    }

    fn usage(&self, request: &ChatRequest, reply: &str) -> Usage {
        let prompt_tokens: usize = request
            .messages
            .iter()
            .filter_map(|message| message.content.as_ref())
            .map(|content| count_words(&content.joined_text()))
            .sum();
        Usage::new(prompt_tokens as u64, count_words(reply) as u64)
    }

    fn id(cx: &CallContext) -> String {
        if cx.request_id.is_empty() {
            "chatcmpl-mock".to_owned()
        } else {
            format!("chatcmpl-{}", cx.request_id)
        }
    }
}

fn count_words(text: &str) -> usize {
    text.split_whitespace().count().max(1)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// Splits text into pieces of a few words, keeping the spaces, so that the
/// pieces concatenate to exactly the text.
fn split_into_pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    for (index, ch) in text.char_indices() {
        current.push(ch);
        let next_is_word_start = ch == ' ' && text[index + 1..].starts_with(|c: char| c != ' ');
        if next_is_word_start {
            words += 1;
            if words == WORDS_PER_CHUNK {
                pieces.push(std::mem::take(&mut current));
                words = 0;
            }
        }
    }
    if !current.is_empty() || pieces.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[async_trait]
impl Provider for MockProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind("mock")
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let reply = self.reply_text(request, cx);
        Ok(ChatResponse {
            id: Self::id(cx),
            object: "chat.completion".to_owned(),
            created: unix_now(),
            model: cx.upstream_model(&self.model).into_owned(),
            usage: Some(self.usage(request, &reply)),
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage::assistant(reply),
                finish_reason: Some("stop".to_owned()),
                logprobs: None,
                extra: JsonObject::new(),
            }],
            system_fingerprint: None,
            extra: JsonObject::new(),
        })
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let reply = self.reply_text(request, cx);
        let usage = self.usage(request, &reply);
        let template = ChatChunk::new(
            Self::id(cx),
            cx.upstream_model(&self.model).into_owned(),
            unix_now(),
        );
        let mut chunks = Vec::new();
        for (index, piece) in split_into_pieces(&reply).into_iter().enumerate() {
            let mut chunk = template.clone();
            chunk.choices.push(ChunkChoice {
                delta: Delta {
                    role: (index == 0).then_some(Role::Assistant),
                    content: Some(piece),
                    ..Delta::default()
                },
                ..ChunkChoice::default()
            });
            chunks.push(chunk);
        }
        let mut last = template.clone();
        last.choices.push(ChunkChoice {
            finish_reason: Some("stop".to_owned()),
            ..ChunkChoice::default()
        });
        chunks.push(last);
        let mut usage_chunk = template;
        usage_chunk.usage = Some(usage);
        chunks.push(usage_chunk);

        let delay = self.chunk_delay;
        let stream = futures_util::stream::unfold(
            (chunks.into_iter(), true),
            move |(mut chunks, first)| async move {
                let chunk = chunks.next()?;
                if !first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok(chunk), (chunks, false)))
            },
        );
        Ok(Box::pin(stream))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let texts: Vec<String> = match request.input_texts() {
            Some(texts) => texts.into_iter().map(str::to_owned).collect(),
            None => vec![request.input.to_string()],
        };
        let dimensions = request.dimensions.unwrap_or(8).clamp(1, 4096) as usize;
        let tokens: usize = texts.iter().map(|text| count_words(text)).sum();
        let data = texts
            .iter()
            .enumerate()
            .map(|(index, text)| Embedding {
                object: "embedding".to_owned(),
                index: index as u32,
                embedding: serde_json::Value::from(pseudo_vector(text, dimensions)),
            })
            .collect();
        Ok(EmbeddingsResponse {
            object: "list".to_owned(),
            data,
            model: cx.upstream_model(&self.model).into_owned(),
            usage: Some(EmbeddingsUsage {
                prompt_tokens: tokens as u64,
                total_tokens: tokens as u64,
            }),
            extra: JsonObject::new(),
        })
    }
}

/// A deterministic unit-length vector derived from the text (FNV-1a seeded
/// per dimension): equal texts embed equally, different texts differently.
fn pseudo_vector(text: &str, dimensions: usize) -> Vec<f64> {
    let raw: Vec<f64> = (0..dimensions)
        .map(|dimension| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ dimension as u64;
            for byte in text.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            (hash % 2_000) as f64 / 1_000.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|value| value * value)
        .sum::<f64>()
        .sqrt()
        .max(f64::EPSILON);
    raw.into_iter().map(|value| value / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use gateway_types::Message;

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "alias".to_owned(),
            messages: vec![Message::text(Role::User, text)].into(),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn pieces_concatenate_to_the_text() {
        for text in [
            "",
            "one",
            "a b c d e f g",
            "  spaced   out  text ",
            "héllo wörld ünïcode x y",
        ] {
            assert_eq!(split_into_pieces(text).concat(), text);
        }
        assert_eq!(split_into_pieces("a b c d e f g").len(), 3);
    }

    #[tokio::test]
    async fn stream_reassembles_to_the_non_stream_reply_and_ends_with_usage() {
        let mock = MockProvider::new("m");
        let cx = CallContext::default();
        let full = mock
            .chat(&request("tell me a story"), &cx)
            .await
            .map(|r| r.choices[0].message.content.clone());
        let Ok(mut stream) = mock.chat_stream(&request("tell me a story"), &cx).await else {
            panic!("stream failed");
        };
        let mut text = String::new();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                panic!("chunk failed")
            };
            for choice in &chunk.choices {
                text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            }
            chunks.push(chunk);
        }
        assert_eq!(Ok(Some(text)), full);
        assert!(chunks.len() > 3, "several chunks, got {}", chunks.len());
        assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
        let last = chunks.last().and_then(|chunk| chunk.usage.clone());
        assert_eq!(last.map(|usage| usage.prompt_tokens), Some(4));
    }

    #[tokio::test]
    async fn mock_response_overrides_the_text() {
        let mock = MockProvider::new("m");
        let cx = CallContext {
            mock_response: Some("canned".to_owned()),
            ..CallContext::default()
        };
        let reply = mock
            .chat(&request("x"), &cx)
            .await
            .map(|r| r.choices[0].message.content.clone());
        assert_eq!(reply, Ok(Some("canned".to_owned())));
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = pseudo_vector("hello", 8);
        assert_eq!(a, pseudo_vector("hello", 8));
        assert_ne!(a, pseudo_vector("world", 8));
        let norm: f64 = a.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-9);
    }
}
