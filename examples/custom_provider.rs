//! Registering a provider that lives outside `gateway-providers`.
//!
//! `ShoutProvider` answers with the last user message in upper case. It is
//! registered under the `shout/` prefix next to the built-in providers,
//! built from a spec (as the server does for each `model_list` entry) and
//! called once. No network, no keys:
//!
//! ```text
//! cargo run -p gateway-examples --example custom_provider
//! ```

#![allow(clippy::print_stdout)]

use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_providers::{
    BuildContext, BuildError, CallContext, ChunkStream, Env, HttpClient, HttpClientOptions,
    Provider, ProviderError, ProviderFactory, ProviderKind, ProviderRegistry, ProviderSpec,
};
use gateway_types::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Delta, JsonObject, Message,
    ResponseMessage, Role, Usage,
};
use std::sync::Arc;

/// Builds [`ShoutProvider`]s for `shout/<anything>`.
#[derive(Debug)]
struct ShoutFactory;

impl ProviderFactory for ShoutFactory {
    fn build(
        &self,
        spec: &ProviderSpec,
        _cx: &BuildContext,
    ) -> Result<Arc<dyn Provider>, BuildError> {
        Ok(Arc::new(ShoutProvider {
            model: spec.upstream_model.clone(),
        }))
    }
}

/// Answers with the last user message in upper case.
#[derive(Debug)]
struct ShoutProvider {
    model: String,
}

impl ShoutProvider {
    fn answer(request: &ChatRequest) -> String {
        request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .and_then(|message| message.content.as_ref())
            .map(|content| content.joined_text().to_uppercase())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Provider for ShoutProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind("shout")
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        _cx: &CallContext,
    ) -> Result<ChatResponse, ProviderError> {
        let answer = Self::answer(request);
        Ok(ChatResponse {
            id: "chatcmpl-shout".to_owned(),
            object: "chat.completion".to_owned(),
            created: 0,
            model: self.model.clone(),
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage::assistant(answer.clone()),
                finish_reason: Some("stop".to_owned()),
                logprobs: None,
                extra: JsonObject::new(),
            }],
            usage: Some(Usage::new(1, answer.split_whitespace().count() as u64)),
            system_fingerprint: None,
            extra: JsonObject::new(),
        })
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        _cx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        // One text chunk, one finish chunk, and the usage chunk the contract asks for.
        let answer = Self::answer(request);
        let template = ChatChunk::new("chatcmpl-shout", self.model.clone(), 0);
        let mut text = template.clone();
        text.choices.push(ChunkChoice {
            delta: Delta {
                role: Some(Role::Assistant),
                content: Some(answer.clone()),
                ..Delta::default()
            },
            ..ChunkChoice::default()
        });
        let mut finish = template.clone();
        finish.choices.push(ChunkChoice {
            finish_reason: Some("stop".to_owned()),
            ..ChunkChoice::default()
        });
        let mut usage = template;
        usage.usage = Some(Usage::new(1, answer.split_whitespace().count() as u64));
        Ok(Box::pin(futures_util::stream::iter([
            Ok(text),
            Ok(finish),
            Ok(usage),
        ])))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = ProviderRegistry::builtin();
    registry.register("shout", ShoutFactory);

    let spec = ProviderSpec {
        prefix: "shout".to_owned(),
        upstream_model: "loud-1".to_owned(),
        ..ProviderSpec::default()
    };
    let cx = BuildContext {
        http: HttpClient::new(&HttpClientOptions::default()),
        env: Env::isolated(Default::default()),
    };
    let provider = registry.build(&spec, &cx)?;

    let request = ChatRequest {
        model: "my-alias".to_owned(),
        messages: vec![Message::text(Role::User, "hello from a custom provider")].into(),
        ..ChatRequest::default()
    };
    let response = provider.chat(&request, &CallContext::default()).await?;
    let answer = response
        .choices
        .first()
        .and_then(|choice| choice.message.content.clone());
    println!("{}", answer.unwrap_or_default());

    let mut stream = provider
        .chat_stream(&request, &CallContext::default())
        .await?;
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        chunk?;
        chunks += 1;
    }
    println!("streamed {chunks} chunks");
    Ok(())
}
