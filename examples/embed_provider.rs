//! Calling a provider straight from Rust, without the server or the router.
//!
//! Builds a deployment through the provider registry (the same path the
//! server takes for each `model_list` entry), then makes a non-stream and a
//! streamed call. Uses the built-in mock provider, so it needs no key and no
//! network:
//!
//! ```text
//! cargo run -p gateway-examples --example embed_provider
//! ```
//!
//! Swap the spec for `prefix: "openai"`, an `api_base` and an `api_key` to
//! talk to a real OpenAI-compatible server.

#![allow(clippy::print_stdout)]

use futures_util::StreamExt;
use gateway_providers::{
    BuildContext, CallContext, Env, HttpClient, HttpClientOptions, ProviderRegistry, ProviderSpec,
};
use gateway_types::{ChatRequest, Message, Role};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = ProviderRegistry::builtin();
    let cx = BuildContext {
        http: HttpClient::new(&HttpClientOptions::default()),
        env: Env::process(),
    };
    let spec = ProviderSpec {
        prefix: "mock".to_owned(),
        upstream_model: "demo-model".to_owned(),
        ..ProviderSpec::default()
    };
    let provider = registry.build(&spec, &cx)?;

    let request = ChatRequest {
        model: "demo".to_owned(),
        messages: vec![Message::text(Role::User, "What is a gateway?")].into(),
        ..ChatRequest::default()
    };
    let call = CallContext::default();

    let response = provider.chat(&request, &call).await?;
    let text = response.choices[0]
        .message
        .content
        .clone()
        .unwrap_or_default();
    println!("non-stream: {text}");

    let mut stream = provider.chat_stream(&request, &call).await?;
    print!("stream:    ");
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            print!("{}", choice.delta.content.as_deref().unwrap_or(""));
        }
        if let Some(usage) = chunk.usage {
            println!(
                "\nusage:     {} prompt + {} completion tokens",
                usage.prompt_tokens, usage.completion_tokens
            );
        }
    }
    Ok(())
}
