//! Token counting for pre-call context-window checks, with a real BPE
//! tokenizer (`tiktoken-rs`), counted the way OpenAI bills chat messages.

use crate::types::Tokenizer;
use gateway_types::{ChatRequest, EmbeddingsRequest};
use tiktoken_rs::CoreBPE;

/// Tokens added per message by the chat format.
const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens added for a message's `name`.
const TOKENS_PER_NAME: u64 = 1;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMING_TOKENS: u64 = 3;

fn bpe(tokenizer: Tokenizer) -> &'static CoreBPE {
    match tokenizer {
        Tokenizer::Cl100k => tiktoken_rs::cl100k_base_singleton(),
        Tokenizer::O200k => tiktoken_rs::o200k_base_singleton(),
    }
}

/// Tokens in a text.
pub fn count_text(tokenizer: Tokenizer, text: &str) -> u64 {
    bpe(tokenizer).encode_ordinary(text).len() as u64
}

/// Tokens of a chat request's input: messages (text parts), names, tool
/// calls and tool definitions.
pub fn count_chat(tokenizer: Tokenizer, request: &ChatRequest) -> u64 {
    let bpe = bpe(tokenizer);
    let count = |text: &str| bpe.encode_ordinary(text).len() as u64;
    let mut total = REPLY_PRIMING_TOKENS;
    for message in &request.messages {
        total += TOKENS_PER_MESSAGE;
        if let Some(content) = &message.content {
            total += count(&content.joined_text());
        }
        if let Some(name) = &message.name {
            total += TOKENS_PER_NAME + count(name);
        }
        if let Some(calls) = &message.tool_calls {
            if let Ok(json) = serde_json::to_string(calls) {
                total += count(&json);
            }
        }
    }
    if let Some(tools) = &request.tools {
        if let Ok(json) = serde_json::to_string(tools) {
            total += count(&json);
        }
    }
    total
}

/// Tokens of an embeddings request's input: strings are counted, token
/// arrays are taken at their length.
pub fn count_embeddings(tokenizer: Tokenizer, request: &EmbeddingsRequest) -> u64 {
    fn walk(bpe: &CoreBPE, value: &serde_json::Value) -> u64 {
        match value {
            serde_json::Value::String(text) => bpe.encode_ordinary(text).len() as u64,
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    serde_json::Value::Number(_) => 1,
                    other => walk(bpe, other),
                })
                .sum(),
            _ => 0,
        }
    }
    walk(bpe(tokenizer), &request.input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_types::{Message, Role};

    #[test]
    fn text_is_counted_with_bpe_not_characters() {
        assert_eq!(count_text(Tokenizer::Cl100k, "hello world"), 2);
        assert_eq!(count_text(Tokenizer::O200k, "hello world"), 2);
        assert_eq!(count_text(Tokenizer::Cl100k, ""), 0);
    }

    #[test]
    fn chat_counts_messages_with_format_overhead() {
        let request = ChatRequest {
            messages: vec![
                Message::text(Role::System, "be brief"),
                Message::text(Role::User, "hello world"),
            ]
            .into(),
            ..ChatRequest::default()
        };
        // 3 priming + 2 * 3 per message + "be brief" (2) + "hello world" (2).
        assert_eq!(count_chat(Tokenizer::Cl100k, &request), 3 + 6 + 2 + 2);
    }

    #[test]
    fn embeddings_count_strings_and_token_arrays() {
        let request = EmbeddingsRequest {
            model: "e".to_owned(),
            input: serde_json::json!(["hello world", [1, 2, 3]]),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        };
        assert_eq!(count_embeddings(Tokenizer::Cl100k, &request), 5);
    }
}
