//! Embeds a router: two groups, one falling back to the other, no server or
//! store. Run with `cargo run -p gateway-router --example embed`.

use async_trait::async_trait;
use gateway_providers::{mock::MockProvider, CallContext, ChunkStream, ErrorKind};
use gateway_providers::{Provider, ProviderError, ProviderKind};
use gateway_router::{Deployment, RequestOptions, Router, RouterSettings};
use gateway_types::{ChatRequest, ChatResponse, Message, ModelName, Role};
use std::sync::Arc;

/// A provider that is always overloaded.
#[derive(Debug)]
struct Overloaded;

#[async_trait]
impl Provider for Overloaded {
    fn kind(&self) -> ProviderKind {
        ProviderKind("overloaded")
    }
    async fn chat(&self, _: &ChatRequest, _: &CallContext) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::new(ErrorKind::Overloaded, "try later"))
    }
    async fn chat_stream(
        &self,
        _: &ChatRequest,
        _: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        Err(ProviderError::new(ErrorKind::Overloaded, "try later"))
    }
}

fn deployment(id: &str, group: &str, provider: Arc<dyn Provider>) -> Deployment {
    let (id, model_name, settings) = (id.into(), group.into(), Default::default());
    Deployment {
        id,
        model_name,
        provider,
        settings,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = RouterSettings {
        num_retries: 1,
        fallbacks: [(ModelName::from("smart"), vec![ModelName::from("cheap")])].into(),
        ..RouterSettings::default()
    };
    let smart = deployment("smart-1", "smart", Arc::new(Overloaded));
    let cheap = deployment("cheap-1", "cheap", Arc::new(MockProvider::new("cheap")));
    let router = Router::new(settings, vec![smart, cheap])?;

    let messages = vec![Message::text(Role::User, "hello")];
    let request = ChatRequest {
        model: "smart".to_owned(),
        messages: messages.into(),
        ..ChatRequest::default()
    };
    let options = RequestOptions::default();
    let report = router
        .chat(&request, &options)
        .await
        .map_err(|f| f.error)?
        .report;
    // smart-1 was tried twice (one retry), then the cheap group answered.
    assert_eq!(
        (report.attempts, report.retries, report.fallbacks),
        (3, 1, 1)
    );
    assert_eq!(report.model_group, Some(ModelName::from("cheap")));
    Ok(())
}
